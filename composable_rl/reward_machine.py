"""Reward machines over propositions, and a fragment of LTL translated into them by progression.

A *label* is the frozenset of propositions true in the current state. A reward machine (Toro
Icarte et al. 2018) is a finite automaton whose edges carry Boolean formulas over propositions:
from state u on label L it takes the one edge out of u whose formula holds for L and pays that
edge's reward; when none holds it stays in u and pays 0. Accepting states are absorbing (the
episode ends there), so they have no outgoing edges. Edges must be deterministic over the
machine's alphabet (every label by default).

Edge formulas use the expression language of `compose` restricted to Boolean operators: names of
propositions, `&`, `|`, `~` or `!` (NOT) and parentheses; `true` alone is the edge that always
fires. They are evaluated by `compose.evaluate` on 1/0 proposition values (AND = min, OR = max,
NOT = 1 - x). A machine in YAML (`reward` defaults to 0, `accepting` to none; `description` is
free text):

    description: coffee, then the office, never a plant
    states: [u0, u1, done, fail]
    initial: u0
    accepting: [done]
    edges:
      - {from: u0, to: u1, when: "f & !n"}
      - {from: u0, to: fail, when: "n"}
      - {from: u1, to: done, when: "g & !n", reward: 1}
      - {from: u1, to: fail, when: "n"}

LTL fragment for `from_ltl` and `holds`, precedence lowest first: `|`, `&`, then the prefix
operators `F` (eventually), `G` (globally) and `!`/`~` (NOT, on propositions and Boolean
formulas only), then atoms: propositions, `true`, `false` and parentheses. Example:
`F(f & F g) & G !n`. Semantics are over finite traces (the labels seen after each step): a
Boolean formula holds at position i < n on label i and nowhere past the end, `F p` holds at i if
p holds at some j in [i, n), `G p` if p holds at every j in [i, n) (so also at i = n).
`from_ltl` builds the machine by LTL progression: each state is the formula still to satisfy, in
a canonical simplified form, and it is accepting when the trace may end there.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from itertools import combinations
from numbers import Real

import torch
import yaml
from torch import Tensor

from composable_rl.compose import (
    Binary,
    Call,
    Expr,
    ExpressionError,
    Head,
    Unary,
    _Cursor,
    evaluate,
    parse,
    set_expression,
)

__all__ = [
    "Const",
    "Edge",
    "Formula",
    "Junction",
    "Label",
    "Prop",
    "RewardMachine",
    "RewardMachineError",
    "Temporal",
    "all_labels",
    "exclusive_labels",
    "format_ltl",
    "from_ltl",
    "holds",
    "load_reward_machine",
    "parse_ltl",
]

Label = frozenset[str]
TRUE = "true"
MAX_EXHAUSTIVE_PROPOSITIONS = 12  # 2**12 labels is the most checked or explored by default
MAX_LTL_STATES = 1000
_LTL_RESERVED = ("F", "G", "true", "false")
_KEYS = {"states": True, "initial": True, "accepting": False, "edges": True, "description": False}
_EDGE_KEYS = {"from": True, "to": True, "when": True, "reward": False}


class RewardMachineError(ValueError):
    """A malformed reward machine, label or alphabet; the message names the culprit."""


def all_labels(propositions: Sequence[str]) -> tuple[Label, ...]:
    """Every set of propositions, empty first: the alphabet when nothing restricts the labels."""
    props = tuple(propositions)
    subsets = range(2 ** len(props))
    return tuple(frozenset(p for k, p in enumerate(props) if bits >> k & 1) for bits in subsets)


def exclusive_labels(propositions: Sequence[str]) -> tuple[Label, ...]:
    """The empty label and each single proposition: worlds where at most one holds (Office)."""
    return (frozenset(),) + tuple(frozenset({p}) for p in propositions)


def _show_label(label: Label) -> str:
    return "{" + ", ".join(sorted(label)) + "}"


def _propositions(propositions: Iterable[str], reserved: Sequence[str]) -> tuple[str, ...]:
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


def _labels(labels: Iterable[Iterable[str]], propositions: Sequence[str]) -> tuple[Label, ...]:
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


def _default_labels(propositions: Sequence[str]) -> tuple[Label, ...]:
    """All 2^P labels, refused when there are too many to enumerate."""
    if len(propositions) > MAX_EXHAUSTIVE_PROPOSITIONS:
        raise RewardMachineError(
            f"{len(propositions)} propositions give 2^{len(propositions)} labels; pass an alphabet"
        )
    return all_labels(propositions)


def _state_names(states: Iterable[object]) -> tuple[str, ...]:
    """State names as strings (integers allowed), non-empty and unique."""
    names = tuple(_state_name(state) for state in states)
    if not names:
        raise RewardMachineError("a reward machine needs at least one state")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise RewardMachineError(f"duplicate state names: {', '.join(duplicates)}")
    return names


def _state_name(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RewardMachineError(f"state names are strings (quote them in YAML), got {value!r}")
    return str(value)


def _arithmetic(tree: Expr, text: str) -> tuple[str, int] | None:
    """The first non-Boolean construct of an edge formula, and its offset in the text.

    `compose.parse` already refuses constants as Boolean operands, so numbers only occur inside
    the arithmetic found here.
    """
    if isinstance(tree, Call):
        return f"call {tree.fn}()", tree.pos
    if isinstance(tree, Unary):
        return ("negation '-'", tree.pos) if tree.op == "-" else _arithmetic(tree.operand, text)
    if isinstance(tree, Binary):
        if tree.op not in "&|":
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
        setter(self, "propositions", _propositions(self.propositions, (TRUE,)))
        setter(self, "states", _state_names(self.states))
        setter(self, "accepting", frozenset(self.accepting))
        setter(self, "edges", tuple(self.edges))
        if self.alphabet is not None:
            labels = _labels(self.alphabet, self.propositions)
            setter(self, "alphabet", tuple(dict.fromkeys(labels)))
            if not self.alphabet:
                raise RewardMachineError("the alphabet is empty")
        count = len(self.states)
        if not isinstance(self.initial, int) or not 0 <= self.initial < count:
            raise RewardMachineError(f"initial state {self.initial!r} is not a state index")
        outside = sorted(a for a in self.accepting if not (isinstance(a, int) and 0 <= a < count))
        if outside:
            raise RewardMachineError(f"accepting states {outside} are not state indices")
        setter(self, "edges", tuple(self._checked_edge(i) for i in range(len(self.edges))))
        if self.alphabet is not None or len(self.propositions) <= MAX_EXHAUSTIVE_PROPOSITIONS:
            self._check_deterministic(self.labels, self._truth(self.labels))
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
        return self.alphabet if self.alphabet is not None else _default_labels(self.propositions)

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

    def table(self, labels: Sequence[Iterable[str]] | None = None) -> tuple[Tensor, Tensor]:
        """Next state [U, L] long and reward [U, L] float32 for every state and label.

        Batched environments index it as `next[u, l]` with machine states u [N] and label
        indices l [N]; `labels` defaults to the machine's labels.
        """
        labels = self.labels if labels is None else _labels(labels, self.propositions)
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

    def to_dict(self) -> dict[str, object]:
        """The YAML mapping of the machine (the alphabet is the environment's, not saved)."""
        edges = [
            {"from": self.states[edge.source], "to": self.states[edge.target], "when": edge.formula}
            | ({"reward": edge.reward} if edge.reward else {})
            for edge in self.edges
        ]
        return {
            "states": list(self.states),
            "initial": self.states[self.initial],
            "accepting": [self.states[a] for a in sorted(self.accepting)],
            "edges": edges,
        }

    def to_yaml(self) -> str:
        """YAML text that `load_reward_machine` reads back to an equal machine."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=100)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes `to_yaml()` to a file."""
        with open(path, "w", encoding="utf-8") as file:
            file.write(self.to_yaml())


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
    names = _state_names(_list(data["states"], "states"))
    known = ", ".join(names)

    def state(value: object, what: str) -> int:
        name = _state_name(value)
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
    with open(source, encoding="utf-8") as file:
        data = yaml.safe_load(file)
    try:
        return _from_mapping(data, propositions, alphabet)
    except RewardMachineError as err:
        raise RewardMachineError(f"{os.fspath(source)}: {err}") from None


# --- LTL fragment ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Const:
    """`true` or `false`; as a machine state, an obligation met or failed for good."""

    value: bool


@dataclass(frozen=True)
class Prop:
    """A proposition, or its negation when `positive` is False (negation normal form)."""

    name: str
    positive: bool = True


@dataclass(frozen=True)
class Junction:
    """Conjunction ('&') or disjunction ('|') of two or more formulas."""

    op: str
    args: tuple[Formula, ...]


@dataclass(frozen=True)
class Temporal:
    """'F' (eventually) or 'G' (globally) of a formula."""

    op: str
    body: Formula


Formula = Const | Prop | Junction | Temporal
_TRUE, _FALSE = Const(True), Const(False)


@lru_cache(maxsize=4096)
def format_ltl(formula: Formula) -> str:
    """Text of a formula that `parse_ltl` reads back to the same tree (`!` for NOT)."""
    if isinstance(formula, Const):
        return "true" if formula.value else "false"
    if isinstance(formula, Prop):
        return formula.name if formula.positive else f"!{formula.name}"
    if isinstance(formula, Temporal):
        body = format_ltl(formula.body)
        return formula.op + (f"({body})" if isinstance(formula.body, Junction) else f" {body}")
    parts = (
        f"({format_ltl(arg)})" if isinstance(arg, Junction) else format_ltl(arg)
        for arg in formula.args
    )
    return f" {formula.op} ".join(parts)


def _order(formula: Formula) -> tuple[int, str]:
    """Sort key of canonical terms: propositions first, then junctions, then F and G, by text."""
    rank = {Const: 0, Prop: 1, Junction: 2, Temporal: 3}[type(formula)]
    return rank, format_ltl(formula)


def _negate(formula: Formula) -> Formula:
    """De Morgan negation of a temporal-free formula, down to the propositions."""
    if isinstance(formula, Const):
        return Const(not formula.value)
    if isinstance(formula, Prop):
        return Prop(formula.name, not formula.positive)
    assert isinstance(formula, Junction), "the parser negates temporal-free formulas only"
    return Junction("|" if formula.op == "&" else "&", tuple(map(_negate, formula.args)))


class _LtlParser(_Cursor):
    """Precedence climbing over `|` and `&`, then the prefix operators F, G and NOT, then atoms.

    Reuses the tokenizer of `compose`, so names and error carets follow the same rules.
    """

    def __init__(self, text: str, propositions: Sequence[str] | None) -> None:
        super().__init__(text)
        self.propositions = propositions

    def parse(self) -> Formula:
        if self.tokens[0].kind == "end":
            raise self.error("empty formula", self.tokens[0].pos)
        formula = self.junction("|")
        token = self.tokens[self.index]
        if token.kind != "end":
            raise self.error(f"trailing input {token.describe()}", token.pos)
        return formula

    def junction(self, op: str) -> Formula:
        operand = (lambda: self.junction("&")) if op == "|" else self.unary
        args = [operand()]
        while self.tokens[self.index].kind == "symbol" and self.tokens[self.index].text == op:
            self.take()
            args.append(operand())
        return args[0] if len(args) == 1 else Junction(op, tuple(args))

    def unary(self) -> Formula:
        token = self.tokens[self.index]
        if token.kind == "symbol" and token.text in ("!", "~"):
            self.take()
            start = self.index
            body = self.unary()
            for inner in self.tokens[start : self.index]:
                if inner.kind == "name" and inner.text in ("F", "G"):
                    reason = f"'{token.text}' applies to propositions, not to '{inner.text}'"
                    raise self.error(reason, inner.pos)
            return _negate(body)
        if token.kind == "name" and token.text in ("F", "G"):
            self.take()
            return Temporal(token.text, self.unary())
        return self.atom()

    def atom(self) -> Formula:
        token = self.take()
        if token.kind == "name" and token.text in ("true", "false"):
            return Const(token.text == "true")
        if token.kind == "name":
            if self.propositions is not None and token.text not in self.propositions:
                known = ", ".join(self.propositions) or "(none)"
                reason = f"unknown proposition {token.text!r}; known propositions: {known}"
                raise self.error(reason, token.pos)
            return Prop(token.text)
        if token.text == "(":
            formula = self.junction("|")
            if self.tokens[self.index].text != ")":
                reason = f"missing ')' to close the '(' at column {token.pos}"
                raise self.error(reason, self.tokens[self.index].pos)
            self.take()
            return formula
        raise self.error(f"unexpected {token.describe()}", token.pos)


def parse_ltl(text: str, propositions: Sequence[str] | None = None) -> Formula:
    """Parses the LTL fragment (negations pushed onto propositions); checks names if given."""
    return _LtlParser(text, propositions).parse()


def _holds_at(formula: Formula, trace: Sequence[Label], i: int) -> bool:
    """Whether the formula holds at position i of a finite trace (i may be its length)."""
    if isinstance(formula, Const):
        return formula.value
    if isinstance(formula, Prop):
        return i < len(trace) and (formula.name in trace[i]) == formula.positive
    if isinstance(formula, Junction):
        quantifier = all if formula.op == "&" else any
        return quantifier(_holds_at(arg, trace, i) for arg in formula.args)
    quantifier = any if formula.op == "F" else all
    return quantifier(_holds_at(formula.body, trace, j) for j in range(i, len(trace)))


def holds(formula: str | Formula, trace: Sequence[Iterable[str]]) -> bool:
    """Direct finite-trace evaluation of an LTL formula (the oracle of the translation)."""
    tree = parse_ltl(formula) if isinstance(formula, str) else formula
    return _holds_at(tree, tuple(frozenset(label) for label in trace), 0)


def _ends(formula: Formula) -> bool:
    """Whether the formula holds past the end of a trace: may the trace stop here?"""
    if isinstance(formula, Const):
        return formula.value
    if isinstance(formula, Junction):
        return (all if formula.op == "&" else any)(map(_ends, formula.args))
    return isinstance(formula, Temporal) and formula.op == "G"


def _implies(a: Formula, b: Formula) -> bool:
    """Sound, incomplete syntactic entailment at every position (also past the end)."""
    if a in (b, _FALSE) or b == _TRUE:
        return True
    if isinstance(a, Junction) and a.op == "|":
        return all(_implies(arg, b) for arg in a.args)
    if isinstance(b, Junction) and b.op == "&":
        return all(_implies(a, arg) for arg in b.args)
    return (
        (isinstance(a, Junction) and any(_implies(arg, b) for arg in a.args))
        or (isinstance(b, Junction) and any(_implies(a, arg) for arg in b.args))
        or (isinstance(b, Temporal) and b.op == "F" and not _ends(a) and _implies(a, b.body))
        or (
            isinstance(a, Temporal)
            and isinstance(b, Temporal)
            and a.op == b.op
            and _implies(a.body, b if a.op == "F" else b.body)
        )
    )


def _junction(op: str, args: Iterable[Formula]) -> Formula:
    """Canonical AND/OR: flattened, constants folded, p & !p folded, redundant terms dropped.

    A term is redundant when another entails it (AND) or it entails another (OR); the rest is
    sorted (`_order`), so equal formulas get equal trees and the progression has finitely many.
    `p | !p` is kept: past the end of a trace it is false.
    """
    unit, zero = (_TRUE, _FALSE) if op == "&" else (_FALSE, _TRUE)
    flat: list[Formula] = []
    for arg in args:
        if arg == zero:
            return zero
        if isinstance(arg, Junction) and arg.op == op:
            flat.extend(arg.args)
        elif arg != unit:
            flat.append(arg)
    if op == "&" and any(Prop(p.name, not p.positive) in flat for p in flat if isinstance(p, Prop)):
        return _FALSE

    def redundant(x: Formula, y: Formula) -> bool:
        return _implies(y, x) if op == "&" else _implies(x, y)

    kept: list[Formula] = []
    for arg in sorted(set(flat), key=_order):
        if not any(redundant(arg, other) for other in kept):
            kept = [other for other in kept if not redundant(other, arg)] + [arg]
    kept.sort(key=_order)
    return kept[0] if len(kept) == 1 else Junction(op, tuple(kept)) if kept else unit


def _canonical(formula: Formula) -> Formula:
    """The canonical form of a parsed formula (G G p = G p, F false = false, G true = true)."""
    if isinstance(formula, Junction):
        return _junction(formula.op, map(_canonical, formula.args))
    if not isinstance(formula, Temporal):
        return formula
    body = _canonical(formula.body)
    if body == Const(formula.op == "G") or (isinstance(body, Temporal) and body.op == formula.op):
        return body
    return Temporal(formula.op, body)


def _progress(formula: Formula, label: Label) -> Formula:
    """What remains to satisfy after one step with this label (Bacchus & Kabanza progression)."""
    if isinstance(formula, Const):
        return formula
    if isinstance(formula, Prop):
        return Const((formula.name in label) == formula.positive)
    if isinstance(formula, Junction):
        return _junction(formula.op, (_progress(arg, label) for arg in formula.args))
    now = _progress(formula.body, label)
    return _junction("|" if formula.op == "F" else "&", (now, formula))


def _names(formula: Formula) -> frozenset[str]:
    if isinstance(formula, Prop):
        return frozenset({formula.name})
    if isinstance(formula, Junction):
        return frozenset().union(*map(_names, formula.args))
    return _names(formula.body) if isinstance(formula, Temporal) else frozenset()


def from_ltl(
    text: str, propositions: Sequence[str], alphabet: Sequence[Iterable[str]] | None = None
) -> RewardMachine:
    """The reward machine of an LTL formula by progression over the alphabet (default: 2^P).

    States are named by the formula that remains; accepting states are those where the trace may
    end (the formula holds for the labels seen) and are absorbing; `false` is the rejecting sink.
    Edges into accepting states pay 1, the others 0; the labels that lead u -> u' are merged into
    one edge whose formula is `compose.set_expression` over the alphabet (`true` if all do).
    """
    props = _propositions(propositions, _LTL_RESERVED)
    labels = tuple(
        dict.fromkeys(_labels(alphabet, props) if alphabet is not None else _default_labels(props))
    )
    if not labels:
        raise RewardMachineError("the alphabet is empty")
    membership = torch.tensor([[p in label for p in props] for label in labels], dtype=torch.bool)
    start = _canonical(parse_ltl(text, props))
    relevant = _names(start)
    formulas, index, edges = [start], {start: 0}, []
    for source, formula in enumerate(formulas):  # breadth first: `formulas` grows meanwhile
        if _ends(formula):
            continue
        steps = {label: _progress(formula, label) for label in {lab & relevant for lab in labels}}
        targets = []
        for label in labels:
            following = steps[label & relevant]
            if following not in index:
                if len(formulas) == MAX_LTL_STATES:
                    raise RewardMachineError(f"{text!r} needs over {MAX_LTL_STATES} states")
                index[following] = len(formulas)
                formulas.append(following)
            targets.append(index[following])
        for target in sorted(set(targets) - {source}):
            mask = torch.tensor([t == target for t in targets])
            when = TRUE if mask.all() else set_expression(props, membership, mask)
            edges.append(Edge(source, target, when, float(_ends(formulas[target]))))
    return RewardMachine(
        propositions=props,
        states=tuple(map(format_ltl, formulas)),
        initial=0,
        accepting=frozenset(i for i, formula in enumerate(formulas) if _ends(formula)),
        edges=tuple(edges),
        alphabet=None if alphabet is None else labels,
    )
