"""When a pooled connection is reset before it goes back: the checkout/reset policy, without
I/O (the faces run the reset itself).

The session rule: a connection goes back to the pool as clean as a new one. It is reset
(ROLLBACK, then DISCARD ALL: settings, temp tables, LISTEN, advisory locks, prepared statements,
cursors; then the session settings are applied again; counted in ``stats()["resets"]``):

- after every raw use (``connection()``, ``tx.connection``), after any error or interruption
  (cancellation, KeyboardInterrupt), and when a transaction is left open;
- after a query method's statement (fetch_*, execute, execute_many, on a Database or a
  transaction) that may have changed the session, as far as the client can tell without asking
  the server: a session command tag (SET, RESET, LISTEN, PREPARE, DECLARE, CREATE TABLE, DO,
  DISCARD),
  multi-statement text (any result after the first), or text that mentions, as a whole word in
  any case, a built-in that changes the session from inside a statement
  (``SESSION_WORDS``: ``set_config``, the session-level ``pg_advisory_lock``
  family, ``temp`` / ``temporary`` / ``pg_temp``, ``setseed``, ``dblink_connect``...). The text
  verdict over-approximates (a word in a string literal or a column name is a false alarm,
  costing one reset) and is cached per query string, so the hot path pays a dict lookup, a
  prefix test and a transaction-status read, never a round trip; a reset costs three or four
  round trips, paid only by the connections that need it;
- after the round-trip check on checkout (a connection idle longer than ``check_idle``, see
  ``needs_check``) finds the session differs from a fresh one (``SessionBaseline``: pgkeel's
  settings, the ``options`` settings, ``WATCHED_SETTINGS`` such as ``search_path`` and ``role``,
  and the LISTEN channels). This catches what no text shows, a user function that calls
  ``set_config`` or ``SET``; it replaces the check's empty query, so it costs the hot path
  nothing, but a change made that way stays with the connection until its next check.

What neither sees: session advisory locks and temp tables created inside a user function
(checking ``pg_locks`` would scan the server's lock table); run such functions through
``connection()``, which is always reset. ``pipeline()`` runs statements whose tags are not seen
one by one, so its connection is always reset; ``stream()`` resets when its query's text names a
``SESSION_WORDS`` built-in (a COPY or a cursor can run nothing else that changes the session).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from pgkeel.config import Config

if sys.version_info >= (3, 14):
    from string.templatelib import Interpolation, Template

#: Command tags after which a connection carries session state that the next user must not see.
#: (DO: an anonymous code block may do anything a function can, SET included. DISCARD: it also
#: drops the settings pgkeel applied with SET, session_settings="set".)
_DIRTY_TAGS = ("SET", "RESET", "LISTEN", "PREPARE", "DECLARE", "CREATE TABLE", "DO", "DISCARD")


def is_dirty(statusmessage: str | None) -> bool:
    return statusmessage is not None and statusmessage.startswith(_DIRTY_TAGS)


def left_state(cur: psycopg.Cursor[Any] | psycopg.AsyncCursor[Any]) -> bool:
    """After a query method's statement: may the session now differ from a fresh one, as far as
    the client can tell without a round trip? True for a session command tag (SET, LISTEN...)
    and for multi-statement text (any result after the first). (A transaction left open is seen
    by the Database when the connection comes back.)"""
    return is_dirty(cur.statusmessage) or bool(cur.nextset())


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


#: Settings the round-trip check on checkout compares with a fresh session's, besides the ones
#: pgkeel applies (``Config.settings``: the timeouts and any ``-c`` of ``options``): the ones a
#: function could change for the session (set_config) that matter most to the next user.
WATCHED_SETTINGS = (
    "search_path",
    "role",
    "session_authorization",
    "default_transaction_isolation",
    "default_transaction_read_only",
    "session_replication_role",
    "timezone",
    "datestyle",
)


class SessionBaseline:
    """The second line of the session rule, for what a query's text cannot show (a user
    function that calls set_config or LISTENs): what a fresh session looks like, learned once
    from the first connection pgkeel sets up, and the check that compares a pooled connection
    with it. The check is one query that reads the settings with ``current_setting()`` and
    counts the LISTEN channels; it replaces the empty query of the round-trip check on checkout,
    so it costs the hot path nothing (see ``needs_check``)."""

    __slots__ = ("expected", "names", "query")

    def __init__(self, config: Config) -> None:
        names = dict.fromkeys([*(name.lower() for name, _ in config.settings), *WATCHED_SETTINGS])
        self.names = tuple(names)
        # Composed once (no connection needed for literals), sent as plain text every time.
        calls = sql.SQL(", ").join(
            sql.SQL("current_setting({}, true)").format(sql.Literal(name)) for name in self.names
        )
        self.query = (
            sql.SQL("SELECT ") + calls + sql.SQL(", (SELECT count(*) FROM pg_listening_channels())")
        ).as_string()
        #: By session-settings mode (the fresh session differs between them).
        self.expected: dict[str | None, tuple[Any, ...]] = {}

    def known(self, mode: str | None) -> bool:
        return mode in self.expected

    def learn(self, mode: str | None, row: Sequence[Any]) -> None:
        self.expected.setdefault(mode, tuple(row))

    def drift(self, mode: str | None, row: Sequence[Any] | None) -> list[str]:
        """The names (never the values: a setting may be a secret) of what differs from a fresh
        session; empty if nothing does or if no fresh session was seen yet."""
        expected = self.expected.get(mode)
        if expected is None or row is None or tuple(row) == expected:
            return []
        labels = [*self.names, "LISTEN channels"]
        return [label for label, a, b in zip(labels, row, expected, strict=False) if a != b]
