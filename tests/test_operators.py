"""Composition operators by hand: Boolean OR, AND and NOT, soft OR and GPI."""

import math

import pytest
import torch

from composable_rl.languages.expressions import evaluate
from composable_rl.maths.operators import and_, gpi, not_, or_, soft_or


def test_operators_by_hand():
    a, b = torch.tensor([1.0, -2.0, 3.0]), torch.tensor([0.5, 4.0, 3.0])
    assert or_(a, b).tolist() == [1.0, 4.0, 3.0]
    assert and_(a, b).tolist() == [0.5, -2.0, 3.0]
    assert not_(a, torch.full((3,), 5.0), torch.full((3,), -1.0)).tolist() == [3.0, 6.0, 1.0]
    assert soft_or(a, b, 0.0).tolist() == or_(a, b).tolist()
    assert soft_or(a, b, 2.0).tolist() == pytest.approx(
        [2.0 * math.log(math.exp(x / 2) + math.exp(y / 2)) for x, y in zip(a, b, strict=True)]
    )
    big = torch.tensor([1000.0])
    assert soft_or(big, big, 0.01).item() == pytest.approx(1000.0 + 0.01 * math.log(2))
    assert gpi(torch.stack([a, b])).tolist() == [1.0, 4.0, 3.0]


def test_softor_approaches_max_as_alpha_shrinks():
    a, b = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    for alpha in (1e-2, 1e-4):
        gap = soft_or(a, b, alpha) - or_(a, b)
        assert (gap >= -1e-12).all() and gap.max() <= alpha * math.log(2) + 1e-12
    heads = {"a": a, "b": b}
    assert torch.allclose(evaluate("softor(a, b)", heads, alpha=1e-6), evaluate("a | b", heads))
