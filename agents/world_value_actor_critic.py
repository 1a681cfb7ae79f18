"""World-value soft actor-critic heads: Q_k(s, g, a) and an actor pi_kg for every base reward k
and goal g, so that Boolean compositions (AND = min, OR = max, NOT = Q_MAX + Q_MIN - Q) hold
over continuous actions as they do over discrete ones (Nangue Tasse, James & Rosman 2020).

Column (k, g) learns the extended reward of head k: r_k, except a wrong-goal penalty on ending
at any goal but g; so it learns to reach g and values that by r_k. The K x G columns are K x G
soft actor-critic heads of one agent: one forward and one backward pass for all of them. Every
head pays the same step reward and r_max or r_min at a goal, so column (k, g) learns the same
problem as every column (k', g) whose head agrees on g; with `sac.share_columns` those learn as
one column (`distinct_columns`), at most 2 x G of them. A
composition acts on candidate actions proposed by every actor, scored by max_g of the composed
values; the best one (greedy) or one drawn by importance sampling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from agents import soft_actor_critic
from agents.heads import Compose
from agents.soft_actor_critic import SoftActorCritic
from agents.soft_q import goal_penalty
from composable_rl.config import AgentConfig, Config, ConfigError
from composable_rl.maths import functional as fn
from composable_rl.maths.levers import Quantile
from composable_rl.replay import Batch
from composable_rl.world import ActionSpec, GoalWorld, World

PER_HEAD = ("td_error", "q_mean", "entropy", "alpha")  # diagnostics with one entry per column


def distinct_columns(membership: Tensor) -> tuple[Tensor, Tensor]:
    """The columns (k, g) that learn distinct problems, given membership [G, K] (head k pays
    r_max at goal g): the flat index k * G + g [D] of the first head of each kind at each goal,
    and the learned column [K * G] that stands for every (k, g)."""
    goals, heads = membership.shape
    kinds = membership.T.long()  # [K, G]: which of the two problems column (k, g) learns
    first = torch.full((2, goals), -1, dtype=torch.long)
    for k in reversed(range(heads)):
        first[kinds[k], torch.arange(goals)] = k
    learned = first >= 0
    flat = (first * goals + torch.arange(goals))[learned]  # ordered by kind, then goal
    rank = torch.full((2, goals), -1, dtype=torch.long)
    rank[learned] = torch.arange(int(learned.sum()))
    return flat, rank[kinds, torch.arange(goals)].flatten()


class WorldValueActorCritic(SoftActorCritic):
    """K x G soft actor-critic columns over a box of actions (see the module docstring);
    `head_names` are the K base rewards, `num_goals` the G goals, `penalty` the wrong-goal
    reward. Every temperature is its learned column's own (`log_alpha` [D]). With `membership`
    [G, K] given, the columns of the same problem share one (`distinct_columns`); `column`
    [K * G] maps each (k, g) to the learned column that stands for it."""

    def __init__(
        self,
        obs_size: int,
        action_spec: ActionSpec,
        head_names: Sequence[str],
        cfg: AgentConfig,
        num_goals: int,
        penalty: float,
        membership: Tensor | None = None,
    ) -> None:
        every = len(head_names) * num_goals
        if membership is None:
            learned, column = torch.arange(every), torch.arange(every)
        else:
            learned, column = distinct_columns(membership.cpu())
        names = [f"{head_names[i // num_goals]}:{i % num_goals}" for i in learned.tolist()]
        super().__init__(obs_size, action_spec, names, cfg)
        self.head_names = list(head_names)
        self.num_goals, self.penalty = num_goals, penalty
        self.register_buffer("learned", learned, persistent=False)
        self.register_buffer("column", column, persistent=False)

    def head_values_at(self, obs: Tensor, actions: Tensor) -> Tensor:
        """Every column's value [N, K, G, C] of C candidate actions [N, C, D] of (-1, 1)^D."""
        q = super().head_values_at(obs, actions)[:, self.column]
        return q.view(q.shape[0], len(self.head_names), self.num_goals, -1)

    def composed_values(self, obs: Tensor, actions: Tensor, compose: Compose) -> Tensor:
        """What acting maximises [N, C]: max over goals of `compose` of the columns' values at
        C candidate actions [N, C, D] of (-1, 1)^D ([N, K, G, C] -> [N, G, C])."""
        return compose(self.head_values_at(obs, actions)).amax(1)

    def actor_means(self, obs: Tensor) -> Tensor:
        """The mean action [N, K * G, D] of (-1, 1)^D of the actor of every column (k, g)."""
        return super().actor_means(obs)[:, self.column]

    @torch.no_grad()
    def candidate_values(
        self, obs: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Every column's value [N, K, G, C] at the actors' proposals for observations [N, ...]
        (their samples and means), and those C actions [N, C, *shape]."""
        drawn, _, _ = self.candidates(obs, None, True, generator)
        return self.head_values_at(obs, drawn), self.to_box(drawn)

    @torch.no_grad()
    def act(
        self,
        obs: Tensor,
        context: Tensor,
        *,
        epsilon: float = 0.0,
        alpha: float | None = None,
        generator: torch.Generator | None = None,
        behaviour: bool = False,
        quantile: Quantile | None = None,
    ) -> Tensor:
        """Actions [N, *shape] on max_g sum_k w_k Q_k(s, g, a) for weights `context` [N, K]
        (or [K]); `alpha` None is the mean temperature, 0 is greedy; `quantile` quantilises
        the candidates (`SoftActorCritic.choose`). In training
        (`behaviour`), slot i pursues its task at goal i mod G alone, so that every goal is
        sought whatever the values of the others (with the uniformly acting slots of
        `tasks.uniform_slots`, which find the goals whose values are still wrong)."""
        weights = context.expand(obs.shape[0], -1).to(self.box_half.dtype)
        rows = torch.arange(obs.shape[0], device=obs.device)
        goal = rows % self.num_goals

        def linear(q: Tensor) -> Tensor:
            return (q * weights[:, :, None, None]).sum(1)

        def at_goal(q: Tensor) -> Tensor:
            return linear(q)[rows, goal, None]

        compose = at_goal if behaviour else linear
        actions = self.act_on(obs, compose, alpha=alpha, generator=generator, quantile=quantile)
        return self.explore(actions, epsilon, generator)

    @torch.no_grad()
    def act_on(
        self,
        obs: Tensor,
        compose: Compose,
        *,
        alpha: float | None = None,
        generator: torch.Generator | None = None,
        weights: Tensor | None = None,
        quantile: Quantile | None = None,
    ) -> Tensor:
        """Actions [N, *shape] on max_g of `compose` of the columns' values at the candidates
        ([N, K, G, C] -> [N, G, C]): the best candidate (alpha = 0) or one drawn by importance
        sampling at temperature `alpha` (None: the mean of the temperatures), or by the
        quantiliser of `quantile`. `weights` are not needed: every actor proposes."""
        temperature = float(self.log_alpha.exp().mean()) if alpha is None else float(alpha)
        chosen = self.choose(obs, compose, None, temperature, generator, quantile)[0]
        return self.to_box(chosen)

    def update(self, batch: Batch) -> dict[str, Tensor]:
        """One gradient step of every column on the extended rewards; diagnostics per head
        (each the mean over its goals)."""
        reward = fn.extended_reward(batch.reward, batch.goal, self.num_goals, self.penalty)
        stats = super().update(batch._replace(reward=reward.flatten(1)[:, self.learned]))
        k = len(self.head_names)
        return {
            key: value[self.column].view(k, -1).mean(1) if key in PER_HEAD else value
            for key, value in stats.items()
        }


def build(cfg: Config, world: World, encoder: str, sparse: int) -> SoftActorCritic:
    """Soft actor-critic heads for a world of box actions and vector observations: world-value
    columns with `agent.world_values` (the world must declare goals), else one per head."""
    if not cfg.agent.world_values:
        return soft_actor_critic.build(cfg, world, encoder, sparse)
    soft_actor_critic.check_observations(cfg, world, encoder)
    if not (isinstance(world, GoalWorld) and world.goal_names):
        raise ConfigError(f"agent.world_values: the {cfg.env.name} world declares no goals")
    return WorldValueActorCritic(
        math.prod(world.observation_spec.shape),
        world.action_spec,
        world.head_names,
        cfg.agent,
        len(world.goal_names),
        goal_penalty(cfg, world),
        world.goal_membership if cfg.agent.sac.share_columns else None,
    )
