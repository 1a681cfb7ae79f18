"""Successor-feature heads with generalised policy improvement: linear composition that holds
for any weights (Barreto et al. 2017; Borsa et al. 2019).

Head k predicts psi_k(s, a; z), the discounted sum of base reward k under the policy that acts
for weights z; one more output predicts that policy's discounted future entropy eta, so that
Q_w(s, a; z) = w . psi(s, a; z) + alpha * eta(s, a; z) is the soft Q of reward w . r under it.
A composed policy acts on max over candidates c of Q_w(s, a; c) (GPI), which is never worse
than any single candidate's policy.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from agents.heads import DiscreteHeads
from composable_rl.config import AgentConfig, Config, ConfigError
from composable_rl.maths import functional as fn
from composable_rl.networks import ConditionedHeadsNetwork
from composable_rl.replay import Batch
from composable_rl.tasks import sphere_weights
from composable_rl.world import ActionSpec, World


class SuccessorFeatures(DiscreteHeads):
    """Online and target networks of psi(s, a; z) [B, K + 1, A] over K base rewards.

    Each update pairs every sampled transition with its own training weight vector (a base
    one-hot, a support vector, or a unit direction) and bootstraps the features of that
    weight's Boltzmann policy, so one replay teaches the policies of all weights at once.
    """

    successor_features = True

    def __init__(
        self,
        obs_shape: Sequence[int],
        action_spec: ActionSpec,
        head_names: Sequence[str],
        cfg: AgentConfig,
        sparse_features: int = 0,
        encoder: str = "mlp",
    ) -> None:
        super().__init__()
        self.head_names = list(head_names)
        self.cfg, self.action_spec = cfg, action_spec
        k = len(self.head_names)
        support = torch.tensor(cfg.successor.support, dtype=torch.float32).reshape(-1, k)
        # trained and used as unit vectors, like the one-hots and the directions: the network
        # sees a weight's direction only, so a longer vector would get a second target
        support = support / support.norm(dim=1, keepdim=True).clamp_min(1e-8)
        # CPU copies for drawing training weights: no device-to-host copy per update
        self.cpu_basis, self.cpu_support = torch.eye(k), support
        self.register_buffer("basis", torch.eye(k), persistent=False)
        self.register_buffer("support", support.clone(), persistent=False)
        net_kw = {
            "obs_shape": obs_shape,
            "num_weights": k,
            "num_features": k + 1,
            "num_actions": action_spec.n,
            "encoder": encoder,
            "hidden": cfg.hidden,
            "sparse_features": sparse_features,
        }
        self.build_networks(ConditionedHeadsNetwork, net_kw)

    def candidates(self, weights: torch.Tensor) -> torch.Tensor:
        """GPI candidates [N, M, K]: each row's own weights (unless `successor.gpi_own` is
        off), then the base one-hots and the support set; the row's weights alone when GPI is
        off."""
        own = weights[:, None]
        if not self.cfg.successor.gpi:
            return own
        shared = torch.cat([self.basis, self.support])[None].expand(weights.shape[0], -1, -1)
        return torch.cat([own, shared], 1) if self.cfg.successor.gpi_own else shared

    def linear_values(self, obs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """max over candidates c of w . psi(s, a; c) + alpha * eta(s, a; c): [N, A]."""
        if weights.dim() == 1:
            weights = weights.expand(obs.shape[0], -1)
        psi = self.online.heads(self.online.encode(obs), self.candidates(weights))
        return fn.successor_q(psi, weights[:, None], self.cfg.alpha).amax(1)

    def behaviour_values(self, obs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Each slot's own policy for its weights (GPI only with `successor.behaviour_gpi`):
        where a weight's policy errs, its own mistakes land in replay and get corrected, which
        acting through GPI would hide."""
        if self.cfg.successor.behaviour_gpi:
            return self.linear_values(obs, weights)
        return fn.successor_q(self.online(obs, weights), weights, self.cfg.alpha)

    def head_values(self, obs: torch.Tensor) -> torch.Tensor:
        """Each head's soft Q under its own policy (z = its one-hot) [N, K, A], for
        compositions that are not linear (Boolean expressions, value programs)."""
        basis = self.basis.expand(obs.shape[0], -1, -1)
        psi = self.online.heads(self.online.encode(obs), basis)  # [N, K, K + 1, A]
        return fn.successor_q(psi, basis, self.cfg.alpha)

    def training_weights(self, n: int) -> torch.Tensor:
        """[n, K] weights to train for: one-hots, support vectors or unit directions. They are
        drawn on the CPU from torch's global generator, whose state a run saves, so resume
        stays exact on any device, then moved to the agent's device."""
        scfg, k = self.cfg.successor, len(self.head_names)
        basis, support = self.cpu_basis, self.cpu_support
        weights = sphere_weights(n, k)
        draw = torch.rand(n)
        one_hot = basis[torch.randint(k, (n,))]
        weights = torch.where((draw < scfg.one_hot_prob)[:, None], one_hot, weights)
        if len(support):
            chosen = support[torch.randint(len(support), (n,))]
            upper = scfg.one_hot_prob + scfg.support_prob
            in_support = (draw >= scfg.one_hot_prob) & (draw < upper)
            weights = torch.where(in_support[:, None], chosen, weights)
        return weights.to(self.basis.device, non_blocking=True)

    def bootstrap(
        self, next_obs: torch.Tensor, z: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Target-network features [B, K + 1, A] at the next states and the values [B, A] whose
        Boltzmann policy weighs them: z's own policy, or with `successor.gpi_target` the GPI
        policy over z and the base one-hots (per action, the features of the candidate that
        values it most), so z's features learn to follow a base policy where it does better.
        The support set stays out: every extra candidate adds to the maximisation bias of the
        target. Double-Q: the online network selects, the target network evaluates."""
        candidates = z[:, None]
        if self.cfg.successor.gpi_target:
            basis = self.basis[None].expand(z.shape[0], -1, -1)
            candidates = torch.cat([candidates, basis], 1)
        psi_t = self.target.heads(self.target.encode(next_obs), candidates)
        selector = psi_t
        if self.cfg.double_q:
            selector = self.online.heads(self.online.encode(next_obs), candidates)
        q_select = fn.successor_q(selector, z[:, None], self.cfg.alpha)  # [B, M, A]
        return fn.gpi_features(psi_t, q_select), q_select.amax(1)

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One gradient step on every feature; returns detached diagnostics (no host sync)."""
        z = self.training_weights(batch.obs.shape[0])
        psi_tm1 = self.online(batch.obs, z)
        alpha = self.cfg.alpha
        with torch.no_grad():
            psi_t, q_select = self.bootstrap(batch.next_obs, z)
        discount_t = self.cfg.gamma * (~batch.terminated).to(psi_tm1.dtype)
        td = fn.successor_td(
            psi_tm1, batch.action, batch.reward, discount_t, psi_t, q_select, alpha
        )
        loss = fn.td_loss(td, self.cfg.loss)
        self.optimise(loss)
        with torch.no_grad():
            return {
                "td_loss": loss.detach(),
                "td_error": td[:, :-1].abs().mean(0),
                "q_mean": fn.select_action(psi_tm1, batch.action)[:, :-1].mean(0),
                "entropy": fn.policy_entropy(fn.successor_q(psi_tm1, z, alpha), alpha).mean(),
            }


def build(cfg: Config, world: World, encoder: str, sparse: int) -> SuccessorFeatures:
    """Successor-feature heads for `world`, reading it with `encoder` (`sparse` index features)."""
    k = len(world.head_names)
    if any(len(w) != k for w in cfg.agent.successor.support):
        raise ConfigError(
            f"agent.successor.support: need one weight per head {world.head_names}, "
            f"got {cfg.agent.successor.support}"
        )
    spec = world.observation_spec
    return SuccessorFeatures(
        spec.shape, world.action_spec, world.head_names, cfg.agent, sparse, encoder
    )
