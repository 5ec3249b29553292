# Two commands do all set-up on a fresh machine:
#   make demo   - create/reuse .venv, install lr0fm, run the embedded default job
#   make test   - create/reuse .venv, install lr0fm with dev extras, run the default test suite
#   make lint   - ruff check and ruff format --check over the whole tree (CI runs it too)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lr0fm-installed

.PHONY: demo test test-slow lint bench clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lr0fm benchmark --config toy

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python benchmarks/benchmark_speed.py

clean-venv:
	rm -rf $(VENV)
