"""Memory estimated before a run allocates: a run that cannot fit is one line naming the key."""

import pytest

from agents import memory
from agents.factory import build_world
from composable_rl.config import ConfigError, load_config
from composable_rl.replay import TensorReplay
from tests.scripts import run_script


@pytest.mark.parametrize("config", ["configs/quickstart.yaml", "configs/point_foraging.yaml"])
def test_the_replay_estimate_is_what_the_replay_allocates(config):
    cfg = load_config(config, ["replay.capacity=1000", "replay.batch_size=100"])
    world = build_world(cfg, 1)
    spec, actions = world.observation_spec, world.action_spec
    stored = spec.stored_dtype
    replay = TensorReplay(
        1000,
        spec.shape,
        len(world.head_names),
        spec.dtype,
        "cpu",
        actions.shape,
        actions.dtype,
        stored,
    )
    per_obs = memory.obs_bytes(spec.shape, stored)
    per_action = memory.obs_bytes(actions.shape, actions.dtype)
    estimate = memory.replay_bytes(cfg, per_obs, per_action, len(world.head_names))
    assert estimate == memory.tensor_bytes(replay)


def test_runs_that_cannot_fit_name_the_key_that_drives_them(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device: memory.GIB)
    memory.check_memory(load_config("configs/quickstart.yaml"))  # about 0.2 GiB: fits
    big_world = load_config("configs/quickstart.yaml", ["env.num_envs=10_000_000"])
    with pytest.raises(ConfigError, match=r"^env.num_envs: this run would need about 8\.") as err:
        memory.check_memory(big_world)
    assert err.value.key == "env.num_envs" and "more than the 1.0 GiB available on cpu" in str(
        err.value
    )
    big_replay = load_config("configs/quickstart.yaml", ["replay.capacity=10_000_000"])
    with pytest.raises(ConfigError, match="lower replay.capacity$"):
        memory.check_memory(big_replay)


def test_train_refuses_a_batch_no_machine_has_in_one_line_before_allocating():
    done = run_script(
        "train.py", "--config", "configs/quickstart.yaml", "--set", "env.num_envs=10_000_000_000"
    )
    assert done.returncode == 2 and done.stdout == "" and done.stderr.count("\n") == 1
    assert done.stderr.startswith("train.py: configs/quickstart.yaml: env.num_envs: this run")
