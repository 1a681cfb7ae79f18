"""A point in the plane with velocity control and quadratic reward bases: a continuous world
whose soft optimum is exact for every head and every positive weighted sum of heads.

    x' = x + dt * u,   u in [-action_bound, action_bound]^2 (clipped), start x ~ U[-1, 1]^2
    east:   r = -(x - (d, 0))^T diag(along, across) (x - (d, 0)) - control * |u|^2
    north:  r = -(x - (0, d))^T diag(across, along) (x - (0, d)) - control * |u|^2
    effort: r = -effort * |u|^2

The heads differ in their state-cost matrices, not only in their targets, so a weighted sum of
the heads' optimal Q-functions is not the optimal Q of the weighted reward: composition loses
something, and `composable_rl.maths.lq_oracle` says exactly how much. Episodes never terminate; they
are truncated after `max_steps` steps. Walls at |x_i| = `wall` stop exploration from carrying
the point far away (where rewards grow quadratically); the optimal policies from the start
region never come near them, so the oracle stays exact there. With `weights`, the world pays
one weighted sum of the bases as its only head, "task": what a learner trained directly on
that reward sees.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import torch
from torch import Tensor

from composable_rl.config import WorldConfig, doc
from composable_rl.evaluation import mean_ci, normalized_return
from composable_rl.maths import lq_oracle as lq
from composable_rl.registry import register_world
from composable_rl.share import follow_share
from composable_rl.world import Act, ActionSpec, ObservationSpec
from envs.gridworld import SavedEpisodes, hash_uniform, slot_seeds

HEADS = ("east", "north", "effort")
EVAL_SEED = 10_000


@dataclasses.dataclass
class LinearQuadraticConfig(WorldConfig):
    """linear_quadratic: a point with velocity control and quadratic reward bases (exact
    oracle for any positive weights)."""

    name: str = doc("linear_quadratic", "This world.")
    dt: float = doc(0.25, "Time step: x' = x + dt * u.", gt=0)
    action_bound: float = doc(3.0, "Actions lie in [-action_bound, action_bound]^2.", gt=0)
    max_steps: int = doc(50, "Steps before an episode is truncated.", ge=1)
    wall: float = doc(2.0, "Positions are clipped to [-wall, wall]^2.", gt=1)
    target_distance: float = doc(0.8, "Distance d of the east (d, 0) and north (0, d) targets.")
    along: float = doc(1.0, "State cost along a target head's own axis.", gt=0)
    across: float = doc(0.1, "State cost across it (the other axis).", ge=0)
    control: float = doc(0.3, "Control cost of the target heads.", gt=0)
    effort: float = doc(1.0, "Control cost of the effort head.", gt=0)
    discount: float = doc(
        0.9,
        "Discount of the exact scores (evaluation and oracle); match agent.gamma.",
        gt=0,
        lt=1,
    )
    eval_horizon: int = doc(
        150, "Steps of an evaluation episode: discounted returns to discount^steps.", ge=1
    )
    weights: list[float] = doc(
        [],
        "Pay w . (east, north, effort) as one head named task (a directly trained baseline); "
        "empty = the three heads. Non-negative, not all zero: the exact oracle needs a "
        "positive control cost.",
        ge=0,
    )

    def problems(self) -> Iterator[tuple[str, str]]:
        """Yield (field, problem) for rules that involve several values."""
        if self.weights and (len(self.weights) != len(HEADS) or not any(self.weights)):
            yield "weights", f"need {len(HEADS)} non-negative weights, not all 0, over {HEADS}"


@dataclasses.dataclass(frozen=True)
class Bases:
    """The reward bases as augmented quadratic forms (M [3, 3], R [2, 2] per head) and the
    dynamics F, G on z = [x, 1]."""

    M: list[Tensor]
    R: list[Tensor]
    F: Tensor
    G: Tensor


def bases(section: LinearQuadraticConfig) -> Bases:
    """The section's reward bases and dynamics in `lq_oracle` form (float64, CPU)."""
    d = section.target_distance
    east = lq.target_cost(
        torch.diag(torch.tensor([section.along, section.across])), torch.tensor([d, 0.0])
    )
    north = lq.target_cost(
        torch.diag(torch.tensor([section.across, section.along])), torch.tensor([0.0, d])
    )
    eye = torch.eye(2, dtype=torch.float64)
    F, G = lq.augment(torch.eye(2), section.dt * torch.eye(2))
    M = [east, north, torch.zeros(3, 3, dtype=torch.float64)]
    R = [section.control * eye, section.control * eye, section.effort * eye]
    return Bases(M, R, F, G)


class LinearQuadraticWorld(SavedEpisodes):
    """N points stepped together; rewards [N, 3] (east, north, effort); starts drawn from
    per-slot seeds (slot i of a batch starts as a single world with that seed)."""

    episode_state = ("seeds", "episode", "position", "t")

    def __init__(
        self, section: LinearQuadraticConfig, num_envs: int, device: str | torch.device = "cpu"
    ) -> None:
        self.num_envs, self.device = num_envs, torch.device(device)
        self.dt, self.horizon, self.wall = section.dt, section.max_steps, section.wall
        self.observation_spec = ObservationSpec((2,), torch.float32, "vector")
        bound = section.action_bound
        self.action_spec = ActionSpec.box((2,), -bound, bound)
        self.head_names = ["task"] if section.weights else list(HEADS)
        b = bases(section)
        self.M = torch.stack(b.M).float().to(self.device)  # [3, 3, 3]
        self.R = torch.stack(b.R).float().to(self.device)  # [3, 2, 2]
        self.scalarize = (
            torch.tensor(section.weights, device=self.device)[:, None] if section.weights else None
        )
        self.low, self.high = self.action_spec.bounds(self.device)
        self.seeds = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self.episode = torch.zeros_like(self.seeds)
        self.position = torch.zeros(num_envs, 2, device=self.device)
        self.t = torch.zeros_like(self.seeds)

    def reset(self, seed: int = 0) -> Tensor:
        """Seed slot i with seed + i and start every slot's first episode."""
        self.seeds = slot_seeds(seed, self.num_envs, self.device)
        self.episode = torch.zeros_like(self.seeds)
        self.position = self._starts()
        self.t = torch.zeros_like(self.seeds)
        return self.position.clone()

    def _starts(self) -> Tensor:
        """Start positions [N, 2] of the slots' current episodes, uniform in [-1, 1]^2."""
        index = torch.arange(2, device=self.device)
        return (2 * hash_uniform(self.seeds, self.episode, index) - 1).float()

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, dict[str, Tensor]]:
        """Move every point, pay the K rewards of (x, u), restart truncated slots."""
        u = torch.maximum(torch.minimum(actions.float(), self.high), self.low)
        z = torch.cat([self.position, torch.ones_like(self.position[:, :1])], 1)
        state_cost = torch.einsum("ni,kij,nj->nk", z, self.M, z)
        reward = -state_cost - torch.einsum("ni,kij,nj->nk", u, self.R, u)
        if self.scalarize is not None:
            reward = reward @ self.scalarize
        self.position = (self.position + self.dt * u).clamp(-self.wall, self.wall)
        self.t = self.t + 1
        truncated = self.t >= self.horizon
        final = self.position.clone()
        self.episode = self.episode + truncated.long()
        self.position = torch.where(truncated[:, None], self._starts(), self.position)
        self.t = torch.where(truncated, 0, self.t)
        terminated = torch.zeros_like(truncated)
        return self.position.clone(), reward, terminated, truncated, {"final_obs": final}


def make(section: LinearQuadraticConfig, num_envs: int, device: str) -> LinearQuadraticWorld:
    """A world of `num_envs` points."""
    return LinearQuadraticWorld(section, num_envs, device)


def start_states(episodes: int, device: str | torch.device = "cpu") -> Tensor:
    """The evaluation's start positions [episodes, 2]: the first episodes of seeds
    EVAL_SEED, EVAL_SEED + 1, ..."""
    world = LinearQuadraticWorld(LinearQuadraticConfig(), episodes, device)
    return world.reset(EVAL_SEED)


def discounted_returns(
    section: LinearQuadraticConfig,
    act: Act,
    weights: Tensor,
    episodes: int,
    device: str,
    context: Tensor | None = None,
) -> Tensor:
    """Discounted return [episodes] of the reward weights . (east, north, effort) over
    `eval_horizon` steps from the evaluation's start states, every slot acting
    act(obs, context) (context: the weights themselves unless given)."""
    section = dataclasses.replace(section, max_steps=section.eval_horizon + 1, weights=[])
    world = LinearQuadraticWorld(section, episodes, device)
    obs = world.reset(EVAL_SEED)
    w = weights.to(device=world.device, dtype=torch.float32).expand(episodes, -1)
    given = w if context is None else context.to(world.device).expand(episodes, -1)
    total = torch.zeros(episodes, dtype=torch.float64, device=world.device)
    with torch.no_grad():
        for t in range(section.eval_horizon):
            follow_share()
            obs, reward, *_ = world.step(act(obs, given).to(world.device, torch.float32))
            total += section.discount**t * (reward * w).sum(1).double()
    return total


def exact_scores(
    section: LinearQuadraticConfig, weights: Tensor, starts: Tensor
) -> dict[str, float]:
    """Exact mean discounted returns over `starts` [E, 2] of the weighted reward (positive
    weights): the optimal policy's, the uniform-random policy's, and that of the greedy
    composition of the exact soft heads at temperature 0 (what composition itself loses)."""
    b = bases(section)
    w = weights.double().cpu()
    M = sum(wk * m for wk, m in zip(w, b.M, strict=True))
    R = sum(wk * r for wk, r in zip(w, b.R, strict=True))
    gamma = section.discount
    z0 = lq.augmented(starts.cpu())
    none = torch.zeros(2, 2, dtype=torch.float64)

    def mean_value(gain: Tensor, noise: Tensor) -> float:
        S, s0 = lq.policy_value(b.F, b.G, M, R, gain, noise, gamma)
        return float((-lq.quad(z0, S) + s0).mean())

    optimal = lq.solve(b.F, b.G, M, R, gamma, 0.0)
    heads = [lq.solve(b.F, b.G, m, r, gamma, 0.0) for m, r in zip(b.M, b.R, strict=True)]
    uniform = section.action_bound**2 / 3 * torch.eye(2, dtype=torch.float64)
    return {
        "oracle_return": mean_value(optimal.gain, none),
        "random_return": mean_value(torch.zeros(2, 3, dtype=torch.float64), uniform),
        "exact_heads_return": mean_value(lq.composed_gain(heads, w), none),
    }


def score_row(
    section: LinearQuadraticConfig,
    act: Act,
    task: str,
    weights: Tensor,
    episodes: int,
    device: str,
    context: Tensor | None = None,
) -> dict:
    """One result row for the reward weights . (east, north, effort): the policy's mean
    discounted return (95% CI) beside the exact optimum, the random policy and the exact heads'
    composition, with their normalised returns. `context` is what the policy is given (the
    weights themselves unless given)."""
    returns = discounted_returns(section, act, weights, episodes, device, context)
    exact = exact_scores(section, weights, start_states(episodes, device))
    mean, half = mean_ci(returns)
    best, chance = exact["oracle_return"], exact["random_return"]
    return {
        "task": task,
        "return": mean,
        "ci95": half,
        **exact,
        "normalized_return": normalized_return(mean, best, chance),
        "exact_heads_normalized": normalized_return(exact["exact_heads_return"], best, chance),
    }


def evaluate(section: LinearQuadraticConfig, act: Act, episodes: int, device: str) -> list[dict]:
    """Every head's greedy policy scored against its exact optimum (the effort head's optimum is
    to stand still); with `weights`, the one task head against the optimum of its reward."""
    if section.weights:
        weights, one = torch.tensor(section.weights), torch.ones(1)
        return [score_row(section, act, "task", weights, episodes, device, context=one)]
    eye = torch.eye(len(HEADS))
    return [score_row(section, act, name, eye[k], episodes, device) for k, name in enumerate(HEADS)]


register_world("linear_quadratic", LinearQuadraticConfig, make, evaluate)
