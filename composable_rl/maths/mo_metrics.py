"""Multi-objective evaluation metrics as pure tensor functions, every objective maximised.

Weight lattices to sweep preferences, expected utility, Pareto fronts, hypervolume and IGD.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

__all__ = ["expected_utility", "hypervolume", "igd", "pareto_front", "simplex_lattice"]


def _compositions(total: int, parts: int) -> Iterator[tuple[int, ...]]:
    """Every tuple of `parts` non-negative integers summing to `total`, first entry decreasing."""
    if parts == 1:
        yield (total,)
        return
    for first in range(total, -1, -1):
        for rest in _compositions(total - first, parts - 1):
            yield (first, *rest)


def simplex_lattice(num_objectives: int, divisions: int) -> Tensor:
    """Das–Dennis weights: every w >= 0 with entries in multiples of 1/divisions summing to 1.

    Rows [C(divisions + K - 1, K - 1), K] float32 run in decreasing lexicographic order of the
    integer numerators (the first objective's share starts at 1), so sweeps are reproducible.
    """
    if num_objectives < 1:
        raise ValueError(f"num_objectives must be at least 1, got {num_objectives}")
    if divisions < 1:
        raise ValueError(f"divisions must be at least 1, got {divisions}")
    counts = torch.tensor(list(_compositions(divisions, num_objectives)), dtype=torch.float64)
    return (counts / divisions).float()


def expected_utility(values: Tensor, weights: Tensor) -> float:
    """Mean over weights of w · V_w, V_w the value vector the policy earns when conditioned on w.

    This is the "EU" of Alegre et al. (2023) for weight-conditioned policies: one scalar that
    rewards doing well for every preference in the sweep.
    """
    if values.ndim != 2 or values.shape != weights.shape or values.shape[0] == 0:
        raise ValueError(
            "values and weights must both be non-empty [W, K] tensors of the same shape, got "
            f"{tuple(values.shape)} and {tuple(weights.shape)}"
        )
    return float((values.double() * weights.double()).sum(dim=1).mean())


def pareto_front(points: Tensor) -> Tensor:
    """The rows of [P, K] `points` no other row dominates, each distinct row once, in input order.

    Row a dominates row b when a >= b in every objective and a > b in at least one.
    """
    if points.ndim != 2:
        raise ValueError(f"points must be [P, K], got shape {tuple(points.shape)}")
    left, right = points.unsqueeze(1), points.unsqueeze(0)
    at_least = (left >= right).all(dim=2)  # [i, j]: row i >= row j everywhere
    dominates = at_least & (left > right).any(dim=2)
    equal = at_least & at_least.T
    earlier_copy = torch.tril(equal, diagonal=-1).any(dim=1)  # an equal row comes before i
    return points[~dominates.any(dim=0) & ~earlier_copy]


def _box_union_volume(points: Tensor, ref: Tensor) -> Tensor:
    """Volume of the union of boxes [ref, p] for float64 points all strictly above ref."""
    if points.shape[1] == 1:
        return points[:, 0].max() - ref[0]
    points = points[torch.argsort(points[:, -1], descending=True)]
    top = points[:, -1]
    thickness = top - torch.cat([top[1:], ref[-1:]])  # slab i is covered by points 0..i
    if points.shape[1] == 2:
        sections = torch.cummax(points[:, 0], dim=0).values - ref[0]
        return (thickness * sections).sum()
    volume = points.new_zeros(())
    for i in torch.nonzero(thickness > 0).flatten().tolist():
        volume = volume + thickness[i] * _box_union_volume(points[: i + 1, :-1], ref[:-1])
    return volume


def hypervolume(points: Tensor, ref: Tensor) -> float:
    """Exact volume dominated by [P, K] `points` and bounded below by the [K] reference point.

    Slices along the last objective and recurses on K - 1 objectives (fine for tens of points);
    points not strictly above `ref` in every objective add nothing. Computed in float64.
    """
    if points.ndim != 2 or ref.shape != points.shape[1:]:
        raise ValueError(
            f"points must be [P, K] and ref [K], got {tuple(points.shape)} and {tuple(ref.shape)}"
        )
    points, ref = points.double(), ref.double()
    points = points[(points > ref).all(dim=1)]
    if points.shape[0] == 0:
        return 0.0
    return float(_box_union_volume(points, ref))


def igd(front: Tensor, points: Tensor) -> float:
    """Inverted generational distance: mean over `front` rows of the distance to the nearest point.

    Small when the approximation `points` [P, K] covers the whole reference `front` [F, K].
    """
    if front.ndim != 2 or points.ndim != 2 or front.shape[1] != points.shape[1]:
        raise ValueError(
            "front and points must be [F, K] and [P, K], got "
            f"{tuple(front.shape)} and {tuple(points.shape)}"
        )
    if front.shape[0] == 0 or points.shape[0] == 0:
        raise ValueError("front and points must both be non-empty")
    distances = torch.cdist(
        front.double(), points.double(), compute_mode="donot_use_mm_for_euclid_dist"
    )
    return float(distances.min(dim=1).values.mean())
