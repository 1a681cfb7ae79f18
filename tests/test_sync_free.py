"""Between two log points a training run reads none of its tensors on the host: acting, the
world's step, replay add and sample, task draws, episode bookkeeping and updates stay on the
device, so a GPU never waits for the CPU. Proved on the CPU by arming every host-read entry
point of a tensor to raise when the project's own code calls it, from the end of one log point
to the start of the next. The Gymnasium adapter's numpy boundary is its one allowed read."""

import sys
from pathlib import Path

import pytest
import torch

from agents import training
from agents.log_window import LogWindow
from composable_rl.config import Config, from_dict
from composable_rl.run.logging import Logger

ROOT = Path(__file__).resolve().parent.parent
LOG_POINT = ("check_finite", "checkpoint")  # what a log point (or a checkpoint) reads first
READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__")


def at_log(frame) -> bool:
    """Whether `frame` runs inside a log point's own checks (the divergence check opens it)."""
    while frame is not None:
        if frame.f_code.co_name in LOG_POINT and frame.f_code.co_filename == training.__file__:
            return True
        frame = frame.f_back
    return False


class HostReads:
    """The tensor methods that read a value on the host, patched to raise while `armed` when
    called from a project file outside `allowed` (torch's own internals are not checked)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, allowed: tuple[str, ...] = ()) -> None:
        self.armed, self.windows = False, 0
        self.allowed = tuple(str(ROOT / path) for path in allowed)
        for name in READS:
            original = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self.guard(name, original))

    def guard(self, name: str, original):
        def read(tensor, *args, **kwargs):
            frame = sys._getframe(1)
            caller = frame.f_code.co_filename
            ours = caller.startswith(str(ROOT)) and not caller.startswith(str(ROOT / "tests"))
            if self.armed and ours and not caller.startswith(self.allowed) and not at_log(frame):
                raise AssertionError(f"host read {name}() at {caller}:{frame.f_lineno}")
            return original(tensor, *args, **kwargs)

        return read

    def window(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Arm the guard from the end of the first log point (its scalars written) to the
        start of the second (its window closed)."""
        reads = self

        class Window(LogWindow):
            def close(self, step: int):
                reads.armed = False
                reads.windows += 1
                return super().close(step)

        class Written(Logger):
            def scalars(self, values, step: int) -> None:
                super().scalars(values, step)
                reads.armed = reads.windows == 1

        monkeypatch.setattr(training, "LogWindow", Window)
        monkeypatch.setattr(training, "Logger", Written)


SHORT = {"total_steps": 1_536, "log_every": 512, "eval_episodes": 0, "torch_threads": 1}
REPLAY = {"learning_starts": 256, "batch_size": 32, "capacity": 4_096}
SAC = {"heads": "soft_actor_critic"}
RUNS = {
    "object_rooms": {"env": {"name": "object_rooms", "layout": "open5", "num_envs": 16}},
    "object_rooms world values": {
        "env": {"name": "object_rooms", "layout": "open5", "num_envs": 16, "bound_heads": True},
        "agent": {"world_values": True},
    },
    "object_rooms successor features": {
        "env": {"name": "object_rooms", "layout": "open5", "num_envs": 16},
        "agent": {"heads": "successor_features"},
    },
    "object_rooms ensemble": {
        "env": {"name": "object_rooms", "layout": "open5", "num_envs": 16},
        "agent": {"ensemble": 3},
    },
    "office": {"env": {"name": "office", "num_envs": 16}, "agent": {"world_values": True}},
    "foraging": {"env": {"name": "foraging", "num_envs": 16}},
    "safety": {"env": {"name": "safety", "layout": "box", "aux_heads": 2, "num_envs": 16}},
    "linear_quadratic": {"env": {"name": "linear_quadratic", "num_envs": 16}, "agent": SAC},
    "point_goals": {"env": {"name": "point_goals", "num_envs": 16}, "agent": SAC},
    "point_office": {"env": {"name": "point_office", "num_envs": 16}, "agent": SAC},
    "point_foraging": {"env": {"name": "point_foraging", "num_envs": 16}, "agent": SAC},
}


def train_guarded(settings: dict, path: Path, reads: HostReads, monkeypatch) -> dict:
    """A short run with `reads` armed over its second log window."""
    settings = {**SHORT, **settings, "replay": REPLAY}
    settings["agent"] = {"hidden": [16], **settings.get("agent", {})}
    reads.window(monkeypatch)
    result = training.train(from_dict(Config, settings), path, progress=False)
    assert reads.windows >= 2 and result["updates"] > 0  # a whole window ran, with updates
    return result


@pytest.mark.parametrize("run", list(RUNS))
def test_no_host_reads_between_log_points(run, tmp_path, monkeypatch):
    train_guarded(RUNS[run], tmp_path / "run", HostReads(monkeypatch), monkeypatch)


def test_the_gymnasium_adapters_numpy_boundary_is_its_one_read(tmp_path, monkeypatch):
    """A Gymnasium env steps numpy arrays on the host: the adapter reads the actions there
    and nothing else does (here its reads are allowed, everything else is armed)."""
    env = {"name": "gymnasium", "id": "CartPole-v1", "num_envs": 4}
    boundary = HostReads(monkeypatch, allowed=("envs/gymnasium_world.py",))
    train_guarded({"env": env}, tmp_path / "allowed", boundary, monkeypatch)
    with pytest.raises(AssertionError, match=r"host read .* at .*envs/gymnasium_world.py"):
        train_guarded({"env": env}, tmp_path / "armed", HostReads(monkeypatch), monkeypatch)
