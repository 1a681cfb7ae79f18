"""Boolean tasks: expressions that name goal sets, and every task the algebra can express."""

import pytest
import torch

from composable_rl.languages.boolean_tasks import boolean_tasks, set_expression
from composable_rl.languages.expressions import evaluate, head_names
from tests.office_tasks import OFFICE, OFFICE_LABELS

GOALS = ["beige_circle", "beige_square", "blue_circle", "blue_square", "purple_circle"]
GOALS += ["purple_square"]
HEADS = ["purple", "blue", "square"]
MEMBERSHIP = torch.tensor([[h in goal for h in HEADS] for goal in GOALS])


def truth(text: str, membership: torch.Tensor, names: list[str]) -> torch.Tensor:
    """Goal mask [G] of an expression evaluated on per-goal truth values (NOT = 1 - x)."""
    values = {name: membership[:, k].double() for k, name in enumerate(names)}
    ones = torch.ones(membership.shape[0], dtype=torch.float64)
    return evaluate(text, values, bounds=(ones, torch.zeros_like(ones))) > 0.5


def test_boolean_tasks_on_object_rooms_goals():
    tasks = boolean_tasks(HEADS, MEMBERSHIP)
    assert len(tasks) == 63
    masks = {tuple(mask.tolist()) for _, mask in tasks}
    assert len(masks) == 63 and (False,) * 6 not in masks
    for text, mask in tasks:
        assert mask.dtype == torch.bool and mask.shape == (6,)
        assert torch.equal(truth(text, MEMBERSHIP, HEADS), mask), text
        assert head_names(text) <= set(HEADS)
    found = dict(tasks)
    for name in HEADS:
        assert torch.equal(found[name], MEMBERSHIP[:, HEADS.index(name)])
        assert torch.equal(found[f"~{name}"], ~MEMBERSHIP[:, HEADS.index(name)])
    assert found["~purple & ~blue"].tolist() == [True, True, False, False, False, False]
    assert found["blue & ~square"].tolist() == [False, False, True, False, False, False]
    assert found["purple | ~purple"].all()
    assert [text for text, _ in tasks[:3]] == ["blue", "purple", "square"]
    again = boolean_tasks(HEADS, MEMBERSHIP)
    assert [text for text, _ in again] == [text for text, _ in tasks]


def test_boolean_tasks_merge_indistinguishable_goals():
    membership = torch.tensor([[1, 0], [1, 0], [0, 1], [1, 1]], dtype=torch.bool)
    tasks = boolean_tasks(["x", "y"], membership)
    assert len(tasks) == 7  # three atoms: {0, 1}, {2}, {3}
    for text, mask in tasks:
        assert mask[0] == mask[1]
        assert torch.equal(truth(text, membership, ["x", "y"]), mask)
    with pytest.raises(ValueError, match="membership"):
        boolean_tasks(["x"], membership)


def test_set_expression_names_goal_sets():
    heads = ["purple", "blue", "square"]
    goals = ["beige_circle", "beige_square", "blue_circle", "blue_square", "purple_square"]
    membership = torch.tensor([[h in goal for h in heads] for goal in goals])

    def select(*names: str) -> torch.Tensor:
        return torch.tensor([goal in names for goal in goals])

    assert set_expression(heads, membership, select("blue_circle", "blue_square")) == "blue"
    assert set_expression(heads, membership, select("beige_circle")) == "~blue & ~square"  # no
    # purple circle among the goals, so its pattern is a don't-care
    assert set_expression(heads, membership, torch.ones(5, dtype=torch.bool)) == "purple | ~purple"
    office = torch.tensor([[p in label for p in OFFICE] for label in OFFICE_LABELS])
    pick = torch.tensor([label in ({"f"}, {"e"}) for label in OFFICE_LABELS])
    assert set_expression(OFFICE, office, pick) == "e | f"  # {e, f} is a don't-care
    no_plant = torch.tensor([label != {"n"} for label in OFFICE_LABELS])
    assert set_expression(OFFICE, office, no_plant) == "~n"
    for text, mask in boolean_tasks(heads, membership):
        assert set_expression(heads, membership, mask) == text


def test_set_expression_errors():
    membership = torch.tensor([[1, 0], [1, 0], [0, 1]], dtype=torch.bool)
    with pytest.raises(ValueError, match="goals 0 and 1 have the same head values"):
        set_expression(["x", "y"], membership, torch.tensor([True, False, False]))
    with pytest.raises(ValueError, match="target selects no goal"):
        set_expression(["x", "y"], membership, torch.zeros(3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"target must be a \[3\] goal mask"):
        set_expression(["x", "y"], membership, torch.ones(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="membership must be"):
        set_expression(["x"], membership, torch.ones(3, dtype=torch.bool))
