"""``AsyncDatabase``: a psycopg_pool ``AsyncConnectionPool`` with pgkeel's defaults, the query
methods, transactions with retry, ``stats()`` and ``health()``.

The sync face is generated from the asyncio one by ``tools/async_to_sync.py``; what they share
without I/O is in ``_database_base.py``, the pool's policy in :mod:`pgkeel.pool`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, Self, TypeVar

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row, tuple_row
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from pgkeel import drivers
from pgkeel._compat import waiting
from pgkeel._database_base import DatabaseBase, not_open_message
from pgkeel._transaction_base import RETRYABLE, backoff
from pgkeel.bulk._methods_async import AsyncBulkMethods
from pgkeel.config import SERVER_SETTINGS_DEFAULTS, SessionSettings
from pgkeel.errors import ConfigError
from pgkeel.ops._trace import block, retried, traced
from pgkeel.pool._connect_async import (
    apply_settings,
    configure,
    connection_class,
    first_connection,
    pool_conninfo,
)
from pgkeel.pool._counters import LastError
from pgkeel.pool._liveness import needs_check
from pgkeel.pool._reset import SessionBaseline
from pgkeel.pool._sizing import SIZE_QUERY
from pgkeel.scale._pooler_async import check_pooler_settings
from pgkeel.scale._pooler_base import local_settings
from pgkeel.scale._reads_async import AsyncReadRouting, AsyncReplicas
from pgkeel.transaction_async import AsyncTransaction, Isolation, begin_async

if TYPE_CHECKING:
    from pgkeel.cdc import AsyncChanges
    from pgkeel.events import AsyncListener, AsyncSubscription

__all__ = ["AsyncDatabase"]

T = TypeVar("T")
logger = logging.getLogger("pgkeel.pool")
_perf = time.perf_counter
_monotonic = time.monotonic
_IDLE = TransactionStatus.IDLE


class AsyncDatabase(DatabaseBase, AsyncReadRouting, AsyncBulkMethods):
    """A pooled PostgreSQL database, production defaults applied. Use as a context manager
    (``async with`` on the asyncio face) or call :meth:`open` / :meth:`close`.

    ``url`` defaults to ``DATABASE_URL``, then to libpq's own ``PG*`` variables and service
    file; ``options`` are pgkeel's (``min_size``, ``max_size``, ``timeout``, ``size_check``,
    ``ssl``, ``leak_timeout``, ``naive_datetime``, ``statement_timeout``, ``session_settings``,
    ``configure``, ``prepare_threshold``, ``connect_kwargs``, and for scaling out ``pooler``,
    ``direct_url``, ``replicas``, ``max_replica_lag``, ``replica_interval``: see
    :mod:`pgkeel.scale`) or any libpq connection parameter. See :class:`pgkeel.config.Config`
    and :func:`pgkeel.config.resolve`.
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
        self._baseline = SessionBaseline(self.config)
        self._check_idle = self.config.check_idle
        # Behind a pooler: the settings applied with SET LOCAL in each transaction (all of them
        # until open() has seen which ones the server already has).
        self._local = local_settings(self.config.pooler_settings)
        self._last_error = LastError()
        self._made: weakref.WeakSet[Any] = weakref.WeakSet()
        self._connection_class = connection_class(self.config, self._last_error, self._made)
        # The backend, resolved once: None is psycopg itself (see pgkeel.drivers).
        if True:  # ASYNC
            self._driver = drivers.load(self.config.driver, face="async", config=self.config)
        else:
            self._driver = drivers.load(self.config.driver, face="sync", config=self.config)
        self._pool = self._new_pool()
        self._replicas = AsyncReplicas(self, options) if self.config.replicas else None
        self._opened = False
        self._closed = False
        # Closed on interpreter exit (or when garbage collected) if the user forgot.
        self._finalizer = weakref.finalize(self, _shutdown, self._pool, self._made, self._leaks)

    def _new_pool(self) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        if self._driver is not None:
            return self._driver.new_pool(self)  # type: ignore[no-any-return]
        kwargs = self._pool_kwargs()
        # A callable, so that session_settings="auto" can switch the pool to the connection
        # string without settings once it knows the server refuses them at startup.
        kwargs["conninfo"] = partial(
            pool_conninfo, self._session, self._connection_class, kwargs["kwargs"]
        )
        return AsyncConnectionPool(
            **kwargs,
            connection_class=self._connection_class,
            configure=partial(
                configure,
                naive_datetime=self.config.naive_datetime,
                session=self._session,
                user_configure=self.config.configure,
                baseline=self._baseline,
            ),
            # psycopg_pool retries a lost connection with a backoff that grows to minutes; give
            # up after reconnect_delay_max instead: the next checkout then starts a new attempt
            # at once, so the pool is back as soon as the server is.
            reconnect_timeout=self.config.reconnect_delay_max,
        )

    def __repr__(self) -> str:
        return f"<AsyncDatabase {self._target()} {'open' if self._opened else 'closed'}>"

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self, *, wait: bool = True) -> None:
        """Start the pool. With ``wait`` (the default), first connect once to fail fast with the
        real reason (bad password, unreachable host) and run the pool sizing check. A closed
        Database can be opened again (with a new pool)."""
        if self._opened:
            return
        if wait:
            await self._probe()
        if self._closed:
            # psycopg_pool pools cannot be reopened: start a new one.
            self._pool = self._new_pool()
            self._closed = False
        await self._pool.open()
        if self._replicas is not None:
            try:
                await self._replicas.open(wait)
            except BaseException:
                await self._pool.close()
                self._closed = True
                raise
        self._opened = True
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _shutdown, self._pool, self._made, self._leaks)
        self._leaks.start()

    async def close(self) -> None:
        """Close the pool and its connections (connections still checked out are closed when
        they come back)."""
        self._opened = False
        self._closed = True
        self._finalizer.detach()
        # Never blocks: the leak watcher thread ends by itself within its scan interval.
        self._leaks.stop(wait=False)
        if self._replicas is not None:
            await self._replicas.close()
        await self._pool.close()

    async def _probe(self) -> None:
        if self._driver is not None:
            await self._driver.probe(self)
            return
        conn = await first_connection(
            self._session, self._connection_class, self._pool_kwargs()["kwargs"]
        )
        try:
            # What every pooled connection gets: a failing configure= fails open() here,
            # with its own error, rather than the pool retrying it in the background.
            await configure(
                conn,
                naive_datetime=self.config.naive_datetime,
                session=self._session,
                user_configure=self.config.configure,
                baseline=self._baseline,
            )
            if self.config.pooler is not None:
                self._local = await check_pooler_settings(conn, self.config)
            elif self._session.mode == "server":
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
        await apply_settings(conn, self._session)

    # --- checkout -------------------------------------------------------------------------
    #
    # Every connection taken from the pool goes back to it (or is closed, and psycopg_pool
    # replaces it), whatever exception, cancellation or timeout hits. On the asyncio face the
    # return runs where the caller's cancellation cannot reach it (_uninterruptible).

    async def _acquire(self, timeout: float | None = None) -> psycopg.AsyncConnection[Any]:
        t0 = _perf()
        try:
            conn = await self._pool.getconn(timeout)
        except PoolTimeout as exc:
            raise self._timeout_error(exc) from None
        except PoolClosed:
            raise PoolClosed(not_open_message(self._pool.name, self._closed)) from None
        self._counters.checkout(_perf() - t0)
        if needs_check(conn, self._check_idle):
            conn = await self._checked(
                conn, t0 + (self.config.timeout if timeout is None else timeout)
            )
        return conn

    def _timeout_error(self, exc: PoolTimeout) -> PoolTimeout:
        reason = self._last_error.message
        if reason is None:
            return exc
        return PoolTimeout(f"{exc}; the last connection attempt failed: {reason}")

    async def _checked(
        self, conn: psycopg.AsyncConnection[Any], deadline: float
    ) -> psycopg.AsyncConnection[Any]:
        """Round-trip check; replace broken connections at once (the pool reconnects), and reset
        one whose session drifted from a fresh one's (``SessionBaseline``). Not psycopg_pool's
        ``check=``: after a second failed check it waits a second before the next, and after a
        mass backend termination every idle connection fails its check."""
        # Behind a pooler the check may reach any server connection: its session is not ours.
        compare = self.config.pooler is None
        while True:
            try:
                cur = await conn.cursor(row_factory=tuple_row).execute(self._baseline.query)
                row = await cur.fetchone()
            except psycopg.Error:
                await self._give_back(conn)
            except BaseException:
                await self._give_back(conn)
                raise
            else:
                drift = self._baseline.drift(self._session.mode, row) if compare else []
                if not drift:
                    return conn
                logger.warning(
                    "a pooled connection's session differs from a fresh one's (%s) although "
                    "no statement run through pgkeel's query methods showed a change (a "
                    "function that calls set_config() or SET?): resetting it; run such "
                    "statements through connection()",
                    ", ".join(drift),
                )
                # Once per checkout: if the reset did not help, do not loop until the timeout.
                compare = False
                await self._give_back(conn, reset=True)
            try:
                conn = await self._pool.getconn(max(deadline - _perf(), 0.001))
            except PoolTimeout as exc:
                raise self._timeout_error(exc) from None
            if not needs_check(conn, self._check_idle):
                return conn

    async def _release(self, conn: psycopg.AsyncConnection[Any], dirty: bool = False) -> None:
        if (
            dirty
            or conn.pgconn.transaction_status != _IDLE
            or (self._dirty and id(conn) in self._dirty)
        ):
            await self._give_back(conn, reset=True)
            return
        conn.idle_since = _monotonic()  # type: ignore[attr-defined]  # a PoolConnection
        if True:  # ASYNC
            await _uninterruptible(self._pool.putconn(conn))
        else:
            self._pool.putconn(conn)

    async def _give_back(self, conn: psycopg.AsyncConnection[Any], reset: bool = False) -> None:
        """Return a connection to the pool, first bringing it back to the state a new one has
        if ``reset``. A connection that cannot be reset is closed; the pool replaces it."""
        if True:  # ASYNC
            await _uninterruptible(self._reset_and_put(conn, reset))
        else:
            self._reset_and_put(conn, reset)

    async def _reset_and_put(self, conn: psycopg.AsyncConnection[Any], reset: bool) -> None:
        self._dirty.discard(id(conn))
        try:
            if reset and not conn.closed:
                self._counters.reset()
                await self._reset(conn)
        except BaseException as exc:
            logger.warning("closing a connection that could not be reset: %r", exc)
            await conn.close()
            if not isinstance(exc, Exception):
                raise
        finally:
            conn.idle_since = _monotonic()  # type: ignore[attr-defined]  # a PoolConnection
            await self._pool.putconn(conn)

    async def _reset(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Bring a connection back to the state a new one has before others get it."""
        if self._driver is not None:
            await self._driver.reset(conn, self)
            return
        if conn.pgconn.transaction_status == TransactionStatus.ACTIVE:
            # Interrupted in the middle of a query: its state is unknown.
            raise psycopg.InterfaceError("connection interrupted during a query")
        if conn.info.transaction_status == TransactionStatus.IDLE:
            await conn.set_autocommit(True)
            # Open a transaction only to roll it back: rollback() is where psycopg always
            # forgets its prepared statements (and deallocates them on the server). It notices
            # DISCARD ALL only while that text is new to its statement cache: from a connection's
            # second reset on, the server would drop the statements and psycopg would not
            # ("prepared statement _pg3_0 does not exist").
            await conn.execute("BEGIN")
        await conn.rollback()
        await conn.set_autocommit(True)
        await conn.set_isolation_level(None)
        await conn.set_read_only(None)
        await conn.set_deferrable(None)
        conn.row_factory = dict_row
        if self.config.pooler is not None:
            # The pooler's server connection now serves another client: DISCARD ALL would
            # reach that client's session, not ours (and ours has no state to drop).
            return
        # Settings, temp tables, LISTEN, advisory locks, prepared statements, cursors.
        await conn.execute("DISCARD ALL")
        await self._session_setup(conn)

    def _failed(self) -> None:
        self._counters.error()

    # --- blocks that hand out a connection -------------------------------------------------

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """The raw psycopg connection (autocommit, dict rows), for anything else. It is reset
        (DISCARD ALL) when it goes back: settings, temp tables, LISTEN, advisory locks and
        prepared statements do not reach the next user."""
        conn = await self._acquire()
        key = id(conn)
        self._leaks.taken(key, sys._getframe(2))
        try:
            yield conn
        finally:
            self._leaks.returned(key)
            await self._release(conn, dirty=True)
            if self._replicas is not None:
                self._replicas.router.wrote()

    @asynccontextmanager
    async def transaction(
        self, isolation: Isolation = None, read_only: bool = False
    ) -> AsyncIterator[AsyncTransaction]:
        """A transaction: committed if the block ends normally, rolled back if it raises."""
        conn = await self._acquire()
        key = id(conn)
        self._leaks.taken(key, sys._getframe(2))
        tx = AsyncTransaction(conn, self)
        dirty = True
        try:
            async with block(self, "transaction"), begin_async(conn, isolation, read_only):
                if self._local is not None:
                    await conn.execute(self._local[0], self._local[1], prepare=False)
                yield tx
            dirty = False
        finally:
            tx._end()
            self._leaks.returned(key)
            await self._release(conn, dirty)
            if self._replicas is not None and not read_only:
                self._replicas.router.wrote()

    @asynccontextmanager
    async def _atomic(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection in a transaction (the contract with pgkeel's bulk helpers)."""
        async with self.transaction() as tx:
            yield tx._raw()

    @traced("run_transaction", first=None)
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
            except RETRYABLE as exc:
                if attempt >= retries:
                    raise
                self._counters.retry()
                delay = backoff(attempt)
                retried(exc, attempt, delay)
                await asyncio.sleep(delay)
                attempt += 1

    # --- change data capture -----------------------------------------------------------------

    def changes(
        self,
        *,
        slot: str,
        publication: str,
        create: bool = False,
        tables: Sequence[str] | None = None,
        status_interval: float = 10.0,
    ) -> AsyncChanges:
        """The committed changes of ``publication`` through replication slot ``slot``, on this
        Database's connection settings (``pgkeel[cdc]``): see :mod:`pgkeel.cdc`. Use it as a
        context manager; ``ack()`` a transaction once its changes are safe."""
        if True:  # ASYNC
            from pgkeel.cdc import AsyncChanges as stream
        else:
            from pgkeel.cdc import changes as stream
        return stream(
            self,
            slot=slot,
            publication=publication,
            create=create,
            tables=tables,
            status_interval=status_interval,
        )

    # --- events (pgkeel.events) --------------------------------------------------------------

    async def notify(self, channel: str, payload: object = None) -> None:
        """Send a notification on ``channel`` (a str payload, or a dict/list as JSON; under
        8000 bytes): see :mod:`pgkeel.events`."""
        from pgkeel.events.topics_async import notify

        await notify(self, channel, payload)

    def listen(
        self,
        *channels: str,
        on_reconnect: Callable[[], Any] | None = None,
        ping_interval: float = 10.0,
        ping_timeout: float = 5.0,
    ) -> AsyncListener:
        """LISTEN on ``channels`` from a connection of its own that reconnects by itself; use it
        as a context manager and iterate: see :class:`pgkeel.events.AsyncListener`."""
        from pgkeel.events.listen_async import AsyncListener

        return AsyncListener(
            self.config,
            channels,
            on_reconnect=on_reconnect,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
        )

    async def publish(self, topic: str, payload: Any) -> int:
        """Store an event on durable topic ``topic`` in its own transaction; return its id."""
        from pgkeel.events.topics_async import publish

        return await publish(self, self, topic, payload)

    def subscribe(self, topic: str, consumer: str, **options: Any) -> AsyncSubscription:
        """A named consumer of ``topic`` (``start=``, ``auto_ack=``, ``poll_interval=``...);
        use it as a context manager and iterate: see :class:`pgkeel.events.AsyncSubscription`."""
        from pgkeel.events.topics_async import AsyncSubscription

        return AsyncSubscription(self, topic, consumer, **options)

    async def prune_events(self, older_than: float) -> int:
        """Delete events older than ``older_than`` seconds that every consumer acknowledged."""
        from pgkeel.events.topics_async import prune_events

        return await prune_events(self, older_than)

    # --- observability ---------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Pool and usage figures: size, available, waiting, checkouts, wait times, errors,
        retries, connections lost, the last connection error; with ``replicas=``, ``routing``:
        reads served by the primary, and each replica's state, lag, reads and pool."""
        out = self._stats(self._pool.get_stats(), waiting(self._pool), self._last_error.message)
        if self._replicas is not None:
            out["routing"] = self._replicas.stats()
        return out

    async def health(self, timeout: float = 2.0) -> dict[str, Any]:
        """Run a real round trip (waiting at most ``timeout`` for a connection); return
        ``{"status": "ok"|"degraded", "latency_ms": ..., "error": ..., "pool": {...}}``, and
        with ``replicas=`` each replica's state and lag (``"replicas"``; the status is the
        primary's: reads go there when no replica can serve)."""
        t0 = _perf()
        error = None
        try:
            if True:  # ASYNC
                async with asyncio.timeout(timeout):
                    await self._round_trip(timeout)
            else:
                self._round_trip(timeout)
        except Exception as exc:
            error = f"{type(exc).__name__}: {self.config.scrub(str(exc))}"
            reason = self._last_error.message
            if isinstance(exc, TimeoutError) and reason and reason not in error:
                error += f" (the last connection attempt failed: {reason})"
        stats = self.stats()
        return {
            "status": "degraded" if error else "ok",
            "latency_ms": round((_perf() - t0) * 1000, 3),
            "error": error,
            "pool": {k: stats[k] for k in ("size", "available", "waiting", "max_size")},
            **({} if self._replicas is None else {"replicas": self._replicas.health()}),
        }

    async def _round_trip(self, timeout: float) -> None:
        conn = await self._acquire(timeout)
        dirty = True
        try:
            cur = await conn.cursor(row_factory=tuple_row).execute("SELECT 1")
            await cur.fetchone()
            dirty = False
        finally:
            await self._release(conn, dirty)


def _shutdown(
    pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]], made: weakref.WeakSet[Any], leaks: Any
) -> None:
    leaks.stop(wait=False)
    if True:  # ASYNC
        # At interpreter exit (or garbage collection) there is no event loop to await close()
        # on: end the sessions with libpq's blocking call so the server sees a clean goodbye
        # rather than a dropped socket.
        for conn in list(made):
            if not conn.closed:
                conn.pgconn.finish()
    else:
        pool.close()


if True:  # ASYNC
    #: Tasks finishing a connection's return after their caller was cancelled (kept referenced).
    _FINISHING: set[asyncio.Task[None]] = set()

    async def _uninterruptible(coro: Coroutine[Any, Any, None]) -> None:
        """Await ``coro`` so that cancelling the caller cannot stop it halfway.

        Returning a connection to psycopg_pool normally completes without suspending, and then
        this costs nothing: the first step runs here. If it must wait (for the pool's lock, a
        reset's round trips), the rest runs in a task of its own, shielded from the caller.
        """
        try:
            waiting_on = coro.send(None)
        except StopIteration:
            return
        task = asyncio.ensure_future(_finish(coro, waiting_on))
        _FINISHING.add(task)
        task.add_done_callback(_FINISHING.discard)
        await asyncio.shield(task)

    async def _finish(coro: Coroutine[Any, Any, None], waiting_on: Any) -> None:
        """Drive a started coroutine to its end: wait for what it waits on, then resume it."""
        try:
            while True:
                if waiting_on is None:
                    await asyncio.sleep(0)  # a bare yield
                else:
                    await asyncio.wait([waiting_on])
                try:
                    waiting_on = coro.send(None)
                except StopIteration:
                    return
        except BaseException:
            coro.close()
            raise
