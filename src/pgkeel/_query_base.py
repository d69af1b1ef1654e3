"""The types of a query and its parameters, shared by both faces of :mod:`pgkeel.query`, and
the verdict on a query's text that feeds the session rule (see ``_database_base``).

``Query`` is what makes an f-string query a type error: a literal string with ``%s`` /
``%(name)s`` placeholders, a ``psycopg.sql`` composition
(``sql.SQL(...).format(sql.Identifier(...))``), or a t-string on 3.14. Never an f-string or a
concatenation: those are ``str``, not ``LiteralString``, so mypy rejects them.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any, LiteralString, TypeAlias

from psycopg import sql

__all__ = ["SESSION_WORDS", "Params", "Query", "changes_session"]

if sys.version_info >= (3, 14):
    from string.templatelib import Interpolation, Template

    Query: TypeAlias = LiteralString | sql.SQL | sql.Composed | Template
else:
    Query: TypeAlias = LiteralString | sql.SQL | sql.Composed

Params: TypeAlias = Sequence[Any] | Mapping[str, Any] | None

#: Words whose mention in a query's text (as a whole word, in any case) marks the connection
#: for a reset when the statement is done: the built-ins that change the session from inside a
#: single statement, where neither the command tag nor anything else the client receives shows
#: it. A word in a string literal, a comment or a column name counts too: a false alarm costs
#: one reset, a miss would hand the change to the next user.
SESSION_WORDS: frozenset[str] = frozenset(
    {
        # set_config(name, value, false) keeps the setting for the session (search_path,
        # statement_timeout, role...). With is_local = true it would not, but the flag can be
        # a parameter.
        "set_config",
        # Session-level advisory locks outlive the statement (the _xact_ variants do not).
        "pg_advisory_lock",
        "pg_advisory_lock_shared",
        "pg_try_advisory_lock",
        "pg_try_advisory_lock_shared",
        # Temporary objects: CREATE TEMP TABLE ... AS (tag SELECT n), SELECT ... INTO TEMP,
        # CREATE TEMP VIEW / SEQUENCE, anything created in pg_temp.
        "temp",
        "temporary",
        "pg_temp",
        # The seed of the session's random().
        "setseed",
        # dblink's named connections live as long as the session.
        "dblink_connect",
        "dblink_connect_u",
        # A replication origin bound to the session.
        "pg_replication_origin_session_setup",
    }
)

#: Every ASCII character that cannot be part of an unquoted SQL identifier becomes a space, so
#: that splitting on whitespace gives the words. ``$`` (allowed inside identifiers) splits too:
#: ``$$set_config$$`` then counts, and at worst ``set_config$x`` is a false alarm.
_SEPARATORS = str.maketrans(
    {chr(c): " " for c in range(128) if not (chr(c).isalnum() or chr(c) == "_")}
)

#: Verdicts by query string. Queries are nearly always the same literal objects (their hash is
#: computed once), so a lookup is all the hot path pays. Bounded: emptied when full.
_VERDICTS: dict[str, bool] = {}
_VERDICTS_MAX = 4096


#: Every word of :data:`SESSION_WORDS` contains one of these: a text without any of them needs
#: no splitting into words (most identifiers and many queries).
_HINTS = ("set", "temp", "advisory", "dblink")


def mentions_session_word(text: str) -> bool:
    """Does ``text`` mention one of :data:`SESSION_WORDS` as a whole word, in any case?"""
    low = text.lower()
    if not any(hint in low for hint in _HINTS):
        return False
    return not SESSION_WORDS.isdisjoint(low.translate(_SEPARATORS).split())


def _text_verdict(text: str) -> bool:
    verdict = _VERDICTS.get(text)
    if verdict is None:
        verdict = mentions_session_word(text)
        if len(_VERDICTS) >= _VERDICTS_MAX:
            _VERDICTS.clear()
        _VERDICTS[text] = verdict
    return verdict


def changes_session(query: Any) -> bool:
    """May the statement ``query`` change the session in a way its command tag does not show?

    True if its text mentions one of :data:`SESSION_WORDS`: a conservative verdict on the text,
    not a parse. In a ``psycopg.sql`` composition the SQL parts and the identifiers count (an
    identifier can name a function), not literals or placeholders (they are data); the same for
    a t-string's text, its ``:i`` identifiers and the queries nested in it.
    """
    if type(query) is str:  # nearly always: a literal string
        verdict = _VERDICTS.get(query)
        return _text_verdict(query) if verdict is None else verdict
    return _composed_verdict(query)


def _composed_verdict(query: Any) -> bool:
    if isinstance(query, str):
        return _text_verdict(query)
    if isinstance(query, sql.SQL):
        return _text_verdict(query.as_string())
    if isinstance(query, sql.Composed):
        return any(_composed_verdict(part) for part in query)
    if isinstance(query, sql.Identifier):
        return mentions_session_word(query.as_string())
    if isinstance(query, sql.Literal | sql.Placeholder):
        return False
    if isinstance(query, bytes | bytearray | memoryview):
        return mentions_session_word(bytes(query).decode("utf-8", "replace"))
    if sys.version_info >= (3, 14) and isinstance(query, Template):
        return any(_template_part_verdict(part) for part in query)
    # Something else psycopg accepts (a Composable of another kind): judge its text.
    if isinstance(query, sql.Composable):
        return mentions_session_word(query.as_string())
    return False


if sys.version_info >= (3, 14):

    def _template_part_verdict(part: str | Interpolation) -> bool:
        if isinstance(part, str):
            return _text_verdict(part)
        value = part.value
        if isinstance(value, Template | sql.Composable):
            return _composed_verdict(value)
        if part.format_spec == "i" and isinstance(value, str):
            return mentions_session_word(value)
        return False  # a parameter or a literal: data
