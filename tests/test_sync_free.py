"""Between two log points a training run reads none of its tensors on the host: acting, the
world's step, replay add and sample, task draws, episode bookkeeping and updates stay on the
device, so a GPU never waits for the CPU. Proved on the CPU by arming every host-read entry
point of a tensor to raise when the project's own code calls it, from the end of one log point
to the start of the next. The Gymnasium adapter's numpy boundary is its one allowed read."""

from pathlib import Path

import pytest

from bench.sync_free import HostRead, guarded_run
from bench.sync_free import main as sync_free
from composable_rl.config import Config, from_dict

SHORT = {"total_steps": 1_536, "log_every": 512, "eval_episodes": 0, "torch_threads": 1}
SHORT["checkpoint"] = {"minutes": 0}  # no checkpoint (which reads) inside a window
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


def train_guarded(settings: dict, path: Path, allowed: tuple[str, ...] = ()) -> dict:
    """A short run with host reads armed over its second log window."""
    settings = {**SHORT, **settings, "replay": REPLAY}
    settings["agent"] = {"hidden": [16], **settings.get("agent", {})}
    result = guarded_run(from_dict(Config, settings), path, allowed)
    assert result["windows"] >= 2 and result["updates"] > 0  # a whole window, with updates
    return result


@pytest.mark.parametrize("run", list(RUNS))
def test_no_host_reads_between_log_points(run, tmp_path):
    train_guarded(RUNS[run], tmp_path / "run")


def test_the_gymnasium_adapters_numpy_boundary_is_its_one_read(tmp_path):
    """A Gymnasium env steps numpy arrays on the host: the adapter reads the actions there
    and nothing else does (here its reads are allowed, everything else is armed)."""
    env = {"name": "gymnasium", "id": "CartPole-v1", "num_envs": 4}
    train_guarded({"env": env}, tmp_path / "allowed", ("envs/gymnasium_world.py",))
    with pytest.raises(HostRead, match=r"host read .* at .*envs/gymnasium_world.py"):
        train_guarded({"env": env}, tmp_path / "armed")


def test_the_bench_gives_the_verdict(capsys):
    argv = ["--steps", "8192", "--set", "env.num_envs=64", "--set", "replay.learning_starts=1024"]
    assert sync_free(["--config", "configs/quickstart.yaml", *argv]) == 0
    assert "no host read in 2,048 env steps between log points" in capsys.readouterr().out
    assert sync_free(["--config", "configs/cartpole.yaml", *argv]) == 1
    out = capsys.readouterr().out
    assert "configs/cartpole.yaml on cpu: a step read the host: host read" in out
    assert "envs/gymnasium_world.py" in out
    with pytest.raises(SystemExit) as stop:
        sync_free(["--set", "agent.lrr=1"])
    assert stop.value.code == 2
    assert "unknown config key 'agent.lrr'" in capsys.readouterr().err
