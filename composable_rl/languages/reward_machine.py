"""Reward machines over propositions: labels, edges, and the validated machine with its tables.

A *label* is the frozenset of propositions true in the current state. A reward machine (Toro
Icarte et al. 2018) is a finite automaton whose edges carry Boolean formulas over propositions:
from state u on label L it takes the one edge out of u whose formula holds for L and pays that
edge's reward; when none holds it stays in u and pays 0. Accepting states are absorbing (the
episode ends there), so they have no outgoing edges. Edges must be deterministic over the
machine's alphabet (every label by default), and the machine must describe a task that can be
completed: the initial state is not accepting (a trace holds at least one label, since an
episode takes a step before it can succeed) and some path of edges that labels of the alphabet
fire leads from it to an accepting state. Both checks over labels run where the labels can be
enumerated.

Edge formulas use the expression language of `expressions` restricted to its Boolean operators
(those `operator_table` marks Boolean): names of propositions, `&`, `|`, `^`, `~` or `!` (NOT)
and parentheses; `true` alone is the edge that always fires. They are evaluated by
`expressions.evaluate` on 1/0 proposition values (AND = min, OR = max, NOT = 1 - x). Machines
are read from and written to YAML by `reward_machine_yaml` and built from LTL formulas by `ltl`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from itertools import combinations
from numbers import Real

import torch
from torch import Tensor

from composable_rl.languages.expressions import Binary, Call, Expr, Head, Unary, evaluate, parse
from composable_rl.languages.operator_table import INFIX, PREFIX
from composable_rl.languages.tokens import ExpressionError

__all__ = [
    "MAX_EXHAUSTIVE_PROPOSITIONS",
    "TRUE",
    "Edge",
    "Label",
    "RewardMachine",
    "RewardMachineError",
    "all_labels",
    "check_labels",
    "check_propositions",
    "check_state_name",
    "check_state_names",
    "default_labels",
    "exclusive_labels",
]

Label = frozenset[str]
TRUE = "true"
MAX_EXHAUSTIVE_PROPOSITIONS = 12  # 2**12 labels is the most checked or explored by default


class RewardMachineError(ValueError):
    """A malformed reward machine, label or alphabet; the message names the culprit."""


def all_labels(propositions: Sequence[str]) -> tuple[Label, ...]:
    """Every set of propositions, empty first: the alphabet when nothing restricts the labels."""
    props = tuple(propositions)
    subsets = range(2 ** len(props))
    return tuple(frozenset(p for k, p in enumerate(props) if bits >> k & 1) for bits in subsets)


def exclusive_labels(propositions: Sequence[str]) -> tuple[Label, ...]:
    """The empty label, then each proposition alone: the alphabet of worlds where at most one
    proposition holds at a time (the Office world), in the order worlds index labels by."""
    return (frozenset(),) + tuple(frozenset({p}) for p in propositions)


def _show_label(label: Label) -> str:
    """A label as `{a, b}` in error messages."""
    return "{" + ", ".join(sorted(label)) + "}"


def check_propositions(propositions: Iterable[str], reserved: Sequence[str]) -> tuple[str, ...]:
    """Checked proposition names: unique identifiers, none of them a reserved word."""
    props = tuple(propositions)
    for name in props:
        try:
            Head(name)
        except ValueError:
            raise RewardMachineError(f"proposition {name!r} is not an identifier") from None
        if name in reserved:
            raise RewardMachineError(f"{name!r} is reserved and cannot name a proposition")
    duplicates = sorted({p for p in props if props.count(p) > 1})
    if duplicates:
        raise RewardMachineError(f"duplicate propositions: {', '.join(duplicates)}")
    return props


def check_labels(labels: Iterable[Iterable[str]], propositions: Sequence[str]) -> tuple[Label, ...]:
    """Labels as frozensets, checked against the propositions (a bare string is an error)."""
    result = []
    for label in labels:
        if isinstance(label, str):
            raise RewardMachineError(f"a label is a set of propositions, got the string {label!r}")
        label = frozenset(label)
        unknown = sorted(label - set(propositions))
        if unknown:
            raise RewardMachineError(
                f"label {_show_label(label)} has unknown propositions {', '.join(unknown)}; "
                f"known propositions: {', '.join(propositions) or '(none)'}"
            )
        result.append(label)
    return tuple(result)


def default_labels(propositions: Sequence[str]) -> tuple[Label, ...]:
    """All 2^P labels, refused when there are too many to enumerate."""
    if len(propositions) > MAX_EXHAUSTIVE_PROPOSITIONS:
        raise RewardMachineError(
            f"{len(propositions)} propositions give 2^{len(propositions)} labels; pass an alphabet"
        )
    return all_labels(propositions)


def check_state_names(states: Iterable[object]) -> tuple[str, ...]:
    """State names as strings (integers allowed), non-empty and unique."""
    names = tuple(check_state_name(state) for state in states)
    if not names:
        raise RewardMachineError("a reward machine needs at least one state")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise RewardMachineError(f"duplicate state names: {', '.join(duplicates)}")
    return names


def check_state_name(value: object) -> str:
    """A state name as a string: strings and integers are names, anything else is an error."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RewardMachineError(f"state names are strings (quote them in YAML), got {value!r}")
    return str(value)


def _arithmetic(tree: Expr, text: str) -> tuple[str, int] | None:
    """The first non-Boolean construct of an edge formula, and its offset in the text.

    `expressions.parse` already refuses constants as Boolean operands, so numbers only occur inside
    the arithmetic found here.
    """
    if isinstance(tree, Call):
        return f"call {tree.fn}()", tree.pos
    if isinstance(tree, Unary):
        if not PREFIX[tree.op].boolean:
            return f"negation '{tree.op}'", tree.pos
        return _arithmetic(tree.operand, text)
    if isinstance(tree, Binary):
        if not INFIX[tree.op].boolean:
            return f"arithmetic '{tree.op}'", text.rfind(tree.op, 0, tree.right.pos)
        return _arithmetic(tree.left, text) or _arithmetic(tree.right, text)
    return None


@dataclass(frozen=True)
class Edge:
    """A transition source -> target taken when `formula` holds for the label, paying `reward`."""

    source: int
    target: int
    formula: str
    reward: float = 0.0


@dataclass(frozen=True)
class RewardMachine:
    """A deterministic reward machine over named propositions (validated on construction).

    `alphabet` restricts the labels that can occur (None: every subset of the propositions); it
    is where determinism is checked and what `labels`, `table()` and `rejecting` default to.
    """

    propositions: tuple[str, ...]
    states: tuple[str, ...]
    initial: int
    accepting: frozenset[int]
    edges: tuple[Edge, ...]
    alphabet: tuple[Label, ...] | None = None

    def __post_init__(self) -> None:
        setter = object.__setattr__
        setter(self, "propositions", check_propositions(self.propositions, (TRUE,)))
        setter(self, "states", check_state_names(self.states))
        setter(self, "accepting", frozenset(self.accepting))
        setter(self, "edges", tuple(self.edges))
        if self.alphabet is not None:
            labels = check_labels(self.alphabet, self.propositions)
            setter(self, "alphabet", tuple(dict.fromkeys(labels)))
            if not self.alphabet:
                raise RewardMachineError("the alphabet is empty")
        count = len(self.states)
        if not isinstance(self.initial, int) or not 0 <= self.initial < count:
            raise RewardMachineError(f"initial state {self.initial!r} is not a state index")
        outside = sorted(a for a in self.accepting if not (isinstance(a, int) and 0 <= a < count))
        if outside:
            raise RewardMachineError(f"accepting states {outside} are not state indices")
        if self.initial in self.accepting:
            raise RewardMachineError(
                f"the initial state {self.states[self.initial]!r} is accepting: the task would "
                "be complete before the first step (a trace holds at least one label)"
            )
        setter(self, "edges", tuple(self._checked_edge(i) for i in range(len(self.edges))))
        if self.alphabet is not None or len(self.propositions) <= MAX_EXHAUSTIVE_PROPOSITIONS:
            truth = self._truth(self.labels)
            self._check_deterministic(self.labels, truth)
            self._check_completable(truth)
        else:  # too many labels to check now: formulas only, determinism when `table` runs
            self._truth((frozenset(),))

    def _where(self, index: int) -> str:
        edge = self.edges[index]
        return f"edge {index} ({self.states[edge.source]} -> {self.states[edge.target]})"

    def _checked_edge(self, index: int) -> Edge:
        """The edge with a float reward, after checking its ends, reward and formula."""
        edge = self.edges[index]
        if not isinstance(edge, Edge):
            raise RewardMachineError(f"edge {index} is not an Edge: {edge!r}")
        ends = (edge.source, edge.target)
        if not all(isinstance(end, int) and 0 <= end < len(self.states) for end in ends):
            raise RewardMachineError(f"edge {index} has ends {ends} outside the state indices")
        where = self._where(index)
        if edge.source in self.accepting:
            raise RewardMachineError(
                f"{where} leaves an accepting state; accepting states are absorbing"
            )
        reward = edge.reward
        if isinstance(reward, bool) or not isinstance(reward, Real) or not math.isfinite(reward):
            raise RewardMachineError(f"{where}: reward must be a finite number, got {reward!r}")
        if not isinstance(edge.formula, str):
            raise RewardMachineError(f"{where}: formula must be a string, got {edge.formula!r}")
        if edge.formula.strip() != TRUE:
            try:
                culprit = _arithmetic(parse(edge.formula), edge.formula)
            except ExpressionError as err:
                raise RewardMachineError(f"{where}: {err}") from None
            if culprit is not None:
                reason = f"{culprit[0]} is not allowed in an edge formula (use &, |, ~ or !)"
                error = ExpressionError(reason, edge.formula, culprit[1])
                raise RewardMachineError(f"{where}: {error}")
        return replace(edge, reward=float(reward))

    @property
    def labels(self) -> tuple[Label, ...]:
        """The alphabet, or every subset of the propositions when there is none."""
        return self.alphabet if self.alphabet is not None else default_labels(self.propositions)

    def _truth(self, labels: Sequence[Label]) -> Tensor:
        """[E, L] bool: which edge formulas hold for which labels (errors name the edge)."""
        ones = torch.ones(len(labels))
        heads = {
            p: torch.tensor([float(p in label) for label in labels]) for p in self.propositions
        }
        rows = []
        for index, edge in enumerate(self.edges):
            if edge.formula.strip() == TRUE:
                rows.append(ones.bool())
                continue
            try:
                value = evaluate(edge.formula, heads, bounds=(ones, torch.zeros_like(ones)))
            except ExpressionError as err:
                raise RewardMachineError(f"{self._where(index)}: {err}") from None
            rows.append(value > 0.5)
        return torch.stack(rows) if rows else torch.zeros(0, len(labels), dtype=torch.bool)

    def _check_deterministic(self, labels: Sequence[Label], truth: Tensor) -> None:
        """Raises when two edges out of one state both hold for one of the labels."""
        for i, j in combinations(range(len(self.edges)), 2):
            first, second = self.edges[i], self.edges[j]
            both = (truth[i] & truth[j]).nonzero() if first.source == second.source else ()
            if len(both):
                raise RewardMachineError(
                    f"non-deterministic: in state {self.states[first.source]!r} the edges "
                    f"{first.formula!r} (to {self.states[first.target]}) and {second.formula!r} "
                    f"(to {self.states[second.target]}) both hold for label "
                    f"{_show_label(labels[int(both[0])])}"
                )

    def _check_completable(self, truth: Tensor) -> None:
        """Raises when no path of edges that some label fires leads from the initial state to an
        accepting one (`truth` [E, L] from `_truth`): no episode could complete the task."""
        fired = [edge for edge, fires in zip(self.edges, truth, strict=True) if bool(fires.any())]
        reached, frontier = {self.initial}, [self.initial]
        while frontier:
            state = frontier.pop()
            for edge in fired:
                if edge.source == state and edge.target not in reached:
                    reached.add(edge.target)
                    frontier.append(edge.target)
        if reached & self.accepting:
            return
        if not self.accepting:
            raise RewardMachineError("no accepting state: the task could never be completed")
        goals = ", ".join(self.states[a] for a in sorted(self.accepting))
        found = ", ".join(self.states[u] for u in sorted(reached))
        raise RewardMachineError(
            f"no accepting state ({goals}) can be reached from the initial state "
            f"{self.states[self.initial]!r}: the edges that labels of the alphabet fire only "
            f"lead to {found}, so the task could never be completed"
        )

    def table(self, labels: Sequence[Iterable[str]] | None = None) -> tuple[Tensor, Tensor]:
        """Next state [U, L] long and reward [U, L] float32 for every state and label.

        Batched environments index it as `next[u, l]` with machine states u [N] and label
        indices l [N]; `labels` defaults to the machine's labels.
        """
        labels = self.labels if labels is None else check_labels(labels, self.propositions)
        truth = self._truth(labels)
        self._check_deterministic(labels, truth)
        count = len(self.states)
        following = torch.arange(count).unsqueeze(1).repeat(1, len(labels))
        reward = torch.zeros(count, len(labels))
        for edge, fires in zip(self.edges, truth, strict=True):
            following[edge.source, fires] = edge.target
            reward[edge.source, fires] = edge.reward
        return following, reward

    def step(self, state: int, label: Iterable[str]) -> tuple[int, float]:
        """The next state and reward from `state` on one label."""
        if not 0 <= state < len(self.states):
            raise RewardMachineError(f"state {state} is not a state index")
        following, reward = self.table([label])
        return int(following[state, 0]), float(reward[state, 0])

    @cached_property
    def rejecting(self) -> frozenset[int]:
        """Non-accepting states from which no label sequence of the alphabet reaches acceptance."""
        rows = self.table()[0].tolist()
        alive, before = set(self.accepting), -1
        while len(alive) > before:  # grow backwards from acceptance until nothing is added
            before = len(alive)
            alive |= {u for u, row in enumerate(rows) if alive.intersection(row)}
        return frozenset(range(len(self.states))) - alive
