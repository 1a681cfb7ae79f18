"""Evaluation harness: one episode per slot, scored against the exact optimal and random returns."""

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from envs.foraging import ForagingWorld
from envs.oracle import TabularMDP, finite_horizon_return, tabulate, tabulate_foraging
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
    an object whose scalar reward is positive; a foraging world's continuing episodes have no
    such end, so its results leave success out.
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
    start = world.agent.clone()
    mdp, which = _episode_mdps(world)
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
    reward = task(mdp.reward, mdp.goal)
    oracle, random = (
        finite_horizon_return(mdp, reward, world.max_steps, policy)[which, start]
        for policy in ("optimal", "random")
    )
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
    if isinstance(world, ForagingWorld):
        del means["success"]
    return means


def evaluate_levels(
    world_kwargs: dict[str, Any],
    policy: Policy,
    bands: Tensor,
    episodes: int = 200,
    seed: int = 10_000,
) -> dict[str, float]:
    """Mean return of the world's single head, fraction of steps with every level inside its
    band (bands [V, 2] of [low, high]) and fraction of episodes ending in death, for
    `policy(obs, weights)` over one foraging episode per slot."""
    world = make_world(world_kwargs, episodes)
    if world.num_heads != 1:
        raise ValueError(f"evaluate_levels needs a one-head world, got heads {world.head_names}")
    low, high = bands.to(world.device).unbind(-1)
    weights = torch.ones(episodes, 1, device=world.device)
    obs = world.reset(seed)
    total = torch.zeros(episodes, device=world.device)
    inside = torch.zeros(episodes, device=world.device)
    length = torch.zeros(episodes, device=world.device)
    died = torch.zeros(episodes, dtype=torch.bool, device=world.device)
    running = torch.ones(episodes, dtype=torch.bool, device=world.device)
    with torch.no_grad():
        while running.any():
            obs, reward, terminated, truncated, info = world.step(policy(obs, weights))
            level = info["internal"]
            total += torch.where(running, reward[:, 0], 0.0)
            inside += (running & ((level >= low) & (level <= high)).all(1)).float()
            length += running.float()
            died |= running & info["death"]
            running &= ~(terminated | truncated)
    return {
        "return": total.double().mean().item(),
        "in_band": (inside.sum() / length.sum()).item(),
        "deaths": died.double().mean().item(),
        "length": length.double().mean().item(),
    }


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


def _episode_mdps(world: World) -> tuple[TabularMDP, Tensor]:
    """The exact MDPs of the episodes just started, and which of them [N] each slot plays."""
    if isinstance(world, ForagingWorld):
        return tabulate_foraging(world), torch.zeros_like(world.agent)
    unique, which = torch.unique(world.objects, dim=0, return_inverse=True)
    return tabulate(world, unique), which
