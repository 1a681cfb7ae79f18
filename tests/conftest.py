"""Session fixtures: a tiny world-value agent trained once, saved, and loaded by the tests;
and torch's global random state, the same at the start of every test."""

import pytest
import torch

from agents import training
from composable_rl.config import Config, from_dict


@pytest.fixture(autouse=True)
def torch_seeded():
    """Every test starts from torch's global generator seeded at 0 and leaves it as it found
    it, so that what a test draws does not depend on which tests ran before it (or on -k)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        yield


TINY_WORLD_VALUES = {
    "seed": 3,
    "total_steps": 24_000,
    "log_every": 4_000,
    "eval_episodes": 0,
    "env": {
        "layout": "open5",
        "num_envs": 32,
        "colours": ["blue", "purple"],
        "shapes": ["circle", "square"],
        "object_positions": [[1, 1], [1, 5], [5, 1], [5, 5]],
        "max_steps": 30,
        "bound_heads": True,
    },
    "agent": {
        "gamma": 0.9,
        "alpha": 0.02,
        "hidden": [64, 64],
        "lr": 0.002,
        "target_period": 100,
        "world_values": True,
    },
    "replay": {"capacity": 50_000, "batch_size": 128, "learning_starts": 1_000, "replay_ratio": 16},
    "tasks": {"epsilon_start": 1.0, "epsilon_end": 0.3, "epsilon_fraction": 0.5},
}


@pytest.fixture(scope="session")
def world_value_run(tmp_path_factory):
    """Run directory of a tiny agent with world-value heads and the MAX/MIN bound heads."""
    cfg = from_dict(Config, TINY_WORLD_VALUES)
    run_dir = tmp_path_factory.mktemp("runs") / "world_values"
    training.train(cfg, run_dir, progress=False)
    return run_dir


TINY_OFFICE = {
    "seed": 1,
    "total_steps": 4_000,
    "log_every": 2_000,
    "eval_episodes": 0,
    "env": {"name": "office", "num_envs": 32, "bound_heads": True},
    "agent": {"hidden": [32], "world_values": True},
    "replay": {"capacity": 10_000, "batch_size": 64, "learning_starts": 500, "replay_ratio": 1},
}


@pytest.fixture(scope="session")
def office_run(tmp_path_factory):
    """Run directory of a briefly trained Office agent with proposition world-value heads."""
    cfg = from_dict(Config, TINY_OFFICE)
    run_dir = tmp_path_factory.mktemp("runs") / "office"
    training.train(cfg, run_dir, progress=False)
    return run_dir
