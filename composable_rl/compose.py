"""Composition of value heads: linear and Boolean operators, and a small expression language.

Operators act elementwise on head tensors of any shape ([B, A] Q-values or [B, G, A] world
values). Expressions such as `0.5*food + water` or `blue & ~square` are parsed by a hand-written
tokenizer and precedence-climbing parser (never `eval`) into an immutable tree.

Precedence, lowest first (as in Python): `|` (OR), `&` (AND), binary `+ -`, `* /`, unary `~`
(NOT; `!` is read as a synonym and printed as `~`) and `-`, atoms (head names, numbers,
parentheses, calls `softor/max/min(e1, e2, ...)`).
Binary operators associate to the left. Rules, checked when parsing: the operands of the Boolean
operators (`|`, `&`, `~`, and the calls) must depend on a head, since a constant is not a task;
`*` needs a constant on at least one side and `/` a non-zero constant divisor, so every
expression stays linear between its Boolean operators; and an expression must name a head.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache, reduce

import torch
from torch import Tensor

__all__ = [
    "Binary",
    "Call",
    "Expr",
    "ExpressionError",
    "Head",
    "Number",
    "Unary",
    "and_",
    "boolean_tasks",
    "evaluate",
    "gpi",
    "head_names",
    "is_linear",
    "not_",
    "or_",
    "parse",
    "set_expression",
    "soft_or",
    "to_string",
    "weighted_max",
    "weighted_sum",
]


def weighted_sum(q: Tensor, weights: Tensor) -> Tensor:
    """Q_w = sum_k w_k Q_k: q [B, K, ...] and weights [K] -> [B, ...] (linear composition)."""
    return torch.tensordot(q, weights.to(q.dtype), dims=([1], [0]))


def weighted_max(q: Tensor, weights: Tensor) -> Tensor:
    """max_k w_k Q_k over the heads with w_k > 0, plus sum_k w_k Q_k over those with w_k < 0:
    q [B, K, ...] and weights [B, K] -> [B, ...] (0 from the positive part when none is positive).

    With rewards >= 0 this is a lower bound on the value, for the weighted reward, of following
    the best single wanted head's policy (the other wanted rewards only add, an unwanted one
    costs at most its own optimal value), so acting greedily on it is GPI over the heads' own
    policies. Unlike the weighted sum it never settles between two equally wanted goals.
    """
    w = weights.to(q.dtype).view(*weights.shape, *([1] * (q.dim() - weights.dim())))
    positive = (w > 0).expand_as(q)
    wanted = torch.where(positive, q * w, float("-inf")).amax(1)
    wanted = torch.where(positive.any(1), wanted, 0.0)
    return wanted + (q * w.clamp(max=0)).sum(1)


def or_(a: Tensor, b: Tensor) -> Tensor:
    """Boolean OR of world values: the elementwise max."""
    return torch.maximum(a, b)


def and_(a: Tensor, b: Tensor) -> Tensor:
    """Boolean AND of world values: the elementwise min."""
    return torch.minimum(a, b)


def soft_or(a: Tensor, b: Tensor, alpha: float) -> Tensor:
    """Entropy-regularised OR alpha * log(exp(a/alpha) + exp(b/alpha)); alpha == 0 is the max."""
    if alpha == 0:
        return torch.maximum(a, b)
    return alpha * torch.logaddexp(a / alpha, b / alpha)


def not_(q: Tensor, q_max: Tensor, q_min: Tensor) -> Tensor:
    """Boolean NOT of world values, Q_MAX + Q_MIN - Q, with the bounds of the all-goal tasks."""
    return q_max + q_min - q


def gpi(q_stack: Tensor) -> Tensor:
    """Generalised policy improvement: the max over the first axis of a stack of composed values."""
    return q_stack.amax(0)


_BOOLEAN_OPS = ("|", "&", "~")
_FUNCTIONS = ("max", "min", "softor")
_BINARY_LEVELS = (("|",), ("&",), ("+", "-"), ("*", "/"))
_PRECEDENCE = {op: level + 1 for level, ops in enumerate(_BINARY_LEVELS) for op in ops}
_UNARY_PRECEDENCE = len(_BINARY_LEVELS) + 1
_ATOM_PRECEDENCE = _UNARY_PRECEDENCE + 1
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NUMBER_RUN = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d*)?[A-Za-z0-9_.]*")
_SYMBOLS = "|&+-*/~!(),"
_SYNONYMS = {"!": "~"}  # reward machines write NOT as in Toro Icarte et al.


@dataclass(frozen=True)
class Head:
    """A head's values, by name."""

    name: str
    pos: int = field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(f"head name must be an identifier, got {self.name!r}")


@dataclass(frozen=True)
class Number:
    """A finite non-negative constant (a negative one is Unary('-', Number))."""

    value: float
    pos: int = field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        value = float(self.value)
        if not math.isfinite(value) or math.copysign(1.0, value) < 0:
            raise ValueError(f"Number needs a finite non-negative value, got {self.value!r}")
        object.__setattr__(self, "value", value)


@dataclass(frozen=True)
class Unary:
    """Prefix operator: '~' (Boolean NOT) or '-' (negation)."""

    op: str
    operand: Expr
    pos: int = field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        _validate(self.op, (self.operand,), ("~", "-"))


@dataclass(frozen=True)
class Binary:
    """Infix operator: '|', '&', '+', '-', '*' or '/'."""

    op: str
    left: Expr
    right: Expr
    pos: int = field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        _validate(self.op, (self.left, self.right), tuple(_PRECEDENCE))


@dataclass(frozen=True)
class Call:
    """Function call: softor, max or min over two or more arguments."""

    fn: str
    args: tuple[Expr, ...]
    pos: int = field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", tuple(self.args))
        _validate(self.fn, self.args, _FUNCTIONS)


Expr = Head | Number | Unary | Binary | Call


class ExpressionError(ValueError):
    """A malformed or unevaluable expression; the message points a caret at the culprit."""

    def __init__(self, reason: str, text: str, position: int) -> None:
        line = re.sub(r"\s", " ", text)
        super().__init__(f"{reason} in expression:\n  {line}\n  {' ' * position}^")
        self.reason, self.text, self.position = reason, text, position


def _children(expr: Expr) -> tuple[Expr, ...]:
    """The direct sub-expressions of a node, left to right."""
    if isinstance(expr, Unary):
        return (expr.operand,)
    if isinstance(expr, Binary):
        return (expr.left, expr.right)
    if isinstance(expr, Call):
        return expr.args
    return ()


def head_names(expr: Expr | str) -> set[str]:
    """Names of the heads an expression reads (to check them against a network's heads)."""
    tree = _parse_cached(expr) if isinstance(expr, str) else expr
    if isinstance(tree, Head):
        return {tree.name}
    return set().union(*(head_names(child) for child in _children(tree)))


def is_linear(expr: Expr | str) -> bool:
    """True when the expression only scales and adds heads: a weighted sum of the heads."""
    tree = _parse_cached(expr) if isinstance(expr, str) else expr
    if isinstance(tree, Call) or getattr(tree, "op", None) in _BOOLEAN_OPS:
        return False
    return all(is_linear(child) for child in _children(tree))


def _problem(op: str, operands: Sequence[Expr]) -> tuple[str, int | None] | None:
    """Why `op` cannot combine `operands`: (reason, culprit operand index or None for op itself)."""
    constant = [not head_names(operand) for operand in operands]
    if op in _FUNCTIONS and len(operands) < 2:
        return f"{op}() needs at least 2 arguments, got {len(operands)}", None
    if op in _BOOLEAN_OPS or op in _FUNCTIONS:
        if any(constant):
            return f"'{op}' needs head values, not a constant", constant.index(True)
    elif op == "*" and not any(constant):
        return "'*' needs a constant on one side", None
    elif op == "/":
        if not constant[1]:
            return "'/' needs a constant divisor", 1
        if _run(operands[1], {}, 0.0, None) == 0:
            return "division by zero", 1
    return None


def _validate(op: str, operands: Sequence[Expr], allowed: Sequence[str]) -> None:
    """Constructor check for hand-built trees; the parser reports the same rules with a caret."""
    if op not in allowed:
        raise ValueError(f"unknown operator or function {op!r}; expected one of {list(allowed)}")
    problem = _problem(op, operands)
    if problem is not None:
        raise ValueError(problem[0])


@dataclass(frozen=True)
class _Token:
    kind: str  # "name", "number", "symbol" or "end"
    text: str
    pos: int

    def describe(self) -> str:
        """How error messages name the token."""
        return "end of expression" if self.kind == "end" else repr(self.text)


def _tokenize(text: str) -> list[_Token]:
    """Names, numbers and one-character symbols with their offsets, ending with an end token."""
    tokens, pos = [], 0
    while pos < len(text):
        char = text[pos]
        if char.isspace():
            pos += 1
        elif char in _SYMBOLS:
            tokens.append(_Token("symbol", char, pos))
            pos += 1
        elif (run := _NUMBER_RUN.match(text, pos)) is not None:
            literal = run.group()
            if not _NUMBER.fullmatch(literal) or not math.isfinite(float(literal)):
                raise ExpressionError(f"bad number {literal!r}", text, pos)
            tokens.append(_Token("number", literal, pos))
            pos = run.end()
        elif (name := _NAME.match(text, pos)) is not None:
            tokens.append(_Token("name", name.group(), pos))
            pos = name.end()
        else:
            raise ExpressionError(f"unexpected character {char!r}", text, pos)
    tokens.append(_Token("end", "", len(text)))
    return tokens


class _Cursor:
    """A position in the token list of a text, and errors that point a caret into the text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0

    @property
    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def error(self, reason: str, pos: int) -> ExpressionError:
        return ExpressionError(reason, self.text, pos)


class _Parser(_Cursor):
    """Precedence climbing over the binary levels, then unary operators, then atoms."""

    def check(self, token: _Token, operands: Sequence[Expr]) -> None:
        """Raises the rule `_problem` finds, with the caret at the culprit operand or the token."""
        problem = _problem(token.text, operands)
        if problem is not None:
            reason, culprit = problem
            raise self.error(reason, token.pos if culprit is None else operands[culprit].pos)

    def parse(self) -> Expr:
        if self.peek.kind == "end":
            raise self.error("empty expression", self.peek.pos)
        expr = self.binary(0)
        if self.peek.kind != "end":
            raise self.error(f"trailing input {self.peek.describe()}", self.peek.pos)
        if not head_names(expr):
            raise self.error("expression needs at least one head name", expr.pos)
        return expr

    def binary(self, level: int) -> Expr:
        if level == len(_BINARY_LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek.kind == "symbol" and self.peek.text in _BINARY_LEVELS[level]:
            token = self.take()
            right = self.binary(level + 1)
            self.check(token, (left, right))
            left = Binary(token.text, left, right, left.pos)
        return left

    def unary(self) -> Expr:
        if self.peek.kind == "symbol" and self.peek.text in "~!-":
            written = self.take()
            token = _Token(written.kind, _SYNONYMS.get(written.text, written.text), written.pos)
            operand = self.unary()
            self.check(token, (operand,))
            return Unary(token.text, operand, token.pos)
        return self.atom()

    def atom(self) -> Expr:
        token = self.take()
        if token.kind == "number":
            return Number(float(token.text), token.pos)
        if token.kind == "name" and self.peek.text == "(":
            return self.call(token)
        if token.kind == "name":
            return Head(token.text, token.pos)
        if token.text == "(":
            expr = self.binary(0)
            self.close(token)
            return expr
        raise self.error(f"unexpected {token.describe()}", token.pos)

    def call(self, name: _Token) -> Call:
        if name.text not in _FUNCTIONS:
            raise self.error(
                f"unknown function {name.text!r}; known functions: {', '.join(_FUNCTIONS)}",
                name.pos,
            )
        opening = self.take()
        args = []
        if self.peek.text != ")":
            args.append(self.binary(0))
            while self.peek.text == ",":
                self.take()
                args.append(self.binary(0))
        self.close(opening)
        self.check(name, args)
        return Call(name.text, tuple(args), name.pos)

    def close(self, opening: _Token) -> None:
        if self.peek.text != ")":
            raise self.error(f"missing ')' to close the '(' at column {opening.pos}", self.peek.pos)
        self.take()


def parse(text: str) -> Expr:
    """Parses an expression into an immutable tree whose nodes carry their source offsets."""
    return _Parser(text).parse()


_parse_cached = lru_cache(maxsize=256)(parse)


def _format_number(value: float) -> str:
    """Shortest text that parses back to exactly `value`."""
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def _precedence(expr: Expr) -> int:
    if isinstance(expr, Binary):
        return _PRECEDENCE[expr.op]
    if isinstance(expr, Unary):
        return _UNARY_PRECEDENCE
    return _ATOM_PRECEDENCE


def _wrap(expr: Expr, parenthesise: bool) -> str:
    text = to_string(expr)
    return f"({text})" if parenthesise else text


def to_string(expr: Expr) -> str:
    """Canonical text with the fewest parentheses, so that parse(to_string(e)) == e."""
    if isinstance(expr, Head):
        return expr.name
    if isinstance(expr, Number):
        return _format_number(expr.value)
    if isinstance(expr, Unary):
        return expr.op + _wrap(expr.operand, _precedence(expr.operand) < _UNARY_PRECEDENCE)
    if isinstance(expr, Binary):
        level = _PRECEDENCE[expr.op]
        left = _wrap(expr.left, _precedence(expr.left) < level)
        return f"{left} {expr.op} {_wrap(expr.right, _precedence(expr.right) <= level)}"
    return f"{expr.fn}({', '.join(to_string(arg) for arg in expr.args)})"


class _NodeError(Exception):
    """An evaluation failure at a node, turned into an ExpressionError by `evaluate`."""

    def __init__(self, reason: str, node: Expr) -> None:
        super().__init__(reason)
        self.reason, self.node = reason, node


_Value = Tensor | float
_BINARY_FNS: dict[str, Callable[[_Value, _Value], _Value]] = {
    "|": or_,
    "&": and_,
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "max": or_,
    "min": and_,
}


def _run(
    expr: Expr, heads: Mapping[str, Tensor], alpha: float, bounds: tuple[Tensor, Tensor] | None
) -> _Value:
    """Recursive evaluation; numbers stay Python floats so that they broadcast as scalars."""
    if isinstance(expr, Number):
        return expr.value
    if isinstance(expr, Head):
        if expr.name not in heads:
            known = ", ".join(sorted(heads)) or "(none)"
            raise _NodeError(f"unknown head {expr.name!r}; known heads: {known}", expr)
        return heads[expr.name]
    if isinstance(expr, Binary):
        left, right = (_run(side, heads, alpha, bounds) for side in (expr.left, expr.right))
        return _BINARY_FNS[expr.op](left, right)
    if isinstance(expr, Call):
        args = [_run(arg, heads, alpha, bounds) for arg in expr.args]
        if expr.fn == "softor":
            return reduce(lambda a, b: soft_or(a, b, alpha), args)
        return reduce(_BINARY_FNS[expr.fn], args)
    operand = _run(expr.operand, heads, alpha, bounds)
    if expr.op == "-":
        return -operand
    if bounds is None:
        raise _NodeError("'~' needs bounds=(q_max, q_min)", expr)
    return not_(operand, *bounds)


def _locate(tree: Expr, target: Expr, twin: Expr) -> int | None:
    """Offset in `twin` (a re-parse of `tree`) of the node that is `target` in `tree`."""
    if tree is target:
        return twin.pos
    for child, twin_child in zip(_children(tree), _children(twin), strict=True):
        found = _locate(child, target, twin_child)
        if found is not None:
            return found
    return None


def evaluate(
    expr: Expr | str,
    heads: Mapping[str, Tensor],
    *,
    alpha: float = 0.0,
    bounds: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Composed values of an expression over equally shaped head tensors (NOT needs bounds).

    `bounds` is (Q_MAX, Q_MIN); `alpha` is the temperature of `softor`. Errors on a tree are
    reported against its canonical text.
    """
    tree = _parse_cached(expr) if isinstance(expr, str) else expr
    try:
        result = _run(tree, heads, alpha, bounds)
    except _NodeError as err:
        if isinstance(expr, str):
            raise ExpressionError(err.reason, expr, err.node.pos) from None
        text = to_string(tree)
        position = _locate(tree, err.node, parse(text))
        raise ExpressionError(err.reason, text, position or 0) from None
    if not isinstance(result, Tensor):
        raise ExpressionError("expression needs at least one head name", to_string(tree), 0)
    return result


def _literal(name: str, value: bool) -> Expr:
    return Head(name) if value else Unary("~", Head(name))


def _goal_atoms(
    names: Sequence[str], membership: Tensor
) -> tuple[list[tuple[bool, ...]], list[int]]:
    """The distinct head patterns (atoms) of the goals, and the atom index of every goal."""
    rows = membership.bool().cpu()
    if rows.dim() != 2 or rows.shape[1] != len(names) or not names:
        raise ValueError(f"membership must be [G, {len(names)}] for heads {list(names)}")
    patterns = [tuple(bool(v) for v in row) for row in rows.tolist()]
    atoms = list(dict.fromkeys(patterns))
    return atoms, [atoms.index(p) for p in patterns]


@lru_cache(maxsize=32)
def _cube_covers(atoms: tuple[tuple[bool, ...], ...]) -> dict[tuple[tuple[int, bool], ...], int]:
    """Every conjunction of literals true for some atom, with the bitmask of the atoms it selects.

    Cached (callers must not mutate the result) because `boolean_tasks` covers every target of
    the same atoms; a literal's atoms are one bitmask, so a cube's cover is their AND.
    """
    width = len(atoms[0])
    literal = {
        (k, v): sum(1 << i for i, atom in enumerate(atoms) if atom[k] == v)
        for k in range(width)
        for v in (False, True)
    }
    everything = (1 << len(atoms)) - 1
    cubes: dict[tuple[tuple[int, bool], ...], int] = {}
    for atom in atoms:
        for keep in range(2**width):
            cube = tuple((k, atom[k]) for k in range(width) if keep >> k & 1)
            if cube not in cubes:
                cubes[cube] = reduce(operator.and_, (literal[lit] for lit in cube), everything)
    return cubes


def set_expression(head_names: Sequence[str], membership: Tensor, target: Tensor) -> str:
    """Compact DNF over the heads that selects exactly the target goals (names a goal set).

    membership [G, K] bool says which goals satisfy which head; target [G] bool is the goal set,
    which must be non-empty and treat goals with equal rows (atoms) alike. The text is a single
    head, a negation or a conjunction where that suffices, else a greedy cover by conjunctions
    of literals; row patterns no goal has are don't-cares. The set of all goals is `h | ~h`.
    """
    names = list(head_names)
    atoms, goal_atom = _goal_atoms(names, membership)
    if target.shape != (len(goal_atom),):
        raise ValueError(f"target must be a [{len(goal_atom)}] goal mask, got {list(target.shape)}")
    wanted = target.bool().cpu().tolist()
    first: dict[int, int] = {}
    for goal, atom in enumerate(goal_atom):
        twin = first.setdefault(atom, goal)
        if wanted[goal] != wanted[twin]:
            raise ValueError(
                f"goals {twin} and {goal} have the same head values, so a target cannot hold "
                "only one of them"
            )
    bits = sum(1 << atom for atom, goal in first.items() if wanted[goal])
    if not bits:
        raise ValueError("target selects no goal; the expressions name non-empty goal sets")
    fits = {c: cover for c, cover in _cube_covers(tuple(atoms)).items() if cover & ~bits == 0}
    chosen, missing = [], bits
    while missing:
        cube = max(fits, key=lambda c: (bin(fits[c] & missing).count("1"), -len(c)))
        chosen.append(cube)
        missing &= ~fits[cube]
    if chosen == [()]:
        terms = [Binary("|", Head(names[0]), _literal(names[0], False))]
    else:
        terms = [
            reduce(lambda a, b: Binary("&", a, b), [_literal(names[k], v) for k, v in c])
            for c in chosen
        ]
    return to_string(reduce(lambda a, b: Binary("|", a, b), terms))


def boolean_tasks(head_names: Sequence[str], membership: Tensor) -> list[tuple[str, Tensor]]:
    """Every distinct non-empty goal set the Boolean algebra over the heads can express.

    membership [G, K] bool says which goals satisfy which head. Goals with equal rows (atoms)
    cannot be told apart, so the tasks are the non-empty unions of atoms, each returned once as
    (expression from `set_expression`, goal mask [G] bool), sorted by the number of literals
    in the expression, then text.
    """
    atoms, goal_atom = _goal_atoms(head_names, membership)
    if len(atoms) > 16:
        raise ValueError(f"{len(atoms)} distinct goal rows give too many tasks to enumerate")
    tasks = []
    for target in range(1, 2 ** len(atoms)):
        mask = torch.tensor([target >> a & 1 for a in goal_atom], dtype=torch.bool)
        text = set_expression(head_names, membership, mask)
        tasks.append((len(_NAME.findall(text)), text, mask.to(membership.device)))
    tasks.sort(key=lambda task: task[:2])
    return [(text, mask) for _, text, mask in tasks]
