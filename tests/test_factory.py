"""The learner factory: null keys resolved from the head type and the world, warnings for runs
that can hardly learn, and a section that names only an environment id."""

import pytest

from agents import factory
from composable_rl.config import Config, from_dict, load_config

LQ = {"env": {"name": "linear_quadratic", "num_envs": 16}}


def test_null_keys_take_the_head_types_and_the_worlds_defaults():
    discrete = from_dict(Config, {"env": {"id": "CartPole-v1", "num_envs": 8}})
    world = factory.build_world(discrete)
    resolved = factory.resolve(discrete, world)
    assert (resolved.tasks.epsilon_start, resolved.tasks.epsilon_end) == (1.0, 0.05)
    assert resolved.tasks.uniform_slots == 0.0  # world-value actor-critic heads only: 0.25
    assert resolved.agent.tau == 1.0
    assert resolved.replay.replay_ratio == 256 / 8  # one update per step of the vector env
    assert resolved.agent.target_period == round(500 * (256 / 8) / 256)  # ~500 env steps
    sac = from_dict(Config, {**LQ, "agent": {"heads": "soft_actor_critic"}})
    resolved = factory.resolve(sac, factory.build_world(sac))
    assert (resolved.tasks.epsilon_start, resolved.agent.tau) == (0.0, 0.005)
    assert resolved.agent.target_period == 1  # Polyak averaging at every update
    assert resolved.tasks.uniform_slots == 0.0
    given = from_dict(Config, {**LQ, "agent": {"heads": "soft_actor_critic", "tau": 0.5}})
    assert factory.resolve(given, factory.build_world(given)).agent.tau == 0.5
    assert factory.resolve(resolved, factory.build_world(sac)) == resolved


def test_device_graphs_auto_compiles_the_step_of_long_runs_of_worlds_worth_it():
    def graphs(value: object, total_steps: int, env: dict) -> bool:
        data = {"device_graphs": value, "total_steps": total_steps, "env": env}
        cfg = from_dict(Config, data)
        return factory.resolve(cfg, factory.build_world(cfg)).device_graphs

    rooms = {"num_envs": 16}  # object rooms with index observations: capturable
    steps = factory.AUTO_GRAPH_STEPS * 16
    assert from_dict(Config, {}).device_graphs == "auto"
    assert graphs("auto", steps, rooms) is True
    assert graphs("auto", steps - 16, rooms) is False  # one step of the vector world short
    assert graphs("auto", steps, {**rooms, "observation": "planes"}) is False  # not capturable
    assert graphs("auto", steps, {"id": "CartPole-v1", "num_envs": 16}) is False
    assert graphs(True, 10_000, rooms) is True and graphs(False, steps, rooms) is False


def test_runs_that_can_hardly_learn_are_warned_naming_the_keys():
    cfg = from_dict(
        Config,
        {
            "total_steps": 100_000,
            "env": {"id": "CartPole-v1", "num_envs": 16},
            "replay": {"replay_ratio": 1.0},
            "agent": {"target_period": 500},
        },
    )
    resolved = factory.resolve(cfg, factory.build_world(cfg))
    few, never = factory.schedule_warnings(resolved)
    assert "about 371 updates" in few and "raise replay.replay_ratio or total_steps" in few
    assert "target network would never be updated" in never and "agent.target_period" in never
    defaults = from_dict(Config, {"total_steps": 100_000, "env": {"id": "CartPole-v1"}})
    assert factory.schedule_warnings(factory.resolve(defaults, factory.build_world(defaults))) == []


@pytest.mark.parametrize("name", ["acrobot", "lunar_lander"])
def test_an_environment_id_alone_picks_the_gymnasium_world(name):
    cfg = load_config(f"configs/{name}.yaml")
    assert cfg.env.name == "gymnasium"
    world, agent = factory.build(cfg)
    assert agent.head_names == ["reward"] and not world.action_spec.continuous
