"""Multi-objective metrics: weight lattices, expected utility, Pareto fronts, hypervolume, IGD."""

import math

import pytest
import torch

from composable_rl.maths.mo_metrics import (
    expected_utility,
    hypervolume,
    igd,
    pareto_front,
    simplex_lattice,
)


def _rows(tensor: torch.Tensor) -> list[tuple[float, ...]]:
    return sorted(tuple(row) for row in tensor.tolist())


def test_lattice_three_objectives_four_divisions():
    weights = simplex_lattice(3, 4)
    assert weights.shape == (15, 3)
    assert weights.dtype == torch.float32
    assert torch.allclose(weights.sum(dim=1), torch.ones(15))
    assert len(set(map(tuple, weights.tolist()))) == 15
    numerators = weights * 4
    assert torch.equal(numerators, numerators.round())
    assert (weights >= 0).all()


@pytest.mark.parametrize(("objectives", "divisions"), [(2, 1), (2, 5), (4, 3), (5, 6)])
def test_lattice_size_is_stars_and_bars(objectives, divisions):
    weights = simplex_lattice(objectives, divisions)
    assert weights.shape == (math.comb(divisions + objectives - 1, objectives - 1), objectives)


def test_lattice_order_starts_with_first_objective():
    assert simplex_lattice(2, 2).tolist() == [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]
    assert simplex_lattice(3, 1).tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]


def test_lattice_single_objective():
    assert simplex_lattice(1, 7).tolist() == [[1.0]]


@pytest.mark.parametrize(("objectives", "divisions"), [(0, 3), (3, 0), (-1, 2)])
def test_lattice_rejects_bad_arguments(objectives, divisions):
    with pytest.raises(ValueError, match="at least 1"):
        simplex_lattice(objectives, divisions)


def test_expected_utility_by_hand():
    values = torch.tensor([[1.0, 2.0], [3.0, 0.0], [4.0, 8.0]])
    weights = torch.tensor([[0.5, 0.5], [1.0, 0.0], [0.25, 0.75]])
    # (1.5 + 3.0 + 7.0) / 3
    assert expected_utility(values, weights) == pytest.approx(11.5 / 3)


def test_expected_utility_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        expected_utility(torch.zeros(3, 2), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="same shape"):
        expected_utility(torch.zeros(2), torch.zeros(2))


def test_pareto_front_drops_dominated_and_duplicates():
    points = torch.tensor(
        [[1.0, 2.0], [2.0, 1.0], [1.0, 1.0], [0.0, 3.0], [1.0, 2.0], [0.0, 2.0], [2.0, 1.0]]
    )
    front = pareto_front(points)
    assert front.tolist() == [[1.0, 2.0], [2.0, 1.0], [0.0, 3.0]]


def test_pareto_front_weakly_dominated_point_removed():
    points = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.5], [0.0, 0.0, 2.0]])
    assert _rows(pareto_front(points)) == [(0.0, 0.0, 2.0), (1.0, 1.0, 1.0)]


def test_pareto_front_all_equal_points_kept_once():
    assert pareto_front(torch.ones(4, 3)).tolist() == [[1.0, 1.0, 1.0]]


def test_hypervolume_2d_staircase():
    points = torch.tensor([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
    assert hypervolume(points, torch.zeros(2)) == pytest.approx(6.0)


def test_hypervolume_single_3d_point_is_box():
    point = torch.tensor([[2.0, 3.0, 5.0]])
    ref = torch.tensor([1.0, -1.0, 0.5])
    assert hypervolume(point, ref) == pytest.approx(1.0 * 4.0 * 4.5)


def test_hypervolume_3d_two_overlapping_boxes():
    points = torch.tensor([[3.0, 1.0, 2.0], [1.0, 2.0, 3.0]])
    # 3*1*2 + 1*2*3 - (1*1*2 overlap)
    assert hypervolume(points, torch.zeros(3)) == pytest.approx(10.0)


def test_hypervolume_ignores_points_not_above_ref():
    ref = torch.zeros(3)
    inside = torch.tensor([[3.0, 1.0, 2.0]])
    outside = torch.tensor([[5.0, 5.0, 0.0], [-1.0, 9.0, 9.0], [4.0, 4.0, -2.0]])
    assert hypervolume(torch.cat([inside, outside]), ref) == pytest.approx(6.0)
    assert hypervolume(outside, ref) == 0.0
    assert hypervolume(torch.zeros(0, 3), ref) == 0.0


def test_hypervolume_one_objective():
    points = torch.tensor([[2.0], [5.0], [-3.0]])
    assert hypervolume(points, torch.tensor([1.0])) == pytest.approx(4.0)


def test_hypervolume_unchanged_by_dominated_points():
    generator = torch.Generator().manual_seed(0)
    points = torch.rand(12, 3, generator=generator)
    ref = torch.zeros(3)
    dominated = points[:6] * torch.rand(6, 3, generator=generator)
    with_dominated = torch.cat([points, dominated, points[:3]])
    assert hypervolume(with_dominated, ref) == pytest.approx(hypervolume(points, ref), rel=1e-12)
    assert hypervolume(pareto_front(points), ref) == pytest.approx(
        hypervolume(points, ref), rel=1e-12
    )


def test_hypervolume_rejects_bad_shapes():
    with pytest.raises(ValueError, match="ref"):
        hypervolume(torch.zeros(2, 3), torch.zeros(2))


@pytest.mark.parametrize(("objectives", "count"), [(3, 15), (4, 12)])
def test_hypervolume_matches_monte_carlo(objectives, count):
    generator = torch.Generator().manual_seed(objectives)
    points = torch.rand(count, objectives, generator=generator, dtype=torch.float64)
    ref = torch.full((objectives,), 0.1, dtype=torch.float64)
    upper = points.max(dim=0).values
    samples = ref + (upper - ref) * torch.rand(
        200_000, objectives, generator=generator, dtype=torch.float64
    )
    covered = (samples.unsqueeze(1) <= points.unsqueeze(0)).all(dim=2).any(dim=1)
    estimate = covered.double().mean().item() * (upper - ref).prod().item()
    assert hypervolume(points, ref) == pytest.approx(estimate, rel=0.02)


def test_igd_zero_when_points_contain_front():
    front = torch.tensor([[0.0, 3.0], [1.5, 1.5], [3.0, 0.0]])
    points = torch.cat([torch.tensor([[0.5, 0.5], [2.0, 2.0]]), front.flip(0)])
    assert igd(front, points) == 0.0


def test_igd_by_hand():
    front = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    points = torch.tensor([[0.0, 1.0], [6.0, 8.0]])
    # nearest distances: 1 and min(sqrt(18), 5) = sqrt(18)
    assert igd(front, points) == pytest.approx((1.0 + math.sqrt(18.0)) / 2)


def test_igd_rejects_empty_points():
    with pytest.raises(ValueError, match="non-empty"):
        igd(torch.zeros(2, 2), torch.zeros(0, 2))
