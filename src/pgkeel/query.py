"""The query methods every pgkeel object that runs SQL shares (Database, Transaction, sync and
async), and the ``Query`` type that makes an f-string query a type error.

The mixins only need ``_acquire()`` / ``_release()`` (a pooled checkout on a Database, the
transaction's own connection on a Transaction) and ``_failed()`` (counting).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, LiteralString, TypeAlias, TypeVar

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from pgkeel._database_base import is_dirty
from pgkeel.rows import RowSpec, row_factory

__all__ = ["AsyncQueryMethods", "Params", "Query", "QueryMethods"]

# A query: a literal string with ``%s`` / ``%(name)s`` placeholders, a ``psycopg.sql``
# composition (``sql.SQL(...).format(sql.Identifier(...))``), or a t-string on 3.14. Never an
# f-string or a concatenation: those are ``str``, not ``LiteralString``, so mypy rejects them.
if sys.version_info >= (3, 14):
    from string.templatelib import Template

    Query: TypeAlias = LiteralString | sql.SQL | sql.Composed | Template
else:
    Query: TypeAlias = LiteralString | sql.SQL | sql.Composed

Params: TypeAlias = Sequence[Any] | Mapping[str, Any] | None
T = TypeVar("T")

_IDLE = TransactionStatus.IDLE


class QueryMethods:
    """``execute``, ``execute_many``, ``fetch_one``, ``fetch_all``, ``fetch_val`` (sync)."""

    __slots__ = ()

    def _acquire(self) -> psycopg.Connection[Any]:
        raise NotImplementedError

    def _release(self, conn: psycopg.Connection[Any], dirty: bool = False) -> None:
        raise NotImplementedError

    def _failed(self) -> None:
        pass

    def execute(self, query: Query, params: Params = None) -> int:
        """Run one statement; return the number of rows it affected."""
        conn = self._acquire()
        dirty = False
        try:
            cur = conn.cursor()
            cur.execute(query, params)
            dirty = is_dirty(cur.statusmessage)
            result = cur.rowcount
        except BaseException:
            self._failed()
            raise
        finally:
            self._release(conn, dirty)
        return result

    def execute_many(
        self, query: Query, params_seq: Iterable[Sequence[Any] | Mapping[str, Any]]
    ) -> int:
        """Run one statement per parameter set, all or none; return the rows affected in total."""
        conn = self._acquire()
        try:
            cur = conn.cursor()
            if conn.pgconn.transaction_status == _IDLE:
                with conn.transaction():
                    cur.executemany(query, params_seq)
            else:
                cur.executemany(query, params_seq)
            result = cur.rowcount
        except BaseException:
            self._failed()
            raise
        finally:
            self._release(conn)
        return result

    def fetch_one(self, query: Query, params: Params = None, *, row: RowSpec = dict) -> Any:
        """Return the first row (built as ``row=`` says), or ``None`` if there is none."""
        conn = self._acquire()
        try:
            cur = conn.cursor(row_factory=row_factory(row))
            cur.execute(query, params)
            result = cur.fetchone()
        except BaseException:
            self._failed()
            raise
        finally:
            self._release(conn)
        return result

    def fetch_all(self, query: Query, params: Params = None, *, row: RowSpec = dict) -> list[Any]:
        """Return all the rows (built as ``row=`` says)."""
        conn = self._acquire()
        try:
            cur = conn.cursor(row_factory=row_factory(row))
            cur.execute(query, params)
            result = cur.fetchall()
        except BaseException:
            self._failed()
            raise
        finally:
            self._release(conn)
        return result

    def fetch_val(self, query: Query, params: Params = None) -> Any:
        """Return the first column of the first row, or ``None`` if there is no row."""
        conn = self._acquire()
        try:
            cur = conn.cursor(row_factory=psycopg.rows.tuple_row)
            cur.execute(query, params)
            first = cur.fetchone()
        except BaseException:
            self._failed()
            raise
        finally:
            self._release(conn)
        return None if first is None else first[0]


class AsyncQueryMethods:
    """The same methods as :class:`QueryMethods`, awaited."""

    __slots__ = ()

    async def _acquire(self) -> psycopg.AsyncConnection[Any]:
        raise NotImplementedError

    async def _release(self, conn: psycopg.AsyncConnection[Any], dirty: bool = False) -> None:
        raise NotImplementedError

    def _failed(self) -> None:
        pass

    async def execute(self, query: Query, params: Params = None) -> int:
        """Run one statement; return the number of rows it affected."""
        conn = await self._acquire()
        dirty = False
        try:
            cur = conn.cursor()
            await cur.execute(query, params)
            dirty = is_dirty(cur.statusmessage)
            result = cur.rowcount
        except BaseException:
            self._failed()
            raise
        finally:
            await self._release(conn, dirty)
        return result

    async def execute_many(
        self, query: Query, params_seq: Iterable[Sequence[Any] | Mapping[str, Any]]
    ) -> int:
        """Run one statement per parameter set, all or none; return the rows affected in total."""
        conn = await self._acquire()
        try:
            cur = conn.cursor()
            if conn.pgconn.transaction_status == _IDLE:
                async with conn.transaction():
                    await cur.executemany(query, params_seq)
            else:
                await cur.executemany(query, params_seq)
            result = cur.rowcount
        except BaseException:
            self._failed()
            raise
        finally:
            await self._release(conn)
        return result

    async def fetch_one(self, query: Query, params: Params = None, *, row: RowSpec = dict) -> Any:
        """Return the first row (built as ``row=`` says), or ``None`` if there is none."""
        conn = await self._acquire()
        try:
            cur = conn.cursor(row_factory=row_factory(row))
            await cur.execute(query, params)
            result = await cur.fetchone()
        except BaseException:
            self._failed()
            raise
        finally:
            await self._release(conn)
        return result

    async def fetch_all(
        self, query: Query, params: Params = None, *, row: RowSpec = dict
    ) -> list[Any]:
        """Return all the rows (built as ``row=`` says)."""
        conn = await self._acquire()
        try:
            cur = conn.cursor(row_factory=row_factory(row))
            await cur.execute(query, params)
            result = await cur.fetchall()
        except BaseException:
            self._failed()
            raise
        finally:
            await self._release(conn)
        return result

    async def fetch_val(self, query: Query, params: Params = None) -> Any:
        """Return the first column of the first row, or ``None`` if there is no row."""
        conn = await self._acquire()
        try:
            cur = conn.cursor(row_factory=psycopg.rows.tuple_row)
            await cur.execute(query, params)
            first = await cur.fetchone()
        except BaseException:
            self._failed()
            raise
        finally:
            await self._release(conn)
        return None if first is None else first[0]
