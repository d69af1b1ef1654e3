"""The types of a query and its parameters, shared by both faces of :mod:`pgkeel.query`. (The
verdict on a query's text that feeds the session rule is in ``pgkeel.pool._reset``.)

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

__all__ = ["Params", "Query"]

if sys.version_info >= (3, 14):
    from string.templatelib import Template

    Query: TypeAlias = LiteralString | sql.SQL | sql.Composed | Template
else:
    Query: TypeAlias = LiteralString | sql.SQL | sql.Composed

Params: TypeAlias = Sequence[Any] | Mapping[str, Any] | None
