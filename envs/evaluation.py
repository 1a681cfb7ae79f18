"""Evaluation harness: one episode per slot, scored against the exact optimal and random returns."""

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from envs.oracle import finite_horizon_return, tabulate
from envs.worlds import World, make_world

Policy = Callable[[Tensor, Tensor], Tensor]
RESULT_KEYS = ("return", "success", "length", "oracle_return", "random_return", "normalized_return")


def evaluate(
    world_kwargs: dict[str, Any],
    policy: Policy,
    weights: Tensor | None = None,
    episodes: int = 200,
    seed: int = 10_000,
    goal_rewards: Tensor | None = None,
) -> dict[str, float]:
    """Mean return/success/length of `policy(obs, weights)` over first episodes, plus oracles.

    The task is either linear, reward @ weights, or goal-based: `goal_rewards[g]` on collecting
    object g and the world's step reward otherwise (e.g. a Boolean task: r_max inside its goal
    set, r_min outside); the policy then gets zero weights. world_kwargs name the world
    (`envs.worlds.make_world`; num_envs becomes `episodes`). Success means the episode ended at
    an object whose scalar reward is positive.
    normalized_return = (R - R_random) / (R_oracle - R_random) from the means over episodes, where
    the oracle and random returns are exact expectations from each episode's own layout and start
    (NaN when the two coincide, e.g. all-zero weights).
    """
    world = make_world(world_kwargs, episodes)
    if (weights is None) == (goal_rewards is None):
        raise ValueError("give exactly one of weights and goal_rewards")
    if weights is None:
        task = _goal_task(world, torch.as_tensor(goal_rewards, device=world.device))
        w = torch.zeros(world.num_heads, device=world.device)
    else:
        w = torch.as_tensor(weights, dtype=torch.float32, device=world.device)
        if w.shape != (world.num_heads,):
            raise ValueError(f"weights must have shape ({world.num_heads},), got {tuple(w.shape)}")
        task = _linear_task(w)
    batch_w = w.repeat(episodes, 1)
    obs = world.reset(seed)
    start, layouts = world.agent.clone(), world.objects.clone()
    total = torch.zeros(episodes, device=world.device)
    length = torch.zeros(episodes, dtype=torch.long, device=world.device)
    success = torch.zeros(episodes, dtype=torch.bool, device=world.device)
    running = torch.ones(episodes, dtype=torch.bool, device=world.device)
    with torch.no_grad():
        for _ in range(world.max_steps):
            actions = policy(obs, batch_w).to(device=world.device, dtype=torch.long)
            obs, reward, terminated, truncated, info = world.step(actions)
            scalar = task(reward, info["goal"]).float()
            total += torch.where(running, scalar, 0.0)
            length += running.long()
            success |= running & terminated & (scalar > 0)
            running &= ~(terminated | truncated)
            if not running.any():
                break
    oracle, random = _oracle_returns(world, layouts, start, task)
    means = {
        "return": total.double().mean().item(),
        "success": success.double().mean().item(),
        "length": length.double().mean().item(),
        "oracle_return": oracle.mean().item(),
        "random_return": random.mean().item(),
    }
    gap = means["oracle_return"] - means["random_return"]
    normalized = (means["return"] - means["random_return"]) / gap if gap else float("nan")
    means["normalized_return"] = normalized
    return means


TaskReward = Callable[[Tensor, Tensor], Tensor]


def _linear_task(weights: Tensor) -> TaskReward:
    """Scalar reward of a weighted sum of the heads, from reward vectors [..., K]."""
    return lambda reward, goal: reward @ weights.to(reward.dtype)


def _goal_task(world: World, goal_rewards: Tensor) -> TaskReward:
    """Scalar reward goal_rewards[g] on collecting object g, the step reward otherwise."""
    if goal_rewards.shape != (world.num_goals,):
        raise ValueError(
            f"goal_rewards must have shape ({world.num_goals},), got {tuple(goal_rewards.shape)}"
        )

    def reward_of(reward: Tensor, goal: Tensor) -> Tensor:
        per_goal = goal_rewards.to(reward.dtype)[goal.clamp(min=0)]
        return torch.where(goal >= 0, per_goal, world.step_reward)

    return reward_of


def _oracle_returns(
    world: World, layouts: Tensor, start: Tensor, task: TaskReward
) -> tuple[Tensor, Tensor]:
    """Exact optimal and uniform-random returns [N] from each slot's layout and start cell."""
    unique, which = torch.unique(layouts, dim=0, return_inverse=True)
    mdp = tabulate(world, unique)
    reward = task(mdp.reward, mdp.goal)
    optimal, random = (
        finite_horizon_return(mdp, reward, world.max_steps, policy)[which, start]
        for policy in ("optimal", "random")
    )
    return optimal, random
