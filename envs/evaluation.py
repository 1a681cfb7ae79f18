"""Evaluation harness: one episode per slot, scored against the exact optimal and random returns."""

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from envs.object_rooms import ObjectRooms
from envs.oracle import finite_horizon_return, tabulate

Policy = Callable[[Tensor, Tensor], Tensor]


def evaluate(
    world_kwargs: dict[str, Any],
    policy: Policy,
    weights: Tensor,
    episodes: int = 200,
    seed: int = 10_000,
) -> dict[str, float]:
    """Mean return/success/length of `policy(obs, weights)` over first episodes, plus oracles.

    world_kwargs are ObjectRooms arguments (num_envs is replaced by `episodes`). Success means the
    episode ended at an object whose scalar reward is positive.
    normalized_return = (R - R_random) / (R_oracle - R_random) from the means over episodes, where
    the oracle and random returns are exact expectations from each episode's own layout and start
    (NaN when the two coincide, e.g. all-zero weights).
    """
    world = ObjectRooms(**{**world_kwargs, "num_envs": episodes})
    w = torch.as_tensor(weights, dtype=torch.float32, device=world.device)
    if w.shape != (world.num_heads,):
        raise ValueError(f"weights must have shape ({world.num_heads},), got {tuple(w.shape)}")
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
            obs, reward, terminated, truncated, _ = world.step(actions)
            scalar = reward @ w
            total += torch.where(running, scalar, 0.0)
            length += running.long()
            success |= running & terminated & (scalar > 0)
            running &= ~(terminated | truncated)
            if not running.any():
                break
    oracle, random = _oracle_returns(world, layouts, start, w)
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


def _oracle_returns(
    world: ObjectRooms, layouts: Tensor, start: Tensor, weights: Tensor
) -> tuple[Tensor, Tensor]:
    """Exact optimal and uniform-random returns [N] from each slot's layout and start cell."""
    unique, which = torch.unique(layouts, dim=0, return_inverse=True)
    mdp = tabulate(world, unique)
    reward = mdp.reward @ weights.double()
    optimal, random = (
        finite_horizon_return(mdp, reward, world.max_steps, policy)[which, start]
        for policy in ("optimal", "random")
    )
    return optimal, random
