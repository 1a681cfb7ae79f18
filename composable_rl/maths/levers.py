"""Levers that limit how hard a composed policy optimises, applied when it acts, with no
retraining: quantilised acting (Taylor 2016).

A q-quantiliser takes a base policy (uniform over the actions, or a head's own soft policy),
keeps the top q of its probability mass ranked by the composed values, and samples from that
part renormalised. No action gets more than 1/q times its base probability, so for every
non-negative cost c of a decision, E_quantiliser[c] <= E_base[c] / q: whatever the composed
values get wrong, the quantiliser pays at most 1/q times what the base policy pays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from composable_rl.maths.functional import boltzmann_sample

__all__ = ["Quantile", "quantile_probs", "quantile_sample"]


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
