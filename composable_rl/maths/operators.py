"""Composition operators on value heads: Boolean OR, AND and NOT, soft OR, weighted max and GPI.

They act elementwise on head tensors of any shape ([B, A] Q-values or [B, G, A] world values),
so the expression evaluator and the controllers share one definition of each operator. The
weighted sum of heads is `functional.compose_linear`.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["and_", "gpi", "not_", "or_", "soft_or", "weighted_max"]


def weighted_max(q: Tensor, weights: Tensor) -> Tensor:
    """max_k w_k Q_k over the heads with w_k > 0, plus sum_k w_k Q_k over those with w_k < 0:
    q [B, K, ...] and weights [B, K] -> [B, ...] (0 from the positive part when none is positive).

    With rewards >= 0 this is a lower bound on the value, for the weighted reward, of following
    the best single wanted head's policy (the other wanted rewards only add, an unwanted one
    costs at most its own optimal value), so acting greedily on it is GPI over the heads' own
    policies. Unlike the weighted sum it never settles between two equally wanted goals.
    """
    w = weights.to(q.dtype).view(*weights.shape, *([1] * (q.dim() - weights.dim())))
    positive = (w > 0).expand_as(q)
    wanted = torch.where(positive, q * w, float("-inf")).amax(1)
    wanted = torch.where(positive.any(1), wanted, 0.0)
    return wanted + (q * w.clamp(max=0)).sum(1)


def or_(a: Tensor, b: Tensor) -> Tensor:
    """Boolean OR of world values: the elementwise max."""
    return torch.maximum(a, b)


def and_(a: Tensor, b: Tensor) -> Tensor:
    """Boolean AND of world values: the elementwise min."""
    return torch.minimum(a, b)


def soft_or(a: Tensor, b: Tensor, alpha: float) -> Tensor:
    """Entropy-regularised OR alpha * log(exp(a/alpha) + exp(b/alpha)); alpha == 0 is the max."""
    if alpha == 0:
        return torch.maximum(a, b)
    return alpha * torch.logaddexp(a / alpha, b / alpha)


def not_(q: Tensor, q_max: Tensor, q_min: Tensor) -> Tensor:
    """Boolean NOT of world values, Q_MAX + Q_MIN - Q, with the bounds of the all-goal tasks."""
    return q_max + q_min - q


def gpi(q_stack: Tensor) -> Tensor:
    """Generalised policy improvement: the max over the first axis of a stack of composed values."""
    return q_stack.amax(0)
