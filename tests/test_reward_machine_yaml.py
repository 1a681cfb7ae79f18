"""Reward machines in YAML: loading, round trips, and errors that name the culprit."""

import re

import pytest
import yaml

from composable_rl.languages.ltl import from_ltl
from composable_rl.languages.reward_machine import RewardMachineError
from composable_rl.languages.reward_machine_yaml import (
    dump_reward_machine,
    load_reward_machine,
    save_reward_machine,
)
from tests.office_tasks import EXAMPLE, OFFICE, OFFICE_LABELS, TASKS, TASKS_DIR


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
        assert load_reward_machine(yaml.safe_load(dump_reward_machine(machine)), OFFICE) == machine
    translated = from_ltl(TASKS["coffee_office"], OFFICE, OFFICE_LABELS)
    path = tmp_path / "task.yaml"
    save_reward_machine(translated, path)
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
