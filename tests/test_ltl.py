"""The LTL fragment: parsing, finite-trace semantics, and the translation into reward machines
against a trace oracle."""

from collections import deque
from itertools import product

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from composable_rl.languages.ltl import (
    Const,
    Junction,
    Prop,
    Temporal,
    format_ltl,
    from_ltl,
    holds,
    parse_ltl,
)
from composable_rl.languages.reward_machine import (
    RewardMachine,
    RewardMachineError,
    all_labels,
    exclusive_labels,
)
from composable_rl.languages.reward_machine_yaml import load_reward_machine
from composable_rl.languages.tokens import MAX_DEPTH, ExpressionError
from tests.office_tasks import OFFICE, OFFICE_LABELS, TASKS, TASKS_DIR

MORE = [
    "(F f | F e) & F g",
    "F(a & b) | F(c & F !c)",
    "G(!n | F g) & F e",
    "F(g & G !a) & !(b | c)",
    "F a & G ~a | F b",
    "G !n",
    "G f",
]


def caret_column(message: str) -> int:
    """Column of the caret under the text of an error message."""
    return message.splitlines()[-1].index("^") - 2


def test_holds_by_hand():
    f, g, n = frozenset("f"), frozenset("g"), frozenset("n")
    assert holds("F(f & F g)", [f, frozenset(), g])
    assert holds("F(f & F g)", [f | g])
    assert not holds("F(f & F g)", [g, f])
    assert not holds("F f", []) and not holds("G !n", []) and not holds("true", [])
    assert holds("G f", [f, f]) and not holds("G f", [f, frozenset()]) and holds("!f", [g])
    assert not holds("F(f & F g) & G !n", [f, n, g])
    assert holds("(F f | F e) & F g", [g, frozenset("e")])
    assert holds(parse_ltl("G F g"), [f, g]) and not holds("G F g", [g, f])


def test_parse_ltl_trees_and_text():
    assert parse_ltl("!(a & b) | F G c") == Junction(
        "|",
        (
            Junction("|", (Prop("a", False), Prop("b", False))),
            Temporal("F", Temporal("G", Prop("c"))),
        ),
    )
    assert parse_ltl("~true & x") == Junction("&", (Const(False), Prop("x")))
    for text in [*TASKS.values(), *MORE, "F(a | b) & (c | !d) & true"]:
        tree = parse_ltl(text)
        assert parse_ltl(format_ltl(tree)) == tree


@pytest.mark.parametrize(
    ("text", "reason", "column"),
    [
        ("F(f & F g", "missing ')' to close the '(' at column 1", 9),
        ("F f & G !x", "unknown proposition 'x'; known propositions: a, b, c, d, e, f, g, n", 9),
        ("!F f", "'!' applies to propositions, not to 'F'", 1),
        ("~(a & G b)", "'~' applies to propositions, not to 'G'", 6),
        ("F f + g", "trailing input '+'", 4),
        ("f g", "trailing input 'g'", 2),
        ("f & $", "unexpected character '$'", 4),
        ("2 & f", "unexpected '2'", 0),
        ("F", "unexpected end of expression", 1),
        ("", "empty formula", 0),
    ],
)
def test_ltl_parse_errors_point_a_caret(text, reason, column):
    with pytest.raises(ExpressionError) as info:
        from_ltl(text, OFFICE, OFFICE_LABELS)
    assert (info.value.reason, info.value.position) == (reason, column)
    assert caret_column(str(info.value)) == column


def test_nesting_is_bounded_where_it_is_written():
    """MAX_DEPTH levels parse (F, G, NOT and brackets count; a chain of '&' is one level), the
    next one is refused with the caret at the token that opens it."""
    assert parse_ltl("F " * MAX_DEPTH + "a") == Temporal(
        "F", parse_ltl("F " * (MAX_DEPTH - 1) + "a")
    )
    assert parse_ltl(" & ".join(["a", "b"] * 1000)) == Junction("&", (Prop("a"), Prop("b")) * 1000)
    for text, column in [
        ("F(" * 300 + "f" + ")" * 300, MAX_DEPTH),
        ("G " * (MAX_DEPTH + 1) + "a", 2 * MAX_DEPTH),
        ("(" * MAX_DEPTH + "a & b" + ")" * MAX_DEPTH, MAX_DEPTH + 2),
    ]:
        with pytest.raises(ExpressionError) as info:
            parse_ltl(text)
        assert (info.value.reason, info.value.position) == (
            f"nesting deeper than {MAX_DEPTH} levels",
            column,
        )
        assert caret_column(str(info.value)) == column


def test_from_ltl_errors():
    with pytest.raises(RewardMachineError, match="'F' is reserved"):
        from_ltl("F a", ["a", "F"])
    with pytest.raises(RewardMachineError, match="label {x} has unknown propositions x"):
        from_ltl("F a", ["a"], [set(), {"x"}])
    with pytest.raises(RewardMachineError, match="the alphabet is empty"):
        from_ltl("F a", ["a"], [])
    with pytest.raises(RewardMachineError, match="pass an alphabet"):
        from_ltl("F p0", [f"p{k}" for k in range(13)])


def test_coffee_office_machine():
    machine = from_ltl(TASKS["coffee_office"], OFFICE, OFFICE_LABELS)
    assert machine.states == ("F(f & F g) & G !n", "F g & G !n", "false", "G !n")
    assert [(e.source, e.target, e.formula, e.reward) for e in machine.edges] == [
        (0, 1, "f", 0.0),
        (0, 2, "n", 0.0),
        (1, 2, "n", 0.0),
        (1, 3, "g", 1.0),
    ]
    assert machine.accepting == {3} and machine.rejecting == {2}
    assert len(from_ltl(TASKS["coffee_office"], OFFICE).states) == 4
    assert from_ltl("G !n", OFFICE).accepting == {1}  # the empty trace satisfies nothing
    assert from_ltl("(F f | F e) & F g", OFFICE, OFFICE_LABELS).edges[0].formula == "e | f"


def shortest_to_accepting(machine: RewardMachine, following: torch.Tensor) -> dict[int, list[int]]:
    """Label indices of a shortest path from every state that can reach acceptance."""
    paths = {state: [] for state in machine.accepting}
    frontier = deque(machine.accepting)
    while frontier:
        reached = frontier.popleft()
        for state, row in enumerate(following.tolist()):
            if state not in paths and reached in row:
                paths[state] = [row.index(reached), *paths[reached]]
                frontier.append(state)
    return paths


def mentioned(text: str) -> list[str]:
    """The propositions a formula names (they are single lower-case letters here)."""
    return sorted(set(text) & set(OFFICE))


def check_against_oracle(text: str, depth: int, extra: int) -> RewardMachine:
    """Office labels: acceptance on every sequence up to `depth`, rejection up to `extra` more.

    Accepting after a sequence iff some prefix satisfies the formula; rejecting iff no extension
    can. A non-rejecting state shows a witness path to acceptance that the oracle must accept;
    where rejection starts, the oracle must refuse every extension over the labels of the
    formula's propositions (labels of other propositions act like the empty one, so traces
    over those labels stand for all).
    """
    machine = from_ltl(text, OFFICE, OFFICE_LABELS)
    tree = parse_ltl(text)
    following = machine.table()[0].tolist()
    rejecting = machine.rejecting
    witness = shortest_to_accepting(machine, machine.table()[0])
    assert set(witness) == set(range(len(machine.states))) - rejecting
    assert all(set(following[u]) <= rejecting for u in rejecting)
    small = exclusive_labels(mentioned(text))
    endings = [list(tail) for size in range(extra + 1) for tail in product(small, repeat=size)]
    level = [((), machine.initial, holds(tree, []), False)]
    for size in range(depth + 1):
        children = []
        for trace, state, accepted, was_rejecting in level:
            assert (state in machine.accepting) == accepted, (text, trace)
            if state in rejecting and not was_rejecting and set(trace) <= set(small):
                assert not any(holds(tree, [*trace, *tail]) for tail in endings), (text, trace)
            elif not accepted and state not in rejecting:
                path = [OFFICE_LABELS[i] for i in witness[state]]
                assert holds(tree, [*trace, *path]), (text, trace)
            for i, label in enumerate(OFFICE_LABELS if size < depth else ()):
                after = following[state][i]
                if accepted:
                    assert after == state  # absorbing: every extension stays accepted
                else:
                    step = holds(tree, [*trace, label])
                    children.append(((*trace, label), after, step, state in rejecting))
        level = children
    return machine


@pytest.mark.parametrize("text", [*TASKS.values(), *MORE])
def test_translation_matches_the_trace_oracle(text):
    check_against_oracle(text, depth=4, extra=2)


def check_on_all_labels(text: str, props: list[str], depth: int = 3) -> RewardMachine:
    """Every subset of `props` as a label: acceptance on all sequences up to `depth`."""
    machine = from_ltl(text, props)
    labels = all_labels(props)
    assert_accepts_as_oracle(machine, text, labels, depth)
    return machine


def assert_accepts_as_oracle(machine: RewardMachine, text: str, labels: tuple, depth: int) -> None:
    """Accepting after each label sequence up to `depth` iff some prefix satisfies the formula."""
    tree = parse_ltl(text)
    following = machine.table(labels)[0].tolist()
    level = [((), machine.initial, holds(tree, []))]
    for size in range(depth + 1):
        children = []
        for trace, state, accepted in level:
            assert (state in machine.accepting) == accepted, (text, trace)
            for i, label in enumerate(labels if size < depth else ()):
                step = accepted or holds(tree, [*trace, label])
                children.append(((*trace, label), following[state][i], step))
        level = children


@pytest.mark.parametrize("text", list(TASKS.values())[:2] + MORE)
def test_translation_on_overlapping_labels(text):
    assert check_on_all_labels(text, mentioned(text)).alphabet is None


@pytest.mark.parametrize(
    "text", ["F true", "true", "G true", "a | !a", "F(a | !a)", "G(a | !a) & F b", "!a", "G F a"]
)
def test_end_of_trace_cases(text):
    """`F true` needs one more step, `a | !a` needs a label: canonical forms must not fold them
    into constants; `true` and `G true` need a step too, as the empty trace satisfies nothing."""
    check_on_all_labels(text, ["a", "b"])


def test_globally_needs_every_step_from_the_first():
    """LTLf `G f`: f at every observed label, the first included, so one step onto f succeeds
    and a first step elsewhere fails for good; the start is a state apart from the goal `G f`."""
    machine = from_ltl("G f", OFFICE, OFFICE_LABELS)
    assert machine.states == ("start: G f", "false", "G f") and machine.accepting == {2}
    assert machine.initial not in machine.accepting
    assert machine.step(machine.initial, frozenset()) == (1, 0.0) and machine.rejecting == {1}
    assert machine.step(machine.initial, {"f"}) == (2, 1.0)


@pytest.mark.parametrize("text", ["false", "G false", "F(a & !a)", "F f & G !f", "F(a & b)"])
def test_unsatisfiable_formulas_are_refused(text):
    with pytest.raises(RewardMachineError, match="is unsatisfiable: no sequence of labels"):
        from_ltl(text, OFFICE, OFFICE_LABELS)


def formula_texts(leaves: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.builds("F({})".format, inner),
            st.builds("G({})".format, inner),
            st.builds("({}) & ({})".format, inner, inner),
            st.builds("({}) | ({})".format, inner, inner),
        ),
        max_leaves=5,
    )


@settings(max_examples=40, deadline=None)
@given(formula_texts(st.sampled_from(["a", "b", "!a", "!b", "a & !b", "true"])))
def test_random_formulas_match_the_oracle(text):
    """Satisfiable formulas match the oracle; refused ones hold on no trace of up to 5 labels
    (a formula of at most 5 leaves that holds somewhere holds on one that short)."""
    try:
        check_on_all_labels(text, ["a", "b"])
    except RewardMachineError as err:
        assert "unsatisfiable" in str(err)
        labels, tree = all_labels(["a", "b"]), parse_ltl(text)
        traces = (trace for size in range(1, 6) for trace in product(labels, repeat=size))
        assert not any(holds(tree, trace) for trace in traces), text


def language_pairs(first: RewardMachine, second: RewardMachine, labels: tuple) -> set:
    """Reachable state pairs of the product of two machines, stopping at acceptance."""
    a, _ = first.table(labels)
    b, _ = second.table(labels)
    seen, todo = set(), [(first.initial, second.initial)]
    while todo:
        pair = todo.pop()
        if pair in seen:
            continue
        seen.add(pair)
        if pair[0] not in first.accepting and pair[1] not in second.accepting:
            todo.extend(zip(a[pair[0]].tolist(), b[pair[1]].tolist(), strict=True))
    return seen


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_files_match_their_ltl(name):
    for labels in (OFFICE_LABELS, None):
        written = load_reward_machine(TASKS_DIR / f"{name}.yaml", OFFICE, labels)
        translated = from_ltl(TASKS[name], OFFICE, labels)
        rewards = written.table()[1], translated.table()[1]
        for first, second in language_pairs(written, translated, written.labels):
            assert (first in written.accepting) == (second in translated.accepting)
            assert (first in written.rejecting) == (second in translated.rejecting)
            assert torch.equal(rewards[0][first], rewards[1][second])
    assert len(written.states) == len(translated.states)
    assert_accepts_as_oracle(written, TASKS[name], OFFICE_LABELS, depth=4)
