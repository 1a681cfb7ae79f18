"""Reward machines in YAML: reading with errors that name the culprit, and writing.

A machine is a mapping (`reward` defaults to 0, `accepting` to none; `description` is free
text); states are named, and edges refer to them by name:

    description: coffee, then the office, never a plant
    states: [u0, u1, done, fail]
    initial: u0
    accepting: [done]
    edges:
      - {from: u0, to: u1, when: "f & !n"}
      - {from: u0, to: fail, when: "n"}
      - {from: u1, to: done, when: "g & !n", reward: 1}
      - {from: u1, to: fail, when: "n"}

`when` is an edge formula of `reward_machine` (YAML `true` is the edge that always fires). The
propositions and the alphabet are the environment's, so they are passed in, not saved.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

import yaml

from composable_rl.languages.reward_machine import (
    TRUE,
    Edge,
    RewardMachine,
    RewardMachineError,
    check_state_name,
    check_state_names,
)
from composable_rl.languages.yaml_file import YamlFileError, read_yaml

__all__ = [
    "dump_reward_machine",
    "load_reward_machine",
    "reward_machine_to_dict",
    "save_reward_machine",
]

_KEYS = {"states": True, "initial": True, "accepting": False, "edges": True, "description": False}
_EDGE_KEYS = {"from": True, "to": True, "when": True, "reward": False}


def reward_machine_to_dict(machine: RewardMachine) -> dict[str, object]:
    """The YAML mapping of a machine (the alphabet is the environment's, not saved)."""
    states = machine.states
    edges = [
        {"from": states[edge.source], "to": states[edge.target], "when": edge.formula}
        | ({"reward": edge.reward} if edge.reward else {})
        for edge in machine.edges
    ]
    return {
        "states": list(states),
        "initial": states[machine.initial],
        "accepting": [states[a] for a in sorted(machine.accepting)],
        "edges": edges,
    }


def dump_reward_machine(machine: RewardMachine) -> str:
    """YAML text that `load_reward_machine` reads back to an equal machine."""
    mapping = reward_machine_to_dict(machine)
    return yaml.safe_dump(mapping, sort_keys=False, default_flow_style=None, width=100)


def save_reward_machine(machine: RewardMachine, path: str | os.PathLike[str]) -> None:
    """Writes `dump_reward_machine(machine)` to a file."""
    with open(path, "w", encoding="utf-8") as file:
        file.write(dump_reward_machine(machine))


def _check_keys(data: Mapping[object, object], keys: Mapping[str, bool], where: str) -> None:
    """Raises on a missing required key or an unknown key, listing the valid ones."""
    valid = ", ".join(sorted(keys))
    for key in data:
        if key not in keys:
            raise RewardMachineError(f"{where}: unknown key {key!r}; valid keys: {valid}")
    for key, required in keys.items():
        if required and key not in data:
            raise RewardMachineError(f"{where}: missing key {key!r}; valid keys: {valid}")


def _list(value: object, what: str) -> list[object]:
    """The value, checked to be a YAML list (`what` names it in the error)."""
    if not isinstance(value, list):
        raise RewardMachineError(f"{what} must be a list, got {value!r}")
    return value


def _from_mapping(
    data: object, propositions: Sequence[str], alphabet: Sequence[Iterable[str]] | None
) -> RewardMachine:
    """Builds a machine from the YAML mapping, resolving state names to indices."""
    if not isinstance(data, Mapping):
        raise RewardMachineError(f"a reward machine is a mapping with keys {', '.join(_KEYS)}")
    _check_keys(data, _KEYS, "reward machine")
    names = check_state_names(_list(data["states"], "states"))
    known = ", ".join(names)

    def state(value: object, what: str) -> int:
        """The index of the state named by `value` (`what` names the reference in errors)."""
        name = check_state_name(value)
        if name not in names:
            raise RewardMachineError(f"{what}: unknown state {name!r}; known states: {known}")
        return names.index(name)

    edges = []
    for index, entry in enumerate(_list(data["edges"], "edges")):
        if not isinstance(entry, Mapping):
            raise RewardMachineError(f"edge {index} must be a mapping, got {entry!r}")
        _check_keys(entry, _EDGE_KEYS, f"edge {index}")
        when = TRUE if entry["when"] is True else entry["when"]
        if not isinstance(when, str):
            raise RewardMachineError(
                f"edge {index}: 'when' must be a formula string (quote it in YAML), got {when!r}"
            )
        source, target = (state(entry[key], f"edge {index} {key!r}") for key in ("from", "to"))
        edges.append(Edge(source, target, when, entry.get("reward", 0.0)))
    accepting = _list(data.get("accepting") or [], "accepting")
    return RewardMachine(
        propositions=tuple(propositions),
        states=names,
        initial=state(data["initial"], "initial state"),
        accepting=frozenset(state(name, "accepting state") for name in accepting),
        edges=tuple(edges),
        alphabet=None if alphabet is None else tuple(alphabet),
    )


def load_reward_machine(
    source: str | os.PathLike[str] | Mapping[str, object],
    propositions: Sequence[str],
    alphabet: Sequence[Iterable[str]] | None = None,
) -> RewardMachine:
    """Reads a machine from a YAML file or an already-loaded mapping (see the module docs)."""
    if isinstance(source, Mapping):
        return _from_mapping(source, propositions, alphabet)
    try:
        data = read_yaml(source)
    except YamlFileError as err:
        raise RewardMachineError(str(err)) from None
    try:
        return _from_mapping(data, propositions, alphabet)
    except RewardMachineError as err:
        raise RewardMachineError(f"{os.fspath(source)}: {err}") from None
