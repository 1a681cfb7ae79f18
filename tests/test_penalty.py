"""The default wrong-goal penalty keeps Boolean composition exact on the quickstart layout."""

from functools import cache

import pytest
import torch

from composable_rl.config import load_config
from composable_rl.languages.boolean_tasks import boolean_tasks
from composable_rl.languages.expressions import evaluate
from composable_rl.maths.functional import wrong_goal_penalty
from composable_rl.maths.oracle import soft_value_iteration, task_reward, world_value_iteration
from envs.gridworld import tabulate
from envs.object_rooms import ObjectRooms

CFG = load_config("configs/quickstart.yaml").env
WORLD = ObjectRooms(
    num_envs=1,
    layout=CFG.layout,
    heads=["purple", "blue", "square"],
    object_positions=CFG.object_positions,
    r_max=CFG.r_max,
    r_min=CFG.r_min,
    step_reward=CFG.step_reward,
)
MDP = tabulate(WORLD, WORLD.fixed_objects[None])


def default_penalty(gamma: float) -> float:
    horizon = min(WORLD.free_cells.numel(), 1 / (1 - gamma))
    return wrong_goal_penalty(CFG.r_min, CFG.r_max, CFG.step_reward, horizon)


@cache
def solve(gamma: float, penalty: float, goal_rewards: tuple[float, ...]) -> torch.Tensor:
    """Oracle world values [1, S, G, A] of the task paying goal_rewards[g] at goal g."""
    reward = task_reward(MDP, torch.tensor(goal_rewards, dtype=torch.float64), CFG.step_reward)
    return world_value_iteration(MDP, reward, WORLD.num_goals, penalty, gamma, 0.0)


def task(gamma: float, penalty: float, mask: torch.Tensor) -> torch.Tensor:
    return solve(gamma, penalty, tuple(torch.where(mask, CFG.r_max, CFG.r_min).tolist()))


def max_goal_gap(gamma: float, penalty: float, mask: torch.Tensor) -> float:
    """Largest |max_g Q(s, g, a) - Q*(s, a)| over valid states for the task with goal set mask."""
    goal_rewards = torch.where(mask, CFG.r_max, CFG.r_min).double()
    optimum = soft_value_iteration(MDP, task_reward(MDP, goal_rewards, CFG.step_reward), gamma, 0)
    valid = MDP.valid[0]
    return (task(gamma, penalty, mask).amax(2)[0, valid] - optimum[0, valid]).abs().max().item()


@pytest.mark.parametrize("gamma", [0.9, 0.95])
def test_all_63_tasks_compose_exactly_with_the_default_penalty(gamma):
    penalty = default_penalty(gamma)
    assert CFG.r_min - 5 < penalty < CFG.r_min  # learnable scale, below r_min
    membership = WORLD.goal_membership
    heads = {n: task(gamma, penalty, membership[:, k]) for k, n in enumerate(WORLD.head_names)}
    every = torch.ones(WORLD.num_goals, dtype=torch.bool)
    limits = (task(gamma, penalty, every), task(gamma, penalty, ~every))
    tasks = boolean_tasks(WORLD.head_names, membership)
    assert len(tasks) == 63
    for text, mask in tasks:
        composed = evaluate(text, heads, bounds=limits)
        assert torch.allclose(composed, task(gamma, penalty, mask), atol=1e-9, rtol=0), text
        assert max_goal_gap(gamma, penalty, mask) < 1e-9, text


def test_a_penalty_above_r_min_breaks_acting_on_max_over_goals():
    blue = WORLD.goal_membership[:, WORLD.head_names.index("blue")]
    assert max_goal_gap(0.95, 0.0, blue) > 0.05
