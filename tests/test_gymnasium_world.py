"""The Gymnasium / MO-Gymnasium adapter world: shapes, same-step autoreset, observation kinds,
seeding, configuration errors and the evaluation hook."""

from __future__ import annotations

import math

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium import spaces
from minigrid.wrappers import ImgObsWrapper

from composable_rl.config import Config, ConfigError, from_dict
from composable_rl.registry import make_world, world_entry
from composable_rl.world import ActionSpec, World
from envs import OBJECT_ROOMS_ID, gymnasium_world
from envs.gymnasium_world import GymnasiumConfig, GymnasiumWorld

TINY_ID = "TinyMultiDiscrete-v0"


class Tiny(gymnasium.Env):
    """Three-step episodes observing MultiDiscrete([3, 4], start=[1, 0]) = (t % 3 + 1, t % 4);
    actions Discrete(2, start=-1), each paying its own value as reward."""

    observation_space = spaces.MultiDiscrete([3, 4], start=[1, 0])
    action_space = spaces.Discrete(2, start=-1)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start at t = 0."""
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        """Advance t; the episode terminates after three steps."""
        self.t += 1
        return self._obs(), float(action), self.t == 3, False, {}

    def _obs(self) -> np.ndarray:
        """(t % 3 + 1, t % 4) as the space's int64 array."""
        return np.array([self.t % 3 + 1, self.t % 4], dtype=np.int64)


gymnasium.register(TINY_ID, entry_point=Tiny, disable_env_checker=True)


def world(num_envs: int = 4, **section) -> GymnasiumWorld:
    """A Gymnasium world built from a config section, as training builds it."""
    return make_world(from_dict(GymnasiumConfig, section), num_envs)


def config_error(**section) -> ConfigError:
    """The ConfigError that building a 2-slot world of `section` raises."""
    with pytest.raises(ConfigError) as caught:
        world(2, **section)
    return caught.value


def run(w: GymnasiumWorld, actions: list[int], seed: int = 0) -> list[tuple]:
    """The (obs, reward, terminated, truncated, final_obs) of each step of a fixed action list."""
    steps = [(w.reset(seed),)]
    for a in actions:
        obs, reward, terminated, truncated, info = w.step(torch.full((w.num_envs,), a))
        steps.append((obs, reward, terminated, truncated, info["final_obs"]))
    return steps


def test_cartpole_shapes_dtypes_and_spec():
    w = world(4, id="CartPole-v1")
    assert isinstance(w, World)
    assert (w.num_envs, w.action_spec.n, w.head_names) == (4, 2, ["reward"])
    assert w.device == torch.device("cpu")
    spec = w.observation_spec
    assert (spec.shape, spec.dtype, spec.kind) == ((4,), torch.float32, "vector")
    obs = w.reset(0)
    assert obs.shape == (4, 4) and obs.dtype == torch.float32
    obs, reward, terminated, truncated, info = w.step(torch.tensor([0, 1, 0, 1]))
    assert obs.shape == (4, 4) and obs.dtype == torch.float32
    assert reward.shape == (4, 1) and reward.dtype == torch.float32
    assert torch.equal(reward, torch.ones(4, 1))
    assert terminated.dtype == torch.bool and truncated.dtype == torch.bool
    assert terminated.shape == truncated.shape == (4,)
    assert torch.equal(info["final_obs"], obs)
    w.close()


def test_final_obs_of_terminated_slots():
    w = world(4, id="CartPole-v1")
    w.reset(3)
    for _ in range(100):
        obs, _, terminated, truncated, info = w.step(torch.zeros(4, dtype=torch.long))
        if terminated.any():
            break
    assert terminated.any() and not terminated.all()  # the slots fall at different steps
    assert not truncated.any()
    final, ended = info["final_obs"], terminated
    assert torch.equal(final[~ended], obs[~ended])
    assert (final[ended] != obs[ended]).any(dim=1).all()
    # CartPole terminates when the cart leaves [-2.4, 2.4] or the pole tips past 12 degrees.
    fallen = (final[ended, 0].abs() > 2.4) | (final[ended, 2].abs() > 12 * 2 * math.pi / 360)
    assert fallen.all()
    assert (obs[ended].abs() <= 0.05).all()  # a fresh episode starts near upright
    w.close()


def test_time_limit_truncates_without_terminating():
    w = world(4, id="CartPole-v1", kwargs={"max_episode_steps": 3})
    steps = run(w, [0, 1, 0, 1])
    for obs, _, terminated, truncated, final in steps[1:3]:
        assert not terminated.any() and not truncated.any()
        assert torch.equal(final, obs)
    obs, _, terminated, truncated, final = steps[3]
    assert truncated.all() and not terminated.any()
    assert (final != obs).any(dim=1).all()
    assert not steps[4][3].any()  # the new episodes run on
    w.close()


def test_same_seed_same_trajectory():
    actions = [0, 1, 1, 0, 1] * 8
    a, b, c = (world(3, id="CartPole-v1") for _ in range(3))
    first, second, other = run(a, actions, seed=5), run(b, actions, seed=5), run(c, actions, 6)
    for x, y in zip(first, second, strict=True):
        assert all(torch.equal(u, v) for u, v in zip(x, y, strict=True))
    assert not torch.equal(first[0][0], other[0][0])
    assert not torch.equal(first[0][0][0], first[0][0][1])  # slot i is seeded seed + i


@pytest.mark.parametrize("env_id", ["CartPole-v1", OBJECT_ROOMS_ID])
def test_seeds_beyond_int64_reset_and_replay(env_id):
    w = world(2, id=env_id)
    for seed in (2**64, 2**100):
        assert torch.equal(w.reset(seed), w.reset(seed))
    w.close()


@pytest.mark.parametrize("seed", [-1, 1.5, "3"])
def test_bad_seed_raises_gymnasiums_error(seed):
    w = world(2, id="CartPole-v1")
    with pytest.raises(gymnasium.error.Error, match="seed must be an int >= 0"):
        w.reset(seed)
    w.close()


def test_mo_four_room_reward_vector_and_heads():
    w = world(2, id="four-room-v0")
    assert w.head_names == ["reward_0", "reward_1", "reward_2"]
    w.reset(0)
    _, reward, *_ = w.step(torch.zeros(2, dtype=torch.long))
    assert reward.shape == (2, 3) and reward.dtype == torch.float32
    named = world(2, id="four-room-v0", heads=["blue", "green", "red"])
    assert named.head_names == ["blue", "green", "red"]


def test_async_matches_sync_on_reward_vectors():
    actions = [0, 1, 2, 3, 3, 2, 1, 0] * 30  # long enough for a 200-step time limit
    sync = run(world(2, id="four-room-v0"), actions, seed=1)
    w = world(2, id="four-room-v0", vectorization="async")
    try:
        parallel = run(w, actions, seed=1)
    finally:
        w.close()
    assert parallel[-1][1].shape == (2, 3)
    assert any(step[3].any() for step in sync[1:])
    for x, y in zip(sync, parallel, strict=True):
        assert all(torch.equal(u, v) for u, v in zip(x, y, strict=True))


def test_minigrid_image_observation_is_chw_uint8():
    w = world(2, id="MiniGrid-DoorKey-5x5-v0", wrappers=["minigrid.wrappers:ImgObsWrapper"])
    spec = w.observation_spec
    assert (spec.shape, spec.dtype, spec.kind) == ((3, 7, 7), torch.uint8, "image")
    obs = w.reset(0)
    assert obs.shape == (2, 3, 7, 7) and obs.dtype == torch.uint8 and obs.is_contiguous()
    raw, _ = ImgObsWrapper(gymnasium.make("MiniGrid-DoorKey-5x5-v0")).reset(seed=0)
    assert torch.equal(obs[0], torch.from_numpy(raw).permute(2, 0, 1))


def test_discrete_observation_is_one_index():
    w = world(3, id="FrozenLake-v1")
    spec = w.observation_spec
    assert (spec.shape, spec.dtype, spec.kind, spec.num_features) == (
        (1,),
        torch.long,
        "indices",
        16,
    )
    assert torch.equal(w.reset(0), torch.zeros(3, 1, dtype=torch.long))
    obs, *_ = w.step(torch.full((3,), 2))  # right (or a slip)
    assert ((obs >= 0) & (obs < 16)).all()


def test_multidiscrete_observation_offsets_and_action_start():
    w = world(2, id=f"tests.test_gymnasium_world:{TINY_ID}")
    spec = w.observation_spec
    assert (spec.shape, spec.kind, spec.num_features) == ((2,), "indices", 7)
    steps = run(w, [0, 1, 1])
    # (t % 3 + 1, t % 4) -> positions (t % 3, 3 + t % 4) of a 3 + 4 wide multi-hot row
    assert torch.equal(steps[0][0], torch.tensor([[0, 3], [0, 3]]))
    assert torch.equal(steps[1][0], torch.tensor([[1, 4], [1, 4]]))
    assert torch.equal(steps[1][1], torch.full((2, 1), -1.0))  # world action 0 is env action -1
    assert torch.equal(steps[2][1], torch.zeros(2, 1))
    obs, _, terminated, _, final = steps[3]
    assert terminated.all()
    assert torch.equal(final, torch.tensor([[0, 6], [0, 6]]))
    assert torch.equal(obs, torch.tensor([[0, 3], [0, 3]]))


def test_unknown_id_names_it_and_close_matches():
    err = config_error(id="CartPol-v1")
    assert err.key == "env.id"
    assert "'CartPol-v1'" in str(err) and "CartPole" in str(err)
    err = config_error(id="CartPole-v9")
    assert "CartPole-v1" in str(err) and err.key == "env.id"


def test_missing_id_package_breaks_nothing_and_is_named(monkeypatch):
    monkeypatch.setattr(gymnasium_world, "ID_PACKAGES", ("no_such_id_package",))
    gymnasium_world._import_id_packages.cache_clear()
    try:
        assert world(2, id="CartPole-v1").action_spec == ActionSpec.discrete(2)
        assert "no_such_id_package" in str(config_error(id="NoSuchEnv-v0"))
    finally:
        gymnasium_world._import_id_packages.cache_clear()


def test_id_module_that_fails_to_import():
    err = config_error(id="no_such_module:CartPole-v1")
    assert err.key == "env.id"
    assert "no_such_module" in str(err) and "cannot import" in str(err)


def test_box_actions_are_the_unit_box_rescaled_to_the_envs_bounds():
    pendulum = world(3, id="Pendulum-v1")
    assert pendulum.action_spec == ActionSpec.box((1,), -1.0, 1.0)
    spec, to_env = gymnasium_world.action_codec(spaces.Box(-2.0, 4.0, (2,)), "x")
    assert spec == ActionSpec.box((2,), -1.0, 1.0)
    sent = to_env(np.array([[-1.0, 1.0], [0.0, 0.5], [-3.0, 7.0]], dtype=np.float32))
    assert sent.dtype == np.float32
    assert np.allclose(sent, [[-2.0, 4.0], [1.0, 2.5], [-2.0, 4.0]])
    pendulum.reset(seed=0)
    obs, reward, *_ = pendulum.step(torch.tensor([[1.0], [0.0], [-5.0]]))
    assert obs.shape == (3, 3) and reward.shape == (3, 1)


def test_unsupported_action_spaces_are_refused_naming_the_id():
    with pytest.raises(ConfigError, match="infinite bounds") as caught:
        gymnasium_world.action_codec(spaces.Box(-np.inf, np.inf, (2,)), "Free-v0")
    assert caught.value.key == "env.id" and "'Free-v0'" in str(caught.value)
    with pytest.raises(ConfigError, match="supported: gymnasium.spaces.Discrete and Box"):
        gymnasium_world.action_codec(spaces.MultiDiscrete([2, 3]), "Multi-v0")


def test_dict_observation_needs_a_wrapper_that_works_for_it():
    err = config_error(id="MiniGrid-DoorKey-5x5-v0")
    assert err.key == "env.wrappers" and "Dict" in str(err)
    assert "part(s) ['mission'] cannot be flattened" in str(err)  # FlattenObservation would fail
    assert "wrappers: ['minigrid.wrappers:ImgObsWrapper']" in str(err)
    image = world(2, id="MiniGrid-DoorKey-5x5-v0", wrappers=["minigrid.wrappers:ImgObsWrapper"])
    assert image.observation_spec.kind == "image"
    err = config_error(id="Blackjack-v1")
    assert "wrappers: ['gymnasium.wrappers:FlattenObservation']" in str(err)
    flat = world(2, id="Blackjack-v1", wrappers=["gymnasium.wrappers:FlattenObservation"])
    assert flat.observation_spec.kind == "vector" and flat.observation_spec.shape == (45,)


def test_heads_must_match_reward_width():
    err = config_error(id="four-room-v0", heads=["blue", "green"])
    assert err.key == "env.heads"
    assert "2 names" in str(err) and "width 3" in str(err)
    assert "width 1" in str(config_error(id="CartPole-v1", heads=["a", "b"]))


def test_wrapper_that_fails_to_import():
    err = config_error(id="CartPole-v1", wrappers=["no_such_package.wrappers:Wrap"])
    assert err.key == "env.wrappers[0]"
    assert "no_such_package.wrappers:Wrap" in str(err) and "No module named" in str(err)
    err = config_error(id="CartPole-v1", wrappers=["gymnasium.wrappers:NoSuchWrapper"])
    assert "NoSuchWrapper" in str(err)


def test_bad_oracle_import_path():
    err = config_error(id="CartPole-v1", oracle="no_such_package.oracles:exact_returns")
    assert err.key == "env.oracle" and "no_such_package" in str(err)


@pytest.mark.parametrize(
    ("section", "key", "text"),
    [
        ({}, "env.id", "required"),
        ({"id": "CartPole-v1", "wrappers": ["FlattenObservation"]}, "env.wrappers[0]", ":"),
        ({"id": "CartPole-v1", "oracle": "exact_returns"}, "env.oracle", ":"),
        ({"id": "four-room-v0", "heads": ["a", "a", "b"]}, "env.heads", "distinct"),
    ],
)
def test_config_problems_found_when_loading(section, key, text):
    with pytest.raises(ConfigError) as caught:
        from_dict(Config, {"env": {"name": "gymnasium", **section}})
    assert caught.value.key == key and text in str(caught.value)


def random_act(obs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """A uniformly random choice between actions 0 and 1 in every slot."""
    return torch.randint(2, (obs.shape[0],))


def cartpole_oracle(env: gymnasium.Env) -> tuple[list[float], list[float]]:
    """Stand-in returns: 500 for the optimal policy (the time limit), 22 for the random one."""
    assert env.spec is not None and env.spec.id == "CartPole-v1"
    return [500.0], [22.0]


def test_evaluate_hook_rows_with_and_without_oracle():
    evaluate = world_entry("gymnasium").evaluate
    section = from_dict(GymnasiumConfig, {"id": "CartPole-v1"})
    torch.manual_seed(0)
    (row,) = evaluate(section, random_act, 8, "cpu")
    assert (row["task"], row["episodes"]) == ("reward", 8)
    assert math.isfinite(row["ci95"]) and row["return"] >= 8
    section = from_dict(
        GymnasiumConfig,
        {"id": "CartPole-v1", "oracle": "tests.test_gymnasium_world:cartpole_oracle"},
    )
    (row,) = evaluate(section, random_act, 8, "cpu")
    assert (row["oracle_return"], row["random_return"]) == (500.0, 22.0)
    assert row["normalized_return"] == pytest.approx((row["return"] - 22.0) / 478.0)


def test_mo_rows_one_per_head():
    section = from_dict(GymnasiumConfig, {"id": "four-room-v0", "heads": ["a", "b", "c"]})
    rows = world_entry("gymnasium").evaluate(section, random_act, 4, "cpu")
    assert [row["task"] for row in rows] == ["a", "b", "c"]
    assert all(math.isfinite(row["ci95"]) for row in rows)


@pytest.mark.parametrize(
    ("package", "section"),
    [
        ("gymnasium", {"id": "CartPole-v1"}),
        ("gymnasium", {"id": "FrozenLake-v1"}),
        ("gymnasium", {"id": f"tests.test_gymnasium_world:{TINY_ID}"}),
        ("mo_gymnasium", {"id": "four-room-v0"}),
        (
            "minigrid",
            {"id": "MiniGrid-DoorKey-5x5-v0", "wrappers": ["minigrid.wrappers:ImgObsWrapper"]},
        ),
    ],
)
def test_worlds_keep_the_world_contract(package, section):
    from envs.check import check_world

    w = world(4, **section)
    check_world(w, steps=100)
    w.close()


def test_multi_objective_row_with_hypervolume_and_igd_to_minecarts_front():
    section = from_dict(
        GymnasiumConfig,
        {
            "id": "minecart-v0",
            "heads": ["ore1", "ore2", "fuel"],
            "mo_divisions": 2,
            "mo_gamma": 0.98,
            "reference_point": [0, 0, -200],
            "pareto_front": "envs.mo_fronts:minecart_front",
        },
    )
    torch.manual_seed(0)
    rows = world_entry("gymnasium").evaluate(section, random_act, 2, "cpu")
    assert [row["task"] for row in rows] == ["ore1", "ore2", "fuel", "multi-objective"]
    row = rows[-1]
    assert (row["weights"], row["episodes"]) == (6, 2)
    # actions 0 and 1 never mine: fuel is burnt, no ore beats the reference point, and the
    # values lie far from the front (whose points all carry ore)
    assert row["expected_utility"] < 0 and row["igd"] > 1.0 and row["hypervolume"] == 0.0


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"pareto_front": "minecart_front", "mo_divisions": 1}, "env.pareto_front"),
        ({"heads": ["a", "b", "c"], "reference_point": [0, 0]}, "env.reference_point"),
        ({"reference_point": [0, 0, -200]}, "env.reference_point"),
        ({"pareto_front": "envs.mo_fronts:minecart_front"}, "env.pareto_front"),
    ],
)
def test_multi_objective_keys_are_checked(section, key):
    with pytest.raises(ConfigError) as caught:
        from_dict(Config, {"env": {"name": "gymnasium", "id": "minecart-v0", **section}})
    assert caught.value.key == key


def wrong_width_front(env: gymnasium.Env, gamma: float) -> list[list[float]]:
    """A front with two objectives, for an env with three."""
    return [[1.0, 2.0]]


def test_multi_objective_keys_that_need_the_heads_fail_when_the_world_is_made():
    err = config_error(id="minecart-v0", reference_point=[0, 0], mo_divisions=1)  # 3 heads
    assert err.key == "env.reference_point" and "2 values for the 3 heads" in str(err)
    err = config_error(
        id="minecart-v0", pareto_front="no_such_package.fronts:front", mo_divisions=1
    )
    assert err.key == "env.pareto_front" and "no_such_package" in str(err)
    section = from_dict(
        GymnasiumConfig,
        {
            "id": "minecart-v0",
            "mo_divisions": 1,
            "pareto_front": "tests.test_gymnasium_world:wrong_width_front",
        },
    )
    with pytest.raises(ConfigError, match=r"returned shape \(1, 2\), expected \[P, 3\]"):
        world_entry("gymnasium").evaluate(section, random_act, 1, "cpu")
