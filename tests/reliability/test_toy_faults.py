"""``lr0fm toy`` with bad values: one line naming the value and the accepted range, exit 2, nothing written."""

from __future__ import annotations

import pytest

from lr0fm.cli import main as lr0fm_main


@pytest.mark.parametrize(
    ("values", "named"),
    [(["0"], "--resolutions 0"), (["16", "-3"], "--resolutions -3"), (["65"], "--resolutions 65")],
)
def test_eval_refuses_resolutions_outside_the_native_side(capsys, values, named):
    assert lr0fm_main(["toy", "eval", "--resolutions", *values]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and err.startswith("lr0fm toy eval: error: ")
    assert named in err and "from 1 to 64 px" in err and "--resolutions 32 16 8" in err


def test_eval_refuses_a_non_integer_resolution_and_an_empty_class_count(capsys):
    assert lr0fm_main(["toy", "eval", "--resolutions", "1.5"]) == 2
    assert 'key "resolutions"' in capsys.readouterr().err  # the parser's own type error
    assert lr0fm_main(["toy", "eval", "--num_per_class", "0"]) == 2
    assert "--num_per_class 0 is not valid: expected a positive integer" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "value", "accepted"),
    [
        ("--max_steps", "0", "integer >= 1 (0 steps would write untrained weights)"),
        ("--max_steps", "-1", "integer >= 1"),
        ("--batch_size", "1", "integer >= 2"),
        ("--lr", "0", "finite number > 0"),
        ("--lr", "1e999", "finite number > 0"),
        ("--weight_decay", "-0.1", "finite number >= 0"),
    ],
)
def test_pretrain_refuses_values_that_train_nothing_and_writes_nothing(tmp_path, capsys, flag, value, accepted):
    output = tmp_path / "run"
    assert lr0fm_main(["toy", "pretrain", "--output", str(output), flag, value]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and err.startswith("lr0fm toy pretrain: error: ")
    assert f"{flag} {'inf' if value == '1e999' else value}" in err and accepted in err
    assert not output.exists()
