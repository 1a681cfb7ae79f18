"""Reward machines: stepping, tables, checks on hand-built machines, determinism, rejection."""

import pytest
import torch
import yaml

from composable_rl.languages.expressions import evaluate
from composable_rl.languages.ltl import from_ltl
from composable_rl.languages.operator_table import INFIX
from composable_rl.languages.reward_machine import (
    Edge,
    RewardMachine,
    RewardMachineError,
    all_labels,
)
from composable_rl.languages.reward_machine_yaml import dump_reward_machine, load_reward_machine
from tests.office_tasks import EXAMPLE, OFFICE, OFFICE_LABELS, TASKS, TASKS_DIR


def example(**changes: object) -> RewardMachine:
    """The example machine with these top-level keys replaced."""
    return load_reward_machine(EXAMPLE | changes, OFFICE)


def test_step_follows_the_edges_and_stays_otherwise():
    machine = example()
    assert machine.states == ("u0", "u1", "done", "fail")
    assert (machine.initial, machine.accepting) == (0, frozenset({2}))
    assert machine.edges[2] == Edge(1, 2, "g & !n", 1.0)
    assert machine.step(0, frozenset()) == (0, 0.0)
    assert machine.step(0, {"g"}) == (0, 0.0)
    assert machine.step(0, {"f"}) == (1, 0.0)
    assert machine.step(0, {"f", "n"}) == (3, 0.0)
    assert machine.step(1, {"g"}) == (2, 1.0)
    assert machine.step(2, {"n"}) == (2, 0.0)  # accepting states are absorbing
    assert machine.rejecting == frozenset({3})


@pytest.mark.parametrize("name", sorted(TASKS))
def test_table_agrees_with_step(name):
    machine = load_reward_machine(TASKS_DIR / f"{name}.yaml", OFFICE)
    labels = all_labels(OFFICE)
    following, reward = machine.table(labels)
    assert following.shape == reward.shape == (len(machine.states), len(labels))
    assert (following.dtype, reward.dtype) == (torch.long, torch.float32)
    for state in range(len(machine.states)):
        for column in range(0, len(labels), 7):
            expected = (int(following[state, column]), float(reward[state, column]))
            assert machine.step(state, labels[column]) == expected
    coffee, room_a = labels.index(frozenset("f")), labels.index(frozenset("a"))
    batch_states, batch_labels = torch.tensor([0, 0, 1]), torch.tensor([0, coffee, room_a])
    assert following[batch_states, batch_labels].tolist() == [0, machine.step(0, {"f"})[0], 1]


def test_hand_built_machines_and_labels_are_checked():
    edge = Edge(0, 1, "p")
    with pytest.raises(RewardMachineError, match="initial state 5 is not a state index"):
        RewardMachine(("p",), ("a", "b"), 5, frozenset(), (edge,))
    with pytest.raises(RewardMachineError, match=r"accepting states \[2\] are not state indices"):
        RewardMachine(("p",), ("a", "b"), 0, frozenset({2}), (edge,))
    with pytest.raises(RewardMachineError, match=r"edge 0 has ends \(0, 7\) outside"):
        RewardMachine(("p",), ("a", "b"), 0, frozenset(), (Edge(0, 7, "p"),))
    with pytest.raises(RewardMachineError, match="'true' is reserved"):
        RewardMachine(("true",), ("a",), 0, frozenset(), ())
    with pytest.raises(RewardMachineError, match="duplicate propositions: p"):
        RewardMachine(("p", "p"), ("a",), 0, frozenset(), ())
    with pytest.raises(RewardMachineError, match="proposition 'a b' is not an identifier"):
        RewardMachine(("a b",), ("a",), 0, frozenset(), ())
    with pytest.raises(RewardMachineError, match="the alphabet is empty"):
        RewardMachine(("p",), ("a",), 0, frozenset(), (), alphabet=())
    machine = RewardMachine(["p"], ["a", "b"], 0, {1}, [edge])
    assert machine.edges == (edge,) and machine.accepting == frozenset({1})
    with pytest.raises(RewardMachineError, match="label {q} has unknown propositions q; known"):
        machine.step(0, {"q"})
    with pytest.raises(RewardMachineError, match="a label is a set of propositions, got the"):
        machine.table(["p"])
    with pytest.raises(RewardMachineError, match="state 4 is not a state index"):
        machine.step(4, {"p"})


def test_determinism_is_checked_over_the_alphabet():
    translated = from_ltl(TASKS["coffee_office"], OFFICE, OFFICE_LABELS)
    data = yaml.safe_load(dump_reward_machine(translated))  # edges `f` and `n` clash on {f, n} only
    with pytest.raises(RewardMachineError, match=r"both hold for label \{f, n\}"):
        load_reward_machine(data, OFFICE)
    assert load_reward_machine(data, OFFICE, OFFICE_LABELS) == translated
    many = tuple(f"p{k}" for k in range(13))  # too many labels to check up front
    clash = RewardMachine(many, ("a", "b"), 0, frozenset(), (Edge(0, 1, "p0"), Edge(0, 0, "p1")))
    assert clash.step(0, {"p0"}) == (1, 0.0)
    with pytest.raises(RewardMachineError, match="non-deterministic"):
        clash.step(0, {"p0", "p1"})
    with pytest.raises(RewardMachineError, match="13 propositions give 2\\^13 labels"):
        _ = clash.rejecting


def test_rejecting_states():
    machine = load_reward_machine(TASKS_DIR / "coffee_mail_office.yaml", OFFICE)
    assert machine.rejecting == frozenset({machine.states.index("fail")})
    shortcut = {"from": "u0", "to": "done", "when": "e", "reward": 1}
    trap = load_reward_machine(
        EXAMPLE
        | {"edges": [*EXAMPLE["edges"][:2], shortcut, {"from": "u1", "to": "fail", "when": "g"}]},
        OFFICE,
        OFFICE_LABELS,
    )
    assert {trap.states[u] for u in trap.rejecting} == {"u1", "fail"}
    assert from_ltl("F(a & b)", OFFICE).rejecting == frozenset()


def test_machines_that_cannot_complete_the_task_are_refused():
    dead_end = EXAMPLE | {
        "edges": [*EXAMPLE["edges"][:2], {"from": "u1", "to": "fail", "when": "g"}]
    }
    with pytest.raises(
        RewardMachineError,
        match=r"no accepting state \(done\) can be reached from "
        r"the initial state 'u0': .* only lead to u0, u1, fail",
    ):
        load_reward_machine(dead_end, OFFICE)
    with pytest.raises(RewardMachineError, match="^no accepting state: the task could never be"):
        example(accepting=[])
    with pytest.raises(RewardMachineError, match="initial state 'done' is accepting"):
        example(initial="done")
    never = EXAMPLE | {"edges": [{"from": "u0", "to": "done", "when": "a & b"}]}
    assert load_reward_machine(never, OFFICE).accepting == {2}  # a and b together: some label
    with pytest.raises(RewardMachineError, match="only lead to u0, so the task"):
        load_reward_machine(never, OFFICE, OFFICE_LABELS)  # but never together in the Office
    with pytest.raises(RewardMachineError, match="'F\\(a & b\\)' is unsatisfiable"):
        from_ltl("F(a & b)", OFFICE, OFFICE_LABELS)


def test_edge_formulas_evaluate_as_expressions():
    machine = from_ltl(TASKS["coffee_mail_office"], OFFICE)
    labels = all_labels(OFFICE)
    ones = torch.ones(len(labels))
    heads = {p: torch.tensor([float(p in label) for label in labels]) for p in OFFICE}
    following, _ = machine.table(labels)
    for edge in machine.edges:
        fires = evaluate(edge.formula, heads, bounds=(ones, 1 - ones)) > 0.5
        assert torch.equal(fires, following[edge.source] == edge.target)


@pytest.mark.parametrize("symbol", sorted(INFIX))
def test_edges_accept_exactly_the_boolean_operators_of_the_table(symbol):
    formula = f"p {symbol} q" if INFIX[symbol].rule is None else f"p {symbol} 2"
    edges = (Edge(0, 1, formula),)
    if INFIX[symbol].boolean:
        machine = RewardMachine(("p", "q"), ("a", "b"), 0, {1}, edges)
        truth = {"p": torch.tensor([0.0, 1.0, 0.0, 1.0]), "q": torch.tensor([0.0, 0.0, 1.0, 1.0])}
        fires = evaluate(formula, truth, bounds=(torch.ones(4), torch.zeros(4))) > 0.5
        labels = [set(), {"p"}, {"q"}, {"p", "q"}]
        assert [machine.step(0, label)[0] == 1 for label in labels] == fires.tolist()
    else:
        with pytest.raises(RewardMachineError, match=f"arithmetic '\\{symbol}'"):
            RewardMachine(("p", "q"), ("a", "b"), 0, {1}, edges)
