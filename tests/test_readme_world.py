"""The own-world example of docs/environments.md, run as written: registered from user code,
it passes check_world, trains from a config naming it by import path, and composes its heads."""

import re
import sys
from pathlib import Path

import pytest
import yaml

from agents import composition, training
from composable_rl.config import Config, from_dict
from composable_rl.registry import make_world
from envs.check import check_world

PAGE = Path(__file__).resolve().parent.parent / "docs" / "environments.md"


@pytest.fixture
def my_worlds(tmp_path, monkeypatch):
    """The docs' my_worlds.py written to a temporary directory on sys.path."""
    text = PAGE.read_text()
    code = re.search(r"```python\n# my_worlds.py\n(.*?)```", text, re.S).group(1)
    (tmp_path / "my_worlds.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield yaml.safe_load(re.search(r"```yaml\n(env:\n  name: my_worlds:line.*?)```", text, re.S)[1])
    sys.modules.pop("my_worlds", None)


def test_readme_world_keeps_the_contract_trains_and_composes(my_worlds, tmp_path):
    settings = {
        **my_worlds,
        "total_steps": 8_000,
        "eval_episodes": 50,
        "agent": {"gamma": 0.9, "hidden": [32], "lr": 0.003, "target_period": 50},
        "replay": {"capacity": 10_000, "batch_size": 64, "learning_starts": 500, "replay_ratio": 4},
        "tasks": {"epsilon_end": 0.1, "epsilon_fraction": 0.5},
    }
    cfg = from_dict(Config, settings)
    assert cfg.env.length == 9
    check_world(make_world(cfg.env, 8))
    result = training.train(cfg, tmp_path / "run", progress=False)
    for row in result["eval"]:  # no tabular model: greedy return with a confidence interval
        assert row["return"] >= 0.95 and row["ci95"] >= 0 and row["episodes"] == 50, row
    cfg, world, agent = composition.load(tmp_path / "run")
    row = composition.evaluate_task(cfg, world, agent, "0.3*left + right", 50, seed=2)
    assert row["return"] >= 0.95 and set(row) == {"task", "return", "ci95", "episodes"}
