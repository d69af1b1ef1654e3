"""The %s / %(name)s -> $n scanner (pgkeel.drivers._placeholders), without a server."""

from __future__ import annotations

import pytest
from psycopg import ProgrammingError

from pgkeel.drivers._placeholders import plan, to_dollar, typed_text


def test_positional_and_named() -> None:
    """%s are numbered in order; a repeated %(name)s reuses its number."""
    assert to_dollar("SELECT %s, %s", (1, 2)) == ("SELECT $1, $2", [1, 2])
    assert to_dollar("SELECT %(a)s, %(b)s, %(a)s", {"b": 2, "a": 1}) == (
        "SELECT $1, $2, $1",
        [1, 2],
    )
    assert to_dollar("SELECT %b, %t", [1, 2])[0] == "SELECT $1, $2"


def test_strings_comments_and_dollar_quotes_are_left_alone() -> None:
    """%s inside literals, quoted identifiers, comments and dollar quotes is text; %% is %
    everywhere; $1 and operators with $ are not dollar quotes."""
    query = (
        "SELECT '%s', E'it\\'s %s', \"col%s\", $$%s$$, $fn$ %s $fn$, %s -- %s\n"
        "/* %s /* nested %s */ %s */ , '50%%', %s"
    )
    text, order = plan(query)
    assert order == (0, 1)
    assert text == (
        "SELECT '%s', E'it\\'s %s', \"col%s\", $$%s$$, $fn$ %s $fn$, $1 -- %s\n"
        "/* %s /* nested %s */ %s */ , '50%', $2"
    )
    assert plan("SELECT 'it''s %s', %s") == ("SELECT 'it''s %s', $1", (0,))
    assert plan("SELECT a$1, %s")[0] == "SELECT a$1, $1"


def test_no_params_leaves_the_query_exactly_as_written() -> None:
    """Without parameters nothing is rewritten (psycopg sends such a query as it is)."""
    assert to_dollar("SELECT '50%%', %s", None) == ("SELECT '50%%', %s", [])


@pytest.mark.parametrize(
    ("query", "params", "match"),
    [
        ("SELECT %s, %s", [1], "2 placeholders but 1"),
        ("SELECT %(a)s", {"b": 1}, "missing: a"),
        ("SELECT %(a)s", [1], "should be a mapping"),
        ("SELECT %s", {"a": 1}, "should be a sequence"),
        ("SELECT %s, %(a)s", {"a": 1}, "cannot be mixed"),
        ("SELECT 50% off, %s", [1], "only '%s'"),
    ],
)
def test_mistakes_get_psycopgs_errors(query: str, params: object, match: str) -> None:
    """Wrong counts, names, kinds and a stray % raise psycopg's ProgrammingError."""
    with pytest.raises(ProgrammingError, match=match):
        to_dollar(query, params)  # type: ignore[arg-type]


def test_a_string_is_not_a_parameter_sequence() -> None:
    """A str as params is refused rather than read character by character."""
    with pytest.raises(TypeError, match="sequence or a mapping"):
        to_dollar("SELECT %s", "x")


def test_unterminated_quotes_do_not_hang() -> None:
    """An unterminated literal or comment ends the scan (the server reports it)."""
    assert plan("SELECT 'abc %s")[1] == ()
    assert plan("SELECT /* abc %s")[1] == ()
    assert plan("SELECT $x$ abc %s")[1] == ()


def test_typed_text_casts_only_the_parameters() -> None:
    """typed_text adds ::type after each cast slot, never inside literals, comments or dollar
    quotes, and leaves uncast slots bare."""
    q = "SELECT %s, '%s', $$ %s $$, %s -- %s\n"
    assert typed_text(q, ("int2", None)) == "SELECT $1::int2, '%s', $$ %s $$, $2 -- %s\n"
    named = "SELECT %(a)s + %(b)s, %(a)s"
    assert typed_text(named, ("int8", "numeric")) == "SELECT $1::int8 + $2::numeric, $1::int8"
