"""A fragment of LTL over finite traces, translated into reward machines by progression.

Syntax, precedence lowest first: `|`, `&`, then the prefix operators `F` (eventually), `G`
(globally) and `!`/`~` (NOT, on propositions and Boolean formulas only), then atoms:
propositions, `true`, `false` and parentheses. Example: `F(f & F g) & G !n`. Names and error
carets follow the tokenizer of `tokens`, shared with the expression language.

Semantics are LTLf, LTL over finite non-empty traces. The trace of an episode is the labels it
observes, one per step: the label of the state each step enters, as a reward machine reads them;
the start state's label is not part of it. A formula holds on a trace when it holds at the first
position: a Boolean formula holds at position i on label i, `F p` at i if p holds at some j in
[i, n), `G p` at i if p holds at every j in [i, n). The empty trace satisfies no formula, since
every episode takes a step. A task succeeds, and its episode ends, at the first step after which
the labels seen so far satisfy the formula, so `G p` alone is met by one first step onto p; to
keep p while reaching a goal, conjoin the goal (`F g & G !n`).

`holds` evaluates a formula on a trace directly; `from_ltl` builds the reward machine by LTL
progression: each state is the formula still to satisfy, in a canonical simplified form, and it
is accepting when, after at least one step, the trace may end there (the remainder holds past
the end of the trace: `G` does, `F` and propositions do not). A formula that no trace over the
alphabet satisfies is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch

from composable_rl.languages.boolean_tasks import set_expression
from composable_rl.languages.reward_machine import (
    TRUE,
    Edge,
    Label,
    RewardMachine,
    RewardMachineError,
    check_labels,
    check_propositions,
    default_labels,
)
from composable_rl.languages.tokens import TokenCursor

__all__ = [
    "MAX_LTL_STATES",
    "Const",
    "Formula",
    "Junction",
    "Prop",
    "Temporal",
    "format_ltl",
    "from_ltl",
    "holds",
    "parse_ltl",
]

MAX_LTL_STATES = 1000
_LTL_RESERVED = ("F", "G", "true", "false")


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


class _LtlParser(TokenCursor):
    """Precedence climbing over `|` and `&`, then the prefix operators F, G and NOT, then atoms.

    Reuses the tokenizer of `tokens`, so names, error carets and the nesting bound
    (`tokens.MAX_DEPTH` levels) follow the same rules; each reading method returns the formula
    and its depth in levels.
    """

    def __init__(self, text: str, propositions: Sequence[str] | None) -> None:
        super().__init__(text)
        self.propositions = propositions

    def parse(self) -> Formula:
        """The whole text as one formula."""
        if self.peek.kind == "end":
            raise self.error("empty formula", self.peek.pos)
        formula, _ = self.junction("|")
        if self.peek.kind != "end":
            raise self.error(f"trailing input {self.peek.describe()}", self.peek.pos)
        return formula

    def junction(self, op: str) -> tuple[Formula, int]:
        """A chain of `op` ('|' or '&') over the operands of the next level (one level deep)."""
        operand = (lambda: self.junction("&")) if op == "|" else self.unary
        first, depth = operand()
        args, level = [first], depth
        while self.peek.kind == "symbol" and self.peek.text == op:
            token = self.take()
            arg, arg_depth = operand()
            depth = max(depth, arg_depth)
            level = self.deeper(depth, token)
            args.append(arg)
        return (Junction(op, tuple(args)) if len(args) > 1 else first), level

    def unary(self) -> tuple[Formula, int]:
        """NOT (of a temporal-free formula), F or G applied to a unary formula, or an atom."""
        token = self.peek
        if token.kind == "symbol" and token.text in ("!", "~"):
            self.take()
            start = self.index
            with self.nested(token):
                body, depth = self.unary()
            for inner in self.tokens[start : self.index]:
                if inner.kind == "name" and inner.text in ("F", "G"):
                    reason = f"'{token.text}' applies to propositions, not to '{inner.text}'"
                    raise self.error(reason, inner.pos)
            return _negate(body), depth + 1
        if token.kind == "name" and token.text in ("F", "G"):
            self.take()
            with self.nested(token):
                body, depth = self.unary()
            return Temporal(token.text, body), depth + 1
        return self.atom()

    def atom(self) -> tuple[Formula, int]:
        """`true`, `false`, a (known) proposition or a parenthesised formula."""
        token = self.take()
        if token.kind == "name" and token.text in ("true", "false"):
            return Const(token.text == "true"), 0
        if token.kind == "name":
            if self.propositions is not None and token.text not in self.propositions:
                known = ", ".join(self.propositions) or "(none)"
                reason = f"unknown proposition {token.text!r}; known propositions: {known}"
                raise self.error(reason, token.pos)
            return Prop(token.text), 0
        if token.text == "(":
            with self.nested(token):
                formula, depth = self.junction("|")
                if self.peek.text != ")":
                    reason = f"missing ')' to close the '(' at column {token.pos}"
                    raise self.error(reason, self.peek.pos)
            self.take()
            return formula, depth + 1
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
    """Direct LTLf evaluation of a formula on a finite trace, false on the empty trace (the
    oracle of the translation)."""
    tree = parse_ltl(formula) if isinstance(formula, str) else formula
    return bool(trace) and _holds_at(tree, tuple(frozenset(label) for label in trace), 0)


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
        """Whether `x` adds nothing to the junction beside `y`."""
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
    """The propositions a formula mentions (labels differing elsewhere progress alike)."""
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
    The initial state is never accepting, as traces are not empty: when the formula would hold
    on the empty trace (e.g. `G !n`), the initial state is a separate `start: <formula>`.
    Edges into accepting states pay 1, the others 0; the labels that lead u -> u' are merged into
    one edge whose formula is `boolean_tasks.set_expression` over the alphabet (`true` if all do).
    Raises RewardMachineError when no trace over the alphabet satisfies the formula.
    """
    props = check_propositions(propositions, _LTL_RESERVED)
    given = check_labels(alphabet, props) if alphabet is not None else default_labels(props)
    labels = tuple(dict.fromkeys(given))
    if not labels:
        raise RewardMachineError("the alphabet is empty")
    membership = torch.tensor([[p in label for p in props] for label in labels], dtype=torch.bool)
    start = _canonical(parse_ltl(text, props))
    relevant = _names(start)
    # state 0 is the formula before any step; it is revisited only if it cannot end a trace
    formulas, index, edges = [start], {} if _ends(start) else {start: 0}, []
    accepting: set[int] = set()
    for source, formula in enumerate(formulas):  # breadth first: `formulas` grows meanwhile
        if source in accepting:
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
                if _ends(following):
                    accepting.add(index[following])
            targets.append(index[following])
        for target in sorted(set(targets) - {source}):
            mask = torch.tensor([t == target for t in targets])
            when = TRUE if mask.all() else set_expression(props, membership, mask)
            edges.append(Edge(source, target, when, float(target in accepting)))
    if not accepting:
        raise RewardMachineError(
            f"{text!r} is unsatisfiable: no sequence of labels of the alphabet satisfies it, "
            "so no episode could succeed"
        )
    names = [format_ltl(formula) for formula in formulas]
    if 0 not in index.values():
        names[0] = f"start: {names[0]}"
    return RewardMachine(
        propositions=props,
        states=tuple(names),
        initial=0,
        accepting=frozenset(accepting),
        edges=tuple(edges),
        alphabet=None if alphabet is None else labels,
    )
