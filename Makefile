# Two commands do all set-up on a fresh machine:
#   make demo   - create/reuse .venv, install lr0fm, benchmark toyclip with and without the shipped toy LR tokens,
#                 run the model analyses and write the toy report
#   make test   - create/reuse .venv, install lr0fm with dev extras (and Debian's chromium for the report's
#                 browser test when missing and this machine allows: .ci/ensure-chromium), run the default suite
#   make lint   - ruff check and ruff format --check over the whole tree (CI runs it too)
#   make docs-report - regenerate docs/report (the report of the shipped published table)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lr0fm-installed

.PHONY: demo test test-slow lint bench clean-venv chromium docs-report
DEMO_OUT := lightning_logs/benchmark/toy

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# the shipped toy LR tokens: `lr0fm fit --config toy` (seed 0) exported, see the README's toy-world section
TOY_TOKENS := lr0fm/resources/toyclip/toyclip_lr_tokens.safetensors
TOY_SR := lr0fm/resources/toyclip/toy_sr_compact_x4.safetensors
TOY_ANALYSIS := --model toyclip --dataset toy-texture --resolutions 8 16 32 --lr_tokens $(TOY_TOKENS) \
	--output $(DEMO_OUT)/report

demo: $(STAMP)
	$(BIN)/lr0fm benchmark --config toy --output $(DEMO_OUT)
	$(BIN)/lr0fm benchmark --config toy --output $(DEMO_OUT) --lr_tokens $(TOY_TOKENS)
	$(BIN)/lr0fm analyze layer-similarity --images 120 $(TOY_ANALYSIS)
	$(BIN)/lr0fm analyze tsne --images 160 $(TOY_ANALYSIS)
	$(BIN)/lr0fm analyze gradcam --images 4 $(TOY_ANALYSIS)
	$(BIN)/lr0fm analyze mispredictions --images 12 --predictions $(DEMO_OUT) $(TOY_ANALYSIS)
	$(BIN)/lr0fm analyze sr-samples --images 4 --sr bicubic $(TOY_SR) $(TOY_ANALYSIS)
	$(BIN)/lr0fm report $(DEMO_OUT) --output $(DEMO_OUT)/report
	@echo "toy report: file://$(abspath $(DEMO_OUT)/report/index.html)"

chromium:
	@.ci/ensure-chromium

test: $(STAMP) chromium
	$(BIN)/python -m pytest -q

test-slow: $(STAMP) chromium
	$(BIN)/python -m pytest -q -m slow

docs-report: $(STAMP)
	$(BIN)/python docs/build_report.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python benchmarks/benchmark_speed.py

clean-venv:
	rm -rf $(VENV)
