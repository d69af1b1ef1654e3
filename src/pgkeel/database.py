"""``Database``: the synchronous face: a psycopg_pool ``ConnectionPool`` with pgkeel's defaults,
the query methods, transactions with retry, ``stats()`` and ``health()``.

Its async twin is ``database_async.py``; what they share without I/O is in
``_database_base.py``. Keep the two files parallel, method by method.
"""

from __future__ import annotations

import sys
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, Self, TypeVar

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row, tuple_row
from psycopg_pool import ConnectionPool
from psycopg_pool.base import AttemptWithBackoff

from pgkeel import types
from pgkeel._database_base import (
    RETRYABLE,
    SIZE_QUERY,
    CappedAttempt,
    DatabaseBase,
    backoff,
    needs_check,
)
from pgkeel.config import scrub
from pgkeel.copy import BulkMethods
from pgkeel.query import QueryMethods
from pgkeel.transaction import Isolation, Transaction, begin

__all__ = ["Database"]

T = TypeVar("T")
_perf = time.perf_counter
_monotonic = time.monotonic


class _Pool(ConnectionPool[psycopg.Connection[Any]]):
    reconnect_delay_max = 2.0

    def _add_connection(self, attempt: AttemptWithBackoff | None, growing: bool = False) -> None:
        # psycopg_pool backs off up to minutes between reconnection attempts; cap the delay so
        # the pool is back within seconds of the server.
        if attempt is None:
            attempt = CappedAttempt(timeout=self.reconnect_timeout, cap=self.reconnect_delay_max)
        super()._add_connection(attempt, growing=growing)


class Database(DatabaseBase, QueryMethods, BulkMethods):
    """A pooled PostgreSQL database, production defaults applied. Use as a context manager or
    call :meth:`open` / :meth:`close`.

    ``url`` defaults to ``DATABASE_URL``, then to libpq's own ``PG*`` variables and service
    file; ``options`` are pgkeel's (``min_size``, ``max_size``, ``timeout``, ``size_check``,
    ``ssl``, ``leak_timeout``, ``naive_datetime``, ``statement_timeout``...) or any libpq
    connection parameter. See :func:`pgkeel.config.resolve`.
    """

    def __init__(self, url: str | None = None, **options: Any) -> None:
        super().__init__(url, options)
        self._pool = _Pool(
            **self._pool_kwargs(),
            configure=partial(types.configure, naive_datetime=self.config.naive_datetime),
        )
        self._pool.reconnect_delay_max = self.config.reconnect_delay_max
        self._check_idle = self.config.check_idle
        self._opened = False
        # Closed on interpreter exit (or when garbage collected) if the user forgot.
        self._finalizer = weakref.finalize(self, _shutdown, self._pool, self._leaks)

    def __repr__(self) -> str:
        return f"<Database {self._target()} {'open' if self._opened else 'closed'}>"

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self, *, wait: bool = True) -> None:
        """Start the pool. With ``wait`` (the default), first connect once to fail fast with the
        real reason (bad password, unreachable host) and run the pool sizing check."""
        if self._opened:
            return
        if wait:
            self._probe()
        self._pool.open()
        self._opened = True
        self._leaks.start()

    def close(self) -> None:
        """Close the pool and its connections."""
        self._opened = False
        self._finalizer()

    def _probe(self) -> None:
        try:
            conn = psycopg.Connection.connect(self.config.conninfo)
        except psycopg.Error as exc:
            message = scrub(str(exc), self.config.conninfo)
            if message != str(exc):
                raise type(exc)(message) from None
            raise
        try:
            if self.config.size_check != "off":
                row = conn.cursor(row_factory=tuple_row).execute(SIZE_QUERY).fetchone()
                assert row is not None
                self._size_verdict(row, ours=1)
        finally:
            conn.close()

    # --- checkout -------------------------------------------------------------------------

    def _acquire(self, timeout: float | None = None) -> psycopg.Connection[Any]:
        t0 = _perf()
        conn = self._pool.getconn(timeout)
        self._counters.checkout(_perf() - t0)
        if needs_check(conn, self._check_idle):
            conn = self._checked(conn, t0 + (self.config.timeout if timeout is None else timeout))
        return conn

    def _checked(self, conn: psycopg.Connection[Any], deadline: float) -> psycopg.Connection[Any]:
        """Round-trip check; replace broken connections at once (the pool reconnects)."""
        while True:
            try:
                conn.execute("")
            except psycopg.Error:
                self._pool.putconn(conn)
                conn = self._pool.getconn(max(deadline - _perf(), 0.001))
                if not needs_check(conn, self._check_idle):
                    return conn
            else:
                return conn

    def _release(self, conn: psycopg.Connection[Any], dirty: bool = False) -> None:
        if dirty or (self._dirty and id(conn) in self._dirty):
            self._reset(conn)
        conn._pgkeel_idle_since = _monotonic()  # type: ignore[attr-defined]
        self._pool.putconn(conn)

    def _reset(self, conn: psycopg.Connection[Any]) -> None:
        """Bring a connection back to the state a new one has before others get it."""
        self._dirty.discard(id(conn))
        if conn.closed:
            return
        try:
            if conn.info.transaction_status != TransactionStatus.IDLE:
                conn.rollback()
            conn.autocommit = True
            conn.isolation_level = None
            conn.read_only = None
            conn.deferrable = None
            conn.row_factory = dict_row
            # psycopg sees DISCARD ALL and forgets its prepared statements too.
            conn.execute("DISCARD ALL")
        except psycopg.Error:
            conn.close()

    def _failed(self) -> None:
        self._counters.error()

    # --- blocks that hand out a connection -------------------------------------------------

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """The raw psycopg connection (autocommit, dict rows), for anything else. Session state
        changed here (SET, LISTEN, temp tables...) is discarded when it goes back."""
        conn = self._acquire()
        key = id(conn)
        self._leaks.taken(key, sys._getframe(2))
        try:
            yield conn
        finally:
            self._leaks.returned(key)
            self._release(conn, dirty=True)

    @contextmanager
    def transaction(
        self, isolation: Isolation = None, read_only: bool = False
    ) -> Iterator[Transaction]:
        """A transaction: committed if the block ends normally, rolled back if it raises."""
        conn = self._acquire()
        key = id(conn)
        self._leaks.taken(key, sys._getframe(2))
        tx = Transaction(conn, self)
        try:
            with begin(conn, isolation, read_only):
                yield tx
        finally:
            tx._end()
            self._leaks.returned(key)
            self._release(conn)

    @contextmanager
    def _atomic(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection in a transaction (the contract with pgkeel's bulk helpers)."""
        with self.transaction() as tx:
            yield tx.connection

    def run_transaction(
        self,
        fn: Callable[[Transaction], T],
        *,
        isolation: Isolation = "serializable",
        read_only: bool = False,
        retries: int = 5,
    ) -> T:
        """Run ``fn(tx)`` in a transaction; on serialization failure or deadlock run it again
        (up to ``retries`` times, with capped, jittered exponential backoff). ``fn`` must not
        have effects outside the database, since it may run more than once."""
        attempt = 0
        while True:
            try:
                with self.transaction(isolation, read_only) as tx:
                    return fn(tx)
            except RETRYABLE:
                if attempt >= retries:
                    raise
                self._counters.retry()
                time.sleep(backoff(attempt))
                attempt += 1

    # --- observability ---------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Pool and usage figures: size, available, waiting, checkouts, wait times, errors,
        retries, connections lost."""
        return self._stats(self._pool.get_stats())

    def health(self, timeout: float = 2.0) -> dict[str, Any]:
        """Run a real round trip (waiting at most ``timeout`` for a connection); return
        ``{"status": "ok"|"degraded", "latency_ms": ..., "error": ..., "pool": {...}}``."""
        t0 = _perf()
        error = None
        try:
            conn = self._acquire(timeout)
            try:
                conn.cursor(row_factory=tuple_row).execute("SELECT 1").fetchone()
            finally:
                self._release(conn)
        except Exception as exc:
            error = f"{type(exc).__name__}: {scrub(str(exc), self.config.conninfo)}"
        stats = self.stats()
        return {
            "status": "degraded" if error else "ok",
            "latency_ms": round((_perf() - t0) * 1000, 3),
            "error": error,
            "pool": {k: stats[k] for k in ("size", "available", "waiting", "max_size")},
        }


def _shutdown(pool: _Pool, leaks: Any) -> None:
    leaks.stop()
    pool.close()
