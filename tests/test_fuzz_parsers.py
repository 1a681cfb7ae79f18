"""Seeded fuzzing of the formula languages: every input parses or raises the project's own error.

Over 10,000 inputs in all, for the expression parser and the LTL parser: token soups over each
grammar's alphabet with junk characters, random well-formed formulas (mutated now and then),
deep nesting of every prefix and bracket, and long operator chains. Whatever parses must also
print back to itself and evaluate (expressions) or translate into a reward machine (small LTL
formulas); a RecursionError, IndexError or any other exception is a bug.
"""

import random
from collections.abc import Callable, Iterator

import pytest
import torch

from composable_rl.languages.expressions import evaluate, parse, to_string
from composable_rl.languages.ltl import format_ltl, from_ltl, holds, parse_ltl
from composable_rl.languages.reward_machine import RewardMachineError
from composable_rl.languages.tokens import MAX_DEPTH, ExpressionError

SEED = 20_240_601
NAMES = ["a", "b", "blue", "max", "min", "softor", "F", "G", "X", "true", "false", "_x1"]
NUMBERS = ["0", "2", "0.5", ".5", "1.", "1e3", "1e-3", "1e999", "3abc", "1e", "00", "9" * 400]
SYMBOLS = list("|&+-*/~!(),")
JUNK = list("$#@[]{}^%=<>?\"'\\;:`\t\n\x00é∧") + [" ", "  ", "(("]
CLOSERS = {"(": ")", "max(a, ": ")", "softor(": ", b)", "F(": ")", "G(": ")", "X(": ")"}
CLOSERS |= {"!(": ")", "~(": ")"}
PREFIXES = [*CLOSERS, "~", "!", "-", "- ", "F ", "G "]
OPERATORS = ["&", "|", "+", "-", "*", "/", " & ", " | "]
HEADS = {name: torch.tensor([0.0, 1.0, 2.0]) for name in ("a", "b", "blue", "_x1")}
BOUNDS = (torch.full((3,), 3.0), torch.zeros(3))
PROPS = ("a", "b")


def soups(rng: random.Random, count: int, with_junk: bool) -> Iterator[str]:
    """Random strings of the grammars' tokens, with junk characters now and then."""
    pool = NAMES + NUMBERS + SYMBOLS + SYMBOLS + (JUNK if with_junk else [])
    for _ in range(count):
        yield " ".join(rng.choices(pool, k=rng.randint(0, 25)))


def expression(rng: random.Random, depth: int) -> str:
    """A random well-formed (though not always valid) expression text."""
    if depth == 0 or rng.random() < 0.25:
        return rng.choice(["a", "b", "blue", "_x1", "2", "0.5", "0"])
    shape = rng.randrange(5)
    inner = expression(rng, depth - 1)
    if shape == 0:
        return f"{rng.choice('~!-')}{inner}"
    if shape == 1:
        return f"({inner})"
    if shape == 2:
        args = ", ".join(expression(rng, depth - 1) for _ in range(rng.randint(1, 3)))
        return f"{rng.choice(['max', 'min', 'softor'])}({args})"
    return f"{inner} {rng.choice('|&+-*/')} {expression(rng, depth - 1)}"


def formula(rng: random.Random, depth: int) -> str:
    """A random well-formed (though not always valid) LTL text."""
    if depth == 0 or rng.random() < 0.25:
        return rng.choice(["a", "b", "!a", "~b", "true", "false"])
    shape = rng.randrange(4)
    inner = formula(rng, depth - 1)
    if shape == 0:
        return f"{rng.choice(['F', 'G', 'F ', 'G ', '!', 'X'])}({inner})"
    if shape == 1:
        return f"({inner})"
    return f"{inner} {rng.choice('|&')} {formula(rng, depth - 1)}"


def mutated(rng: random.Random, text: str) -> str:
    """`text` with one character deleted, doubled or replaced, half of the time."""
    if not text or rng.random() < 0.5:
        return text
    i = rng.randrange(len(text))
    replacement = rng.choice(["", text[i] * 2, rng.choice(SYMBOLS + JUNK)])
    return text[:i] + replacement + text[i + 1 :]


def nestings(rng: random.Random, count: int) -> Iterator[str]:
    """Deep nesting of one prefix or bracket, closed, left open or closed too often."""
    for _ in range(count):
        prefix = rng.choice(PREFIXES)
        levels = rng.choice([MAX_DEPTH // 2 - 1, MAX_DEPTH - 1, MAX_DEPTH, rng.randint(1, 1500)])
        closer = CLOSERS.get(prefix, "")
        close = rng.choice([levels, levels - 1, levels + 1, 0])
        yield prefix * levels + rng.choice(["a", "blue", "2", ""]) + closer * max(close, 0)


def chains(rng: random.Random, count: int) -> Iterator[str]:
    """Long chains of one binary operator, sometimes with a nested or broken link."""
    for _ in range(count):
        links = rng.choice([MAX_DEPTH, MAX_DEPTH + 1, rng.randint(2, 3000)])
        operands = rng.choices(["a", "blue", "2", "(a)", "~a", "F a"], k=links)
        if rng.random() < 0.2:
            operands[rng.randrange(links)] = rng.choice(["", "(", ")", "$"])
        yield rng.choice(OPERATORS).join(operands)


def inputs(kind: Callable[[random.Random, int], str], count: int, seed: int) -> Iterator[str]:
    """`count` texts of a random-formula generator, mutated half of the time."""
    rng = random.Random(seed)
    for _ in range(count):
        yield mutated(rng, kind(rng, rng.randint(0, 8)))


def corpus(kind: Callable[[random.Random, int], str], seed: int) -> list[str]:
    """5,250 texts for one parser: soups, random formulas, nestings and chains."""
    rng = random.Random(seed)
    return [
        *soups(rng, 1500, with_junk=True),
        *soups(rng, 1000, with_junk=False),
        *inputs(kind, 2000, seed + 1),
        *nestings(rng, 500),
        *chains(rng, 250),
    ]


def check_expression(text: str) -> None:
    """Parses, prints back and evaluates, or raises ExpressionError."""
    try:
        tree = parse(text)
    except ExpressionError:
        return
    assert parse(to_string(tree)) == tree, text
    try:
        evaluate(tree, HEADS, alpha=0.5, bounds=BOUNDS)
    except ExpressionError as err:
        assert "unknown head" in err.reason, text


def check_ltl(text: str) -> None:
    """Parses, prints back and evaluates on a trace, and translates when small, or raises an
    ExpressionError (parsing) or a RewardMachineError (unknown names, unsatisfiable)."""
    try:
        tree = parse_ltl(text)
    except ExpressionError:
        return
    assert parse_ltl(format_ltl(tree)) == tree, text
    holds(tree, [frozenset("a"), frozenset(), frozenset("ab")])
    if len(text) <= 60:
        try:
            machine = from_ltl(text, PROPS)
        except (ExpressionError, RewardMachineError):
            return
        assert machine.initial not in machine.accepting and machine.accepting


@pytest.mark.parametrize(
    ("check", "kind", "seed"),
    [(check_expression, expression, SEED), (check_ltl, formula, SEED + 7)],
    ids=["expressions", "ltl"],
)
def test_every_input_parses_or_raises_the_projects_error(check, kind, seed):
    texts = corpus(kind, seed)
    assert len(texts) == 5250
    for text in texts:
        try:
            check(text)
        except AssertionError:
            raise
        except Exception as err:  # the bug this test is for: any error but the project's own
            pytest.fail(f"{type(err).__name__} for {text[:80]!r}: {err}")
