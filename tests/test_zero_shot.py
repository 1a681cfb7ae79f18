"""The zero-shot composition CLI on a checkpoint trained once per session."""

import json
import re

import pytest
import torch

from agents import training
from agents.composition import evaluate_task, load
from composable_rl.config import Config, from_dict
from composable_rl.evaluation import RESULT_KEYS
from composable_rl.maths.levers import Levers
from tests.conftest import TINY_WORLD_VALUES
from tests.scripts import run_script


def zero_shot_rows(tmp_path, *args: str) -> list[dict]:
    """The rows `python zero_shot.py ARGS --json FILE` writes (the run must succeed)."""
    out = tmp_path / "rows.json"
    done = run_script("zero_shot.py", *args, "--json", str(out))
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


def zero_shot_error(*args: str) -> str:
    """What `python zero_shot.py ARGS` prints when it fails (it must fail without a traceback)."""
    done = run_script("zero_shot.py", *args)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    return done.stderr


def test_boolean_and_linear_tasks_are_near_optimal(world_value_run, tmp_path):
    tasks = ["blue & ~square", "purple | circle", "~(blue | circle)", "0.5*blue + square"]
    args = ["--checkpoint", str(world_value_run), "--episodes", "100"]
    rows = zero_shot_rows(tmp_path, *args, *(arg for task in tasks for arg in ("--task", task)))
    assert [row["task"] for row in rows] == tasks
    for row in rows:
        assert set(row) == {"task", *RESULT_KEYS}
        assert row["normalized_return"] >= 0.9, row
        assert row["success"] >= 0.9 or row["task"] == "0.5*blue + square", row


def test_all_boolean_enumerates_every_goal_subset(world_value_run, tmp_path):
    plot, out = tmp_path / "bars.png", tmp_path / "rows.json"
    done = run_script(
        "zero_shot.py",
        *("--checkpoint", str(world_value_run), "--all-boolean", "--episodes", "50"),
        *("--plot", str(plot), "--json", str(out)),
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())
    assert len(rows) == 15  # 4 objects with distinct (colour, shape): 2^4 - 1 subsets
    assert "tasks: 100%" in done.stderr and "| 15/15 [" in done.stderr  # the progress bar
    assert plot.stat().st_size > 1000
    assert sum(row["normalized_return"] for row in rows) / len(rows) >= 0.9
    assert list(world_value_run.glob("events.out.tfevents.*"))


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ("blue & & square", "unexpected '&'"),
        ("blu & square", "known heads"),
        ("blue & (square", "')'"),
    ],
)
def test_bad_expressions_exit_with_a_caret(world_value_run, task, message):
    stderr = zero_shot_error(
        "--checkpoint", str(world_value_run), f"--task={task}", "--episodes", "2"
    )
    assert message in stderr and "^" in stderr, stderr


def test_not_without_bound_heads_is_refused(tmp_path):
    cfg = from_dict(
        Config,
        {
            **TINY_WORLD_VALUES,
            "total_steps": 64,
            "replay": {**TINY_WORLD_VALUES["replay"], "learning_starts": 32},
            "env": {**TINY_WORLD_VALUES["env"], "bound_heads": False},
        },
    )
    training.train(cfg, tmp_path, progress=False)
    assert "~" in zero_shot_error("--checkpoint", str(tmp_path), "--task=~blue", "--episodes", "2")


def test_temporal_tasks_from_ltl_and_reward_machine_files(office_run, tmp_path):
    rows = zero_shot_rows(
        tmp_path,
        *("--checkpoint", str(office_run), "--ltl", "F(f & F g) & G !n", "--ltl", "F a"),
        *("--episodes", "8"),
    )
    assert [(row["task"], row["start"]) for row in rows] == [
        ("F(f & F g) & G !n", "standard"),
        ("F(f & F g) & G !n", "random"),
        ("F a", "standard"),
        ("F a", "random"),
    ]
    saved = rows
    assert set(saved[0]) == {
        "task",
        "start",
        "success",
        "steps",
        "oracle_steps",
        "achievable",
        "violations",
    }
    assert saved[0]["oracle_steps"] == 15.0 and saved[2]["oracle_steps"] == 1.0
    machine = zero_shot_rows(
        tmp_path,
        *("--checkpoint", str(office_run), "--rm", "configs/tasks/coffee_office.yaml"),
        *("--episodes", "8", "--no-plan"),
    )
    assert machine[0]["oracle_steps"] == 15.0


def test_temporal_task_errors(office_run, world_value_run):
    message = zero_shot_error("--checkpoint", str(world_value_run), "--ltl", "F blue")
    assert "runs no temporal tasks" in message
    message = zero_shot_error("--checkpoint", str(office_run), "--ltl", "F(f & F x)")
    assert re.search(r"(?s)unknown proposition 'x'.*\n\s+\^", message), message
    message = zero_shot_error("--checkpoint", str(office_run), "--rm", "missing.yaml")
    assert re.search("No such file|not found|does not exist", message), message
    message = zero_shot_error("--checkpoint", str(office_run), "--ltl", "F a", "--model-shield")
    assert "--model-shield needs a world that knows which goal a step enters" in message
    message = zero_shot_error("--checkpoint", str(office_run), "--task", "a", "--model-shield")
    assert "--model-shield guards a skill machine: use it with --ltl or --rm" in message


def test_weights_option_is_the_linear_task_of_those_weights(world_value_run, tmp_path):
    args = ["--checkpoint", str(world_value_run), "--episodes", "50"]
    (by_weights,) = zero_shot_rows(tmp_path, *args, "--weights", "0.5,0,0,1")
    (by_task,) = zero_shot_rows(tmp_path, *args, "--task", "0.5*blue + square")
    assert by_weights["task"] == "0.5*blue + 1*square"
    assert {k: v for k, v in by_weights.items() if k != "task"} == {
        k: v for k, v in by_task.items() if k != "task"
    }
    assert "--weights: 2 values for the 4 heads" in zero_shot_error(*args, "--weights", "1,2")
    assert "comma-separated numbers" in zero_shot_error(*args, "--weights", "1,x")


def test_multi_objective_option_reports_expected_utility_over_the_lattice(
    world_value_run, tmp_path
):
    args = ["--checkpoint", str(world_value_run), "--episodes", "20", "--multi-objective", "1"]
    (row,) = zero_shot_rows(tmp_path, *args)
    assert (row["task"], row["weights"], row["episodes"]) == ("multi-objective", 4, 20)
    # one-hot weights over the 4 base heads (not MAX and MIN): each head's own task, which the
    # trained heads reach, so every value is positive
    assert row["expected_utility"] > 0.5


def test_linear_weights_leave_out_constant_terms():
    from agents.composition import linear_weights
    from composable_rl.languages.expressions import parse

    names = ["a", "b", "c"]
    torch.testing.assert_close(linear_weights(parse("a + 1"), names), torch.tensor([1.0, 0, 0]))
    torch.testing.assert_close(
        linear_weights(parse("2*a - 0.5 - c"), names), torch.tensor([2.0, 0, -1])
    )


def test_weights_may_start_with_a_minus(world_value_run, tmp_path):
    args = ["--checkpoint", str(world_value_run), "--episodes", "20"]
    (row,) = zero_shot_rows(tmp_path, *args, "--weights", "-1,0,0,0.5")
    assert row["task"] == "-1*blue + 0.5*square"


def test_quantile_rows_one_per_task_and_q_with_a_plot(world_value_run, tmp_path):
    plot = tmp_path / "q.png"
    args = ["--checkpoint", str(world_value_run), "--episodes", "30", "--plot", str(plot)]
    args += ["--task", "blue & ~square", "--task", "purple", "--quantile", "1", "--quantile", "0"]
    rows = zero_shot_rows(tmp_path, *args)
    assert [(row["task"], row["quantile"]) for row in rows] == [
        ("blue & ~square", 1.0),
        ("blue & ~square", 0.0),
        ("purple", 1.0),
        ("purple", 0.0),
    ]
    assert all(q0["normalized_return"] > q1["normalized_return"] for q1, q0 in (rows[:2], rows[2:]))
    assert plot.stat().st_size > 1000
    error = zero_shot_error("--checkpoint", str(world_value_run), "--task", "a", "--quantile", "2")
    assert error.endswith("argument --quantile: must be a number in [0, 1], got '2' (see --help)\n")


def test_levers_steer_a_side_effect_checkpoint_and_bad_levers_are_one_line(tmp_path):
    settings = {"run_name": "safety", "total_steps": 4000, "eval_episodes": 4, "log_every": 2000}
    settings["env"] = {"name": "safety", "layout": "box", "aux_heads": 2, "num_envs": 8}
    settings["replay"] = {"learning_starts": 500, "batch_size": 64}
    settings["agent"] = {"hidden": [32]}
    run = tmp_path / "run"
    training.train(from_dict(Config, settings), run, progress=False)
    base = ["--checkpoint", str(run), "--task", "goal", "--episodes", "10"]
    rows = zero_shot_rows(tmp_path, *base, "--shield", "box", "--impact", "0.5")
    assert {"success", "side_effects", "side_effect_rate"} <= set(rows[0])
    cfg, world, agent = load(run)
    robust = Levers(plausible=((1, 0, 0, 0), (1, 5, 0, 0)))
    row = evaluate_task(cfg, world, agent, "goal", 10, 0, levers=robust)
    assert 0 <= row["success"] <= 1 and row["side_effects"] >= 0
    # one line, no traceback; the binding's own errors are tested in tests/test_levers.py
    error = zero_shot_error(*base, "--impact", "-1")
    assert "impact weight lambda must be a finite number >= 0, got -1.0" in error
    assert "this checkpoint has one" in zero_shot_error(*base, "--epistemic", "0.1")


def test_an_ensemble_gates_acting_on_its_disagreement_in_a_changed_world(tmp_path):
    settings = {"run_name": "lava", "total_steps": 3000, "eval_episodes": 0, "log_every": 1500}
    settings["env"] = {"name": "safety", "layout": "lava_test", "num_envs": 8}
    settings["replay"] = {"learning_starts": 500, "batch_size": 64}
    settings["agent"] = {"hidden": [32], "ensemble": 3}
    run = tmp_path / "run"
    training.train(from_dict(Config, settings), run, progress=False)
    base = [
        "--checkpoint",
        str(run),
        "--task",
        "goal",
        "--episodes",
        "20",
        "--env",
        "starts=random",
    ]
    free, gated, stay = (
        zero_shot_rows(tmp_path, *base, *more)[0]
        for more in ((), ("--epistemic", "1000"), ("--epistemic", "1e-9"))
    )
    assert gated == {**free, "levers": "epistemic 1000"}  # the members never differ by that
    # they always differ a little: the agent stays put (succeeding only where it starts on
    # the goal) and never enters lava
    assert stay["success"] < free["success"] and stay["side_effects"] == 0
    assert "epistemic threshold must be a finite number > 0, got -1.0" in zero_shot_error(
        *base, "--epistemic", "-1"
    )
    assert "env.starts: expected one of" in zero_shot_error(*base[:-1], "starts=sometimes")
    assert "checkpoint heads ['goal', 'lava'] != agent heads ['goal', 'box']" in zero_shot_error(
        *base[:-1], "layout=box"
    )
    with pytest.raises(ValueError, match=r"agent.ensemble: bootstrapped ensembles are built"):
        from_dict(Config, {"agent": {"heads": "successor_features", "ensemble": 2}})


def test_a_gpu_run_is_evaluated_on_the_cpu_with_device(world_value_run, tmp_path, monkeypatch):
    import shutil

    run = tmp_path / "gpu_run"
    shutil.copytree(world_value_run, run)
    for meta in run.glob("checkpoints/*/meta.json"):  # as if trained on a GPU
        saved = json.loads(meta.read_text())
        saved["config"]["device"] = "cuda"
        meta.write_text(json.dumps(saved))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    base = ["--checkpoint", str(run), "--task", "blue", "--episodes", "10"]
    assert "zero_shot.py --device cpu" in zero_shot_error(*base)
    (row,) = zero_shot_rows(tmp_path, *base, "--device", "cpu")
    assert row["task"] == "blue" and row["normalized_return"] > 0.9
