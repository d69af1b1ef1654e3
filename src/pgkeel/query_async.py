"""The query methods every pgkeel object that runs SQL shares (Database, Transaction, sync and
async): ``execute``, ``execute_many``, ``fetch_one``, ``fetch_all``, ``fetch_val``.

The mixins only need ``_acquire()`` / ``_release()`` (a pooled checkout on a Database, the
transaction's own connection on a Transaction) and ``_failed()`` (counting). ``_release`` is told
whether the statement may have left session state behind: it did if it raised or was
interrupted, ended with a session command tag (SET, LISTEN...), was multi-statement text, or
its text mentions a built-in that changes the session (``set_config``, session advisory locks,
``TEMP``...: ``pool._reset.SESSION_WORDS``); the Database then resets the connection before
anyone else gets it. ``Query`` (the type
that makes an f-string query a type error) and ``Params`` are in ``_query_base``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from pgkeel._query_base import Params, Query
from pgkeel.ops._trace import note, traced
from pgkeel.pool._reset import changes_session, is_dirty, left_state
from pgkeel.rows import RowSpec, row_factory

__all__ = ["AsyncQueryMethods", "Params", "Query"]

_IDLE = TransactionStatus.IDLE


class AsyncQueryMethods:
    """``execute``, ``execute_many``, ``fetch_one``, ``fetch_all``, ``fetch_val``."""

    __slots__ = ()

    async def _acquire(self) -> psycopg.AsyncConnection[Any]:
        raise NotImplementedError

    async def _release(self, conn: psycopg.AsyncConnection[Any], dirty: bool = False) -> None:
        raise NotImplementedError

    def _failed(self) -> None:
        pass

    @traced(rows="affected")
    async def execute(self, query: Query, params: Params = None) -> int:
        """Run one statement; return the number of rows it affected."""
        conn = await self._acquire()
        dirty = True
        try:
            cur = conn.cursor()
            await cur.execute(query, params)
            note(cur)
            result = cur.rowcount
            dirty = changes_session(query) or left_state(cur)
        except BaseException:
            self._failed()
            raise
        finally:
            await self._release(conn, dirty)
        return result

    @traced(rows="affected")
    async def execute_many(
        self, query: Query, params_seq: Iterable[Sequence[Any] | Mapping[str, Any]]
    ) -> int:
        """Run one statement per parameter set, all or none; return the rows affected in total."""
        conn = await self._acquire()
        dirty = True
        try:
            cur = conn.cursor()
            if conn.pgconn.transaction_status == _IDLE:
                async with conn.transaction():
                    await cur.executemany(query, params_seq)
            else:
                await cur.executemany(query, params_seq)
            note(cur)
            result = cur.rowcount
            dirty = changes_session(query) or is_dirty(cur.statusmessage)
        except BaseException:
            self._failed()
            raise
        finally:
            await self._release(conn, dirty)
        return result

    @traced(rows="one")
    async def fetch_one(self, query: Query, params: Params = None, *, row: RowSpec = dict) -> Any:
        """Return the first row (built as ``row=`` says), or ``None`` if there is none."""
        conn = await self._acquire()
        dirty = True
        try:
            cur = conn.cursor(row_factory=row_factory(row))
            await cur.execute(query, params)
            note(cur)
            result = await cur.fetchone()
            dirty = changes_session(query) or left_state(cur)
        except BaseException:
            self._failed()
            raise
        finally:
            await self._release(conn, dirty)
        return result

    @traced(rows="returned")
    async def fetch_all(
        self, query: Query, params: Params = None, *, row: RowSpec = dict
    ) -> list[Any]:
        """Return all the rows (built as ``row=`` says)."""
        conn = await self._acquire()
        dirty = True
        try:
            cur = conn.cursor(row_factory=row_factory(row))
            await cur.execute(query, params)
            note(cur)
            result = await cur.fetchall()
            dirty = changes_session(query) or left_state(cur)
        except BaseException:
            self._failed()
            raise
        finally:
            await self._release(conn, dirty)
        return result

    async def fetch_val(self, query: Query, params: Params = None) -> Any:
        """Return the first column of the first row, or ``None`` if there is no row."""
        first = await self.fetch_one(query, params, row=tuple)
        return None if first is None else first[0]
