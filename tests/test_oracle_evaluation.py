"""Evaluation harness: an oracle-greedy policy scores 1, a uniform-random one scores 0."""

import pytest
import torch
from torch import Tensor

from composable_rl.evaluation import RESULT_KEYS, evaluate
from composable_rl.maths.oracle import backup
from envs.gridworld import tabulate
from envs.object_rooms import ObjectRooms

WORLD = {"layout": "four_rooms", "max_steps": 30}
WEIGHTS = torch.tensor([1.0, 0.0, -1.0, 0.0, 0.5])


def objects_from_planes(world: ObjectRooms, obs: Tensor) -> Tensor:
    """Object cells [B, M] decoded from attribute planes: where its colour and shape planes meet."""
    flat = obs.flatten(2)
    colours = len(world.colours)
    cells = [
        (flat[:, 2 + c] * flat[:, 2 + colours + s]).argmax(1)
        for c in range(colours)
        for s in range(len(world.shapes))
    ]
    return torch.stack(cells, 1)


class OracleGreedy:
    """Acts optimally for the first episode of every slot, using the staged finite-horizon Q."""

    def __init__(self, world_kwargs: dict, weights: Tensor) -> None:
        self.world = ObjectRooms(num_envs=1, **world_kwargs)
        self.weights = weights.double()
        self.q_by_steps_left: list[Tensor] = []
        self.t = 0

    def __call__(self, obs: Tensor, weights: Tensor) -> Tensor:
        flat = obs.flatten(2)
        if not self.q_by_steps_left:
            mdp = tabulate(self.world, objects_from_planes(self.world, obs))
            reward = mdp.reward @ self.weights
            value = torch.zeros(mdp.valid.shape, dtype=torch.float64)
            for _ in range(self.world.max_steps):
                q = backup(mdp, reward, value)
                self.q_by_steps_left.append(q)
                value = q.amax(-1)
        q = self.q_by_steps_left[self.world.max_steps - 1 - self.t]
        self.t += 1
        return q[torch.arange(obs.shape[0]), flat[:, 1].argmax(1)].argmax(1)


def rooms(world_kwargs: dict, episodes: int) -> ObjectRooms:
    """A fresh object-rooms world with one slot per evaluation episode."""
    return ObjectRooms(num_envs=episodes, **world_kwargs)


def uniform_random(seed: int = 0):
    """A policy drawing uniform actions from its own seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    return lambda obs, weights: torch.randint(0, 4, (obs.shape[0],), generator=generator)


def test_oracle_greedy_policy_scores_one():
    result = evaluate(rooms(WORLD, 100), OracleGreedy(WORLD, WEIGHTS), WEIGHTS, seed=3)
    assert set(result) == set(RESULT_KEYS)
    assert all(isinstance(v, float) for v in result.values())
    assert result["return"] == pytest.approx(result["oracle_return"], abs=1e-4)
    assert result["normalized_return"] == pytest.approx(1.0, abs=1e-4)
    assert result["success"] > 0.9 and 1 <= result["length"] < 15
    assert result["oracle_return"] > result["random_return"] + 1


def test_uniform_random_policy_scores_zero():
    episodes = 400
    result = evaluate(rooms(WORLD, episodes), uniform_random(), WEIGHTS, seed=4)
    # Across seeds this statistic spreads with a standard deviation of about 0.012.
    assert abs(result["normalized_return"]) < 0.08
    assert result["length"] > 10


def test_fixed_layout_and_zero_weights():
    world = {**WORLD, "object_positions": [[1, 1], [1, 2], [1, 3], [2, 1], [2, 2], [2, 3]]}
    result = evaluate(rooms(world, 50), uniform_random(), torch.zeros(5))
    assert result["return"] == result["oracle_return"] == result["random_return"] == 0.0
    assert result["normalized_return"] is None and result["success"] == 0.0
    single = evaluate(rooms(world, 50), OracleGreedy(world, WEIGHTS), WEIGHTS, seed=8)
    assert single["normalized_return"] == pytest.approx(1.0, abs=1e-4)


def test_goal_task_equals_the_linear_task_with_the_same_rewards():
    world = ObjectRooms(num_envs=1, **WORLD)
    k = world.head_names.index("blue")
    goal_rewards = torch.where(world.goal_membership[:, k], world.r_max, world.r_min)
    linear = evaluate(rooms(WORLD, 64), uniform_random(4), torch.eye(world.num_heads)[k], seed=2)
    by_goal = evaluate(rooms(WORLD, 64), uniform_random(4), seed=2, goal_rewards=goal_rewards)
    assert by_goal == pytest.approx(linear, abs=1e-6)
    with pytest.raises(ValueError, match="exactly one"):
        evaluate(rooms(WORLD, 4), uniform_random())
    with pytest.raises(ValueError, match="goal_rewards must have shape"):
        evaluate(rooms(WORLD, 4), uniform_random(), goal_rewards=torch.zeros(2))
