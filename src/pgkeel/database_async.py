"""``AsyncDatabase``: a psycopg_pool ``AsyncConnectionPool`` with pgkeel's defaults, the query
methods, transactions with retry, ``stats()`` and ``health()``.

The sync face is generated from the asyncio one by ``tools/async_to_sync.py``; what they share
without I/O is in ``_database_base.py``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, Self, TypeVar

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row, tuple_row
from psycopg_pool import AsyncConnectionPool
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
from pgkeel.config import SERVER_SETTINGS_DEFAULTS, SessionSettings, scrub
from pgkeel.copy_async import AsyncBulkMethods
from pgkeel.errors import ConfigError
from pgkeel.query_async import AsyncQueryMethods
from pgkeel.transaction_async import AsyncTransaction, Isolation, begin_async

__all__ = ["AsyncDatabase"]

T = TypeVar("T")
logger = logging.getLogger("pgkeel.pool")
_perf = time.perf_counter
_monotonic = time.monotonic


class _Pool(AsyncConnectionPool[psycopg.AsyncConnection[Any]]):
    reconnect_delay_max = 2.0

    async def _add_connection(
        self, attempt: AttemptWithBackoff | None, growing: bool = False
    ) -> None:
        # psycopg_pool backs off up to minutes between reconnection attempts; cap the delay so
        # the pool is back within seconds of the server.
        if attempt is None:
            attempt = CappedAttempt(timeout=self.reconnect_timeout, cap=self.reconnect_delay_max)
        await super()._add_connection(attempt, growing=growing)


class _Connection(psycopg.AsyncConnection[Any]):
    """psycopg's connection whose connection errors carry no secret of the connection string
    (a server echoes a bad ``-c`` value in its FATAL message; psycopg_pool logs the error)."""

    @classmethod
    async def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
        try:
            return await super().connect(conninfo, **kwargs)
        except psycopg.Error as exc:
            raise _scrubbed(exc, conninfo) from None


def _scrubbed(exc: psycopg.Error, conninfo: str) -> psycopg.Error:
    message = scrub(str(exc), conninfo)
    return exc if message == str(exc) else type(exc)(message)


class AsyncDatabase(DatabaseBase, AsyncQueryMethods, AsyncBulkMethods):
    """A pooled PostgreSQL database, production defaults applied. Use as a context manager
    (``async with`` on the asyncio face) or call :meth:`open` / :meth:`close`.

    ``url`` defaults to ``DATABASE_URL``, then to libpq's own ``PG*`` variables and service
    file; ``options`` are pgkeel's (``min_size``, ``max_size``, ``timeout``, ``size_check``,
    ``ssl``, ``leak_timeout``, ``naive_datetime``, ``statement_timeout``, ``session_settings``,
    ``configure``, ``prepare_threshold``, ``connect_kwargs``...) or any libpq connection
    parameter. See :class:`pgkeel.config.Config` and :func:`pgkeel.config.resolve`.
    """

    def __init__(self, url: str | None = None, **options: Any) -> None:
        super().__init__(url, options)
        if True:  # ASYNC
            pass
        else:
            if inspect.iscoroutinefunction(self.config.configure):
                raise ConfigError(
                    "option configure=: Database calls configure synchronously, and this one "
                    "is async; pass a plain function, or use the asyncio face"
                )
        self._session = SessionSettings(self.config)
        kwargs = self._pool_kwargs()
        # A callable, so that session_settings="auto" can switch the pool to the connection
        # string without settings once it knows the server refuses them at startup.
        kwargs["conninfo"] = partial(_conninfo, self._session, kwargs["kwargs"])
        self._pool = _Pool(
            **kwargs,
            connection_class=_Connection,
            configure=partial(
                _configure,
                naive_datetime=self.config.naive_datetime,
                session=self._session,
                user_configure=self.config.configure,
            ),
        )
        self._pool.reconnect_delay_max = self.config.reconnect_delay_max
        self._check_idle = self.config.check_idle
        self._opened = False
        # Closed on interpreter exit (or when garbage collected) if the user forgot.
        self._finalizer = weakref.finalize(self, _shutdown, self._pool, self._leaks)

    def __repr__(self) -> str:
        return f"<AsyncDatabase {self._target()} {'open' if self._opened else 'closed'}>"

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self, *, wait: bool = True) -> None:
        """Start the pool. With ``wait`` (the default), first connect once to fail fast with the
        real reason (bad password, unreachable host) and run the pool sizing check."""
        if self._opened:
            return
        if wait:
            await self._probe()
        await self._pool.open()
        self._opened = True
        self._leaks.start()

    async def close(self) -> None:
        """Close the pool and its connections."""
        self._opened = False
        self._finalizer.detach()
        self._leaks.stop()
        await self._pool.close()

    async def _probe(self) -> None:
        conn = await _first_connection(self._session, self._pool_kwargs()["kwargs"])
        try:
            # What every pooled connection gets: a failing configure= fails open() here,
            # with its own error, rather than the pool retrying it in the background.
            await _configure(
                conn,
                naive_datetime=self.config.naive_datetime,
                session=self._session,
                user_configure=self.config.configure,
            )
            if self._session.mode == "server":
                await self._check_server_settings(conn)
            if self.config.size_check != "off":
                cur = await conn.cursor(row_factory=tuple_row).execute(SIZE_QUERY)
                row = await cur.fetchone()
                assert row is not None
                self._size_verdict(row, ours=1)
        finally:
            await conn.close()

    async def _check_server_settings(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """With session_settings="server", warn about each default timeout the server leaves
        off (0), since pgkeel does not send it."""
        cur = await conn.cursor(row_factory=tuple_row).execute(
            "SELECT name FROM pg_settings WHERE name = ANY(%s) AND setting = '0' ORDER BY name",
            [list(SERVER_SETTINGS_DEFAULTS)],
        )
        off = [row[0] for row in await cur.fetchall()]
        if off:
            logger.warning(
                "session_settings='server' but the server has no %s for this role and "
                "database; set them there, e.g. ALTER ROLE ... SET statement_timeout = '30s'",
                ", ".join(off),
            )

    async def _session_setup(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Re-apply the session settings after a reset (DISCARD ALL) when they are not in the
        startup packet (which DISCARD ALL keeps)."""
        await _apply_settings(conn, self._session)

    # --- checkout -------------------------------------------------------------------------

    async def _acquire(self, timeout: float | None = None) -> psycopg.AsyncConnection[Any]:
        t0 = _perf()
        conn = await self._pool.getconn(timeout)
        self._counters.checkout(_perf() - t0)
        if needs_check(conn, self._check_idle):
            conn = await self._checked(
                conn, t0 + (self.config.timeout if timeout is None else timeout)
            )
        return conn

    async def _checked(
        self, conn: psycopg.AsyncConnection[Any], deadline: float
    ) -> psycopg.AsyncConnection[Any]:
        """Round-trip check; replace broken connections at once (the pool reconnects)."""
        while True:
            try:
                await conn.execute("")
            except psycopg.Error:
                await self._pool.putconn(conn)
                conn = await self._pool.getconn(max(deadline - _perf(), 0.001))
                if not needs_check(conn, self._check_idle):
                    return conn
            else:
                return conn

    async def _release(self, conn: psycopg.AsyncConnection[Any], dirty: bool = False) -> None:
        if dirty or (self._dirty and id(conn) in self._dirty):
            await self._reset(conn)
        conn._pgkeel_idle_since = _monotonic()  # type: ignore[attr-defined]
        await self._pool.putconn(conn)

    async def _reset(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Bring a connection back to the state a new one has before others get it."""
        self._dirty.discard(id(conn))
        if conn.closed:
            return
        try:
            if conn.info.transaction_status != TransactionStatus.IDLE:
                await conn.rollback()
            await conn.set_autocommit(True)
            await conn.set_isolation_level(None)
            await conn.set_read_only(None)
            await conn.set_deferrable(None)
            conn.row_factory = dict_row
            # psycopg sees DISCARD ALL and forgets its prepared statements too.
            await conn.execute("DISCARD ALL")
            await self._session_setup(conn)
        except psycopg.Error:
            await conn.close()

    def _failed(self) -> None:
        self._counters.error()

    # --- blocks that hand out a connection -------------------------------------------------

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """The raw psycopg connection (autocommit, dict rows), for anything else. Session state
        changed here (SET, LISTEN, temp tables...) is discarded when it goes back."""
        conn = await self._acquire()
        key = id(conn)
        self._leaks.taken(key, sys._getframe(2))
        try:
            yield conn
        finally:
            self._leaks.returned(key)
            await self._release(conn, dirty=True)

    @asynccontextmanager
    async def transaction(
        self, isolation: Isolation = None, read_only: bool = False
    ) -> AsyncIterator[AsyncTransaction]:
        """A transaction: committed if the block ends normally, rolled back if it raises."""
        conn = await self._acquire()
        key = id(conn)
        self._leaks.taken(key, sys._getframe(2))
        tx = AsyncTransaction(conn, self)
        try:
            async with begin_async(conn, isolation, read_only):
                yield tx
        finally:
            tx._end()
            self._leaks.returned(key)
            await self._release(conn)

    @asynccontextmanager
    async def _atomic(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection in a transaction (the contract with pgkeel's bulk helpers)."""
        async with self.transaction() as tx:
            yield tx.connection

    async def run_transaction(
        self,
        fn: Callable[[AsyncTransaction], Awaitable[T]],
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
                async with self.transaction(isolation, read_only) as tx:
                    return await fn(tx)
            except RETRYABLE:
                if attempt >= retries:
                    raise
                self._counters.retry()
                await asyncio.sleep(backoff(attempt))
                attempt += 1

    # --- observability ---------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Pool and usage figures: size, available, waiting, checkouts, wait times, errors,
        retries, connections lost."""
        return self._stats(self._pool.get_stats())

    async def health(self, timeout: float = 2.0) -> dict[str, Any]:
        """Run a real round trip (waiting at most ``timeout`` for a connection); return
        ``{"status": "ok"|"degraded", "latency_ms": ..., "error": ..., "pool": {...}}``."""
        t0 = _perf()
        error = None
        try:
            if True:  # ASYNC
                async with asyncio.timeout(timeout):
                    await self._round_trip(timeout)
            else:
                self._round_trip(timeout)
        except Exception as exc:
            error = f"{type(exc).__name__}: {scrub(str(exc), self.config.conninfo)}"
        stats = self.stats()
        return {
            "status": "degraded" if error else "ok",
            "latency_ms": round((_perf() - t0) * 1000, 3),
            "error": error,
            "pool": {k: stats[k] for k in ("size", "available", "waiting", "max_size")},
        }

    async def _round_trip(self, timeout: float) -> None:
        conn = await self._acquire(timeout)
        try:
            cur = await conn.cursor(row_factory=tuple_row).execute("SELECT 1")
            await cur.fetchone()
        finally:
            await self._release(conn)


async def _configure(
    conn: psycopg.AsyncConnection[Any],
    *,
    naive_datetime: str,
    session: SessionSettings,
    user_configure: Callable[[Any], Any] | None,
) -> None:
    """Set up a new connection: pgkeel's adapters, the session settings, then the user's
    configure= (last, so its adapters win)."""
    types.configure(conn, naive_datetime=naive_datetime)
    await _apply_settings(conn, session)
    if user_configure is not None:
        result = user_configure(conn)
        if inspect.isawaitable(result):
            if True:  # ASYNC
                await result
            else:
                if inspect.iscoroutine(result):
                    result.close()
                raise ConfigError(
                    "option configure= returned an awaitable, which Database cannot await; "
                    "pass a plain function, or use the asyncio face"
                )


async def _apply_settings(conn: psycopg.AsyncConnection[Any], session: SessionSettings) -> None:
    statement = session.statement()
    if statement is not None:
        try:
            # Never prepared: behind PgBouncer a prepared statement may not find its server.
            await conn.execute(statement[0], statement[1], prepare=False)
        except psycopg.Error as exc:
            # The server's message quotes a bad value, and a value may be a secret.
            message = session.config.scrub(str(exc))
            raise (exc if message == str(exc) else type(exc)(message)) from None


async def _first_connection(
    session: SessionSettings, kwargs: dict[str, Any]
) -> psycopg.AsyncConnection[Any]:
    """Connect once; for session_settings="auto", first learn whether the server takes the
    settings in the startup packet (PgBouncer refuses them, or ignores them if configured to)."""
    if session.decided:
        return await _Connection.connect(session.conninfo(), **kwargs)
    try:
        conn = await _Connection.connect(session.conninfo(), **kwargs)
    except psycopg.OperationalError as exc:
        if not session.startup_refused(exc):
            raise
        session.use_set(f"the server refused the startup packet's options ({_first_line(exc)})")
        return await _Connection.connect(session.conninfo(), **kwargs)
    try:
        cur = await conn.cursor(row_factory=tuple_row).execute(
            session.IGNORED_QUERY, [session.names()], prepare=False
        )
        session.started([row[0] for row in await cur.fetchall()])
    except BaseException:
        await conn.close()
        raise
    return conn


async def _conninfo(session: SessionSettings, kwargs: dict[str, Any]) -> str:
    """The pool's connection string (open(wait=False) leaves "auto" undecided until here)."""
    if not session.decided:
        conn = await _first_connection(session, kwargs)
        await conn.close()
    return session.conninfo()


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _shutdown(pool: _Pool, leaks: Any) -> None:
    leaks.stop()
    if True:  # ASYNC
        # At interpreter exit (or garbage collection) there is no event loop to await close()
        # on: end the idle connections' sessions with libpq's blocking call so the server sees
        # a clean goodbye rather than a dropped socket.
        for conn in list(getattr(pool, "_pool", ())):
            conn.pgconn.finish()
    else:
        pool.close()
