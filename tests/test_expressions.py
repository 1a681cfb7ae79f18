"""The expression language: parsing, printing, errors and evaluation."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from composable_rl.languages.expressions import (
    Binary,
    Call,
    Expr,
    Head,
    Number,
    Unary,
    evaluate,
    head_names,
    is_linear,
    parse,
    to_string,
)
from composable_rl.languages.operator_table import OPERATORS
from composable_rl.languages.tokens import MAX_DEPTH, ExpressionError

# the operators that combine any two head values, and the prefix ones, as the table lists them
FREE_INFIX = sorted(op.symbol for op in OPERATORS if op.arity == 2 and op.rule is None)
PREFIXES = sorted(op.symbol for op in OPERATORS if op.arity == 1)


@pytest.mark.parametrize(
    ("text", "same_as"),
    [
        ("a | b & c", "a | (b & c)"),
        ("a & b | c", "(a & b) | c"),
        ("~a & b", "(~a) & b"),
        ("-a * 2", "(-a) * 2"),
        ("0.5*a + b", "(0.5 * a) + b"),
        ("a + b & c", "(a + b) & c"),
        ("a - b - c", "(a - b) - c"),
        ("a / 2 / 4", "(a / 2) / 4"),
        ("~~a", "~(~a)"),
        ("a+b|c&d", "(a + b) | (c & d)"),
        ("a | b ^ c & d", "a | (b ^ (c & d))"),
        ("a ^ b ^ c", "(a ^ b) ^ c"),
    ],
)
def test_precedence(text, same_as):
    assert parse(text) == parse(same_as)


def test_trees_and_canonical_text():
    a, b, c = Head("a"), Head("b"), Head("c")
    assert parse("a | b & c") == Binary("|", a, Binary("&", b, c))
    assert parse("0.5*a + b") == Binary("+", Binary("*", Number(0.5), a), b)
    assert parse("-a * 2") == Binary("*", Unary("-", a), Number(2))
    assert parse(" softor( a ,b,c ) ") == Call("softor", (a, b, c))
    assert parse("max") == Head("max")
    for text in ("2*a", "2.*a", ".5*a", "1e-3*a", "1E+2*a", "0.25*a"):
        assert parse(text).left.value == float(text[:-2])
    assert to_string(parse("((a|b))|c")) == "a | b | c"
    assert to_string(parse("a|(b|c)")) == "a | (b | c)"
    assert to_string(parse("-(a+b)*2.0 - -c/1e-05")) == "-(a + b) * 2 - -c / 1e-05"
    assert to_string(parse("~(a&b)&~c")) == "~(a & b) & ~c"


def test_offsets_point_at_node_starts():
    tree = parse("  blue & ~(square | red)")
    assert (tree.pos, tree.left.pos, tree.right.pos, tree.right.operand.pos) == (2, 2, 9, 11)
    assert parse("x + max(a, b)").right.pos == 4


NAMES = st.sampled_from(["a", "b", "blue", "_x1", "max"])
NUMBERS = st.floats(0, 1e6, allow_nan=False, allow_infinity=False).map(abs).map(Number)
POSITIVE = st.floats(1e-3, 1e3).map(Number)
CONSTANTS = st.recursive(
    NUMBERS,
    lambda inner: st.one_of(
        st.builds(Unary, st.just("-"), inner),
        st.builds(Binary, st.sampled_from("+-*"), inner, inner),
        st.builds(Binary, st.just("/"), inner, POSITIVE),
    ),
    max_leaves=3,
)


def _values(inner: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    """One level of head-dependent expressions over `inner`."""
    return st.one_of(
        st.builds(Unary, st.sampled_from(PREFIXES), inner),
        st.builds(Binary, st.sampled_from(FREE_INFIX), inner, inner),
        st.builds(Binary, st.sampled_from("+-"), inner, CONSTANTS),
        st.builds(Binary, st.sampled_from("+-*"), CONSTANTS, inner),
        st.builds(Binary, st.sampled_from("*/"), inner, POSITIVE),
        st.builds(
            Call, st.sampled_from(["softor", "max", "min"]), st.lists(inner, min_size=2, max_size=3)
        ),
    )


EXPRESSIONS = st.recursive(st.builds(Head, NAMES), _values, max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(EXPRESSIONS)
def test_round_trip(expr):
    text = to_string(expr)
    assert parse(text) == expr
    assert to_string(parse(text)) == text


@settings(max_examples=50, deadline=None)
@given(EXPRESSIONS)
def test_head_names_and_evaluation_of_trees_match_text(expr):
    assert head_names(expr) == head_names(to_string(expr)) <= {"a", "b", "blue", "_x1", "max"}
    heads = {name: torch.randn(3, dtype=torch.float64) for name in ("a", "b", "blue", "_x1", "max")}
    bounds = (torch.full((3,), 2.0, dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
    from_tree = evaluate(expr, heads, alpha=0.5, bounds=bounds)
    from_text = evaluate(to_string(expr), heads, alpha=0.5, bounds=bounds)
    assert torch.equal(from_tree.isnan(), from_text.isnan())
    assert torch.allclose(from_tree, from_text, equal_nan=True)


def _caret_column(message: str) -> int:
    lines = message.splitlines()
    assert lines[-1].strip() == "^" and lines[-2].startswith("  ")
    return len(lines[-1]) - 3  # two spaces of indent, then the column's worth of spaces


@pytest.mark.parametrize(
    ("text", "reason", "column"),
    [
        ("blue & ~)square", "unexpected ')'", 8),
        ("blue $ red", "unexpected character '$'", 5),
        ("blue & ", "unexpected end of expression", 7),
        ("blue & | red", "unexpected '|'", 7),
        ("max(a,)", "unexpected ')'", 6),
        ("(blue & red", "missing ')' to close the '(' at column 0", 11),
        ("max(a, b", "missing ')' to close the '(' at column 3", 8),
        ("(a b)", "missing ')' to close the '(' at column 0", 3),
        ("blue red", "trailing input 'red'", 5),
        ("blue)", "trailing input ')'", 4),
        ("", "empty expression", 0),
        ("   ", "empty expression", 3),
        ("2 * 1e", "bad number '1e'", 4),
        ("1.2.3 * a", "bad number '1.2.3'", 0),
        ("a + 2blue", "bad number '2blue'", 4),
        ("1e999 * a", "bad number '1e999'", 0),
        ("a | foo(b, c)", "unknown function 'foo'; known functions: max, min, softor", 4),
        ("max(a)", "max() needs at least 2 arguments, got 1", 0),
        ("a & softor()", "softor() needs at least 2 arguments, got 0", 4),
        ("2 & blue", "'&' needs head values, not a constant", 0),
        ("blue | (1 + 2)", "'|' needs head values, not a constant", 8),
        ("~3 + a", "'~' needs head values, not a constant", 1),
        ("min(a, -1)", "'min' needs head values, not a constant", 7),
        ("a * b", "'*' needs a constant on one side", 2),
        ("2 / a", "'/' needs a constant divisor", 4),
        ("a / (1 - 1)", "division by zero", 5),
        ("1 + 2", "expression needs at least one head name", 0),
    ],
)
def test_parse_errors_point_a_caret(text, reason, column):
    with pytest.raises(ExpressionError) as info:
        parse(text)
    err = info.value
    assert isinstance(err, ValueError)
    assert str(err).splitlines()[0] == f"{reason} in expression:"
    assert str(err).splitlines()[1] == "  " + text
    assert (err.reason, err.position) == (reason, column)
    assert _caret_column(str(err)) == column


def test_error_message_layout():
    with pytest.raises(ExpressionError) as info:
        parse("blue & ~)square")
    assert str(info.value) == "unexpected ')' in expression:\n  blue & ~)square\n          ^"
    with pytest.raises(ExpressionError) as info:
        parse("a &\n\t)")
    assert str(info.value).splitlines()[1:] == ["  a &  )", "       ^"]


def test_nesting_is_bounded_where_it_is_written():
    """MAX_DEPTH levels parse, the next one is refused with the caret at the token that opens
    it; brackets, calls, prefix and binary operators each count, chains included."""
    fits = ["(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH, "~" * MAX_DEPTH + "a"]
    fits += [" & ".join(["a"] * (MAX_DEPTH + 1)), "-" * (MAX_DEPTH - 1) + "max(a, b)"]
    for text in fits:
        tree = parse(text)
        assert parse(to_string(tree)) == tree
    too_deep = [
        ("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1), MAX_DEPTH),
        ("~" * 500 + "a", MAX_DEPTH),
        (" & ".join(["a"] * (MAX_DEPTH + 2)), 4 * MAX_DEPTH + 2),
        ("(" * MAX_DEPTH + "a & b" + ")" * MAX_DEPTH, MAX_DEPTH + 2),
        ("-" * MAX_DEPTH + "max(a, b)", MAX_DEPTH + 3),
    ]
    for text, column in too_deep:
        with pytest.raises(ExpressionError) as info:
            parse(text)
        assert info.value.reason == f"nesting deeper than {MAX_DEPTH} levels"
        assert info.value.position == column, text


def test_hand_built_trees_are_validated():
    with pytest.raises(ValueError, match="constant"):
        Binary("&", Number(2), Head("a"))
    with pytest.raises(ValueError, match="one side"):
        Binary("*", Head("a"), Head("b"))
    with pytest.raises(ValueError, match="unknown operator"):
        Unary("!", Head("a"))
    with pytest.raises(ValueError, match="unknown operator"):
        Call("sum", (Head("a"), Head("b")))
    with pytest.raises(ValueError, match="non-negative"):
        Number(-1.0)
    with pytest.raises(ValueError, match="identifier"):
        Head("not a name")


def test_evaluate_by_hand():
    heads = {
        "a": torch.tensor([[1.0, 2.0], [3.0, -4.0]]),
        "b": torch.tensor([[0.0, 5.0], [1.0, -1.0]]),
    }
    q_max, q_min = torch.full((2, 2), 10.0), torch.full((2, 2), -10.0)
    assert evaluate("a | b", heads).tolist() == [[1.0, 5.0], [3.0, -1.0]]
    assert evaluate("a & ~b", heads, bounds=(q_max, q_min)).tolist() == [[0.0, -5.0], [-1.0, -4.0]]
    assert evaluate("0.5*a + b/2 - 1", heads).tolist() == [[-0.5, 2.5], [1.0, -3.5]]
    assert evaluate("-a * 2", heads).tolist() == [[-2.0, -4.0], [-6.0, 8.0]]
    assert evaluate("max(a, b, -a)", heads).tolist() == [[1.0, 5.0], [3.0, 4.0]]
    assert evaluate("min(a, b, 3 - a)", heads).tolist() == [[0.0, 1.0], [0.0, -4.0]]
    assert evaluate("~~a", heads, bounds=(q_max, q_min)).tolist() == heads["a"].tolist()
    expected = 0.5 * torch.logaddexp(heads["a"] / 0.5, heads["b"] / 0.5)
    assert torch.allclose(evaluate("softor(a, b)", heads, alpha=0.5), expected)
    world = {"a": torch.randn(2, 3, 4), "b": torch.randn(2, 3, 4)}
    assert torch.equal(evaluate("a & b", world), torch.minimum(world["a"], world["b"]))


def test_evaluate_errors_point_at_the_culprit():
    heads = {"blue": torch.zeros(2), "square": torch.ones(2)}
    with pytest.raises(ExpressionError) as info:
        evaluate("blue & ~square", heads)
    assert info.value.reason == "'~' needs bounds=(q_max, q_min)" and info.value.position == 7
    with pytest.raises(ExpressionError) as info:
        evaluate("blue | red", heads)
    assert info.value.reason == "unknown head 'red'; known heads: blue, square"
    assert _caret_column(str(info.value)) == 7
    tree = parse("blue|(square&purple)")
    with pytest.raises(ExpressionError) as info:
        evaluate(tree, heads)
    assert info.value.text == "blue | square & purple" and info.value.position == 16
    with pytest.raises(ExpressionError, match="expression needs at least one head name"):
        evaluate(Binary("+", Number(1), Number(2)), heads)


def test_head_names():
    assert head_names("0.5*food + water & ~food") == {"food", "water"}
    assert head_names(parse("softor(a, max(b, c))")) == {"a", "b", "c"}


def test_bang_is_a_synonym_of_not():
    assert parse("f & !n") == parse("f & ~n")
    assert parse("!!a | !(b & c)") == parse("~~a | ~(b & c)")
    assert to_string(parse("f & !n")) == "f & ~n"
    assert isinstance(parse("!a"), Unary)
    with pytest.raises(ExpressionError) as info:
        parse("a & !2")
    assert info.value.reason == "'~' needs head values, not a constant"
    assert info.value.position == 5
    with pytest.raises(ExpressionError) as info:
        parse("a & !")
    assert (info.value.reason, info.value.position) == ("unexpected end of expression", 5)


def test_is_linear_tells_weighted_sums_from_boolean_expressions():
    assert is_linear("0.5*blue + square - purple / 2")
    assert is_linear("-(blue + 2 * square)")
    for text in ("blue & square", "~blue", "blue | square", "softor(blue, square)", "0.5*(a | b)"):
        assert not is_linear(text), text


def test_exclusive_or_is_or_of_the_two_differences():
    a, b = torch.tensor([0.0, 1.0, 0.0, 1.0]), torch.tensor([0.0, 0.0, 1.0, 1.0])
    truth = evaluate("a ^ b", {"a": a, "b": b}, bounds=(torch.ones(4), torch.zeros(4)))
    assert truth.tolist() == [0.0, 1.0, 1.0, 0.0]
    heads = {"a": torch.randn(5, 3), "b": torch.randn(5, 3)}
    bounds = (torch.full((5, 3), 4.0), torch.full((5, 3), -4.0))
    spelled = evaluate("(a & ~b) | (~a & b)", heads, bounds=bounds)
    assert torch.equal(evaluate("a ^ b", heads, bounds=bounds), spelled)
    with pytest.raises(ExpressionError) as info:
        evaluate("a ^ b", heads)
    assert info.value.reason == "'^' needs bounds=(q_max, q_min)" and info.value.position == 0


def test_the_table_refuses_what_the_parser_cannot_read():
    from composable_rl.languages.operator_table import Operator, check_table

    check_table(OPERATORS)
    with pytest.raises(ValueError, match="one character"):
        check_table([*OPERATORS, Operator("->", 2, 5, True, lambda a, b, _c: a)])
    with pytest.raises(ValueError, match="prefix operators must share"):
        check_table([*OPERATORS, Operator("?", 1, 35, True, lambda a, _c: a)])
