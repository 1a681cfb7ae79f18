"""Tokens shared by the formula languages: the expression language and the LTL fragment.

`tokenize` splits a text into names, numbers and one-character symbols with their offsets, so
both hand-written parsers read the same names and numbers; `TokenCursor` walks the tokens and
bounds how deeply a text may nest, and `ExpressionError` is the error both raise, with a caret
under the culprit in the text.

Nesting is bounded by `MAX_DEPTH` levels: every parenthesis, call and prefix operator opens a
level for what it encloses, and every operator node adds one above its operands (a chain
`a & b & c` is two levels in the expression language, `(a & b) & c`, and one in LTL, whose `&`
and `|` take any number of operands). Trees then stay shallow enough for every recursive pass
over them (parsing, simplifying, printing, evaluating) to stay far from Python's recursion limit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from composable_rl.languages.operator_table import SYMBOLS

__all__ = ["MAX_DEPTH", "NAME", "ExpressionError", "Token", "TokenCursor", "tokenize"]

MAX_DEPTH = 100  # levels of nesting; a parser recursion level costs a few Python frames

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NUMBER_RUN = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d*)?[A-Za-z0-9_.]*")


class ExpressionError(ValueError):
    """A malformed or unevaluable expression; the message points a caret at the culprit."""

    def __init__(self, reason: str, text: str, position: int) -> None:
        line = re.sub(r"\s", " ", text)
        super().__init__(f"{reason} in expression:\n  {line}\n  {' ' * position}^")
        self.reason, self.text, self.position = reason, text, position


@dataclass(frozen=True)
class Token:
    """One token of a text and its offset there."""

    kind: str  # "name", "number", "symbol" or "end"
    text: str
    pos: int

    def describe(self) -> str:
        """How error messages name the token."""
        return "end of expression" if self.kind == "end" else repr(self.text)


def tokenize(text: str) -> list[Token]:
    """Names, numbers and one-character symbols with their offsets, ending with an end token."""
    tokens, pos = [], 0
    while pos < len(text):
        char = text[pos]
        if char.isspace():
            pos += 1
        elif char in SYMBOLS:
            tokens.append(Token("symbol", char, pos))
            pos += 1
        elif (run := _NUMBER_RUN.match(text, pos)) is not None:
            literal = run.group()
            if not _NUMBER.fullmatch(literal) or not math.isfinite(float(literal)):
                raise ExpressionError(f"bad number {literal!r}", text, pos)
            tokens.append(Token("number", literal, pos))
            pos = run.end()
        elif (name := NAME.match(text, pos)) is not None:
            tokens.append(Token("name", name.group(), pos))
            pos = name.end()
        else:
            raise ExpressionError(f"unexpected character {char!r}", text, pos)
    tokens.append(Token("end", "", len(text)))
    return tokens


class TokenCursor:
    """A position in the token list of a text, and errors that point a caret into the text.

    The base class of the parsers: they read with `peek` and `take`, raise `error`, and open
    a level of nesting with `nested` (top down) or count one with `deeper` (bottom up).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0  # levels opened by the enclosing parentheses, calls and prefix operators

    @property
    def peek(self) -> Token:
        """The next token, not consumed."""
        return self.tokens[self.index]

    def take(self) -> Token:
        """Consumes and returns the next token."""
        token = self.tokens[self.index]
        self.index += 1
        return token

    def error(self, reason: str, pos: int) -> ExpressionError:
        """An error for `reason` with the caret at offset `pos` of the text."""
        return ExpressionError(reason, self.text, pos)

    def deeper(self, depth: int, token: Token) -> int:
        """`depth` + 1: the levels of a node made by `token` over operands `depth` deep, refused
        with the caret at `token` when it and the enclosing levels exceed MAX_DEPTH."""
        if self.depth + depth + 1 > MAX_DEPTH:
            raise self.error(f"nesting deeper than {MAX_DEPTH} levels", token.pos)
        return depth + 1

    @contextmanager
    def nested(self, token: Token) -> Iterator[None]:
        """One more enclosing level, opened by `token`, while the parser reads what it encloses."""
        self.deeper(0, token)
        self.depth += 1
        yield
        self.depth -= 1
