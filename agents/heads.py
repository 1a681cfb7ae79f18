"""What every multi-head learner shares: one acting signature, the target network, the optimiser
step, and Boltzmann acting for learners whose heads score a finite set of actions.

A learner acts by `act(obs, context)`, the `Act` policy signature of `composable_rl.world`:
for a learner the context is a task, weights [N, K] over its heads. Keyword options choose how
it acts (temperature, epsilon-uniform exploration, training behaviour).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

from composable_rl.config import AgentConfig
from composable_rl.maths import functional as fn
from composable_rl.maths.levers import Quantile, quantile_sample
from composable_rl.replay import Batch
from composable_rl.world import ActionSpec

# Head values [N, K, ..., A] (or at candidate actions [N, K, ..., C]) -> one composed [N, ..., A].
Compose = Callable[[Tensor], Tensor]


def make_adam(params: Iterable, lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel where this torch build offers it for the parameters' device."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr)


class HeadsAgent(nn.Module):
    """A learner of K heads, one per base reward, on one world's actions.

    A subclass sets `head_names`, `cfg`, `action_spec`, the `online` and `target` networks (the
    target follows the online one: `update_target`) and `optimizers`, and defines `act`,
    `act_on` and `update`. The module's state_dict is what a checkpoint stores.
    """

    successor_features = False  # whether linear composition runs through successor features
    num_goals = 0
    head_names: list[str]
    cfg: AgentConfig
    action_spec: ActionSpec
    online: nn.Module
    target: nn.Module
    optimizers: dict[str, torch.optim.Optimizer]
    updates: int

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
        """Actions for observations [N, ...] pursuing the linear task of weights `context`
        [N, K] (or [K]): sampled at temperature `alpha` (None: the heads' own, 0: greedy), a
        uniform action instead with chance `epsilon`; `behaviour` acts as training does;
        `quantile` quantilises the composed values instead of sampling at `alpha`."""
        raise NotImplementedError

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
        """Actions on a composition of the heads' own values (a value program, a Boolean
        expression): `compose` maps them [N, K, ..., A] to one composed value [N, ..., A].
        `weights` [N, K] are the composition's head weights where it has them (a learner that
        samples candidate actions may propose where they point); `quantile` quantilises the
        composed values instead of sampling at `alpha` (`levers`)."""
        raise NotImplementedError

    def update(self, batch: Batch) -> dict[str, Tensor]:
        """One gradient step on every head; detached diagnostics by name (no host sync):
        scalars, and [K] vectors with one entry per head."""
        raise NotImplementedError

    def greedy(self, obs: Tensor, context: Tensor) -> Tensor:
        """Greedy actions on the linear task of weights `context` (what evaluation runs)."""
        return self.act(obs, context, alpha=0.0)

    def explore(self, actions: Tensor, epsilon: float, generator: torch.Generator | None) -> Tensor:
        """`actions` with each replaced, with chance `epsilon`, by a uniform action."""
        if epsilon <= 0:
            return actions
        n, device = actions.shape[0], actions.device
        replace = torch.rand(n, generator=generator, device=device) < epsilon
        uniform = self.action_spec.sample(n, generator, device)
        return torch.where(replace.view(-1, *[1] * (actions.dim() - 1)), uniform, actions)

    def trained_parameters(self) -> list[nn.Parameter]:
        """The parameters the optimisers train (what gradient clipping covers)."""
        optimizers = self.optimizers.values()
        return [p for opt in optimizers for group in opt.param_groups for p in group["params"]]

    def set_lr(self, lr: float) -> None:
        """Set the learning rate of every optimizer (a schedule's value for the next updates)."""
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = lr

    def optimise(self, loss: Tensor) -> None:
        """One clipped gradient step of every optimiser on `loss`, then the target update when
        one is due."""
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.max_grad_norm > 0:
            nn.utils.clip_grad_norm_(self.trained_parameters(), self.cfg.max_grad_norm)
        for optimizer in self.optimizers.values():
            optimizer.step()
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


class DiscreteHeads(HeadsAgent):
    """Heads that score each of a finite set of actions: Boltzmann or greedy actions on their
    composition. A subclass defines `linear_values` (composed Q [N, A]) and `head_values` (each
    head's own Q [N, K, A]) and builds its networks with `build_networks`."""

    def linear_values(self, obs: Tensor, weights: Tensor) -> Tensor:
        """Q [N, A] of the reward sum_k w_k r_k (weights [N, K] or [K])."""
        raise NotImplementedError

    def head_values(self, obs: Tensor) -> Tensor:
        """Each head's own values [N, K, A] (or [N, K, G, A]), for compositions that are not
        linear (Boolean expressions, value programs)."""
        raise NotImplementedError

    def behaviour_values(self, obs: Tensor, weights: Tensor) -> Tensor:
        """Q [N, A] that training behaviour acts on; the linear composition unless overridden."""
        return self.linear_values(obs, weights)

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
        """Boltzmann (or quantilised) actions on the linearly composed Q of weights `context`
        [N, K] (see `HeadsAgent.act`)."""
        values = self.behaviour_values if behaviour else self.linear_values
        q = values(obs, context)
        actions = self.sample(q, alpha, generator, quantile, lambda: self.head_values(obs))
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
        """Boltzmann (or quantilised) actions on `compose(head values)`; world-value heads act
        on the best goal (max over g) of the composed values (`weights` are not needed)."""
        heads = self.head_values(obs)
        q = compose(heads)
        if self.num_goals:
            q = q.amax(1)
        return self.sample(q, alpha, generator, quantile, lambda: heads)

    def sample(
        self,
        q: Tensor,
        alpha: float | None,
        generator: torch.Generator | None,
        quantile: Quantile | None,
        head_values: Callable[[], Tensor],
    ) -> Tensor:
        """Actions on composed values q [N, A]: Boltzmann at `alpha` (None: the heads' own),
        or quantilised over the base policy of `quantile` (uniform, or a head's soft policy,
        read from `head_values()`, called only then, so the heads run once per act)."""
        if quantile is None:
            return fn.boltzmann_sample(q, self.cfg.alpha if alpha is None else alpha, generator)
        head = quantile.base_index(self.head_names)
        base = None
        if head is not None and quantile.q > 0:  # greedy needs no base
            own = head_values()[:, head]
            own = own.amax(1) if self.num_goals else own
            base = fn.boltzmann_probs(own, self.cfg.alpha).to(q.dtype)
        return quantile_sample(q, base, quantile.q, generator)

    def build_networks(self, network: type[nn.Module], kwargs: dict) -> None:
        """Online and target copies of `network(**kwargs)` (the target frozen, starting equal),
        Adam on the online one, and the update counter."""
        self.online = network(**kwargs)
        self.target = network(**kwargs)
        self.target.load_state_dict(self.online.state_dict())
        self.target.requires_grad_(False)
        self.optimizers = {"online": make_adam(self.online.parameters(), self.cfg.lr)}
        self.updates = 0
