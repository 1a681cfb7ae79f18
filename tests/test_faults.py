"""Fault injection: each test feeds one user mistake or edge case to a command-line script (or a
library call) and pins the exact behaviour: exit status 2, one line on stderr that names the
culprit (a caret under it where it is text), never a traceback, no output file left behind.

Sections: composition and temporal tasks (`zero_shot.py`); training and checkpoints
(`train.py`); Gymnasium. Divergence, interrupts and exact resume are in test_run_safety.py.
"""

import json
import shutil
import subprocess

import gymnasium
import pytest
import yaml

from composable_rl.languages.ltl import from_ltl, holds
from tests.office_tasks import EXAMPLE, OFFICE, OFFICE_LABELS
from tests.scripts import run_script


def refused(*args: str) -> str:
    """stderr of a script run that must fail as a usage error: status 2, no traceback."""
    done: subprocess.CompletedProcess = run_script(*args)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    return done.stderr


def one_line(stderr: str) -> str:
    """The single line of an error message (it must be one)."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def caret_under(stderr: str, text: str) -> str:
    """The character of `text` that the caret of an expression error points at."""
    *_, shown, caret = stderr.rstrip("\n").splitlines()
    assert shown.strip() == text, stderr
    return text[caret.index("^") - 2]


def strict_json(path) -> list[dict]:
    """Rows of a JSON file that must be strict JSON (no NaN or Infinity)."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{path} holds {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


# --- composition and temporal tasks: zero_shot.py -------------------------------------------


def test_deep_expressions_are_refused_with_a_caret(world_value_run, tmp_path):
    """Probe 1: 200 nested parentheses or 500 chained '&' once raised RecursionError."""
    out = tmp_path / "rows.json"
    for text in ["(" * 200 + "blue" + ")" * 200, " & ".join(["blue"] * 500)]:
        args = ("--checkpoint", str(world_value_run), f"--task={text}", "--json", str(out))
        stderr = refused("zero_shot.py", *args)
        assert "nesting deeper than 100 levels" in stderr
        assert caret_under(stderr, text) in "(&"
        assert not out.exists()


def test_deep_ltl_formulas_are_refused_with_a_caret(office_run):
    """Probe 2: 300 nested `F(` once raised RecursionError."""
    text = "F(" * 300 + "f" + ")" * 300
    stderr = refused("zero_shot.py", "--checkpoint", str(office_run), "--ltl", text)
    assert "nesting deeper than 100 levels" in stderr and caret_under(stderr, text) == "F"


def test_undefined_normalised_return_is_null_not_nan(world_value_run, tmp_path):
    """Probe 4: `0*blue` (oracle = random) once wrote the invalid JSON token NaN."""
    out = tmp_path / "rows.json"
    args = ("--checkpoint", str(world_value_run), "--episodes", "4", "--json", str(out))
    done = run_script("zero_shot.py", *args, "--task", "0*blue", "--task", "blue")
    assert done.returncode == 0, done.stderr
    zero, blue = strict_json(out)
    assert zero["normalized_return"] is None and blue["normalized_return"] is not None
    assert "n/a" in done.stdout.splitlines()[1]
    assert "over 1 (1 undefined: oracle = random)" in done.stdout


def test_output_paths_are_checked_before_evaluating(world_value_run, tmp_path):
    """Probe 5: --json into a missing folder once failed after the whole evaluation. The task
    names an unknown head, so an evaluation would fail otherwise: the path is checked first."""
    for option, name in (("--json", "rows.json"), ("--plot", "bars.png")):
        missing = tmp_path / "missing" / name
        line = one_line(
            refused(
                "zero_shot.py",
                *("--checkpoint", str(world_value_run), "--task", "blu", option, str(missing)),
            )
        )
        assert line == f"zero_shot.py: {option} {missing}: folder {missing.parent} does not exist"
    assert not (tmp_path / "missing").exists()
    logdir = tmp_path / "file" / "logs"
    (tmp_path / "file").write_text("")
    line = one_line(
        refused(
            "zero_shot.py",
            *("--checkpoint", str(world_value_run), "--task", "blu", "--logdir", str(logdir)),
        )
    )
    assert line == f"zero_shot.py: --logdir {logdir}: {tmp_path / 'file'} is a file, not a folder"


def test_non_positive_episodes_are_refused(world_value_run):
    """Probe 6: `--episodes 0` was silently read as the default 200."""
    for value in ("0", "-3"):
        args = ("--checkpoint", str(world_value_run), "--task", "blue", f"--episodes={value}")
        line = one_line(refused("zero_shot.py", *args))
        assert line == (
            f"zero_shot.py: argument --episodes: must be a positive integer, got {value!r} "
            "(see --help)"
        )


def test_expression_values_may_start_with_a_dash(world_value_run, tmp_path):
    """Probe 7: `--task -blue` was refused by argparse; only `--task=-blue` worked."""
    out = tmp_path / "rows.json"
    args = ("--checkpoint", str(world_value_run), "--episodes", "2", "--json", str(out))
    done = run_script("zero_shot.py", *args, "--task", "-blue", "--task", "-0.5*blue + square")
    assert done.returncode == 0, done.stderr
    assert [row["task"] for row in strict_json(out)] == ["-blue", "-0.5*blue + square"]
    help_text = run_script("zero_shot.py", "--help").stdout
    assert "--task -blue" in help_text


def test_tasks_that_cannot_be_completed_are_refused(office_run, tmp_path):
    """Probe 8: a machine whose accepting state is unreachable once ran, reporting
    oracle_steps -1; so did an unsatisfiable LTL formula."""
    machine = tmp_path / "dead_end.yaml"
    edges = [*EXAMPLE["edges"][:2], {"from": "u1", "to": "fail", "when": "g"}]
    machine.write_text(yaml.safe_dump(EXAMPLE | {"edges": edges}))
    line = one_line(refused("zero_shot.py", "--checkpoint", str(office_run), "--rm", str(machine)))
    assert line == (
        f"zero_shot.py: {machine}: no accepting state (done) can be reached from the initial "
        "state 'u0': the edges that labels of the alphabet fire only lead to u0, u1, fail, so "
        "the task could never be completed"
    )
    line = one_line(refused("zero_shot.py", "--checkpoint", str(office_run), "--ltl", "F f & G !f"))
    assert line == (
        "zero_shot.py: 'F f & G !f' is unsatisfiable: no sequence of labels of the alphabet "
        "satisfies it, so no episode could succeed"
    )


def test_globally_is_ltlf_over_the_labels_entered(office_run, tmp_path):
    """Probe 9: `G f` once succeeded at once from any start (the empty trace satisfied it). Now
    the trace holds the label of every cell entered, the first step's included: from the
    standard start (2, 1), which is no neighbour of a coffee cell, `G f` cannot succeed."""
    f, nothing = frozenset("f"), frozenset()
    assert not holds("G f", []) and holds("G f", [f]) and not holds("G f", [nothing, f])
    machine = from_ltl("G f", OFFICE, OFFICE_LABELS)
    assert machine.initial not in machine.accepting
    out = tmp_path / "rows.json"
    args = ("--checkpoint", str(office_run), "--ltl", "G f", "--episodes", "8")
    done = run_script("zero_shot.py", *args, "--json", str(out))
    assert done.returncode == 0, done.stderr
    standard, _ = strict_json(out)
    assert (standard["start"], standard["success"]) == ("standard", 0.0)


def test_experiment_tables_show_undefined_scores():
    """Probe 4 for experiments/linear_zero_shot.py: its table formatted None as a float."""
    from experiments.linear_zero_shot import table

    row = {"weights": [0.0], "oracle_return": 0.0, "composed_return": 0.0}
    row |= {"stationary_normalized": None}
    text = table([row | {"composed_normalized": None}, row | {"composed_normalized": 0.5}])
    assert "n/a" in text.splitlines()[1]
    assert text.splitlines()[-1] == "composed_normalized: mean 0.500, worst 0.500 over 1 vectors"


# --- training and checkpoints: train.py --------------------------------------------------

QUICK = ("--config", "configs/quickstart.yaml", "--no-progress")


def run_dirs(runs) -> list:
    """Run directories written under `runs` (none may be left by a refused command)."""
    return list(runs.iterdir()) if runs.exists() else []


@pytest.mark.parametrize(
    ("override", "line"),
    [
        (
            "env.object_positions=[[0,0],[9,9],[2,9],[9,3],[10,8],[4,4]]",
            "env.object_positions[0]: [0, 0] is a wall of layout 'four_rooms'",
        ),
        (
            "replay.learning_starts=200000",
            "replay.learning_starts: updates begin after 200000 steps, but total_steps is 200000",
        ),
        ("device=tpu9", "device: 'tpu9' is not a torch device (cpu, cuda, ...)"),
    ],
    ids=["object_on_wall", "learning_starts_after_the_end", "no_such_device"],
)
def test_config_mistakes_are_one_line_before_anything_is_written(tmp_path, override, line):
    """Probes: an object on a wall once raised a ValueError traceback; learning_starts >=
    total_steps trained nothing and evaluated the untrained agent without a word."""
    runs = tmp_path / "runs"
    stderr = refused("train.py", *QUICK, "--set", f"runs_dir={runs}", "--set", override)
    assert line in one_line(stderr)
    assert not run_dirs(runs)


def test_an_empty_config_file_is_refused(tmp_path):
    """Probe: an empty YAML file trained on the defaults silently."""
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    stderr = refused("train.py", "--config", str(empty), "--set", f"runs_dir={tmp_path}/runs")
    assert f"{empty}: the file is empty" in one_line(stderr)
    assert not run_dirs(tmp_path / "runs")


def test_a_runs_dir_that_cannot_be_written_is_refused(tmp_path):
    """Probe: a runs directory that could not be written raised a raw traceback."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    stderr = refused("train.py", *QUICK, "--set", f"runs_dir={blocker}/runs")
    assert "is a file, not a folder" in one_line(stderr)
    assert "runs_dir: cannot create the run directory" in stderr


@pytest.fixture()
def damaged_copy(world_value_run, tmp_path):
    """A copy of the session run whose files the test may damage; returns its checkpoint."""
    run = tmp_path / "run"
    shutil.copytree(world_value_run, run)
    return sorted((run / "checkpoints").iterdir())[-1]


def test_a_truncated_model_file_is_one_line(damaged_copy):
    """Probe: a truncated model.safetensors raised a raw SafetensorError."""
    model = damaged_copy / "model.safetensors"
    model.write_bytes(model.read_bytes()[:500])
    stderr = refused("zero_shot.py", "--checkpoint", str(damaged_copy), "--task", "blue")
    assert f"{model} is damaged" in one_line(stderr)


@pytest.mark.parametrize("key", ["config", "step"])
def test_meta_without_config_or_step_is_one_line(damaged_copy, key):
    """Probe: a meta.json without config or step raised a KeyError."""
    meta_file = damaged_copy / "meta.json"
    meta = json.loads(meta_file.read_text())
    del meta[key]
    meta_file.write_text(json.dumps(meta))
    stderr = refused("zero_shot.py", "--checkpoint", str(damaged_copy), "--task", "blue")
    assert f"{meta_file} lacks the keys ['{key}']" in one_line(stderr)


# --- Gymnasium ---------------------------------------------------------------------------


def test_every_seed_gymnasium_accepts_resets_our_worlds():
    """Probe: reset(seed=2**64) raised OverflowError, though Gymnasium accepts any int >= 0."""
    import envs  # noqa: F401  (registers our ids)

    env = gymnasium.make("composable_rl/ObjectRooms-v0")
    first, _ = env.reset(seed=2**64)
    again, _ = env.reset(seed=2**64)
    assert (first == again).all()
    with pytest.raises(gymnasium.error.Error):
        env.reset(seed=-1)
