"""The Boolean task algebra on exact world values: composing base heads solves new tasks."""

from functools import cache

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from composable_rl.languages.boolean_tasks import boolean_tasks
from composable_rl.languages.expressions import Binary, Call, Head, Unary, evaluate, to_string
from composable_rl.languages.operator_table import OPERATORS
from composable_rl.maths.functional import wrong_goal_penalty
from composable_rl.maths.oracle import soft_value_iteration, task_reward
from composable_rl.maths.oracle import world_value_iteration as world_vi
from envs.gridworld import tabulate
from envs.object_rooms import ObjectRooms

R_MAX, R_MIN, STEP = 2.0, -0.1, -0.1
HEADS = ("purple", "blue", "square")
WORLD = ObjectRooms(
    num_envs=1,
    layout="open5",
    heads=HEADS,
    object_positions=[[1, 1], [1, 5], [3, 3], [5, 1], [5, 5], [2, 4]],
    r_max=R_MAX,
    r_min=R_MIN,
    step_reward=STEP,
)
MDP = tabulate(WORLD, WORLD.fixed_objects[None])
# The library's default wrong-goal penalty, with the free-cell count bounding path lengths.
PENALTY = wrong_goal_penalty(R_MIN, R_MAX, STEP, WORLD.free_cells.numel())
MEMBERSHIP = WORLD.goal_membership  # [6 goals, 3 heads]


@cache
def world_values(gamma: float, goal_rewards: tuple[float, ...]) -> torch.Tensor:
    """Oracle world values [1, S, G, A] of the task paying goal_rewards[g] at goal g."""
    reward = task_reward(MDP, torch.tensor(goal_rewards, dtype=torch.float64), STEP)
    return world_vi(MDP, reward, WORLD.num_goals, PENALTY, gamma, 0.0)


def task_values(gamma: float, mask: torch.Tensor) -> torch.Tensor:
    """World values of the task whose goal set is mask [G]: r_max inside, r_min outside."""
    return world_values(gamma, tuple(torch.where(mask, R_MAX, R_MIN).tolist()))


@cache
def base_heads(gamma: float) -> dict[str, torch.Tensor]:
    """World values of the base heads, solved from the engine's own reward columns."""
    return {
        name: world_vi(MDP, MDP.reward[..., k], WORLD.num_goals, PENALTY, gamma, 0.0)
        for k, name in enumerate(HEADS)
    }


def bounds(gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(Q_MAX, Q_MIN): world values of the tasks that reward every goal with r_max / r_min."""
    everything = torch.ones(WORLD.num_goals, dtype=torch.bool)
    return task_values(gamma, everything), task_values(gamma, ~everything)


def goal_set(expr, names) -> torch.Tensor:
    """The expression's truth table over the goals (NOT = 1 - x on 0/1 truth values)."""
    truth = {name: MEMBERSHIP[:, HEADS.index(name)].double() for name in names}
    ones = torch.ones(WORLD.num_goals, dtype=torch.float64)
    return evaluate(expr, truth, bounds=(ones, torch.zeros_like(ones))) > 0.5


@pytest.mark.parametrize("gamma", [0.9, 1.0])
def test_identities_on_world_values(gamma):
    q_max, q_min = bounds(gamma)
    heads = {**base_heads(gamma), "Q_MAX": q_max, "Q_MIN": q_min}

    def same(left: str, right: str, atol: float = 1e-12) -> bool:
        values = [evaluate(text, heads, bounds=(q_max, q_min)) for text in (left, right)]
        return torch.allclose(*values, atol=atol, rtol=0)

    # Lattice identities of max/min and the involution Q_MAX + Q_MIN - Q hold for any tensors.
    assert same("~(purple | blue)", "~purple & ~blue")
    assert same("~(purple & blue)", "~purple | ~blue")
    assert same("~~square", "square")
    assert same("purple | purple & blue", "purple")
    assert same("purple & (purple | blue)", "purple")
    # These need the theory: per goal a task's world value is monotone in that goal's reward,
    # and every task here pays r_min <= reward <= r_max (Q_MAX/Q_MIN are the extreme tasks).
    assert same("blue & Q_MAX", "blue", atol=1e-6)
    assert same("blue | Q_MIN", "blue", atol=1e-6)
    # Excluded middle needs rewards in {r_min, r_max}: then ~a swaps Q_MAX and Q_MIN per goal.
    assert same("square | ~square", "Q_MAX", atol=1e-6)
    assert same("square & ~square", "Q_MIN", atol=1e-6)


@pytest.mark.parametrize("gamma", [0.9, 1.0])
def test_excluded_middle_fails_for_intermediate_goal_rewards(gamma):
    """With a goal paid halfway between r_min and r_max, a | ~a falls short of Q_MAX there."""
    q_max, q_min = bounds(gamma)
    middle = (R_MIN + R_MAX) / 2
    a = world_values(gamma, (R_MAX, middle, R_MIN, R_MAX, R_MIN, middle))
    excluded_middle = evaluate("a | ~a", {"a": a}, bounds=(q_max, q_min))
    gap = q_max - excluded_middle
    assert (gap >= -1e-9).all()
    assert gap[0, :, [1, 5]].max() > 0.1 and gap[0, :, [0, 2, 3, 4]].abs().max() < 1e-6


# every Boolean infix operator of the language's table
BOOLEAN_INFIX = sorted(op.symbol for op in OPERATORS if op.arity == 2 and op.boolean)


def boolean_expressions(names: tuple[str, ...]) -> st.SearchStrategy:
    """Random Boolean expression trees over the given heads."""
    return st.recursive(
        st.sampled_from(names).map(Head),
        lambda inner: st.one_of(
            st.builds(Unary, st.just("~"), inner),
            st.builds(Binary, st.sampled_from(BOOLEAN_INFIX), inner, inner),
            st.builds(
                Call,
                st.sampled_from(["max", "min", "softor"]),
                st.lists(inner, min_size=2, max_size=3),
            ),
        ),
        max_leaves=6,
    )


@settings(max_examples=25, deadline=None)
@given(
    st.sampled_from([HEADS[:2], HEADS[1:], HEADS]).flatmap(
        lambda names: st.tuples(st.just(names), boolean_expressions(names))
    ),
    st.sampled_from([0.9, 1.0]),
)
def test_composition_equals_the_oracle_of_the_composed_task(named_expr, gamma):
    """Nangue Tasse et al. 2020: the composed world values are those of the truth-table task."""
    names, expr = named_expr
    composed = evaluate(expr, base_heads(gamma), bounds=bounds(gamma))
    expected = task_values(gamma, goal_set(expr, names))
    assert torch.allclose(composed, expected, atol=1e-6, rtol=0), to_string(expr)


@pytest.mark.parametrize("gamma", [0.9, 1.0])
def test_every_boolean_task_is_solved_zero_shot(gamma):
    """All 63 expressible tasks: exact world values, and argmax_a max_g acts optimally."""
    heads, limits = base_heads(gamma), bounds(gamma)
    tasks = boolean_tasks(HEADS, MEMBERSHIP)
    assert len(tasks) == 63
    for text, mask in tasks:
        assert torch.equal(goal_set(text, HEADS), mask)
        composed = evaluate(text, heads, bounds=limits)
        assert torch.allclose(composed, task_values(gamma, mask), atol=1e-6, rtol=0), text
        goal_rewards = torch.where(mask, R_MAX, R_MIN).double()
        optimum = soft_value_iteration(MDP, task_reward(MDP, goal_rewards, STEP), gamma, 0.0)
        assert torch.allclose(composed.amax(2), optimum, atol=1e-6, rtol=0), text
