"""Evaluation of a policy over the first episode of every slot of a world: returns with 95%
confidence intervals for any world of the core protocol, and exact scores (against the optimal
and uniform-random returns of the same episodes) for worlds with a tabular model."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from statistics import NormalDist

import torch
from torch import Tensor

from composable_rl.maths.mo_metrics import expected_utility, hypervolume, igd
from composable_rl.maths.oracle import discounted_optimal_policy, finite_horizon_return
from composable_rl.share import follow_share
from composable_rl.world import Act, GoalWorld, TabularWorld, World


def t_quantile(p: float, dof: int) -> float:
    """Quantile p of Student's t with `dof` degrees of freedom (Cornish-Fisher expansion around
    the normal quantile; within 0.005 of the exact value for dof >= 3, 0.001 for dof >= 5)."""
    if dof < 1:
        raise ValueError(f"need at least one degree of freedom, got {dof}")
    z = NormalDist().inv_cdf(p)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / dof + g2 / dof**2 + g3 / dof**3 + g4 / dof**4


def normalized_return(value: float, oracle: float, random: float) -> float | None:
    """(value - random) / (oracle - random); None (undefined) when oracle and random coincide up
    to rounding, since every policy then scores the same and no ratio measures it."""
    if math.isclose(oracle, random, rel_tol=1e-9, abs_tol=1e-9):
        return None
    return (value - random) / (oracle - random)


def mean_ci(values: Sequence[float] | Tensor, level: float = 0.95) -> tuple[float, float | None]:
    """Mean and half-width of its Student-t confidence interval (None, undefined, for n < 2)."""
    x = torch.as_tensor(values, dtype=torch.float64).flatten()
    n = x.numel()
    if n == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = x.mean().item()
    if n < 2:
        return mean, None
    half = t_quantile(0.5 + level / 2, n - 1) * x.std().item() / math.sqrt(n)
    return mean, half


def episode_returns(
    world: World, act: Act, weights: Tensor, seed: int = 10_000, gamma: float = 1.0
) -> Tensor:
    """Return [N, K] of each head over the first episode of every slot, with every slot acting
    `act(obs, weights)` (weights [K] or [N, K]); slots that finish wait for the rest. `gamma`
    discounts it (1 on the first reward); the default 1 leaves it undiscounted.
    """
    n, k = world.num_envs, len(world.head_names)
    weights = torch.as_tensor(weights, dtype=torch.float32, device=world.device)
    weights = weights.expand(n, k)
    obs = world.reset(seed)
    total = torch.zeros(n, k, dtype=torch.float64, device=world.device)
    running = torch.ones(n, dtype=torch.bool, device=world.device)
    discount = 1.0
    with torch.no_grad():
        while bool(running.any()):
            follow_share()
            actions = act(obs, weights).to(world.device, world.action_spec.dtype)
            obs, reward, terminated, truncated, _ = world.step(actions)
            total += torch.where(running[:, None], discount * reward.double(), 0.0)
            running &= ~(terminated | truncated)
            discount *= gamma
    return total


def multi_objective_row(
    world: World,
    act: Act,
    weights: Tensor,
    gamma: float,
    reference_point: Sequence[float] = (),
    front: Tensor | None = None,
    seed: int = 10_000,
) -> dict:
    """Expected utility over `weights` [W, K] (e.g. mo_metrics.simplex_lattice): the mean over
    them of w . V_w, V_w being the mean discounted vector return of the policy composed for w
    over the world's num_envs first episodes; plus the hypervolume of the V_w above
    `reference_point` and their IGD to the true Pareto `front`, where given."""
    values = (
        torch.stack([episode_returns(world, act, w, seed, gamma).mean(0) for w in weights])
        .float()
        .cpu()
    )  # the metrics are small and computed on the CPU
    row: dict = {
        "task": "multi-objective",
        "expected_utility": expected_utility(values, weights.float().cpu()),
        "weights": len(weights),
        "episodes": world.num_envs,
    }
    if reference_point:
        row["hypervolume"] = hypervolume(values, torch.tensor(reference_point))
    if front is not None:
        row["igd"] = igd(front.float().cpu(), values)
    return row


def head_return_rows(world: World, act: Act, seed: int = 10_000) -> list[dict]:
    """One row per head: its greedy return over the world's num_envs first episodes, as mean,
    95% confidence half-width and n, with every slot pursuing that head alone."""
    rows = []
    for k, name in enumerate(world.head_names):
        weights = torch.nn.functional.one_hot(torch.tensor(k), len(world.head_names))
        returns = episode_returns(world, act, weights, seed)[:, k]
        mean, half = mean_ci(returns)
        rows.append({"task": name, "return": mean, "ci95": half, "episodes": returns.numel()})
    return rows


RESULT_KEYS = ("return", "success", "length", "oracle_return", "random_return", "normalized_return")


def evaluate(
    world: TabularWorld,
    policy: Act,
    weights: Tensor | None = None,
    seed: int = 10_000,
    goal_rewards: Tensor | None = None,
    gamma: float | None = None,
) -> dict[str, float | None]:
    """Mean return/success/length of `policy(obs, weights)` over first episodes, plus oracles.

    The task is either linear, reward @ weights, or goal-based: `goal_rewards[g]` on collecting
    object g and the world's step reward otherwise (e.g. a Boolean task: r_max inside its goal
    set, r_min outside); the policy then gets zero weights. Every slot of `world` plays one
    episode. Success means the episode ended at a goal whose scalar reward is positive; a world
    without goals (continuing episodes) has no such end, so its results leave success out. A
    world whose steps count side effects (`info["side_effects"]` [N, E]; its episodes end at a
    goal, so success stays) adds their mean per episode and the share of episodes with any.
    normalized_return = (R - R_random) / (R_oracle - R_random) from the means over episodes, where
    the oracle and random returns are exact expectations from each episode's own layout and start;
    it is undefined, None, when the two coincide (up to rounding): then every policy scores the
    same, e.g. all-zero weights, and no ratio measures it. With `gamma`, the rows also give the
    exact return (and its normalised score) of the optimal stationary policy of the
    gamma-discounted task: what an agent that learns that task's values exactly, without
    seeing the time left, would score.
    """
    episodes = world.num_envs
    if (weights is None) == (goal_rewards is None):
        raise ValueError("give exactly one of weights and goal_rewards")
    if weights is None:
        task = _goal_task(world, torch.as_tensor(goal_rewards, device=world.device))
        w = torch.zeros(len(world.head_names), device=world.device)
    else:
        w = torch.as_tensor(weights, dtype=torch.float32, device=world.device)
        if w.shape != (len(world.head_names),):
            k = len(world.head_names)
            raise ValueError(f"weights must have shape ({k},), got {tuple(w.shape)}")
        task = _linear_task(w)
    batch_w = w.repeat(episodes, 1)
    obs = world.reset(seed)
    mdp, which, start = world.tabular_episodes()
    no_goal = torch.full((episodes,), -1, dtype=torch.long, device=world.device)
    total = torch.zeros(episodes, device=world.device)
    length = torch.zeros(episodes, dtype=torch.long, device=world.device)
    success = torch.zeros(episodes, dtype=torch.bool, device=world.device)
    running = torch.ones(episodes, dtype=torch.bool, device=world.device)
    effects = None  # side-effect events per episode, where the world counts them
    with torch.no_grad():
        for _ in range(world.max_steps):
            follow_share()
            actions = policy(obs, batch_w).to(world.device, world.action_spec.dtype)
            obs, reward, terminated, truncated, info = world.step(actions)
            scalar = task(reward, info.get("goal", no_goal)).float()
            if "side_effects" in info:
                events = torch.where(running, info["side_effects"].sum(1), 0)
                effects = events if effects is None else effects + events
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
    mean_return, oracle_mean, random_mean = (
        x.double().mean().item() for x in (total, oracle, random)
    )
    means: dict[str, float | None] = {
        "return": mean_return,
        "success": success.double().mean().item(),
        "length": length.double().mean().item(),
        "oracle_return": oracle_mean,
        "random_return": random_mean,
        "normalized_return": normalized_return(mean_return, oracle_mean, random_mean),
    }
    if gamma is not None:
        best = discounted_optimal_policy(mdp, reward, gamma)
        stationary = finite_horizon_return(mdp, reward, world.max_steps, best)[which, start]
        means["stationary_return"] = stationary.double().mean().item()
        means["stationary_normalized"] = normalized_return(
            means["stationary_return"], oracle_mean, random_mean
        )
    if not (isinstance(world, GoalWorld) and world.goal_names or "side_effects" in info):
        del means["success"]
    if effects is not None:
        means["side_effects"] = effects.double().mean().item()
        means["side_effect_rate"] = (effects > 0).double().mean().item()
    return means


def exact_head_rows(world: TabularWorld, act: Act, seed: int = 10_000) -> list[dict]:
    """One row per head: the greedy return of that head alone beside the exact oracle's."""
    rows = []
    for k, name in enumerate(world.head_names):
        weights = torch.nn.functional.one_hot(torch.tensor(k), len(world.head_names)).float()
        rows.append({"task": name, **evaluate(world, act, weights, seed)})
    return rows


def evaluate_levels(
    world: World, policy: Act, bands: Tensor, seed: int = 10_000
) -> dict[str, float]:
    """Mean return of the world's single head, fraction of steps with every level inside its
    band (bands [V, 2] of [low, high]) and fraction of episodes ending in death, for
    `policy(obs, weights)` over one foraging episode per slot."""
    episodes = world.num_envs
    if len(world.head_names) != 1:
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
            follow_share()
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


def _goal_task(world: GoalWorld, goal_rewards: Tensor) -> TaskReward:
    """Scalar reward goal_rewards[g] on collecting object g, the step reward otherwise."""
    goals = len(world.goal_names)
    if goal_rewards.shape != (goals,):
        shape = tuple(goal_rewards.shape)
        raise ValueError(f"goal_rewards must have shape ({goals},), got {shape}")

    def reward_of(reward: Tensor, goal: Tensor) -> Tensor:
        per_goal = goal_rewards.to(reward.dtype)[goal.clamp(min=0)]
        return torch.where(goal >= 0, per_goal, world.step_reward)

    return reward_of
