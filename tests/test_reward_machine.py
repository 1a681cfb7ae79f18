"""Reward machines, their YAML files and errors, and the LTL translation against a trace oracle."""

import re
from collections import deque
from itertools import product
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from composable_rl.compose import (
    ExpressionError,
    Unary,
    boolean_tasks,
    evaluate,
    parse,
    set_expression,
    to_string,
)
from composable_rl.reward_machine import (
    Const,
    Edge,
    Junction,
    Prop,
    RewardMachine,
    RewardMachineError,
    Temporal,
    all_labels,
    exclusive_labels,
    format_ltl,
    from_ltl,
    holds,
    load_reward_machine,
    parse_ltl,
)

OFFICE = tuple("abcdefgn")  # a-d rooms, e mail, f coffee, g office, n plant
OFFICE_LABELS = exclusive_labels(OFFICE)
TASKS_DIR = Path(__file__).resolve().parents[1] / "configs" / "tasks"
TASKS = {
    "coffee_office": "F(f & F g) & G !n",
    "mail_office": "F(e & F g) & G !n",
    "coffee_mail_office": "(F(f & F(e & F g)) | F(e & F(f & F g))) & G !n",
    "abcd": "F(a & F(b & F(c & F d))) & G !n",
}
MORE = [
    "(F f | F e) & F g",
    "F(a & b) | F(c & F !c)",
    "G(!n | F g) & F e",
    "F(g & G !a) & !(b | c)",
    "F a & G ~a",
    "G !n",
]
EXAMPLE = {
    "states": ["u0", "u1", "done", "fail"],
    "initial": "u0",
    "accepting": ["done"],
    "edges": [
        {"from": "u0", "to": "u1", "when": "f & !n"},
        {"from": "u0", "to": "fail", "when": "n"},
        {"from": "u1", "to": "done", "when": "g & !n", "reward": 1},
        {"from": "u1", "to": "fail", "when": "n"},
    ],
}


def caret_column(message: str) -> int:
    return message.splitlines()[-1].index("^") - 2


# --- compose additions ----------------------------------------------------------------------


def test_bang_is_a_synonym_of_not():
    assert parse("f & !n") == parse("f & ~n")
    assert parse("!!a | !(b & c)") == parse("~~a | ~(b & c)")
    assert to_string(parse("f & !n")) == "f & ~n"
    assert isinstance(parse("!a"), Unary)
    with pytest.raises(ExpressionError) as info:
        parse("a & !2")
    assert info.value.reason == "'~' needs head values, not a constant"
    assert info.value.position == 5
    with pytest.raises(ExpressionError) as info:
        parse("a & !")
    assert (info.value.reason, info.value.position) == ("unexpected end of expression", 5)


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


# --- reward machines --------------------------------------------------------------------------


def example(**changes: object) -> RewardMachine:
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


def test_true_edges_and_integer_state_names():
    edges = [{"from": 0, "to": 1, "when": True}]
    data = {"states": [0, 1], "initial": 0, "accepting": [1], "edges": edges}
    machine = load_reward_machine(data, ["p"])
    assert machine.states == ("0", "1") and machine.edges[0].formula == "true"
    assert machine.step(0, frozenset()) == (1, 0.0)
    assert machine.rejecting == frozenset()


def test_yaml_round_trip(tmp_path):
    for name in TASKS:
        machine = load_reward_machine(TASKS_DIR / f"{name}.yaml", OFFICE)
        assert load_reward_machine(yaml.safe_load(machine.to_yaml()), OFFICE) == machine
    translated = from_ltl(TASKS["coffee_office"], OFFICE, OFFICE_LABELS)
    path = tmp_path / "task.yaml"
    translated.save(path)
    assert load_reward_machine(path, OFFICE, OFFICE_LABELS) == translated
    assert "'false'" in path.read_text()  # state names that YAML would misread are quoted


def one_edge(**entry: object) -> dict[str, list[dict[str, object]]]:
    """The `edges` of the example replaced by one edge u0 -> u1 with these keys changed."""
    return {"edges": [{"from": "u0", "to": "u1", "when": "f"} | entry]}


VALID_KEYS = "valid keys: accepting, description, edges, initial, states"
KNOWN_STATES = "known states: u0, u1, done, fail"
NOT_BOOLEAN = "is not allowed in an edge formula (use &, |, ~ or !) in expression:"
CLASH = [*EXAMPLE["edges"], {"from": "u0", "to": "fail", "when": "f | e"}]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"states": None}, f"missing key 'states'; {VALID_KEYS}"),
        ({"edge": []}, f"unknown key 'edge'; {VALID_KEYS}"),
        ({"states": "u0"}, "states must be a list, got 'u0'"),
        ({"states": ["u0", "u1", "u1", "done", "fail"]}, "duplicate state names: u1"),
        ({"states": ["u0", True]}, "state names are strings (quote them in YAML), got True"),
        ({"initial": "start"}, f"initial state: unknown state 'start'; {KNOWN_STATES}"),
        ({"accepting": ["end"]}, f"accepting state: unknown state 'end'; {KNOWN_STATES}"),
        (one_edge(to="u9"), f"edge 0 'to': unknown state 'u9'; {KNOWN_STATES}"),
        (one_edge(when=None), "edge 0: 'when' must be a formula string (quote it in YAML), got"),
        ({"edges": [{"from": "u0", "to": "u1"}]}, "edge 0: missing key 'when'; valid keys: from,"),
        (one_edge(**{"if": "f"}), "edge 0: unknown key 'if'; valid keys: from, reward, to, when"),
        ({"edges": ["u0 -> u1"]}, "edge 0 must be a mapping"),
        (one_edge(when=3), "edge 0: 'when' must be a formula string (quote it in YAML), got 3"),
        (one_edge(reward="one"), "edge 0 (u0 -> u1): reward must be a finite number, got 'one'"),
        (one_edge(reward=True), "reward must be a finite number, got True"),
        (one_edge(reward=float("nan")), "reward must be a finite number, got nan"),
        (
            one_edge(**{"from": "done", "to": "u0"}),
            "edge 0 (done -> u0) leaves an accepting state; accepting states are absorbing",
        ),
        (
            one_edge(when="f & !x"),
            "edge 0 (u0 -> u1): unknown head 'x'; known heads: a, b, c, d, e, f, g, n in "
            "expression:\n  f & !x\n       ^",
        ),
        (
            one_edge(when="f & (n"),
            "edge 0 (u0 -> u1): missing ')' to close the '(' at column 4 in expression:\n"
            "  f & (n\n        ^",
        ),
        (one_edge(when="f + g"), f"(u0 -> u1): arithmetic '+' {NOT_BOOLEAN}\n  f + g\n    ^"),
        (one_edge(when="e | 2 * (f)"), f"'*' {NOT_BOOLEAN}\n  e | 2 * (f)\n        ^"),
        (one_edge(when="f & max(e, g)"), f"call max() {NOT_BOOLEAN}\n  f & max(e, g)\n      ^"),
        (one_edge(when="-f"), "negation '-' is not allowed"),
        (one_edge(when="true & f"), "unknown head 'true'"),
        (
            {"edges": CLASH},
            "non-deterministic: in state 'u0' the edges 'f & !n' (to u1) and 'f | e' (to fail) "
            "both hold for label {f}",
        ),
    ],
)
def test_yaml_errors_name_the_culprit(changes, message):
    data = {key: value for key, value in (EXAMPLE | changes).items() if value is not None}
    with pytest.raises(RewardMachineError) as info:
        load_reward_machine(data, OFFICE)
    assert message in str(info.value)


def test_file_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("states: [u0]\ninitial: u1\nedges: []\n")
    where = re.escape(str(path))
    with pytest.raises(RewardMachineError, match=f"^{where}: initial state: unknown"):
        load_reward_machine(path, OFFICE)
    path.write_text("- u0\n")
    with pytest.raises(RewardMachineError, match="a reward machine is a mapping with keys"):
        load_reward_machine(path, OFFICE)


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
    data = yaml.safe_load(translated.to_yaml())  # edges `f` and `n` clash on {f, n} only
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
    trap = load_reward_machine(
        EXAMPLE | {"edges": [*EXAMPLE["edges"][:2], {"from": "u1", "to": "fail", "when": "g"}]},
        OFFICE,
    )
    assert {trap.states[u] for u in trap.rejecting} == {"u0", "u1", "fail"}
    both = from_ltl("F(a & b)", OFFICE, OFFICE_LABELS)  # a and b are never seen together
    assert both.rejecting == frozenset({both.initial})
    assert from_ltl("F(a & b)", OFFICE).rejecting == frozenset()


# --- LTL -------------------------------------------------------------------------------------


def test_holds_by_hand():
    f, g, n = frozenset("f"), frozenset("g"), frozenset("n")
    assert holds("F(f & F g)", [f, frozenset(), g])
    assert holds("F(f & F g)", [f | g])
    assert not holds("F(f & F g)", [g, f])
    assert not holds("F f", []) and holds("G !n", []) and not holds("!f", [])
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
    assert from_ltl("G !n", OFFICE).accepting == {0}  # the empty trace satisfies it
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
    "text", ["F true", "G false", "a | !a", "F(a | !a)", "G(a | !a) & F b", "!a", "G F a"]
)
def test_end_of_trace_cases(text):
    """`F true` needs one more step, `G false` holds only on the empty trace, `a | !a` needs a
    label: canonical forms must not fold them into constants."""
    check_on_all_labels(text, ["a", "b"])


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
    check_on_all_labels(text, ["a", "b"])


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


def test_edge_formulas_evaluate_with_compose():
    machine = from_ltl(TASKS["coffee_mail_office"], OFFICE)
    labels = all_labels(OFFICE)
    ones = torch.ones(len(labels))
    heads = {p: torch.tensor([float(p in label) for label in labels]) for p in OFFICE}
    following, _ = machine.table(labels)
    for edge in machine.edges:
        fires = evaluate(edge.formula, heads, bounds=(ones, 1 - ones)) > 0.5
        assert torch.equal(fires, following[edge.source] == edge.target)
