"""Multi-head soft-Q agent: K entropy-regularised heads learned together from one replay; the
acting and target-network code shared by every multi-head learner."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from composable_rl import functional as fn
from composable_rl.config import AgentConfig
from composable_rl.networks import MultiHeadQNetwork
from composable_rl.replay import Batch


def make_adam(params, lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel where this torch build offers it for the parameters' device."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr)


class HeadsAgent(nn.Module):
    """What every multi-head learner shares: Boltzmann or greedy actions on its linear
    composition for weights [N, K], and target-network updates. A subclass defines
    `linear_values` (composed Q [N, A]), `head_values` (each head's own Q [N, K, A]), `update`,
    and the `online` and `target` networks."""

    successor_features = False  # whether linear composition runs through successor features
    num_goals = 0

    def linear_values(self, obs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Q [N, A] of the reward sum_k w_k r_k (weights [N, K] or [K])."""
        raise NotImplementedError

    def head_values(self, obs: torch.Tensor) -> torch.Tensor:
        """Each head's own values [N, K, A] (or [N, K, G, A]), for compositions that are not
        linear (Boolean expressions, value programs)."""
        raise NotImplementedError

    def behaviour_values(self, obs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Q [N, A] that training behaviour acts on; the linear composition unless overridden."""
        return self.linear_values(obs, weights)

    @torch.no_grad()
    def act(
        self,
        obs: torch.Tensor,
        weights: torch.Tensor,
        epsilon: float = 0.0,
        alpha: float | None = None,
        generator: torch.Generator | None = None,
        behaviour: bool = False,
    ) -> torch.Tensor:
        """Boltzmann actions on the linearly composed Q (weights [N, K]), with epsilon-uniform mix.

        `alpha=None` uses the heads' temperature; `alpha=0` is greedy. `behaviour` acts as
        training behaviour does (`behaviour_values`).
        """
        values = self.behaviour_values if behaviour else self.linear_values
        q = values(obs, weights)
        actions = fn.boltzmann_sample(q, self.cfg.alpha if alpha is None else alpha, generator)
        if epsilon > 0:
            n, num_actions = q.shape
            explore = torch.rand(n, generator=generator, device=q.device) < epsilon
            uniform = torch.randint(num_actions, (n,), generator=generator, device=q.device)
            actions = torch.where(explore, uniform, actions)
        return actions

    def greedy(self, obs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Greedy actions on the linearly composed Q (what evaluation runs)."""
        return self.act(obs, weights, alpha=0.0)

    def build_networks(self, network: type[nn.Module], kwargs: dict) -> None:
        """Online and target copies of `network(**kwargs)` (the target frozen, starting equal),
        Adam on the online one, and the update counter."""
        self.online = network(**kwargs)
        self.target = network(**kwargs)
        self.target.load_state_dict(self.online.state_dict())
        self.target.requires_grad_(False)
        self.optimizer = make_adam(self.online.parameters(), self.cfg.lr)
        self.updates = 0

    def optimise(self, loss: torch.Tensor) -> None:
        """One clipped gradient step on `loss`, then the target update when one is due."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.max_grad_norm > 0:
            nn.utils.clip_grad_norm_(self.online.parameters(), self.cfg.max_grad_norm)
        self.optimizer.step()
        self.updates += 1
        if self.updates % self.cfg.target_period == 0:
            self.update_target()

    @torch.no_grad()
    def update_target(self) -> None:
        """Polyak step (tau < 1) or hard copy (tau = 1) of the online weights into the target."""
        online = list(self.online.parameters())
        target = list(self.target.parameters())
        if self.cfg.tau >= 1.0:
            torch._foreach_copy_(target, online)
        else:
            torch._foreach_lerp_(target, online, self.cfg.tau)


class MultiHeadSoftQ(HeadsAgent):
    """Online and target networks of K soft-Q heads; one forward and one backward for all heads.

    `sparse_features > 0` means observations are index tensors of a multi-hot input that wide.
    `num_goals > 0` makes them world-value heads [B, K, G, A] learned with extended rewards whose
    wrong-goal `penalty` teaches column g to reach goal g; the policy is argmax_a max_g Q.
    `goal_slots` [G, J] makes those heads goal-conditioned (see `MultiHeadQNetwork`).
    `encoder` is the resolved encoder ("mlp" or "cnn"; "auto" in the config is resolved from the
    world's observation by the caller).
    The module's state_dict (online + target weights) is what a checkpoint stores.
    """

    def __init__(
        self,
        obs_shape: Sequence[int],
        num_actions: int,
        head_names: Sequence[str],
        cfg: AgentConfig,
        sparse_features: int = 0,
        num_goals: int = 0,
        penalty: float = 0.0,
        goal_slots: torch.Tensor | None = None,
        encoder: str = "mlp",
    ) -> None:
        super().__init__()
        self.head_names = list(head_names)
        self.cfg = cfg
        self.num_goals, self.penalty = num_goals, penalty
        net_kw = {
            "obs_shape": obs_shape,
            "num_heads": len(self.head_names),
            "num_actions": num_actions,
            "encoder": encoder,
            "hidden": cfg.hidden,
            "sparse_features": sparse_features,
            "num_goals": num_goals,
            "goal_slots": goal_slots,
        }
        self.build_networks(MultiHeadQNetwork, net_kw)

    def linear_values(self, obs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """sum_k w_k Q_k [N, A]; world-value heads take the best goal (max_g)."""
        q = fn.compose_linear(self.online(obs), weights)
        return q.amax(1) if self.num_goals else q

    def head_values(self, obs: torch.Tensor) -> torch.Tensor:
        """Every head's values [N, K, A] (or [N, K, G, A] with world-value heads)."""
        return self.online(obs)

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One gradient step on every head; returns detached diagnostics (no host sync)."""
        n = batch.obs.shape[0]
        q_tm1 = self.online(batch.obs)
        with torch.no_grad():
            q_t = self.target(batch.next_obs)
            q_select = self.online(batch.next_obs) if self.cfg.double_q else None
        discount_t = self.cfg.gamma * (~batch.terminated).to(q_tm1.dtype)
        r_t = batch.reward
        if self.num_goals:
            r_t = fn.extended_reward(r_t, batch.goal, self.num_goals, self.penalty)
        td = fn.soft_q_learning(q_tm1, batch.action, r_t, discount_t, q_t, self.cfg.alpha, q_select)
        loss = fn.td_loss(td, self.cfg.loss)
        self.optimise(loss)
        with torch.no_grad():
            k = len(self.head_names)
            return {
                "td_loss": loss.detach(),
                "td_error": td.abs().reshape(n, k, -1).mean((0, 2)),
                "q_mean": fn.select_action(q_tm1, batch.action).reshape(n, k, -1).mean((0, 2)),
                "entropy": fn.policy_entropy(q_tm1, self.cfg.alpha).mean(),
            }
