"""The expression language over value heads: parser, printer and evaluator.

Expressions such as `0.5*food + water` or `blue & ~square` are parsed by a precedence-climbing
parser over the shared tokenizer of `tokens` (never `eval`) into an immutable tree, printed back
by `to_string`, and evaluated on head tensors of any shape with the operators of `operators`.

The operators and functions, their precedence and what they compute come from one table,
`operator_table`. Precedence, lowest first (as in Python): `|` (OR), `^` (exclusive OR), `&`
(AND), binary `+ -`, `* /`, unary `~` (NOT; `!` is read as a synonym and printed as `~`) and
`-`, atoms (head names, numbers, parentheses, calls `softor/max/min(e1, e2, ...)`).
Binary operators associate to the left. Rules, checked when parsing: the operands of the Boolean
operators (`|`, `^`, `&`, `~`, and the calls) must depend on a head, since a constant is not a task;
`*` needs a constant on at least one side and `/` a non-zero constant divisor, so every
expression stays linear between its Boolean operators; and an expression must name a head.
Nesting is bounded by `tokens.MAX_DEPTH` levels (each parenthesis, call, prefix and binary
operator is one). Errors are `tokens.ExpressionError`s with a caret at the culprit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from torch import Tensor

from composable_rl.languages.operator_table import (
    FUNCTIONS,
    INFIX,
    PREFIX,
    Context,
    MissingBounds,
    Operator,
    canonical,
    fold,
)
from composable_rl.languages.tokens import NAME, ExpressionError, Token, TokenCursor

__all__ = [
    "Binary",
    "Call",
    "Expr",
    "Head",
    "Number",
    "Unary",
    "evaluate",
    "head_names",
    "is_linear",
    "parse",
    "to_string",
]

# prefix operators bind tighter than every infix one, atoms tightest (`operator_table`)
_UNARY_PRECEDENCE = min(op.precedence for op in PREFIX.values())
_LOOSEST = min(op.precedence for op in INFIX.values())
_PREFIX_SYMBOLS = tuple(dict.fromkeys(op.symbol for op in PREFIX.values()))  # synonyms resolved
_ATOM_PRECEDENCE = _UNARY_PRECEDENCE + 1


@dataclass(frozen=True)
class Head:
    """A head's values, by name."""

    name: str
    pos: int = field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME.fullmatch(self.name):
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
    """Prefix operator of `operator_table` ('~' Boolean NOT, '-' negation), by its symbol."""

    op: str
    operand: Expr
    pos: int = field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        _validate(self.op, (self.operand,), _PREFIX_SYMBOLS)


@dataclass(frozen=True)
class Binary:
    """Infix operator of `operator_table` ('|', '&', '+', '-', '*', '/', ...), by its symbol."""

    op: str
    left: Expr
    right: Expr
    pos: int = field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        _validate(self.op, (self.left, self.right), tuple(INFIX))


@dataclass(frozen=True)
class Call:
    """Function call of `operator_table` (softor, max, min) over two or more arguments."""

    fn: str
    args: tuple[Expr, ...]
    pos: int = field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", tuple(self.args))
        _validate(self.fn, self.args, tuple(FUNCTIONS))


Expr = Head | Number | Unary | Binary | Call


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
    if isinstance(tree, Call) or (isinstance(tree, Unary | Binary) and _operator(tree).boolean):
        return False
    return all(is_linear(child) for child in _children(tree))


def _operator(node: Unary | Binary) -> Operator:
    """The table entry of an operator node."""
    return canonical(node.op, 1 if isinstance(node, Unary) else 2)


def _problem(op: str, operands: Sequence[Expr]) -> tuple[str, int | None] | None:
    """Why `op` cannot combine `operands`: (reason, culprit operand index or None for op itself)."""
    constant = [not head_names(operand) for operand in operands]
    if op in FUNCTIONS:
        if len(operands) < 2:
            return f"{op}() needs at least 2 arguments, got {len(operands)}", None
        boolean, rule = True, None
    else:
        entry = canonical(op, len(operands))
        boolean, rule = entry.boolean, entry.rule
    if boolean and any(constant):
        return f"'{op}' needs head values, not a constant", constant.index(True)
    if rule is not None:
        return rule(constant, lambda i: _run(operands[i], {}, Context()))
    return None


def _validate(op: str, operands: Sequence[Expr], allowed: Sequence[str]) -> None:
    """Constructor check for hand-built trees; the parser reports the same rules with a caret."""
    if op not in allowed:
        raise ValueError(f"unknown operator or function {op!r}; expected one of {list(allowed)}")
    problem = _problem(op, operands)
    if problem is not None:
        raise ValueError(problem[0])


class _Parser(TokenCursor):
    """Precedence climbing over the binary operators, then unary operators, then atoms.

    Each reading method returns the expression and its depth in levels (see `tokens`), so
    that a node past `tokens.MAX_DEPTH` is refused where it is written.
    """

    def check(self, token: Token, operands: Sequence[Expr]) -> None:
        """Raises the rule `_problem` finds, with the caret at the culprit operand or the token."""
        problem = _problem(token.text, operands)
        if problem is not None:
            reason, culprit = problem
            raise self.error(reason, token.pos if culprit is None else operands[culprit].pos)

    def parse(self) -> Expr:
        """The whole text as one expression that names a head."""
        if self.peek.kind == "end":
            raise self.error("empty expression", self.peek.pos)
        expr, _ = self.binary(_LOOSEST)
        if self.peek.kind != "end":
            raise self.error(f"trailing input {self.peek.describe()}", self.peek.pos)
        if not head_names(expr):
            raise self.error("expression needs at least one head name", expr.pos)
        return expr

    def binary(self, precedence: int) -> tuple[Expr, int]:
        """A left-associated chain of the binary operators that bind at least as tightly as
        `precedence`, over unary expressions."""
        left, depth = self.unary()
        while self.peek.kind == "symbol" and self.binds(self.peek.text) >= precedence:
            token = self.take()
            right, right_depth = self.binary(INFIX[token.text].precedence + 1)
            self.check(token, (left, right))
            depth = self.deeper(max(depth, right_depth), token)
            left = Binary(token.text, left, right, left.pos)
        return left, depth

    @staticmethod
    def binds(symbol: str) -> int:
        """The precedence of an infix operator; 0 (binding nothing) for any other symbol."""
        return INFIX[symbol].precedence if symbol in INFIX else 0

    def unary(self) -> tuple[Expr, int]:
        """A prefix operator ('~' or '!', '-') applied to a unary expression, or an atom."""
        if self.peek.kind == "symbol" and self.peek.text in PREFIX:
            written = self.take()
            token = Token(written.kind, PREFIX[written.text].symbol, written.pos)
            with self.nested(token):
                operand, depth = self.unary()
            self.check(token, (operand,))
            return Unary(token.text, operand, token.pos), depth + 1
        return self.atom()

    def atom(self) -> tuple[Expr, int]:
        """A number, a head name, a call or a parenthesised expression."""
        token = self.take()
        if token.kind == "number":
            return Number(float(token.text), token.pos), 0
        if token.kind == "name" and self.peek.text == "(":
            return self.call(token)
        if token.kind == "name":
            return Head(token.text, token.pos), 0
        if token.text == "(":
            with self.nested(token):
                expr, depth = self.binary(_LOOSEST)
                self.close(token)
            return expr, depth + 1
        raise self.error(f"unexpected {token.describe()}", token.pos)

    def call(self, name: Token) -> tuple[Call, int]:
        """The arguments of a call to the function `name`, whose '(' is next."""
        if name.text not in FUNCTIONS:
            raise self.error(
                f"unknown function {name.text!r}; known functions: {', '.join(FUNCTIONS)}",
                name.pos,
            )
        opening = self.take()
        args: list[tuple[Expr, int]] = []
        with self.nested(opening):
            if self.peek.text != ")":
                args.append(self.binary(_LOOSEST))
                while self.peek.text == ",":
                    self.take()
                    args.append(self.binary(_LOOSEST))
            self.close(opening)
        exprs = [expr for expr, _ in args]
        self.check(name, exprs)
        return Call(name.text, tuple(exprs), name.pos), 1 + max(depth for _, depth in args)

    def close(self, opening: Token) -> None:
        """Consumes the ')' that closes `opening`."""
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
    """How tightly the node's top operator binds (atoms bind tightest)."""
    if isinstance(expr, Binary):
        return INFIX[expr.op].precedence
    if isinstance(expr, Unary):
        return _UNARY_PRECEDENCE
    return _ATOM_PRECEDENCE


def _wrap(expr: Expr, parenthesise: bool) -> str:
    """The canonical text of a sub-expression, in parentheses if asked."""
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
        level = INFIX[expr.op].precedence
        left = _wrap(expr.left, _precedence(expr.left) < level)
        return f"{left} {expr.op} {_wrap(expr.right, _precedence(expr.right) <= level)}"
    return f"{expr.fn}({', '.join(to_string(arg) for arg in expr.args)})"


class _NodeError(Exception):
    """An evaluation failure at a node, turned into an ExpressionError by `evaluate`."""

    def __init__(self, reason: str, node: Expr) -> None:
        super().__init__(reason)
        self.reason, self.node = reason, node


def _run(expr: Expr, heads: Mapping[str, Tensor], context: Context) -> Tensor | float:
    """Recursive evaluation; numbers stay Python floats so that they broadcast as scalars."""
    if isinstance(expr, Number):
        return expr.value
    if isinstance(expr, Head):
        if expr.name not in heads:
            known = ", ".join(sorted(heads)) or "(none)"
            raise _NodeError(f"unknown head {expr.name!r}; known heads: {known}", expr)
        return heads[expr.name]
    operands = [_run(child, heads, context) for child in _children(expr)]
    if isinstance(expr, Call):
        return fold(FUNCTIONS[expr.fn], operands, context)
    try:
        return _operator(expr).apply(*operands, context)
    except MissingBounds as err:
        raise _NodeError(str(err), expr) from None


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
        result = _run(tree, heads, Context(alpha, bounds))
    except _NodeError as err:
        if isinstance(expr, str):
            raise ExpressionError(err.reason, expr, err.node.pos) from None
        text = to_string(tree)
        position = _locate(tree, err.node, parse(text))
        raise ExpressionError(err.reason, text, position or 0) from None
    if not isinstance(result, Tensor):
        raise ExpressionError("expression needs at least one head name", to_string(tree), 0)
    return result
