"""Run directories: one process at a time, never reused without --resume or --overwrite, fresh
names that two runs started in the same second cannot share, stale checkpoint writes removed."""

import fcntl
import signal
import subprocess
import sys
import time

import pytest

from agents import training
from agents.run_dir import RunDirBusy, claim_run_dir, fresh_run_dir, hold_run_dir, lock_file
from composable_rl.config import Config, ConfigError, from_dict
from composable_rl.run.checkpoint import checkpoints
from tests.scripts import ROOT, run_script

TINY = {
    "total_steps": 256,
    "env": {"num_envs": 4, "max_steps": 8},
    "agent": {"hidden": [8]},
    "replay": {"learning_starts": 64, "batch_size": 16},
    "eval_episodes": 2,
}


class OtherHolder:
    """Another holder of a run directory's lock: an open file description of its own, which
    flock treats as another process would be."""

    def __init__(self, run_dir):
        lock = lock_file(run_dir)
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.write_text("pid 4242, started 2026-01-01 00:00:00\n")
        self.handle = lock.open("a")
        fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self):
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def test_a_held_run_directory_refuses_others_and_names_the_holder(tmp_path):
    run_dir = tmp_path / "run"
    other = OtherHolder(run_dir)
    busy = r"run is in use by another run \(pid 4242, started"
    with pytest.raises(RunDirBusy, match=busy), hold_run_dir(run_dir):
        pass
    other.release()
    with hold_run_dir(run_dir), hold_run_dir(run_dir):  # re-entrant within a process
        assert lock_file(run_dir).read_text().startswith("pid ")
        with pytest.raises(BlockingIOError), lock_file(run_dir).open() as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_fresh_names_skip_existing_and_held_directories(tmp_path):
    (tmp_path / "run").mkdir()
    other = OtherHolder(tmp_path / "run-2")
    with fresh_run_dir(tmp_path, "run") as first, fresh_run_dir(tmp_path, "run") as second:
        assert (first.name, second.name) == ("run-3", "run-4")
    other.release()
    with fresh_run_dir(tmp_path, "run") as again:
        assert again.name == "run-2"


def test_a_run_directory_is_reused_only_to_resume_or_overwrite(tmp_path, capsys):
    run_dir = tmp_path / "run"
    cfg = from_dict(Config, TINY)
    training.train(cfg, run_dir, progress=False)
    with pytest.raises(ConfigError, match="already holds a run: continue it with --resume"):
        training.train(cfg, run_dir, progress=False)
    stale = run_dir / "checkpoints" / ".step_9.tmp-abc"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    claim_run_dir(run_dir, resume=True, overwrite=False)
    assert not stale.exists() and checkpoints(run_dir)
    assert "removed 1 unfinished checkpoint write(s): .step_9.tmp-abc" in capsys.readouterr().err
    (kept,) = checkpoints(run_dir)
    aside = kept.with_name(f".{kept.name}.old-1234")
    kept.rename(aside)  # killed between moving the old checkpoint aside and the new one in
    (run_dir / "checkpoints" / f".{kept.name}.old-5678").mkdir()  # and one to drop
    claim_run_dir(run_dir, resume=True, overwrite=False)
    assert checkpoints(run_dir) == [kept] and not aside.exists()
    assert sorted(p.name for p in kept.parent.iterdir()) == [kept.name]
    err = capsys.readouterr().err
    assert f"restored checkpoint {kept.name}" in err and f".{kept.name}.old-5678" in err
    (run_dir / "stray.txt").write_text("x")
    training.train(cfg, run_dir, progress=False, overwrite=True)
    assert not (run_dir / "stray.txt").exists() and checkpoints(run_dir)
    training.train(from_dict(Config, TINY), tmp_path / "empty", progress=False)  # new: fine


def test_a_second_train_with_the_same_run_name_is_refused_in_one_line(tmp_path):
    settings = ["--set", f"runs_dir={tmp_path}", "--set", "run_name=same", "--no-progress"]
    settings += ["--set", "total_steps=10_000_000", "--set", "replay.learning_starts=1000"]
    first = subprocess.Popen(
        [sys.executable, "train.py", "--config", "configs/quickstart.yaml", *settings],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "same" / "config.yaml").exists():
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.05)
    second = run_script("train.py", "--config", "configs/quickstart.yaml", *settings)
    first.send_signal(signal.SIGINT)
    first.communicate(timeout=120)
    assert second.returncode == 1 and second.stdout == ""
    assert second.stderr.startswith(f"train.py: {tmp_path / 'same'} is in use by another run (pid ")
    assert second.stderr.count("\n") == 1 and f"pid {first.pid}," in second.stderr
    assert (tmp_path / "same" / "command.txt").read_text().count("\n") == 1  # only the first's


@pytest.mark.parametrize("name", [".", "..", "a/b", "/tmp/x"])
def test_a_run_name_is_a_plain_folder_name(name):
    with pytest.raises(ConfigError, match="run_name: must be a plain folder name"):
        from_dict(Config, {**TINY, "run_name": name})


def test_overwrite_replaces_only_runs_and_resume_needs_a_run_directory(tmp_path):
    cfg = from_dict(Config, TINY)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "thesis.tex").write_text("x")
    with pytest.raises(ConfigError, match="holds files but no run"):
        training.train(cfg, other, progress=False, overwrite=True)
    assert (other / "thesis.tex").read_text() == "x"
    with pytest.raises(FileNotFoundError, match="no run directory at"):
        training.train(cfg, tmp_path / "typo", resume=True, progress=False)
    assert not (tmp_path / "typo").exists() and not (tmp_path / ".typo.lock").exists()
