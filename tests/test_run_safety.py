"""Runs that cannot be lost: divergence stops cleanly, interrupts checkpoint, resume is exact,
damaged checkpoints are skipped, old ones pruned, permissions follow the umask."""

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from agents import training
from composable_rl.config import Config, from_dict
from composable_rl.run.checkpoint import MODEL_FILE, RUN_STATE_FILE, checkpoints, load_run_state
from tests.scripts import ROOT, run_script
from tests.test_train import SMALL

TINY = {
    "seed": 2,
    "total_steps": 4_096,
    "log_every": 1_024,
    "eval_episodes": 0,
    "env": SMALL["env"],
    "agent": {"hidden": [32], "lr": 0.002, "target_period": 20},
    "replay": {"capacity": 3_000, "batch_size": 64, "learning_starts": 256, "replay_ratio": 4},
    "checkpoint": {"every": 2_048, "keep_last": 0},
}
FORAGING = {**TINY, "env": {"name": "foraging", "num_envs": 32, "max_steps": 40}}
OFFICE_TASK = {**TINY, "env": {"name": "office", "num_envs": 32, "task": "F(e & F g)"}}
SUCCESSOR = {**TINY, "agent": {**TINY["agent"], "heads": "successor_features"}}
SOFT_ACTOR_CRITIC = {
    **TINY,
    "env": {"name": "linear_quadratic", "num_envs": 16},
    "agent": {"heads": "soft_actor_critic", "hidden": [32], "tau": 0.02, "target_period": 1},
}
# The quickstart layout, small enough that a run lasts a few seconds and resumes in one.
QUICK = [
    "--config",
    "configs/quickstart.yaml",
    "--no-progress",
    "--set",
    "env.num_envs=256",
    "--set",
    "total_steps=400_000",
    "--set",
    "replay.learning_starts=1_000",
    "--set",
    "replay.replay_ratio=2",
    "--set",
    "eval_episodes=8",
]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path / MODEL_FILE)


def _same_weights(a: Path, b: Path) -> bool:
    left, right = _weights(a), _weights(b)
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


def _resumed_copy(run: Path, step: int, target: Path) -> Path:
    """A run directory holding only `run`'s config and its checkpoint at `step`, as a run
    killed right after that checkpoint leaves it."""
    (target / "checkpoints").mkdir(parents=True)
    shutil.copy(run / "config.yaml", target / "config.yaml")
    shutil.copytree(run / "checkpoints" / f"step_{step}", target / "checkpoints" / f"step_{step}")
    return target


@pytest.mark.parametrize(
    "settings",
    [
        TINY,
        FORAGING,
        OFFICE_TASK,
        SUCCESSOR,
        SOFT_ACTOR_CRITIC,
        {**TINY, "device_graphs": True},
        {**TINY, "agent": {**TINY["agent"], "lr_end": 2e-4}},
    ],
    ids=[
        "object_rooms",
        "foraging",
        "office_task",
        "successor_features",
        "soft_actor_critic",
        "device_graphs",
        "lr_end",
    ],
)
def test_resume_with_replay_gives_bit_identical_weights(tmp_path, settings):
    cfg = from_dict(Config, {**settings, "checkpoint": {**TINY["checkpoint"], "replay": True}})
    whole = tmp_path / "whole"
    training.train(cfg, whole, progress=False)
    assert [p.name for p in checkpoints(whole)] == ["step_4096", "step_2048"]
    assert load_run_state(whole / "checkpoints" / "step_2048")["replay.obs"].shape[0] == 2048

    resumed = _resumed_copy(whole, 2048, tmp_path / "resumed")
    result = training.train(cfg, resumed, resume=True, progress=False)
    assert result["step"] == 4096
    assert _same_weights(whole / "checkpoints" / "step_4096", resumed / "checkpoints" / "step_4096")


def test_resume_without_replay_refills_it_and_differs(tmp_path, capsys):
    cfg = from_dict(Config, TINY)
    whole = tmp_path / "whole"
    training.train(cfg, whole, progress=False)
    assert not (whole / "checkpoints" / "step_2048" / RUN_STATE_FILE).exists()
    resumed = _resumed_copy(whole, 2048, tmp_path / "resumed")
    training.train(cfg, resumed, resume=True, progress=False)
    assert f"resuming from {resumed / 'checkpoints' / 'step_2048'} (step 2,048)\n" in (
        capsys.readouterr().err
    )
    assert not _same_weights(
        whole / "checkpoints" / "step_4096", resumed / "checkpoints" / "step_4096"
    )


def test_truncated_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys):
    cfg = from_dict(Config, TINY)
    training.train(cfg, tmp_path, progress=False)
    latest = tmp_path / "checkpoints" / "step_4096"
    model = latest / MODEL_FILE
    model.write_bytes(model.read_bytes()[:1000])
    capsys.readouterr()
    cfg.total_steps = 6_144
    result = training.train(cfg, tmp_path, resume=True, progress=False)
    err = capsys.readouterr().err
    assert re.search(
        rf"warning: skipping damaged checkpoint {latest}: .*{MODEL_FILE} is damaged", err
    )
    assert "resuming from " + str(tmp_path / "checkpoints" / "step_2048") in err
    assert result["step"] == 6_144


def test_checkpoints_are_pruned_and_follow_the_umask(tmp_path):
    cfg = from_dict(Config, {**TINY, "checkpoint": {"every": 512, "keep_last": 2}})
    old = os.umask(0o022)
    try:
        training.train(cfg, tmp_path, progress=False)
    finally:
        os.umask(old)
    assert [p.name for p in checkpoints(tmp_path)] == ["step_4096", "step_3584"]
    assert not list((tmp_path / "checkpoints").glob(".*"))
    latest = tmp_path / "checkpoints" / "step_4096"
    assert latest.stat().st_mode & 0o777 == 0o755
    assert all(f.stat().st_mode & 0o777 == 0o644 for f in latest.iterdir())


def test_wall_clock_cadence_writes_checkpoints(tmp_path):
    cfg = from_dict(Config, {**TINY, "checkpoint": {"minutes": 1e-6, "keep_last": 0}})
    training.train(cfg, tmp_path, progress=False)
    assert len(checkpoints(tmp_path)) == cfg.total_steps // cfg.env.num_envs


@pytest.mark.parametrize("graphs", [False, True], ids=["step", "device_graphs"])
def test_divergence_stops_the_run_and_no_checkpoint_holds_a_nan(tmp_path, graphs):
    done = run_script(
        "train.py",
        "--config",
        "configs/quickstart.yaml",
        "--no-progress",
        *("--set", f"runs_dir={tmp_path}", "--set", "run_name=diverged"),
        *("--set", f"device_graphs={graphs}"),
        *("--set", "agent.lr=1e30", "--set", "agent.max_grad_norm=0"),
        *("--set", "total_steps=60_000", "--set", "checkpoint.every=5_120"),
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    found = re.search(
        r"non-finite TD loss or weights at step ([\d,]+) \(stopped at step ([\d,]+)\)",
        done.stderr,
    )
    assert found, done.stderr
    bad_step, stopped = (int(group.replace(",", "")) for group in found.groups())
    assert bad_step <= stopped < bad_step + 5_000  # within one log interval (log_every)
    assert "agent.lr (now 1e+30)" in done.stderr and "agent.max_grad_norm (now 0" in done.stderr
    run = tmp_path / "diverged"
    saved = checkpoints(run)
    assert all(int(p.name.removeprefix("step_")) < bad_step for p in saved)
    for path in saved:
        assert all(torch.isfinite(t).all() for t in _weights(path).values())
    assert not (run / "eval.json").exists()


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_signals_at_random_moments_checkpoint_and_resume(tmp_path):
    rng = random.Random(7)
    for attempt, sig in enumerate([signal.SIGTERM, signal.SIGINT]):
        run = tmp_path / f"run{attempt}"
        settings = ["--set", f"runs_dir={tmp_path}", "--set", f"run_name={run.name}"]
        settings += ["--set", f"checkpoint.replay={'true' if attempt % 2 else 'false'}"]
        process = subprocess.Popen(
            [sys.executable, "train.py", *QUICK, *settings],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _wait_for(run / "config.yaml", process)
        time.sleep(rng.uniform(0.0, 2.0))
        process.send_signal(sig)
        _, err = process.communicate(timeout=120)
        assert process.returncode == 128 + sig and "Traceback" not in err, err
        found = re.search(rf"{sig.name} at step ([\d,]+): checkpoint (\S+);", err)
        assert found, err
        step = int(found.group(1).replace(",", ""))
        assert checkpoints(run)[0] == Path(found.group(2)) == run / "checkpoints" / f"step_{step}"

        # past learning_starts (1,000) even when the signal stopped the run at step 0
        total = max(step, 1_024) + 512
        done = run_script("train.py", "--resume", str(run), "--set", f"total_steps={total}")
        assert done.returncode == 0, done.stderr
        assert (
            f"resuming from {run / 'checkpoints' / f'step_{step}'} (step {step:,})" in done.stderr
        )
        assert checkpoints(run)[0].name == f"step_{total}"


def test_an_interrupt_inside_python_raises_after_checkpointing(tmp_path):
    """A caller of train() that does not handle the interrupt stops as on Ctrl-C."""
    cfg = from_dict(Config, {**TINY, "total_steps": 10_000_000})
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    with pytest.raises(training.TrainingInterrupted) as stop:
        training.train(cfg, tmp_path, progress=False)
    timer.join()
    assert isinstance(stop.value, KeyboardInterrupt) and stop.value.signal == signal.SIGTERM
    assert (
        stop.value.checkpoint
        == checkpoints(tmp_path)[0]
        == tmp_path / "checkpoints" / (f"step_{stop.value.step}")
    )
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_signal_during_setup_stops_the_run_at_its_first_step(tmp_path, monkeypatch):
    """No window without a handler: a signal while the world is built still checkpoints."""
    build = training.build

    def build_then_signal(cfg):
        built = build(cfg)
        os.kill(os.getpid(), signal.SIGINT)
        return built

    monkeypatch.setattr(training, "build", build_then_signal)
    with pytest.raises(training.TrainingInterrupted) as stop:
        training.train(from_dict(Config, TINY), tmp_path, progress=False)
    assert (stop.value.signal, stop.value.step) == (signal.SIGINT, 0)
    assert checkpoints(tmp_path) == [tmp_path / "checkpoints" / "step_0"]


def test_a_run_stopped_by_an_error_closes_its_tensorboard_log(tmp_path, monkeypatch):
    """An error that leaves train() closes the run's log first: its writer thread would
    otherwise go on appending events to a directory the caller may already be deleting."""
    closed = []
    close = training.Logger.close
    monkeypatch.setattr(training.Logger, "close", lambda self: (closed.append(self), close(self)))

    def fail(self, step):
        raise RuntimeError("a log point failed")

    monkeypatch.setattr(training.LogWindow, "close", fail)
    cfg = from_dict(Config, {**SMALL, "total_steps": 8_000, "eval_episodes": 0})
    with pytest.raises(RuntimeError, match="a log point failed"):
        training.train(cfg, tmp_path / "run", progress=False)
    assert len(closed) == 1
    shutil.rmtree(tmp_path / "run")
    assert not (tmp_path / "run").exists()
