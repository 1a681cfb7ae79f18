"""The one table of the expression language's operators and functions.

Every other part of the language reads this table: the tokenizer (`tokens`) its symbols, the
parser and printer (`expressions`) their arity, precedence and synonyms, the evaluator what each
computes, the parse rules which operands each accepts, and reward machines (`reward_machine`)
which operators may join the propositions of an edge (the Boolean ones). Adding an operator is
one entry here (plus its tests).

An operator computes on head values (tensors) or constants (floats) given a `Context`: the
temperature of soft operators and the bounds (Q_MAX, Q_MIN) that Boolean NOT needs.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import reduce

from torch import Tensor

from composable_rl.maths.operators import and_, not_, or_, soft_or

__all__ = [
    "FUNCTIONS",
    "INFIX",
    "OPERATORS",
    "PREFIX",
    "SYMBOLS",
    "Context",
    "Function",
    "Operator",
    "canonical",
    "check_table",
    "fold",
]

Value = Tensor | float
# Why an operator cannot take these operands: (reason, index of the culprit operand, or None
# for the operator itself), or None when it can. `constant[i]` says operand i names no head and
# `value(i)` computes such an operand.
Rule = Callable[[Sequence[bool], Callable[[int], Value]], tuple[str, int | None] | None]


@dataclass(frozen=True)
class Context:
    """What evaluation knows beyond the operands: the temperature `alpha` of soft operators and
    the bounds (Q_MAX, Q_MIN) of Boolean NOT (None where the heads have none)."""

    alpha: float = 0.0
    bounds: tuple[Tensor, Tensor] | None = None

    def not_(self, value: Value, symbol: str) -> Value:
        """Boolean NOT of `value` within the bounds; `symbol` names the operator that needs them."""
        if self.bounds is None:
            raise MissingBounds(symbol)
        return not_(value, *self.bounds)


class MissingBounds(Exception):
    """An operator needed bounds=(q_max, q_min) that evaluation was not given."""

    def __init__(self, symbol: str) -> None:
        super().__init__(f"'{symbol}' needs bounds=(q_max, q_min)")


@dataclass(frozen=True)
class Operator:
    """A prefix (arity 1) or infix (arity 2, left-associative) operator.

    `precedence`: how tightly it binds, higher tighter (every prefix operator binds tighter than
    every infix one). `boolean`: its operands must be head values, and it may join the
    propositions of a reward-machine edge. `synonyms`: other symbols read as this one (printed
    as `symbol`). `rule`: a further check of its operands (see `Rule`).
    """

    symbol: str
    arity: int
    precedence: int
    boolean: bool
    apply: Callable[..., Value]  # (*operands, context) -> value
    synonyms: tuple[str, ...] = ()
    rule: Rule | None = None


@dataclass(frozen=True)
class Function:
    """A call `name(e1, e2, ...)` of two or more head-valued arguments, folded left by `apply`."""

    name: str
    apply: Callable[[Value, Value, Context], Value]


def _needs_constant_factor(
    constant: Sequence[bool], _value: Callable[[int], Value]
) -> tuple[str, int | None] | None:
    return None if any(constant) else ("'*' needs a constant on one side", None)


def _needs_constant_divisor(
    constant: Sequence[bool], value: Callable[[int], Value]
) -> tuple[str, int | None] | None:
    if not constant[1]:
        return "'/' needs a constant divisor", 1
    return ("division by zero", 1) if value(1) == 0 else None


OPERATORS: tuple[Operator, ...] = (
    Operator("|", 2, 10, True, lambda a, b, _c: or_(a, b)),
    # exclusive OR: (a & ~b) | (~a & b)
    Operator(
        "^", 2, 15, True, lambda a, b, c: or_(and_(a, c.not_(b, "^")), and_(c.not_(a, "^"), b))
    ),
    Operator("&", 2, 20, True, lambda a, b, _c: and_(a, b)),
    Operator("+", 2, 30, False, lambda a, b, _c: operator.add(a, b)),
    Operator("-", 2, 30, False, lambda a, b, _c: operator.sub(a, b)),
    Operator("*", 2, 40, False, lambda a, b, _c: a * b, rule=_needs_constant_factor),
    Operator("/", 2, 40, False, lambda a, b, _c: a / b, rule=_needs_constant_divisor),
    # prefix: NOT is written `~` or, as in the reward machines of Toro Icarte et al., `!`
    Operator("~", 1, 50, True, lambda a, c: c.not_(a, "~"), synonyms=("!",)),
    Operator("-", 1, 50, False, lambda a, _c: -a),
)

FUNCTIONS: dict[str, Function] = {
    "max": Function("max", lambda a, b, _c: or_(a, b)),
    "min": Function("min", lambda a, b, _c: and_(a, b)),
    "softor": Function("softor", lambda a, b, c: soft_or(a, b, c.alpha)),
}


def check_table(operators: Sequence[Operator]) -> None:
    """What the tokenizer and the parser assume of every entry, refused at import: symbols of
    one character, and prefix operators that all bind alike and tighter than every infix one."""
    long = [s for op in operators for s in (op.symbol, *op.synonyms) if len(s) != 1]
    if long:
        raise ValueError(f"operator symbols must be one character, got {long}")
    prefix = {op.precedence for op in operators if op.arity == 1}
    infix = {op.precedence for op in operators if op.arity == 2}
    if len(prefix) != 1 or min(prefix) <= max(infix):
        raise ValueError("prefix operators must share one precedence above every infix one")


check_table(OPERATORS)
INFIX: dict[str, Operator] = {op.symbol: op for op in OPERATORS if op.arity == 2}
PREFIX: dict[str, Operator] = {
    symbol: op for op in OPERATORS if op.arity == 1 for symbol in (op.symbol, *op.synonyms)
}
# every one-character symbol of the language: operators, synonyms, parentheses and commas
SYMBOLS = "".join(dict.fromkeys([*INFIX, *PREFIX, "(", ")", ","]))


def canonical(symbol: str, arity: int) -> Operator:
    """The operator written `symbol` with `arity` operands (synonyms resolved)."""
    return (PREFIX if arity == 1 else INFIX)[symbol]


def fold(function: Function, args: Sequence[Value], context: Context) -> Value:
    """A call's value: its arguments folded left by the function."""
    return reduce(lambda a, b: function.apply(a, b, context), args)
