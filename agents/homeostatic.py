"""Foraging agents that act on internal levels: the homeostatic agent and its two baselines.

All three act by `act(obs, levels)`, the policy signature of every agent (the context is the
internal levels [N, V]), so one harness runs them side by side:
- `HomeostaticAgent`: trained resource heads re-weighted every step by a PID controller
  (zero-shot: the heads never saw the levels);
- `FixedWeightAgent`: the same heads under constant weights (the maximiser);
- `DriveReductionAgent`: one head trained on the drive-reduction reward with the levels in its
  observation (Keramati & Gutkin 2014), which fixed its setpoints at training time.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from agents.heads import HeadsAgent
from composable_rl.homeostasis import HomeostaticController, ValueProgram


class _ComposedHeads:
    """Boltzmann actions (quantilised where the program sets `quantile`, for every agent on
    the program, the maximiser baseline too) on the value program's composition of
    (optionally scaled) heads, with the head weights of
    `head_weights` (defined by each subclass). Successor-feature heads act on their linear
    composition (GPI) of the scaled weights instead: the program's `combine` rule is for
    soft-Q heads, whose weighted sum is not the value of any policy.

    `alpha` None is the run's `agent.alpha` for discrete actions, and 0 (the best of the
    candidate actions) for continuous ones, whose `agent.alpha` is only the temperature that
    training starts from, as soft actor-critic policies are evaluated by their means."""

    def __init__(
        self,
        agent: HeadsAgent,
        program: ValueProgram,
        head_scale: Sequence[float] | None = None,
        alpha: float | None = None,
    ) -> None:
        if list(program.heads) != agent.head_names:
            raise ValueError(f"value program heads {program.heads} != agent {agent.head_names}")
        if agent.num_goals:
            raise ValueError("homeostatic composition needs plain heads, not world-value heads")
        if program.constraints and agent.successor_features:
            raise ValueError(
                "value program constraints: the shield reads soft-Q or soft actor-critic heads; "
                "successor-feature heads act by GPI, which it does not reach"
            )
        quantile = program.quantile
        if quantile is not None and quantile.base is not None and agent.action_spec.continuous:
            raise ValueError(
                "value program quantile_base: a base head needs discrete actions; with "
                "continuous actions the base is the sampler's candidates (leave it out)"
            )
        self.agent, self.program = agent, program
        device = next(agent.parameters()).device
        scale = [1.0] * len(agent.head_names) if head_scale is None else list(head_scale)
        self.head_scale = torch.tensor(scale, device=device)
        if alpha is None:
            alpha = 0.0 if agent.action_spec.continuous else agent.cfg.alpha
        self.alpha = alpha

    def head_weights(self, levels: Tensor, reset_mask: Tensor | None) -> Tensor:
        """Head weights [N, K] for levels [N, V]."""
        raise NotImplementedError

    @torch.no_grad()
    def act(
        self,
        obs: Tensor,
        context: Tensor,
        *,
        reset_mask: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Actions for observations and levels `context` [N, V]; reset_mask [N] marks new
        episodes."""
        weights = self.head_weights(context, reset_mask)
        scaled = weights * self.head_scale
        options = {"alpha": self.alpha, "generator": generator, "quantile": self.program.quantile}
        if self.agent.successor_features:
            return self.agent.act(obs, scaled, **options)

        def compose(q: Tensor) -> Tensor:  # q [N, K, A]: values of every action or candidate
            composed = self.program.compose(q * self.head_scale[:, None], weights)
            return self.program.shield(q, composed)

        return self.agent.act_on(obs, compose, weights=scaled, **options)


class HomeostaticAgent(_ComposedHeads):
    """Trained heads plus a homeostatic controller: head weights from the levels at every step.

    `head_scale` multiplies each head's values, as scaling a head's reward would (P3 makes one
    resource far more rewarding this way); the controller lives in `self.controller`.
    """

    def __init__(
        self,
        agent: HeadsAgent,
        program: ValueProgram,
        num_envs: int,
        head_scale: Sequence[float] | None = None,
        alpha: float | None = None,
    ) -> None:
        super().__init__(agent, program, head_scale, alpha)
        device = self.head_scale.device
        self.controller = HomeostaticController(program, num_envs, device=device)

    def head_weights(self, levels: Tensor, reset_mask: Tensor | None) -> Tensor:
        """The controller's weights; reset_mask [N] restarts the PIDs of new episodes."""
        return self.controller.weights(levels, reset_mask)


class FixedWeightAgent(_ComposedHeads):
    """The maximiser: the same heads and composition under constant weights (default all 1)."""

    def __init__(
        self,
        agent: HeadsAgent,
        program: ValueProgram,
        weights: Sequence[float] | None = None,
        head_scale: Sequence[float] | None = None,
        alpha: float | None = None,
    ) -> None:
        super().__init__(agent, program, head_scale, alpha)
        fixed = [1.0] * len(agent.head_names) if weights is None else list(weights)
        self.weights = torch.tensor(fixed, device=self.head_scale.device)

    def head_weights(self, levels: Tensor, reset_mask: Tensor | None) -> Tensor:
        """The constant weights, whatever the levels."""
        return self.weights.expand(levels.shape[0], -1)


class DriveReductionAgent:
    """The homeostatic-RL baseline: a one-head soft-Q agent whose observation holds its levels."""

    def __init__(self, agent: HeadsAgent, alpha: float | None = None) -> None:
        if len(agent.head_names) != 1:
            raise ValueError(f"expected one drive-reduction head, got {agent.head_names}")
        self.agent = agent
        if alpha is None:
            alpha = 0.0 if agent.action_spec.continuous else agent.cfg.alpha
        self.alpha = alpha

    def act(
        self,
        obs: Tensor,
        context: Tensor,
        *,
        reset_mask: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Actions [N]; the levels `context` already sit in `obs`."""
        weights = torch.ones(obs.shape[0], 1, device=obs.device)
        return self.agent.act(obs, weights, alpha=self.alpha, generator=generator)
