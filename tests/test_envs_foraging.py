"""Foraging world: level arithmetic, consumption rule, death, batching, observations, Gymnasium."""

import warnings
from collections import deque

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from composable_rl.world import GoalWorld
from envs.foraging import DEFAULT_HAZARD, DEFAULT_RESOURCES, ForagingEnv, ForagingWorld
from envs.gridworld import move
from tests.scalarize import scalarized

UP, RIGHT, DOWN, LEFT = range(4)
FOOD, WATER, SALT = 1 * 11 + 1, 1 * 11 + 9, 9 * 11 + 5  # flat cells of the default resources


def f32(*values: float) -> torch.Tensor:
    """float32 sum of values, added left to right as the world adds them."""
    total = torch.tensor(values[0], dtype=torch.float32)
    for value in values[1:]:
        total = total + torch.tensor(value, dtype=torch.float32)
    return total


def act(world: ForagingWorld, action: int) -> tuple:
    """Step every slot of `world` with the same action."""
    return world.step(torch.full((world.num_envs,), action, dtype=torch.long))


def test_default_resources_are_5_to_12_steps_apart():
    world = ForagingWorld(num_envs=1)
    free = (~world.walls.flatten()).nonzero().flatten().tolist()

    def distances(source: int) -> dict[int, int]:
        seen, queue = {source: 0}, deque([source])
        while queue:
            cell = queue.popleft()
            for action in range(4):
                nxt = int(move(torch.tensor([cell]), torch.tensor([action]), world.walls)[0])
                if nxt not in seen:
                    seen[nxt] = seen[cell] + 1
                    queue.append(nxt)
        return seen

    cells = [FOOD, WATER, SALT]
    for i, a in enumerate(cells):
        reach = distances(a)
        assert set(reach) == set(free)  # the room is connected
        for b in cells[i + 1 :]:
            assert 5 <= reach[b] <= 12


def test_drift_and_consumption_by_hand():
    world = ForagingWorld(num_envs=1, start=(1, 2))
    assert world.head_names == ["food", "water", "salt"] and world.num_heads == 3
    assert not isinstance(world, GoalWorld)  # continuing: no goals, so no world values
    assert world.internal.tolist() == [[0.5, 0.5, 0.5]]
    obs, reward, terminated, truncated, info = act(world, LEFT)  # onto food
    energy, hydration, sodium = f32(0.5, -0.003, 0.075), f32(0.5, -0.003), f32(0.5, -0.001)
    assert reward.dtype == torch.float32 and reward.tolist() == [[1.0, 0.0, 0.0]]
    assert torch.equal(info["internal"][0], torch.stack([energy, hydration, sodium]))
    assert torch.equal(world.internal, info["internal"]) and obs.tolist() == [[FOOD]]
    assert info["goal"].tolist() == [-1] and not terminated.any() and not truncated.any()
    _, reward, _, _, info = act(world, UP)  # bump into the wall: still on food, eats again
    energy, hydration, sodium = energy + f32(-0.003) + f32(0.075), hydration - 0.003, sodium - 0.001
    assert reward.tolist() == [[1.0, 0.0, 0.0]]
    assert torch.equal(info["internal"][0], torch.stack([energy, hydration, sodium]))
    _, reward, _, _, info = act(world, DOWN)  # off the resource: drift only
    assert reward.tolist() == [[0.0, 0.0, 0.0]]
    assert torch.equal(info["internal"][0], torch.stack([energy, hydration, sodium]) + world.drift)
    world.agent = torch.tensor([SALT - 1])
    before = world.internal[0].clone()
    _, reward, _, _, info = act(world, RIGHT)  # salt: sodium up, a little water lost
    assert reward.tolist() == [[0.0, 0.0, 1.0]]
    expected = before + world.drift + torch.tensor([0.0, -0.02, 0.1])
    assert torch.equal(info["internal"][0], expected)


def test_levels_are_clamped_to_unit_interval():
    world = ForagingWorld(num_envs=1, start=(1, 2), drift=[-0.3, 0.0, 0.0])
    world.set_levels([0.5, 0.1, 0.95])
    world.consumption[0] = torch.tensor([0.0, 0.0, 0.2])  # food now salty
    _, _, _, _, info = act(world, LEFT)
    assert info["internal"].tolist() == [[pytest.approx(0.2), pytest.approx(0.1), 1.0]]
    _, _, _, _, info = act(world, DOWN)
    assert info["internal"][0, 0] == 0.0  # 0.2 - 0.3 clamps to 0


def test_regrow_makes_a_cell_unavailable_for_regrow_steps():
    world = ForagingWorld(num_envs=1, start=(1, 2), regrow=2, observation="planes")
    eaten = [act(world, LEFT if t == 0 else UP)[1][0, 0].item() for t in range(7)]
    assert eaten == [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    assert world.current_obs()[0, 1, 1, 1] == 0  # just eaten: the food plane shows it gone
    act(world, DOWN)
    act(world, DOWN)
    assert world.current_obs()[0, 1, 1, 1] == 1 and world.ready.all()


def test_consumption_never_terminates_and_truncation_auto_resets():
    world = ForagingWorld(num_envs=2, start=(1, 2), max_steps=5)
    rewards = []
    for t in range(5):
        obs, reward, terminated, truncated, info = act(world, LEFT if t == 0 else UP)
        rewards.append(reward[:, 0].tolist())
        assert not terminated.any() and not info["death"].any()
        assert truncated.tolist() == [t == 4] * 2
    assert rewards == [[1.0, 1.0]] * 5
    assert info["final_obs"].tolist() == [[FOOD], [FOOD]]
    assert obs.tolist() == [[13], [13]] and world.t.tolist() == [0, 0]
    assert world.episode.tolist() == [1, 1] and world.internal.tolist() == [[0.5] * 3] * 2
    assert info["internal"][0, 0] > 0.5  # the final levels, not the fresh ones


def test_death_terminates_exactly_when_a_level_leaves_the_viable_range():
    kwargs = {"num_envs": 2, "start": (5, 4), "drift": [0.0, 0.0, -0.1], "death": True}
    kwargs["viable_high"] = 0.95
    world = ForagingWorld(**kwargs)
    world.set_levels({"sodium": 0.3})
    terms = [act(world, UP)[2].tolist() for _ in range(3)]  # 0.2, 0.1, ~0.0 < 0.05
    assert terms == [[False, False], [False, False], [True, True]]
    assert world.internal[:, 2].tolist() == [0.5, 0.5]  # auto-reset
    world = ForagingWorld(**{**kwargs, "drift": 0.0, "start": (1, 2)})
    world.set_levels({"energy": 0.9}, mask=torch.tensor([True, False]))
    _, _, terminated, truncated, info = act(world, LEFT)  # 0.9 + 0.075 > 0.95 in slot 0 only
    assert terminated.tolist() == [True, False] and info["death"].tolist() == [True, False]
    assert info["internal"][0, 0] == pytest.approx(0.975) and not truncated.any()
    world = ForagingWorld(**{**kwargs, "death": False})
    world.set_levels({"sodium": 0.3})
    assert not any(act(world, UP)[2].any() for _ in range(5))


def test_batched_engine_equals_separate_engines_bit_for_bit():
    kwargs = {
        "max_steps": 15,
        "regrow": 3,
        "death": True,
        "drift": [-0.02, -0.03, -0.01],
        "initial_range": (0.2, 0.8),
        "internal_in_obs": True,
        "layout": ("#######", "#.....#", "#.#...#", "#.....#", "#######"),
        "resources": {"food": [[1, 1], [3, 5]], "water": [[1, 5]], "salt": [[3, 1]]},
    }
    num, seed, steps = 16, 123, 80
    batched = ForagingWorld(num_envs=num, **kwargs)
    singles = [ForagingWorld(num_envs=1, **kwargs) for _ in range(num)]
    obs = batched.reset(seed)
    single_obs = torch.cat([w.reset(seed + i) for i, w in enumerate(singles)])
    assert torch.equal(obs, single_obs) and batched.agent.unique().numel() > 1
    actions = torch.randint(0, 4, (steps, num), generator=torch.Generator().manual_seed(0))
    ended = eaten = 0
    for t in range(steps):
        out = batched.step(actions[t])
        for i, world in enumerate(singles):
            one = world.step(actions[t, i : i + 1])
            for a, b in zip(out[:4], one[:4], strict=True):
                assert torch.equal(a[i : i + 1], b)
            for key in ("final_obs", "internal", "death", "goal"):
                assert torch.equal(out[4][key][i : i + 1], one[4][key])
            assert torch.equal(batched.internal[i : i + 1], world.internal)
        ended += int((out[2] | out[3]).sum())
        eaten += int(out[1].sum())
    assert ended > 2 * num and eaten > num


def test_observation_shapes_and_internal_discretisation():
    world = ForagingWorld(num_envs=3)
    obs = world.current_obs()
    assert obs.shape == (3, 1) and obs.dtype == torch.long and world.num_features == 121
    assert world.obs_shape == (1,) and world.obs_dtype == torch.long
    assert not torch.isin(world.agent, torch.tensor([FOOD, WATER, SALT])).any()
    planes = ForagingWorld(num_envs=3, observation="planes", hazard=DEFAULT_HAZARD)
    obs = planes.current_obs()
    assert obs.shape == (3, 5, 11, 11) and obs.dtype == torch.uint8 == planes.obs_dtype
    assert planes.head_names == ["food", "water", "salt", "hazard"]
    assert obs.sum((2, 3)).tolist() == [[1, 1, 1, 1, 3]] * 3 and obs[0, 2, 1, 9] == 1
    regrow = ForagingWorld(num_envs=3, regrow=4)
    assert regrow.current_obs()[0, 1:].tolist() == [122, 124, 126]
    assert regrow.num_features == 121 + 6
    world = ForagingWorld(num_envs=2, internal_in_obs=True, levels_bins=10)
    assert world.obs_shape == (4,) and world.num_features == 121 + 30
    world.set_levels(torch.tensor([[0.0, 0.55, 1.0], [0.09, 0.1, 0.999]]))
    obs = world.current_obs()
    assert obs[:, 1:].tolist() == [[121, 131 + 5, 141 + 9], [121, 131 + 1, 141 + 9]]
    with pytest.raises(ValueError, match="internal_in_obs"):
        ForagingWorld(observation="planes", internal_in_obs=True)


def test_set_levels_and_run_time_consumption_edits():
    world = ForagingWorld(num_envs=2, start=(1, 2), drift=0.0)
    world.set_levels({"sodium": 0.1}, mask=torch.tensor([False, True]))
    assert world.internal.tolist() == [[0.5, 0.5, 0.5], [0.5, 0.5, pytest.approx(0.1)]]
    world.set_levels(0.25)
    assert world.internal.tolist() == [[0.25] * 3] * 2
    for bad in (1.5, {"thirst": 0.2}, torch.zeros(2)):
        with pytest.raises(ValueError):
            world.set_levels(bad)
    world.set_consumption("food", "sodium", 0.5)
    world.consumption[0, 0] = 0.0  # direct tensor edits count too
    _, reward, _, _, info = act(world, LEFT)
    assert reward[:, 0].tolist() == [1.0, 1.0]
    assert info["internal"].tolist() == [[0.25, 0.25, 0.75]] * 2
    with pytest.raises(ValueError, match="unknown resource"):
        world.set_consumption("cake", "energy", 1.0)


def test_configuration_is_validated():
    with pytest.raises(ValueError, match="drift needs 2"):
        ForagingWorld(variables=("a", "b"), drift=[0.0, 0.0, 0.0], consumption={})
    with pytest.raises(ValueError, match="unknown variable 'energy'"):
        ForagingWorld(variables=("a", "b"), consumption={})
    with pytest.raises(ValueError, match="distinct"):
        ForagingWorld(hazard=[DEFAULT_RESOURCES["food"][0]])
    with pytest.raises(ValueError, match="wall"):
        ForagingWorld(start=(0, 0))
    world = ForagingWorld(variables=("a",), drift={"a": -0.1}, consumption={"food": {"a": 1}})
    assert world.drift.tolist() == [pytest.approx(-0.1)] and world.consumption[0, 0] == 1.0


def test_a_button_pays_its_head_like_the_resource_and_feeds_nothing():
    world = ForagingWorld(
        num_envs=2,
        button=[[9, 1]],
        start=(8, 1),
        drift={"energy": 0.0, "hydration": 0.0, "sodium": 0.0},
    )
    assert world.head_names == ["food", "water", "salt"]  # a button adds no head
    world.reset(0)
    world.set_levels([0.5, 0.5, 0.5])
    down = torch.full((2,), 2)
    for _ in range(2):  # onto the button, then bump the wall below it: two presses
        _, reward, _, _, info = world.step(down)
        assert reward[0].tolist() == [1.0, 0.0, 0.0] and info["pressed"].all()
        assert info["consumed"].tolist() == [-1, -1]
        assert info["internal"][0].tolist() == [0.5, 0.5, 0.5]
    _, reward, _, _, info = world.step(torch.zeros(2, dtype=torch.long))  # off it
    assert not info["pressed"].any() and reward.abs().sum() == 0
    planes = ForagingWorld(num_envs=1, button=[[9, 1]], observation="planes")
    assert planes.current_obs().shape == (1, 5, 11, 11)  # agent, 3 resources, the button
    assert planes.render_rgb().shape == (176, 176, 3)
    with pytest.raises(ValueError, match="button_pays 'cake' is not a resource"):
        ForagingWorld(button=[[9, 1]], button_pays="cake")


def test_gymnasium_face():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=".*different from the unwrapped")
        warnings.filterwarnings("ignore", message=".*alternative render modes")
        check_env(scalarized(ForagingEnv(render_mode="rgb_array"), np.ones(3)))
        check_env(scalarized(ForagingEnv(internal_in_obs=True, regrow=2), np.ones(3)))
    env = ForagingEnv(start=(1, 2), max_steps=2)
    obs, _ = env.reset(seed=5)
    assert obs.tolist() == [13] and env.reward_space.shape == (3,)
    obs, reward, terminated, truncated, info = env.step(LEFT)
    assert reward.dtype == np.float32 and reward.tolist() == [1.0, 0.0, 0.0]
    assert reward in env.reward_space and info["goal"] == -1 and info["death"] is False
    assert info["internal"].dtype == np.float32 and info["internal"][0] > 0.55
    assert (terminated, truncated) == (False, False)
    obs, _, _, truncated, _ = env.step(UP)
    assert truncated and obs.tolist() == [FOOD]  # no auto-reset
    assert env.render().shape == (176, 176, 3)
