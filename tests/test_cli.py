"""The command-line tools' shared pieces: one-line errors, dash values, output paths."""

import argparse

import pytest

from composable_rl.run.cli import (
    Parser,
    attach_dash_values,
    file_problem,
    folder_problem,
    positive_int,
)


def test_dash_values_attach_only_to_the_named_options():
    known = {"-h", "--help", "--task", "--episodes"}
    argv = ["--task", "-blue", "--task", "--episodes", "--episodes", "-3", "--task", "-h"]
    assert attach_dash_values(argv, ("--task",), known) == [
        "--task=-blue",
        "--task",
        "--episodes",
        "--episodes",
        "-3",
        "--task",
        "-h",
    ]


def test_parser_reads_dash_values_and_fails_in_one_line(capsys):
    parser = Parser(prog="tool", dash_values=("--task",))
    parser.add_argument("--task", action="append")
    parser.add_argument("--episodes", type=positive_int)
    assert parser.parse_args(["--task", "-blue", "--task", "red"]).task == ["-blue", "red"]
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(["--episodes", "0"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.splitlines()) == 1
    assert "argument --episodes: must be a positive integer, got '0' (see --help)" in err


def test_positive_int():
    assert positive_int("3") == 3
    for bad in ("0", "-1", "x", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError, match=repr(bad)):
            positive_int(bad)


def test_output_path_problems(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert file_problem(tmp_path / "rows.json") is None
    assert (
        file_problem(tmp_path / "missing" / "rows.json")
        == f"folder {tmp_path / 'missing'} does not exist"
    )
    assert file_problem(tmp_path) == "is a folder, not a file"
    assert folder_problem(tmp_path / "new" / "deeper") is None
    assert folder_problem(blocker / "runs") == f"{blocker} is a file, not a folder"
