"""Every command: an error is one line naming the problem (traceback only with --debug), status non-zero."""

from __future__ import annotations

import sys
import types

import pytest

from lr0fm import cli


@pytest.fixture
def boom(monkeypatch):
    """A subcommand whose main raises what the test puts in ``error``."""
    module = types.ModuleType("lr0fm_test_boom")
    state = {"error": None, "argv": None}

    def main(argv):
        state["argv"] = argv
        raise state["error"]

    module.main = main
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(cli.SUBCOMMANDS, "boom", (module.__name__, "raises"))
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    return state


def test_an_error_is_one_line_with_the_hint_for_the_traceback(boom, capsys):
    boom["error"] = FileExistsError(17, "File exists", "/tmp/out")
    assert cli.main(["boom", "--x", "1"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "lr0fm boom: error: [Errno 17] File exists: '/tmp/out'"
    assert "--debug" in err and "Traceback" not in err
    assert boom["argv"] == ["--x", "1"]


def test_debug_shows_the_traceback_and_is_not_passed_on(boom, monkeypatch):
    boom["error"] = KeyError("weights")
    monkeypatch.setenv(cli.DEBUG_ENV, "0")  # restored after the test
    with pytest.raises(KeyError):
        cli.main(["boom", "--debug", "--x"])
    assert boom["argv"] == ["--x"]
    import os

    assert os.environ[cli.DEBUG_ENV] == "1"  # DDP and worker processes see it too


def test_an_unexpected_type_is_named_with_its_message(boom, capsys):
    class ShardError(Exception):
        pass

    boom["error"] = ShardError("tar header truncated in shard-0003.tar")
    assert cli.main(["boom"]) == 1
    line = capsys.readouterr().err.splitlines()[0]
    assert line == "lr0fm boom: error: tar header truncated in shard-0003.tar (ShardError)"


def test_ctrl_c_is_status_130_without_a_traceback(boom, capsys):
    boom["error"] = KeyboardInterrupt()
    assert cli.main(["boom"]) == 130
    assert capsys.readouterr().err.strip() == "lr0fm boom: interrupted"


def test_benchmark_output_that_is_a_file_is_one_line_naming_it(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    target = tmp_path / "results"
    target.write_text("not a folder")
    status = cli.main(["benchmark", "--model", "toyclip", "--dataset", "toy-color", "--output", str(target)])
    err = capsys.readouterr().err
    assert status != 0 and "Traceback" not in err and str(target) in err
    assert target.read_text() == "not a folder"


OUTPUT_FOLDER_COMMANDS = {
    "benchmark": ["benchmark", "--model", "toyclip", "--dataset", "toy-color", "--output", "{out}"],
    "benchmark cache": ["benchmark", "--model", "toyclip", "--dataset", "toy-color", "--cache_dir", "{out}",
                        "--output", "{tmp}/bench"],
    "metrics report": ["metrics", "report", "lr0fm66", "--output", "{out}"],
    "report": ["report", "lr0fm66", "--output", "{out}"],
    "analyze": ["analyze", "tsne", "--model", "toyclip", "--dataset", "toy-color", "--output", "{out}"],
    "toy pretrain": ["toy", "pretrain", "--max_steps", "1", "--output", "{out}"],
}  # fmt: skip


@pytest.mark.parametrize("below", [False, True], ids=["is-a-file", "below-a-file"])
@pytest.mark.parametrize("command", list(OUTPUT_FOLDER_COMMANDS))
def test_an_output_folder_that_is_a_file_is_refused_before_any_work(tmp_path, capsys, monkeypatch, command, below):
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    blocker = tmp_path / "taken"
    blocker.write_text("keep me")
    out = blocker / "sub" if below else blocker
    argv = [a.format(out=out, tmp=tmp_path) for a in OUTPUT_FOLDER_COMMANDS[command]]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and repr(str(out)) in err and "expected a folder" in err
    assert ("which is a file" in err) is below and "pass another" in err
    assert blocker.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
