"""Sweeps on local Ray: trials of a tiny config, a grid value the config rejects failing alone,
the summary against the trials' own eval.json, and resume (after a clean end or a driver killed
with SIGKILL) that reruns nothing finished."""

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="sweeps need the optional extra .[sweep]")

from agents.sweep import (  # noqa: E402
    check_address,
    check_resources,
    load_spec,
    make_trials,
    parse_grid,
    save_spec,
    trial_dir,
)
from tests.scripts import ROOT, run_script  # noqa: E402

TINY = [
    "--set",
    "total_steps=2048",
    "--set",
    "eval_episodes=20",
    "--set",
    "log_every=1024",
    "--set",
    "env.num_envs=64",
    "--set",
    "replay.learning_starts=256",
    "--set",
    "replay.batch_size=128",
    "--set",
    "agent.hidden=[32]",
]


def test_grid_and_seeds_make_the_cross_product():
    trials = make_trials(None, parse_grid(["agent.lr=1e-3,5e-4", "agent.gamma=0.9"]), [0, 1])
    assert [t.name for t in trials] == [
        "agent.lr=1e-3,agent.gamma=0.9/seed=0",
        "agent.lr=1e-3,agent.gamma=0.9/seed=1",
        "agent.lr=5e-4,agent.gamma=0.9/seed=0",
        "agent.lr=5e-4,agent.gamma=0.9/seed=1",
    ]
    with pytest.raises(ValueError, match="key=value1,value2"):
        parse_grid(["agent.lr"])


def test_grid_keeps_bracketed_lists_and_refuses_ambiguous_axes():
    assert parse_grid(["agent.hidden=[64, 64],[128]"]) == [("agent.hidden", ["[64, 64]", "[128]"])]
    for items, message in (
        (["seed=1,2"], "the sweep sets seed itself"),
        (["agent.lr=1,2", "agent.lr=3"], "already a grid axis"),
        (["agent.lr=1e-3,1e-3"], "a value appears twice"),
        (["agent.lr=1e-3,"], "key=value1,value2"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_grid(items)


def test_a_trial_asking_for_more_than_the_cluster_has_is_refused():
    check_resources({"CPU": 2.0}, 2, 0)
    with pytest.raises(ValueError, match="--gpus-per-trial 1: the Ray cluster has 0 GPU"):
        check_resources({"CPU": 2.0}, 1, 1)
    with pytest.raises(ValueError, match="--cpus-per-trial 4: the Ray cluster has 2 CPU"):
        check_resources({"CPU": 2.0}, 4, 0)


def test_without_ray_a_sweep_names_the_extra(tmp_path, monkeypatch):
    import importlib.util

    from agents import sweep
    from composable_rl.config import ConfigError

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[sweep\]"'):
        sweep.run_sweep(make_trials(None, [], [0]), tmp_path)


def test_a_sweep_directory_refuses_a_trial_of_the_same_name_with_other_settings(tmp_path):
    trials = make_trials("a.yaml", [], [0, 1])
    save_spec(tmp_path, trials[:1], 1, 0)
    save_spec(tmp_path, trials, 1, 0)  # more trials of the same settings join
    assert load_spec(tmp_path) == (trials, 1, 0)
    with pytest.raises(ValueError, match="already holds trial base/seed=0 with other settings"):
        save_spec(tmp_path, make_trials("b.yaml", [], [0]), 1, 0)


def test_sweep_summary_matches_the_trials_and_resume_reruns_nothing(tmp_path):
    args = ["--config", "configs/quickstart.yaml", "--seeds", "2", "--runs-dir", str(tmp_path)]
    args += ["--name", "s", "--grid", "agent.lr=1e-3,-1", *TINY]
    done = run_script("sweep.py", *args)
    assert done.returncode == 1 and "2 of 4 trial(s) failed" in done.stderr, done.stderr
    sweep = tmp_path / "s"
    table = json.loads((sweep / "trials.json").read_text())
    status = {row["trial"]: row["status"] for row in table}
    assert status["agent.lr=1e-3/seed=0"] == status["agent.lr=1e-3/seed=1"] == "done"
    bad = status["agent.lr=-1/seed=0"]
    assert bad.startswith("failed: agent.lr: expected a value in (0, inf)") and bad in done.stdout
    rows = json.loads((sweep / "summary.json").read_text())
    trials = make_trials(None, parse_grid(["agent.lr=1e-3,-1"]), [0, 1], TINY[1::2])
    finished = [trial_dir(sweep, t) / "eval.json" for t in trials if "lr=1e-3" in t.name]
    evals = [json.loads(path.read_text()) for path in finished]
    row = next(r for r in rows if (r["task"], r["metric"]) == ("blue", "return"))
    blue = [next(r["return"] for r in e if r["task"] == "blue") for e in evals]
    assert row["n"] == 2 and row["mean"] == pytest.approx(statistics.mean(blue))
    assert {r["config"] for r in rows} == {"agent.lr=1e-3"}
    assert (sweep / "curves.png").stat().st_size > 0 and (sweep / "summary.csv").is_file()
    stamps = [path.stat().st_mtime_ns for path in finished]
    again = run_script("sweep.py", "--resume", str(sweep))
    assert again.returncode == 1, again.stderr  # the rejected value fails again
    assert [path.stat().st_mtime_ns for path in finished] == stamps


def test_a_killed_driver_resumes_without_rerunning_finished_trials(tmp_path):
    args = ["--config", "configs/quickstart.yaml", "--seeds", "2", "--runs-dir", str(tmp_path)]
    args += ["--name", "k", "--grid", "total_steps=2048,16384", *TINY[2:]]
    driver = subprocess.Popen(
        [sys.executable, "sweep.py", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    sweep = tmp_path / "k"
    trials = make_trials(None, parse_grid(["total_steps=2048,16384"]), [0, 1])
    short = [trial_dir(sweep, t) / "eval.json" for t in trials[:2]]
    long = [trial_dir(sweep, t) / "eval.json" for t in trials[2:]]
    deadline = time.monotonic() + 120
    while not all(path.is_file() for path in short) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    assert all(path.is_file() for path in short) and not any(path.is_file() for path in long)
    stamps = [path.stat().st_mtime_ns for path in short]
    again = run_script("sweep.py", "--resume", str(sweep))
    assert again.returncode == 0, again.stderr
    assert all(path.is_file() for path in long)
    assert [path.stat().st_mtime_ns for path in short] == stamps
    rows = json.loads((sweep / "summary.json").read_text())
    assert {r["n"] for r in rows if r["metric"] == "return"} == {2}


def test_two_node_script_trains_trials_on_both_nodes(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "scripts/ray_two_nodes.sh", "--runs-dir", str(tmp_path), "--seeds", "2", *TINY],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "trials ran on 2 Ray node(s)" in done.stdout
    assert done.stdout.rstrip().endswith("both nodes trained trials")
    table = json.loads(next(tmp_path.glob("two_nodes_*/trials.json")).read_text())
    assert [row["status"] for row in table] == ["done"] * 2  # one CPU per node: both busy


def test_a_cluster_address_where_nothing_answers_is_one_line_and_leaves_nothing(tmp_path):
    args = ["--config", "configs/quickstart.yaml", "--runs-dir", str(tmp_path)]
    done = run_script("sweep.py", *args, "--address", "127.0.0.1:1", timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr == (
        "sweep.py: cannot reach the Ray cluster at --address 127.0.0.1:1: connection refused "
        "(waited up to 30 s; --connect-timeout changes it)\n"
    )
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="expected auto or host:port"):
        check_address("somewhere", 1.0)
    check_address("auto", 1.0)  # left to Ray
