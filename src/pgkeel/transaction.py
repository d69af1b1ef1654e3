"""Transactions: ``Transaction`` / ``AsyncTransaction`` (the ``tx`` in ``with db.transaction() as
tx``), the BEGIN options, nesting as savepoints, and the one rule that makes retries safe: an
error during COMMIT on a lost connection is reported as an unknown outcome, never retried.

The retry loop itself lives on the Database faces (``run_transaction``); its backoff and the
list of retryable SQLSTATEs are in ``_database_base``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import IsolationLevel

from pgkeel._database_base import commit_unknown_message
from pgkeel.copy import BulkMethods
from pgkeel.copy_async import AsyncBulkMethods
from pgkeel.errors import CommitOutcomeUnknownError
from pgkeel.query import AsyncQueryMethods, QueryMethods

if TYPE_CHECKING:
    from pgkeel._database_base import DatabaseBase

__all__ = ["AsyncTransaction", "Isolation", "Transaction", "isolation_level"]

#: ``isolation=`` takes a psycopg ``IsolationLevel`` or its name: ``"serializable"``,
#: ``"repeatable read"``, ``"read committed"``, ``"read uncommitted"`` (any case, ``_`` or space).
Isolation = IsolationLevel | str | None


def isolation_level(value: Isolation) -> IsolationLevel | None:
    """Normalise an ``isolation=`` argument."""
    if value is None or isinstance(value, IsolationLevel):
        return value
    try:
        return IsolationLevel[value.strip().upper().replace(" ", "_").replace("-", "_")]
    except KeyError:
        names = ", ".join(repr(level.name.lower().replace("_", " ")) for level in IsolationLevel)
        raise ValueError(f"unknown isolation level {value!r}; use one of {names}") from None


def _ended() -> psycopg.ProgrammingError:
    return psycopg.ProgrammingError(
        "this transaction has ended; run queries inside its `with` block"
    )


@contextmanager
def begin(conn: psycopg.Connection[Any], isolation: Isolation, read_only: bool) -> Iterator[None]:
    """An outermost transaction on an idle autocommit connection, with BEGIN options."""
    level = isolation_level(isolation)
    conn.isolation_level = level
    conn.read_only = True if read_only else None
    body_done = False
    try:
        with conn.transaction():
            yield
            body_done = True
    except psycopg.Error as exc:
        if body_done and conn.closed:
            raise CommitOutcomeUnknownError(commit_unknown_message(exc)) from exc
        raise
    finally:
        if not conn.closed and (level is not None or read_only):
            conn.isolation_level = None
            conn.read_only = None


@asynccontextmanager
async def begin_async(
    conn: psycopg.AsyncConnection[Any], isolation: Isolation, read_only: bool
) -> AsyncIterator[None]:
    """The async twin of :func:`begin`."""
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


class Transaction(QueryMethods, BulkMethods):
    """A transaction in progress: the query methods, nested ``transaction()`` (a savepoint),
    and ``connection`` for anything else. Valid only inside its ``with`` block."""

    __slots__ = ("_conn", "_db")

    def __init__(self, conn: psycopg.Connection[Any], db: DatabaseBase | None = None) -> None:
        self._conn: psycopg.Connection[Any] | None = conn
        self._db = db

    def __repr__(self) -> str:
        state = "ended" if self._conn is None else self._conn.info.transaction_status.name
        return f"<{type(self).__name__} {state}>"

    @property
    def connection(self) -> psycopg.Connection[Any]:
        """The psycopg connection the transaction runs on."""
        return self._acquire()

    def _acquire(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            raise _ended()
        return self._conn

    def _release(self, conn: psycopg.Connection[Any], dirty: bool = False) -> None:
        if dirty and self._db is not None:
            self._db._dirty.add(id(conn))

    def _failed(self) -> None:
        if self._db is not None:
            self._db._counters.error()

    def _end(self) -> None:
        self._conn = None

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A nested transaction (SAVEPOINT): rolled back alone if its block raises."""
        conn = self._acquire()
        inner = Transaction(conn, self._db)
        try:
            with conn.transaction():
                yield inner
        finally:
            inner._end()

    @contextmanager
    def _atomic(self) -> Iterator[psycopg.Connection[Any]]:
        """The tx's connection inside a savepoint (the contract with pgkeel's bulk helpers)."""
        conn = self._acquire()
        with conn.transaction():
            yield conn


class AsyncTransaction(AsyncQueryMethods, AsyncBulkMethods):
    """The async twin of :class:`Transaction`."""

    __slots__ = ("_conn", "_db")

    def __init__(self, conn: psycopg.AsyncConnection[Any], db: DatabaseBase | None = None) -> None:
        self._conn: psycopg.AsyncConnection[Any] | None = conn
        self._db = db

    def __repr__(self) -> str:
        state = "ended" if self._conn is None else self._conn.info.transaction_status.name
        return f"<{type(self).__name__} {state}>"

    @property
    def connection(self) -> psycopg.AsyncConnection[Any]:
        """The psycopg connection the transaction runs on."""
        if self._conn is None:
            raise _ended()
        return self._conn

    async def _acquire(self) -> psycopg.AsyncConnection[Any]:
        return self.connection

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
        conn = self.connection
        inner = AsyncTransaction(conn, self._db)
        try:
            async with conn.transaction():
                yield inner
        finally:
            inner._end()

    @asynccontextmanager
    async def _atomic(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """The tx's connection inside a savepoint (the contract with pgkeel's bulk helpers)."""
        conn = self.connection
        async with conn.transaction():
            yield conn
