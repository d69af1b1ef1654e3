"""psycopg's placeholders (``%s``, ``%(name)s``, ``%%``) turned into the ``$n`` ones asyncpg's
server-side parameters use, by a scanner that knows where SQL text is code and where it is data.

Inside string literals (``'...'``, ``E'...'``), quoted identifiers, dollar quotes and comments a
``%s`` is text, not a placeholder; everywhere ``%%`` reads as ``%`` (as psycopg reads it when a
query has parameters). A query run without parameters is left exactly as written, as psycopg
sends it. Pure: no driver, no I/O; the plan for one query text is cached.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from psycopg import ProgrammingError, sql

__all__ = ["Plan", "plan", "render_literals", "to_dollar"]

#: A converted query: its text with ``$n`` placeholders, and the parameters in ``$n`` order,
#: as positions (``int``) for ``%s`` or names (``str``) for ``%(name)s``.
Plan = tuple[str, tuple[int | str, ...]]


def to_dollar(
    query: str, params: Sequence[Any] | Mapping[str, Any] | None
) -> tuple[str, list[Any]]:
    """The query text and argument list for a ``$n`` driver; raise psycopg's ProgrammingError
    for the same mistakes psycopg refuses (a count or a name that does not match)."""
    if params is None:
        return query, []
    text, order = plan(query)
    if isinstance(params, Mapping):
        if order and isinstance(order[0], int):
            raise ProgrammingError("query parameters should be a sequence, got a mapping")
        try:
            return text, [params[name] for name in order]  # type: ignore[index]
        except KeyError as exc:
            raise ProgrammingError(f"query parameter missing: {exc.args[0]}") from None
    if isinstance(params, str | bytes) or not isinstance(params, Sequence):
        raise TypeError(
            f"query parameters should be a sequence or a mapping, got {type(params).__name__}"
        )
    if order and isinstance(order[0], str):
        raise ProgrammingError("query parameters should be a mapping, got a sequence")
    if len(order) != len(params):
        raise ProgrammingError(
            f"the query has {len(order)} placeholders but {len(params)} parameters were passed"
        )
    return text, list(params)


def render_literals(query: str, params: Sequence[Any] | Mapping[str, Any] | None) -> str:
    """The query with its parameters merged in as SQL literals (quoted by psycopg's rules), for
    statements that take no bound parameters (COPY), as psycopg does for them."""
    if params is None:
        return query
    _, args = to_dollar(query, params)
    literals = [sql.Literal(a).as_string(None) for a in args]
    chunks, _ = _scan(query)
    out = []
    for chunk, slot in chunks:
        out.append(chunk)
        if slot is not None:
            out.append(literals[slot])
    return "".join(out)


def sql_text(query: Any) -> str:
    """The text of a query: a string as given, a ``psycopg.sql`` composition rendered (its
    literals quoted by psycopg's rules; no connection is needed for that)."""
    if type(query) is str:
        return query
    if isinstance(query, sql.Composable):
        return query.as_string(None)
    if isinstance(query, bytes):
        return query.decode()
    raise TypeError(f"a query is a string or a psycopg.sql composition, got {type(query).__name__}")


@lru_cache(maxsize=1024)
def plan(query: str) -> Plan:
    """Scan ``query`` once: its ``$n`` text and parameter order (cached per text)."""
    chunks, order = _scan(query)
    return "".join(c + ("" if s is None else f"${s + 1}") for c, s in chunks), order


@lru_cache(maxsize=256)
def typed_text(query: str, casts: tuple[str | None, ...]) -> str:
    """``plan(query)``'s ``$n`` text with ``::type`` after each parameter whose slot has a cast
    (the types psycopg would send for the values: see ``drivers._asyncpg``)."""
    chunks, _ = _scan(query)
    out = []
    for chunk, slot in chunks:
        out.append(chunk)
        if slot is not None:
            cast = casts[slot]
            out.append(f"${slot + 1}" if cast is None else f"${slot + 1}::{cast}")
    return "".join(out)


def _scan(query: str) -> tuple[list[tuple[str, int | None]], tuple[int | str, ...]]:
    """The query's text chunks, each followed by the 0-based parameter slot it is followed by
    (None for the last), and the parameter order."""
    out: list[tuple[str, int | None]] = []
    order: list[int | str] = []
    names: dict[str, int] = {}
    n = len(query)
    i = start = 0

    def flush(upto: int, slot: int | None) -> None:
        out.append((query[start:upto].replace("%%", "%"), slot))

    while i < n:
        ch = query[i]
        if ch == "'":
            # E'...' strings take backslash escapes; '' doubles a quote in both kinds.
            escapes = i > 0 and query[i - 1] in "eE" and (i < 2 or not _word(query[i - 2]))
            i = _end_quote(query, i + 1, "'", escapes)
        elif ch == '"':
            i = _end_quote(query, i + 1, '"', False)
        elif ch == "-" and query.startswith("--", i):
            nl = query.find("\n", i)
            i = n if nl < 0 else nl + 1
        elif ch == "/" and query.startswith("/*", i):
            i = _end_block_comment(query, i)
        elif ch == "$" and (i == 0 or not _word(query[i - 1])):
            i = _end_dollar(query, i)
        elif ch == "%":
            if query.startswith("%%", i):
                i += 2
                continue
            at = i
            kind, name, i = _placeholder(query, i)
            if kind == "positional":
                if names:
                    raise ProgrammingError("positional and named placeholders cannot be mixed")
                order.append(len(order))
                flush(at, len(order) - 1)
            else:
                assert name is not None
                if order and not names:
                    raise ProgrammingError("positional and named placeholders cannot be mixed")
                if name not in names:
                    order.append(name)
                    names[name] = len(order)
                flush(at, names[name] - 1)
            start = i
        else:
            i += 1
    flush(n, None)
    return out, tuple(order)


def _word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _end_quote(query: str, i: int, quote: str, escapes: bool) -> int:
    n = len(query)
    while i < n:
        ch = query[i]
        if escapes and ch == "\\":
            i += 2
            continue
        if ch == quote:
            if i + 1 < n and query[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return n  # unterminated: the server reports it


def _end_block_comment(query: str, i: int) -> int:
    depth = 0
    n = len(query)
    while i < n:
        if query.startswith("/*", i):
            depth += 1
            i += 2
        elif query.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return n


def _end_dollar(query: str, i: int) -> int:
    """Past a dollar-quoted string starting at ``i`` (``$$`` or ``$tag$``), or just past the
    ``$`` if it starts none (``$1``, an operator)."""
    j = i + 1
    n = len(query)
    while j < n and (_word(query[j])) and not (j == i + 1 and query[j].isdigit()):
        j += 1
    if j >= n or query[j] != "$":
        return i + 1
    tag = query[i : j + 1]
    end = query.find(tag, j + 1)
    return n if end < 0 else end + len(tag)


def _placeholder(query: str, i: int) -> tuple[str, str | None, int]:
    """Read the placeholder at ``i`` (``%s``, ``%b``, ``%t``, ``%(name)s``...)."""
    n = len(query)
    if i + 1 < n and query[i + 1] in "sbt":
        return "positional", None, i + 2
    if i + 1 < n and query[i + 1] == "(":
        close = query.find(")", i + 2)
        if close > i + 2 and close + 1 < n and query[close + 1] in "sbt":
            return "named", query[i + 2 : close], close + 2
    bad = query[i : i + 2]
    raise ProgrammingError(
        f"only '%s', '%b', '%t' are allowed as placeholders, got {bad!r}; write %% for a literal %"
    )
