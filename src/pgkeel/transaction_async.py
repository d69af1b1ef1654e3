"""Transactions: ``AsyncTransaction`` (the ``tx`` in ``with db.transaction() as tx``, or ``async
with`` on the asyncio face), the BEGIN options, nesting as savepoints, and the one rule that
makes retries safe: an error during COMMIT on a lost connection is reported as an unknown
outcome, never retried.

The retry loop itself lives on the Database faces (``run_transaction``); its backoff, the list of
retryable SQLSTATEs and the ``isolation=`` names are in ``_transaction_base``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import psycopg

from pgkeel._transaction_base import (
    Isolation,
    commit_unknown_message,
    isolation_level,
    transaction_ended,
)
from pgkeel.bulk._methods_async import AsyncBulkMethods
from pgkeel.errors import CommitOutcomeUnknownError
from pgkeel.query_async import AsyncQueryMethods

if TYPE_CHECKING:
    from pgkeel._database_base import DatabaseBase

__all__ = ["AsyncTransaction", "Isolation", "isolation_level"]


@asynccontextmanager
async def begin_async(
    conn: psycopg.AsyncConnection[Any], isolation: Isolation, read_only: bool
) -> AsyncIterator[None]:
    """An outermost transaction on an idle autocommit connection, with BEGIN options."""
    level = isolation_level(isolation)
    await conn.set_isolation_level(level)
    await conn.set_read_only(True if read_only else None)
    body_done = False
    try:
        async with conn.transaction():
            yield
            body_done = True
    except psycopg.Error as exc:
        if body_done and conn.closed:
            raise CommitOutcomeUnknownError(commit_unknown_message(exc)) from exc
        raise
    finally:
        if not conn.closed and (level is not None or read_only):
            await conn.set_isolation_level(None)
            await conn.set_read_only(None)


class AsyncTransaction(AsyncQueryMethods, AsyncBulkMethods):
    """A transaction in progress: the query methods, nested ``transaction()`` (a savepoint),
    and ``connection`` for anything else. Valid only inside its ``with`` block."""

    __slots__ = ("_conn", "_db")

    def __init__(self, conn: psycopg.AsyncConnection[Any], db: DatabaseBase | None = None) -> None:
        self._conn: psycopg.AsyncConnection[Any] | None = conn
        self._db = db

    def __repr__(self) -> str:
        state = "ended" if self._conn is None else self._conn.info.transaction_status.name
        return f"<{type(self).__name__} {state}>"

    @property
    def connection(self) -> psycopg.AsyncConnection[Any]:
        """The psycopg connection the transaction runs on. Whatever is done with it, it is
        reset (DISCARD ALL) when the transaction ends, before anyone else gets it."""
        conn = self._raw()
        if self._db is not None:
            self._db._dirty.add(id(conn))
        return conn

    def _raw(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None:
            raise transaction_ended()
        return self._conn

    async def _acquire(self) -> psycopg.AsyncConnection[Any]:
        return self._raw()

    async def _release(self, conn: psycopg.AsyncConnection[Any], dirty: bool = False) -> None:
        if dirty and self._db is not None:
            self._db._dirty.add(id(conn))

    def _failed(self) -> None:
        if self._db is not None:
            self._db._counters.error()

    def _end(self) -> None:
        self._conn = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncTransaction]:
        """A nested transaction (SAVEPOINT): rolled back alone if its block raises."""
        conn = self._raw()
        inner = AsyncTransaction(conn, self._db)
        try:
            async with conn.transaction():
                yield inner
        finally:
            inner._end()

    async def notify(self, channel: str, payload: object = None) -> None:
        """Send a notification on ``channel``, delivered only if the transaction commits."""
        from pgkeel.events.topics_async import notify

        await notify(self, channel, payload)

    async def publish(self, topic: str, payload: Any) -> int:
        """Store an event on durable topic ``topic`` in this transaction (and a wake-up sent on
        commit); it exists only if the transaction commits. Returns its id."""
        from pgkeel.events.topics_async import publish

        return await publish(self, self._db, topic, payload)  # type: ignore[arg-type]

    @asynccontextmanager
    async def _atomic(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """The tx's connection inside a savepoint (the contract with pgkeel's bulk helpers)."""
        conn = self._raw()
        async with conn.transaction():
            yield conn
