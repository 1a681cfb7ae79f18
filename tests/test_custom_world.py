"""A world written outside envs/ (tests/corridor_world.py) trains through the normal config path,
with every feature its capabilities allow, and composes its heads zero-shot."""

import pytest
import yaml

from agents import composition, training
from composable_rl import registry
from composable_rl.config import Config, ConfigError, from_dict, load_config
from tests.scripts import run_script

CORRIDOR = {
    "seed": 0,
    "total_steps": 8_000,
    "log_every": 2_000,
    "eval_episodes": 50,
    "env": {"name": "tests.corridor_world:corridor", "num_envs": 16, "length": 7},
    "agent": {"gamma": 0.9, "hidden": [32], "lr": 0.003, "target_period": 50},
    "replay": {"capacity": 10_000, "batch_size": 64, "learning_starts": 500, "replay_ratio": 4},
    "tasks": {"epsilon_start": 1.0, "epsilon_end": 0.1, "epsilon_fraction": 0.5},
}


@pytest.fixture(scope="module")
def corridor_run(tmp_path_factory):
    """A corridor agent with world-value heads, trained once: (run_dir, result)."""
    settings = {**CORRIDOR, "agent": {**CORRIDOR["agent"], "world_values": True}}
    run_dir = tmp_path_factory.mktemp("runs") / "corridor"
    return run_dir, training.train(from_dict(Config, settings), run_dir, progress=False)


def test_user_world_heads_are_scored_by_its_tabular_model(corridor_run):
    _, result = corridor_run
    rows = {row["task"]: row for row in result["eval"]}
    assert set(rows) == {"left", "right"}
    for row in rows.values():
        assert row["success"] == 1.0 and row["normalized_return"] >= 0.95, row


def test_user_world_heads_compose_zero_shot(corridor_run):
    run_dir, _ = corridor_run
    cfg, world, agent = composition.load(run_dir)
    assert cfg.env.name == "tests.corridor_world:corridor" and agent.num_goals == 2
    either = composition.evaluate_task(cfg, world, agent, "left | right", 50, seed=1)
    assert either["normalized_return"] >= 0.95 and either["success"] == 1.0
    mixed = composition.evaluate_task(cfg, world, agent, "0.3*left + right", 50, seed=1)
    assert mixed["normalized_return"] >= 0.95
    assert len(composition.all_boolean_tasks(world)) == 3  # goal subsets {l}, {r}, {l, r}


def test_unknown_key_of_a_user_world_lists_its_keys():
    with pytest.raises(ConfigError, match="valid keys in 'env': name, num_envs, length"):
        from_dict(Config, {"env": {**CORRIDOR["env"], "lenght": 5}})


def test_train_cli_checks_a_user_world_and_names_every_broken_rule(tmp_path):
    path = tmp_path / "broken.yaml"
    broken = {**CORRIDOR, "runs_dir": str(tmp_path / "runs")}
    broken["env"] = {**CORRIDOR["env"], "broken": True}
    path.write_text(yaml.safe_dump(broken))
    assert load_config(path).env.broken
    done = run_script("train.py", "--config", str(path), "--no-progress")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "the world breaks" in done.stderr and "reward shape" in done.stderr, done.stderr
    assert not (tmp_path / "runs").exists()  # nothing written for a world that fails its check


def test_a_section_without_a_name_is_the_default_worlds_and_two_defaults_are_one_error(
    monkeypatch,
):
    assert from_dict(Config, {"env": {"num_envs": 3}}).env.name == registry.default_world()
    assert registry.default_world() == "object_rooms"  # the built-in worlds declare it
    entry = registry.world_entry("object_rooms")
    registry.registered_worlds()  # every world module imported before the registry is patched
    monkeypatch.setattr(registry, "_DEFAULTS", list(registry._DEFAULTS))
    monkeypatch.setattr(registry, "_WORLDS", dict(registry._WORLDS))
    registry.register_world("second", entry.config, entry.make, default=True)
    with pytest.raises(ConfigError, match="env.name: name a world: .* found object_rooms, second"):
        from_dict(Config, {"env": {"num_envs": 3}})
