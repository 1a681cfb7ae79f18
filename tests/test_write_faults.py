"""Writes that fail (a full disk, made by a patched writer) and Ctrl-C: one line each, nothing
half-written, the last whole checkpoint kept and named."""

import errno
import json
import subprocess
import sys

import pytest
import torch

from composable_rl.run import checkpoint as ckpt
from composable_rl.run.cli import OutputWriteError, run_command
from composable_rl.run.logging import save_figure, write_json
from tests.scripts import ROOT


def full_disk(*_, **__):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_checkpoint_that_cannot_be_written_leaves_nothing_and_says_what_it_needed(
    tmp_path, monkeypatch
):
    model = torch.nn.Linear(4, 3)
    meta = {"step": 1, "head_names": ["a"], "config": {}}
    kept = ckpt.save_checkpoint(ckpt.checkpoint_dir(tmp_path, 1), model, None, meta)
    monkeypatch.setattr(ckpt, "save_file", full_disk)
    target = ckpt.checkpoint_dir(tmp_path, 2)
    with pytest.raises(ckpt.CheckpointWriteError) as info:
        ckpt.save_checkpoint(target, model, None, {**meta, "step": 2})
    message = str(info.value)
    assert message.startswith(f"cannot write checkpoint {target}: no space left on device")
    assert "(it needs up to 60 bytes; " in message and "\n" not in message  # 15 floats
    assert ckpt.checkpoints(tmp_path) == [kept]
    assert sorted(p.name for p in target.parent.iterdir()) == ["step_1"]  # no temporary left


def test_outputs_that_cannot_be_written_are_one_error_and_no_file(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    save_figure(fig, tmp_path / "ok.png", 50)
    assert (tmp_path / "ok.png").read_bytes().startswith(b"\x89PNG")
    monkeypatch.setattr(type(tmp_path), "write_bytes", full_disk)
    with pytest.raises(OutputWriteError, match=r"rows.json: no space left on device \(2 bytes\)"):
        write_json([], tmp_path / "rows.json")
    with pytest.raises(OutputWriteError, match=r"^cannot write .*plot.png: no space left"):
        save_figure(fig, tmp_path / "plot.png", 50)
    plt.close(fig)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.png"]


def test_commands_turn_ctrl_c_and_failed_writes_into_one_line(capsys):
    def interrupted():
        raise KeyboardInterrupt

    def disk_full():
        raise OutputWriteError("cannot write rows.json: no space left on device (2 bytes)")

    for main, status, line in (
        (interrupted, 130, "interrupted; files written before it are whole"),
        (disk_full, 1, "cannot write rows.json: no space left on device (2 bytes)"),
    ):
        with pytest.raises(SystemExit) as info:
            run_command(main)
        err = capsys.readouterr().err
        assert info.value.code == status and line in err and err.count("\n") == 1


def test_train_stops_on_a_full_disk_naming_its_last_whole_checkpoint(tmp_path):
    """train.py run as a user does, with safetensors' writer failing from the second save on."""
    patched = (
        "import runpy, sys, errno\n"
        "import composable_rl.run.checkpoint as c\n"
        "calls = []\n"
        "def save(*args, **kwargs):\n"
        "    calls.append(1)\n"
        "    if len(calls) > 1:\n"
        "        raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "    return real(*args, **kwargs)\n"
        "real, c.save_file = c.save_file, save\n"
        "sys.argv = ['train.py', *sys.argv[1:]]\n"
        "runpy.run_path('train.py', run_name='__main__')\n"
    )
    args = ["--config", "configs/quickstart.yaml", "--no-progress"]
    args += ["--set", f"runs_dir={tmp_path}", "--set", "run_name=full"]
    args += ["--set", "total_steps=4096", "--set", "replay.learning_starts=1024"]
    args += ["--set", "checkpoint.every=1024"]
    done = subprocess.run(
        [sys.executable, "-c", patched, *args], cwd=ROOT, capture_output=True, text=True
    )
    run = tmp_path / "full"
    first = run / "checkpoints" / "step_1024"
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith(f"train.py: cannot write checkpoint {run / 'checkpoints' / 'step_2048'}")
    assert line.endswith(f"the run stopped, its last whole checkpoint is {first}")
    assert ckpt.checkpoints(run) == [first]
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_1024"]
    assert json.loads((first / "meta.json").read_text())["step"] == 1024
