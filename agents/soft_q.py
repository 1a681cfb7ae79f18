"""Multi-head soft-Q agent: K entropy-regularised heads learned together from one replay."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from agents.heads import DiscreteHeads
from composable_rl.config import AgentConfig, Config, ConfigError
from composable_rl.maths import functional as fn
from composable_rl.maths.functional import wrong_goal_penalty
from composable_rl.networks import MultiHeadQNetwork
from composable_rl.replay import Batch
from composable_rl.world import ActionSpec, GoalWorld, World


class MultiHeadSoftQ(DiscreteHeads):
    """Online and target networks of K soft-Q heads; one forward and one backward for all heads.

    `sparse_features > 0` means observations are index tensors of a multi-hot input that wide.
    `num_goals > 0` makes them world-value heads [B, K, G, A] learned with extended rewards whose
    wrong-goal `penalty` teaches column g to reach goal g; the policy is argmax_a max_g Q.
    `goal_slots` [G, J] makes those heads goal-conditioned (see `MultiHeadQNetwork`).
    `encoder` is the resolved encoder ("mlp" or "cnn"; "auto" in the config is resolved from the
    world's observation by the caller). Heads named in `continuing` (a world's
    `continuing_heads`) bootstrap through the end of an episode, as if it went on.
    `cfg.ensemble` E > 1 gives E members, each a full set of heads on the shared encoder (the
    network's heads are member-major, E * K of them), each learning from the replay slots
    `fn.bootstrap_mask` gives it; acting reads their mean, the epistemic gate their spread.
    The module's state_dict (online + target weights) is what a checkpoint stores.
    """

    def __init__(
        self,
        obs_shape: Sequence[int],
        action_spec: ActionSpec,
        head_names: Sequence[str],
        cfg: AgentConfig,
        sparse_features: int = 0,
        num_goals: int = 0,
        penalty: float = 0.0,
        goal_slots: torch.Tensor | None = None,
        encoder: str = "mlp",
        continuing: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.head_names = list(head_names)
        self.cfg, self.action_spec = cfg, action_spec
        self.num_goals, self.penalty = num_goals, penalty
        self.members = cfg.ensemble
        # heads that bootstrap through an episode's end (a buffer, so it follows the device)
        keep = torch.tensor([name in continuing for name in self.head_names] * self.members)
        self.register_buffer("continuing", keep if keep.any() else None, persistent=False)
        net_kw = {
            "obs_shape": obs_shape,
            "num_heads": len(self.head_names) * self.members,
            "num_actions": action_spec.n,
            "encoder": encoder,
            "hidden": cfg.hidden,
            "sparse_features": sparse_features,
            "num_goals": num_goals,
            "goal_slots": goal_slots,
        }
        self.build_networks(MultiHeadQNetwork, net_kw)

    def linear_values(self, obs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """sum_k w_k Q_k [N, A]; world-value heads take the best goal (max_g)."""
        q = fn.compose_linear(self.head_values(obs), weights)
        return q.amax(1) if self.num_goals else q

    def head_values(self, obs: torch.Tensor) -> torch.Tensor:
        """Every head's values [N, K, A] (or [N, K, G, A] with world-value heads); an
        ensemble's mean over its members."""
        q = self.online(obs)
        return q if self.members == 1 else self.split_members(q).mean(1)

    def member_values(self, obs: torch.Tensor) -> torch.Tensor:
        """Each ensemble member's head values [N, E, K, A] (or [N, E, K, G, A])."""
        return self.split_members(self.online(obs))

    def split_members(self, q: torch.Tensor) -> torch.Tensor:
        """The network's member-major heads [N, E * K, ...] as [N, E, K, ...]."""
        return q.unflatten(1, (self.members, len(self.head_names)))

    def candidate_values(
        self, obs: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, None]:
        """World values [B, K, G, A] of every action (the candidates are the actions themselves,
        so none are returned; `generator` is unused)."""
        return self.head_values(obs), None

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One gradient step on every head (of every ensemble member, each on its own replay
        slots); returns detached diagnostics (no host sync)."""
        n, members = batch.obs.shape[0], self.members
        q_tm1 = self.online(batch.obs)
        with torch.no_grad():
            q_t = self.target(batch.next_obs)
            q_select = self.online(batch.next_obs) if self.cfg.double_q else None
        live = ~batch.terminated
        if self.continuing is not None:
            live = live[:, None] | self.continuing
        discount_t = self.cfg.gamma * live.to(q_tm1.dtype)
        r_t = batch.reward
        if self.num_goals:
            r_t = fn.extended_reward(r_t, batch.goal, self.num_goals, self.penalty)
        if members > 1:  # every member's copy of the heads
            r_t = r_t.repeat(1, members, *[1] * (r_t.dim() - 2))
        td = fn.soft_q_learning(q_tm1, batch.action, r_t, discount_t, q_t, self.cfg.alpha, q_select)
        k, share, learns = len(self.head_names), 1.0, None
        if members > 1 and batch.index is not None:  # each member learns from its own slots
            share = self.cfg.bootstrap
            learns = fn.bootstrap_mask(batch.index, members, share).repeat_interleave(k, 1)
            td = td * learns.view(*learns.shape, *[1] * (td.dim() - 2))
        loss = fn.td_loss(td, self.cfg.loss) / share  # as if each member's batch were whole
        self.optimise(loss)
        with torch.no_grad():
            per_head = (0, 1, 3)  # mean over the batch, the members and any goals
            td_error = td.abs().reshape(n, members, k, -1).mean(per_head)
            if learns is not None:  # over the transitions each member learned from
                seen = learns.reshape(n, members, k).float().mean((0, 1))
                td_error = td_error / seen.clamp(min=1e-6)
            return {
                "td_loss": loss.detach(),
                "td_error": td_error,
                "q_mean": fn.select_action(q_tm1, batch.action)
                .reshape(n, members, k, -1)
                .mean(per_head),
                "entropy": fn.policy_entropy(q_tm1, self.cfg.alpha).mean(),
            }


def goal_penalty(cfg: Config, world: GoalWorld) -> float:
    """The configured wrong-goal penalty, or the default of `fn.wrong_goal_penalty`.

    The horizon is the shorter of the world's state count and the effective 1 / (1 - gamma).
    """
    if cfg.agent.penalty is not None:
        return cfg.agent.penalty
    horizon = min(world.num_states, 1.0 / (1.0 - cfg.agent.gamma))
    return wrong_goal_penalty(world.r_min, world.r_max, world.step_reward, horizon)


def build(cfg: Config, world: World, encoder: str, sparse: int) -> MultiHeadSoftQ:
    """Soft-Q heads for `world` (world-value heads with `agent.world_values`, goal-conditioned
    with `agent.goal_conditioned`), reading it with `encoder` (`sparse` index features)."""
    goals = isinstance(world, GoalWorld) and bool(world.goal_names)
    if cfg.agent.world_values and not goals:
        raise ConfigError(f"agent.world_values: the {cfg.env.name} world declares no goals")
    slots = world.goal_slots if goals and cfg.agent.goal_conditioned else None
    if cfg.agent.goal_conditioned and slots is None:
        raise ConfigError(
            "agent.goal_conditioned: needs a world whose index observations describe each goal "
            "(goal_slots), e.g. object_rooms with observation: indices"
        )
    return MultiHeadSoftQ(
        world.observation_spec.shape,
        world.action_spec,
        world.head_names,
        cfg.agent,
        sparse,
        len(world.goal_names) if cfg.agent.world_values else 0,
        goal_penalty(cfg, world) if cfg.agent.world_values else 0.0,
        slots,
        encoder=encoder,
        continuing=getattr(world, "continuing_heads", ()),
    )
