"""Levers that limit how hard a composed policy optimises, applied when it acts, with no
retraining: quantilised acting (Taylor 2016), an impact penalty from auxiliary heads
(attainable-utility preservation, Turner et al. 2020), acting under a set of plausible tasks
(robust acting and deferring) and a shield from constraint heads. Each is a pure function of
Q-values [..., A]; the exact tabular forms plan with them (`composable_rl.maths.oracle`).

A q-quantiliser takes a base policy (uniform over the actions, or a head's own soft policy),
keeps the top q of its probability mass ranked by the composed values, and samples from that
part renormalised. No action gets more than 1/q times its base probability, so for every
non-negative cost c of a decision, E_quantiliser[c] <= E_base[c] / q: whatever the composed
values get wrong, the quantiliser pays at most 1/q times what the base policy pays.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from composable_rl.maths.functional import boltzmann_sample

__all__ = [
    "Levers",
    "Quantile",
    "check_impact_weight",
    "defer_mask",
    "epistemic_gate",
    "impact_penalty",
    "quantile_probs",
    "quantile_sample",
    "robust_values",
    "shield_mask",
    "shielded",
]


@dataclass(frozen=True)
class Quantile:
    """Quantilised acting: keep the top `q` of the base policy's mass (q in [0, 1]; 1 is the
    base policy, 0 the greedy one); `base` names the head whose soft policy is the base (None:
    uniform over the actions, or over the candidates of a continuous-action sampler)."""

    q: float
    base: str | None = None

    def __post_init__(self) -> None:
        q = self.q
        if isinstance(q, bool) or not isinstance(q, int | float) or not math.isfinite(q):
            raise ValueError(f"quantile q must be a number in [0, 1], got {q!r}")
        if not 0 <= q <= 1:
            raise ValueError(f"quantile q must lie in [0, 1] (1: base policy, 0: greedy), got {q}")
        object.__setattr__(self, "q", float(q))

    def base_index(self, head_names: list[str]) -> int | None:
        """The index of the base head among `head_names` (None: a uniform base)."""
        if self.base is None:
            return None
        if self.base not in head_names:
            raise ValueError(
                f"quantile base {self.base!r} is not a head; heads: {', '.join(head_names)}"
            )
        return head_names.index(self.base)


def quantile_probs(values: Tensor, base: Tensor | None, q: float) -> Tensor:
    """The q-quantiliser's probabilities [..., A] over actions of composed `values` [..., A]
    under the base policy's probabilities `base` [..., A] (None: uniform): the actions in order
    of decreasing value (ties: the lower index first) keep their base mass until q of it is
    kept (the action that crosses q keeps the part below it), divided by q. q = 1 is the base
    policy; q = 0 the greedy one: all mass on the first best action, as argmax picks it."""
    if not 0 <= q <= 1:  # also refuses NaN
        raise ValueError(f"quantile q must lie in [0, 1], got {q}")
    if base is None:
        base = torch.full_like(values, 1.0 / values.shape[-1])
    if q == 0:
        return torch.nn.functional.one_hot(values.argmax(-1), values.shape[-1]).to(base.dtype)
    if q == 1:
        return base
    order = values.argsort(dim=-1, descending=True, stable=True)
    mass = base.gather(-1, order)
    before = mass.cumsum(-1) - mass
    kept = (q - before).clamp(min=0).minimum(mass)
    return torch.zeros_like(base).scatter(-1, order, kept / q)


def quantile_sample(
    values: Tensor, base: Tensor | None, q: float, generator: torch.Generator | None = None
) -> Tensor:
    """Indices [...] drawn from `quantile_probs(values, base, q)` (no host sync)."""
    probs = quantile_probs(values, base, q)
    if q == 0:
        return probs.argmax(-1)
    return boltzmann_sample(probs.log(), 1.0, generator)


def impact_penalty(aux_q: Tensor, noop: int, scale: Tensor | None = None) -> Tensor:
    """Attainable-utility penalty [..., A]: mean_k |Q_k(s, a) - Q_k(s, noop)| over auxiliary
    values aux_q [..., K, A], divided by `scale` [...] (None: mean_k |Q_k(s, noop)|, AUP's own
    normalisation, so the penalty reads as a fraction of what the agent could still attain).
    Doing nothing costs 0; an action that changes what the agent could attain costs more."""
    if not 0 <= noop < aux_q.shape[-1]:
        raise ValueError(f"no-op action {noop} is not one of the {aux_q.shape[-1]} actions")
    stay = aux_q[..., noop : noop + 1]
    if scale is None:
        scale = stay.abs().mean((-2, -1))
    change = (aux_q - stay).abs().mean(-2)
    return change / scale.clamp(min=torch.finfo(aux_q.dtype).tiny)[..., None]


def check_impact_weight(weight: float) -> float:
    """The impact penalty's weight lambda as a float, refused unless a finite number >= 0."""
    ok = isinstance(weight, int | float) and not isinstance(weight, bool)
    if not ok or not math.isfinite(weight) or weight < 0:
        raise ValueError(f"impact weight lambda must be a finite number >= 0, got {weight!r}")
    return float(weight)


def robust_values(task_q: Tensor) -> Tensor:
    """Worst case [..., A] over plausible tasks' values task_q [..., W, A]: acting greedily on
    it is argmax_a min_w Q_w(s, a)."""
    return task_q.amin(-2)


def defer_mask(plan_values: Tensor, threshold: float) -> Tensor:
    """Where to defer [...] bool: the values plan_values [..., W] of the action about to be
    taken under each of W plausible tasks spread by more than `threshold`, so what the action
    is worth hangs on what the task is. Given the acting policy's own values (Q^pi_w), a plan
    that never meets what the tasks disagree on never defers."""
    return plan_values.amax(-1) - plan_values.amin(-1) > threshold


def epistemic_gate(values: Tensor, member_values: Tensor, noop: int, threshold: float) -> Tensor:
    """Composed values [..., A] where the ensemble members' own composed values member_values
    [..., E, A] of the best action spread by more than `threshold` (the heads disagree on what
    it is worth: the agent knows too little there) replaced by a choice of the no-op alone."""
    best = values.argmax(-1, keepdim=True)  # [..., 1]
    worth = member_values.gather(-1, best[..., None, :].expand(*member_values.shape[:-1], 1))
    unsure = defer_mask(worth[..., 0], threshold)
    stay = torch.full_like(values, -torch.inf).index_fill(-1, best.new_tensor([noop]), 0.0)
    return torch.where(unsure[..., None], stay, values)


def shield_mask(constraint_q: Tensor, threshold: float = 0.5) -> Tensor:
    """Allowed actions [..., A] bool under constraint heads constraint_q [..., C, A], each the
    value of a cost head (-1 per violation): an action is masked when some head values it more
    than `threshold` below that head's best action, i.e. a violation follows it that the
    safest action avoids. With exact hard values, a violation t steps ahead costs gamma^t, so
    it is masked while gamma^t > threshold (t < 69 steps at gamma 0.99 and threshold 0.5);
    reading values relative to the best action keeps most of a soft value's entropy bonus out.
    Where the constraints together mask every action, the least-bad actions stay allowed."""
    gap = (constraint_q - constraint_q.amax(-1, keepdim=True)).amin(-2)
    safe = gap >= -threshold
    least = gap >= gap.amax(-1, keepdim=True)
    return torch.where(safe.any(-1, keepdim=True), safe, least)


def shielded(values: Tensor, constraint_q: Tensor, threshold: float = 0.5) -> Tensor:
    """Composed values [..., A] with the actions `shield_mask` forbids set to -inf."""
    return values.masked_fill(~shield_mask(constraint_q, threshold), -torch.inf)


@dataclass(frozen=True)
class Levers:
    """Levers applied to a composed policy's values at every step, over the heads' own values:
    the impact penalty with weight `impact` over the auxiliary heads `aux` (empty: the world's
    own, its `continuing_heads`), a shield from the cost heads `shield`, and robust acting over
    the weight vectors `plausible` (one weight per head each), whose worst case replaces the
    task's values. `epistemic` (a threshold) gates the result on an ensemble's disagreement
    (`epistemic_gate`; the learner applies it, since only it has the members' values). `bind`
    checks them against a checkpoint's heads and its world."""

    impact: float = 0.0
    aux: tuple[str, ...] = ()
    shield: tuple[str, ...] = ()
    shield_threshold: float = 0.5
    plausible: tuple[tuple[float, ...], ...] = ()
    epistemic: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "impact", check_impact_weight(self.impact))
        if not self.shield_threshold > 0:
            raise ValueError(f"shield threshold must be > 0, got {self.shield_threshold}")
        gate = self.epistemic
        if gate is not None and not (isinstance(gate, int | float) and 0 < gate < math.inf):
            raise ValueError(f"epistemic threshold must be a finite number > 0, got {gate!r}")

    @property
    def active(self) -> bool:
        """Whether any lever is set."""
        return bool(self.impact or self.shield or self.plausible or self.epistemic)

    def bind(
        self, head_names: list[str], noop: int | None, world_aux: Sequence[str] = ()
    ) -> Callable[[Tensor, Tensor], Tensor]:
        """values(q, composed): the levers applied to composed values [N, A] given every head's
        values q [N, K, A], with the world's no-op action `noop` and its auxiliary heads
        `world_aux`; unknown heads, weight vectors of the wrong width and an impact penalty on a
        world that declares no no-op action are each one ValueError."""
        aux = self._heads(self.aux or world_aux, head_names)
        if self.impact and noop is None:
            raise ValueError(
                "impact penalty: the world declares no no-op action (noop_action), which every "
                "action is compared against"
            )
        if self.epistemic and noop is None:
            raise ValueError(
                "epistemic gate: the world declares no no-op action (noop_action), the safe "
                "action it defers to"
            )
        if self.impact and not aux:
            raise ValueError("impact penalty: no auxiliary heads (name them, or a world's own)")
        cost = self._heads(self.shield, head_names)
        for w in self.plausible:
            if len(w) != len(head_names):
                raise ValueError(
                    f"plausible task {list(w)}: {len(w)} weights for the {len(head_names)} "
                    f"heads {head_names}"
                )
        tasks = torch.tensor(self.plausible, dtype=torch.float32) if self.plausible else None

        def values(q: Tensor, composed: Tensor) -> Tensor:
            if tasks is not None:
                composed = robust_values(torch.einsum("wk,nka->nwa", tasks.to(q), q))
            if self.impact:
                composed = composed - self.impact * impact_penalty(q[:, aux], noop)
            if cost:
                composed = shielded(composed, q[:, cost], self.shield_threshold)
            return composed

        return values

    @staticmethod
    def _heads(names: Sequence[str], head_names: list[str]) -> list[int]:
        """Indices of `names` among the heads; an unknown one is a ValueError naming them."""
        for name in names:
            if name not in head_names:
                raise ValueError(f"unknown head {name!r}; heads: {', '.join(head_names)}")
        return [head_names.index(name) for name in names]
