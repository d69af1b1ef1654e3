"""``AsyncListener``: LISTEN on its own connection, outside the pool, that notices a lost
connection within a bounded time and comes back on its own.

The listener drives libpq directly (``send_query``, ``consume_input``, ``notifies``) and waits on
the socket itself, so that every wait has a deadline: a ping (``SELECT 1``) after
``ping_interval`` seconds without traffic must answer within ``ping_timeout``, or the connection
is taken for dead, even when the network went silent without closing it (the TCP keepalives and
``tcp_user_timeout`` of pgkeel's defaults catch that too, in about a minute). It then reconnects
with capped backoff, LISTENs again on every channel and only then hands out
:data:`~pgkeel.events.RECONNECTED` (or calls ``on_reconnect``): notifications sent meanwhile are
gone, and the application must re-read what they stood for. Closing is prompt even while a
``get()`` waits (from another task, or another thread on the sync face). The sync face is
generated from this file by ``tools/async_to_sync.py``.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import os
import select
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Self

import psycopg
from psycopg import pq, sql

from pgkeel._database_base import scrub_error
from pgkeel.config import direct_conninfo
from pgkeel.events._base import RECONNECTED, Notification, Reconnected, check_name, reconnect_delay

if TYPE_CHECKING:
    from pgkeel.config import Config

__all__ = ["AsyncListener", "listener_conninfo"]

logger = logging.getLogger("pgkeel.events")
_monotonic = time.monotonic
_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)


def listener_conninfo(config: Config) -> str:
    """The connection string a listener connects with: the Database's own, resolved (TLS,
    keepalives, ``tcp_user_timeout``, ``connect_timeout``, session settings).

    The one place that decides it: a LISTEN needs a session of its own on the real server, so
    behind a transaction-mode pooler it is ``direct_url=``, and without one a
    :class:`~pgkeel.errors.PoolerError` that says so."""
    return direct_conninfo(config, "LISTEN (pgkeel.events: listen, subscribe)")


class _Dead(Exception):
    """The connection did not answer in time: taken for dead."""


class AsyncListener:
    """LISTEN on ``channels`` from a connection of its own; iterate (``async for``) for
    :class:`Notification` items, and :data:`RECONNECTED` after each reconnect (unless
    ``on_reconnect`` is given: it is called instead). Build it with ``db.listen(...)``."""

    def __init__(
        self,
        config: Config,
        channels: tuple[str, ...],
        *,
        on_reconnect: Callable[[], Any] | None = None,
        ping_interval: float = 10.0,
        ping_timeout: float = 5.0,
        reconnect_delay_max: float = 5.0,
    ) -> None:
        if ping_interval <= 0 or ping_timeout <= 0:
            raise ValueError("ping_interval and ping_timeout must be positive numbers of seconds")
        self._config = config
        # Decided here, so that db.listen() behind a pooler fails at once, not on connecting.
        self._conninfo = listener_conninfo(config)
        self._channels = list(dict.fromkeys(check_name(c, "channel name") for c in channels))
        self._on_reconnect = on_reconnect
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._delay_max = reconnect_delay_max
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._queue: collections.deque[Notification | Reconnected] = collections.deque()
        self._closed = False
        self._finished = False
        self._opened = False
        self._waiting = False
        self._lost = False  # lost its connection, not yet back
        self._attempt = 0
        self._retry_at = 0.0
        self._ping_at = 0.0
        self._notifications = 0
        self._reconnects = 0
        self._lock = threading.Lock()
        if True:  # ASYNC
            self._wake: asyncio.Future[None] | None = None
        else:
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_r, False)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "connected" if self._conn else "disconnected"
        return f"<{type(self).__name__} {', '.join(self._channels)} {state}>"

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Notification | Reconnected:
        item = await self.get()
        if item is None:
            raise StopAsyncIteration
        return item

    @property
    def channels(self) -> list[str]:
        return list(self._channels)

    def stats(self) -> dict[str, Any]:
        """``notifications`` received, ``reconnects`` made, ``connected`` now, ``channels``, and
        ``backend_pid``, the server process of its connection (None while disconnected)."""
        conn = self._conn
        return {
            "backend_pid": conn.info.backend_pid if conn is not None and not conn.closed else None,
            "notifications": self._notifications,
            "reconnects": self._reconnects,
            "connected": self._conn is not None and not self._closed,
            "channels": list(self._channels),
        }

    # --- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and LISTEN; a failure here is raised (later losses are retried)."""
        if self._closed:
            raise psycopg.InterfaceError("the listener is closed")
        if self._opened:
            return
        self._conn = await self._connect()
        self._opened = True
        self._ping_at = _monotonic() + self._ping_interval

    async def close(self) -> None:
        """Stop listening and close the connection; a ``get()`` waiting elsewhere returns
        ``None`` (its iteration ends) at once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            waiting = self._waiting
        if True:  # ASYNC
            if self._wake is not None and not self._wake.done():
                self._wake.set_result(None)
        else:
            os.write(self._wake_w, b"x")
        if not waiting:
            await self._finish()

    async def _finish(self) -> None:
        """Once closed: close the connection and the wake-up pipe, exactly once (close() and a
        get() ending in another thread may both get here)."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
        await self._drop()
        if True:  # ASYNC
            pass
        else:
            for fd in (self._wake_r, self._wake_w):
                os.close(fd)

    async def listen(self, *channels: str) -> None:
        """LISTEN on more channels (kept across reconnects)."""
        names = [check_name(c, "channel name") for c in channels]
        new = [n for n in names if n not in self._channels]
        self._channels.extend(new)
        if self._conn is not None and new:
            try:
                await self._command(self._conn, self._listen_sql(self._conn, new))
            except (psycopg.OperationalError, _Dead) as exc:
                await self._lose(exc)

    # --- receiving ------------------------------------------------------------------------

    async def get(self, timeout: float | None = None) -> Notification | Reconnected | None:
        """The next notification (or :data:`RECONNECTED`), waiting at most ``timeout`` seconds
        (``None``: until one comes); ``None`` on timeout or once the listener is closed."""
        if not self._opened and not self._closed:
            await self.open()
        deadline = None if timeout is None else _monotonic() + timeout
        with self._lock:
            self._waiting = True
        try:
            return await self._get(deadline)
        finally:
            with self._lock:
                self._waiting = False
                closed = self._closed
            if closed:
                await self._finish()

    async def _get(self, deadline: float | None) -> Notification | Reconnected | None:
        while True:
            if self._queue:
                return self._queue.popleft()
            if self._closed:
                return None
            now = _monotonic()
            if deadline is not None and now >= deadline:
                return None
            conn = self._conn
            if conn is None:
                if now < self._retry_at:
                    await self._wait(None, _until(self._retry_at, deadline, now))
                    continue
                await self._reconnect()
                continue
            try:
                self._drain(conn)
                if self._queue:
                    continue
                if now >= self._ping_at:
                    await self._command(conn, b"SELECT 1")
                    self._ping_at = _monotonic() + self._ping_interval
                    continue
                if await self._wait(conn.pgconn.socket, _until(self._ping_at, deadline, now)):
                    _read(conn)
                    self._ping_at = _monotonic() + self._ping_interval
            except (psycopg.OperationalError, _Dead) as exc:
                await self._lose(exc)

    def _drain(self, conn: psycopg.AsyncConnection[Any]) -> None:
        pgconn = conn.pgconn
        encoding = conn.info.encoding
        while (n := pgconn.notifies()) is not None:
            self._notifications += 1
            self._queue.append(
                Notification(n.relname.decode(encoding), n.extra.decode(encoding), n.be_pid)
            )

    # --- connection -----------------------------------------------------------------------

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        try:
            conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        except psycopg.Error as exc:
            scrub_error(exc, self._config.scrub)
            raise
        try:
            if self._channels:
                await self._command(conn, self._listen_sql(conn, self._channels))
        except BaseException:
            await conn.close()
            raise
        return conn

    def _listen_sql(self, conn: psycopg.AsyncConnection[Any], channels: list[str]) -> bytes:
        return b";".join(
            sql.SQL("LISTEN {}").format(sql.Identifier(c)).as_bytes(conn) for c in channels
        )

    async def _lose(self, exc: BaseException) -> None:
        if self._closed:
            return
        logger.warning(
            "listener on %s lost its connection (%s); reconnecting",
            ", ".join(self._channels),
            self._config.scrub(str(exc).strip() or type(exc).__name__),
        )
        self._drain_quietly()
        await self._drop()
        self._lost = True
        self._attempt = 0
        self._retry_at = 0.0

    def _drain_quietly(self) -> None:
        # Notifications already read before the loss are still good: hand them out.
        if self._conn is not None:
            try:
                self._drain(self._conn)
            except Exception:  # a broken connection: nothing more to read
                logger.debug("could not read the last notifications", exc_info=True)

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception:  # closing a broken connection: nothing else to do
                logger.debug("closing the listener's connection failed", exc_info=True)

    async def _reconnect(self) -> None:
        try:
            conn = await self._connect()
        except psycopg.Error as exc:
            delay = reconnect_delay(self._attempt, self._delay_max)
            self._attempt += 1
            self._retry_at = _monotonic() + delay
            logger.info("listener reconnect failed (%s); next attempt in %.2f s", exc, delay)
            return
        if self._closed:
            await conn.close()
            return
        self._conn = conn
        self._lost = False
        self._reconnects += 1
        self._ping_at = _monotonic() + self._ping_interval
        logger.info("listener reconnected, listening on %s again", ", ".join(self._channels))
        if self._on_reconnect is None:
            self._queue.append(RECONNECTED)
            return
        result = self._on_reconnect()
        if inspect.isawaitable(result):
            if True:  # ASYNC
                await result
            else:
                if inspect.iscoroutine(result):
                    result.close()
                raise TypeError("on_reconnect returned an awaitable: use the asyncio face")

    async def _command(self, conn: psycopg.AsyncConnection[Any], query: bytes) -> None:
        """Run ``query`` within ``ping_timeout`` or raise :class:`_Dead`."""
        pgconn = conn.pgconn
        deadline = _monotonic() + self._ping_timeout
        pgconn.send_query(query)
        while pgconn.flush():
            if not await self._wait(pgconn.socket, deadline - _monotonic(), write=True):
                raise _Dead(f"no answer within {self._ping_timeout} s")
        while True:
            pgconn.consume_input()
            if not pgconn.is_busy():
                break
            if not await self._wait(pgconn.socket, deadline - _monotonic()):
                if self._closed:
                    return
                raise _Dead(f"no answer within {self._ping_timeout} s")
        error = None
        while (res := pgconn.get_result()) is not None:
            if res.status not in _OK and error is None:
                error = (res.error_message or b"").decode(conn.info.encoding, "replace")
        if error is not None:
            raise psycopg.OperationalError(error.strip())

    if True:  # ASYNC

        async def _wait(self, fd: int | None, timeout: float, write: bool = False) -> bool:
            """Wait until ``fd`` is ready (True), ``timeout`` passes or the listener is closed
            (False); ``fd=None`` only sleeps."""
            if self._closed or timeout <= 0:
                return False
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[None] = loop.create_future()
            self._wake = fut

            def ready() -> None:
                if not fut.done():
                    fut.set_result(None)

            if fd is not None:
                (loop.add_writer if write else loop.add_reader)(fd, ready)
            try:
                async with asyncio.timeout(timeout):
                    await fut
            except TimeoutError:
                return False
            finally:
                self._wake = None
                if fd is not None:
                    (loop.remove_writer if write else loop.remove_reader)(fd)
            return not self._closed

    else:

        def _wait(self, fd: int | None, timeout: float, write: bool = False) -> bool:
            """Wait until ``fd`` is ready (True), ``timeout`` passes or the listener is closed
            (False); ``fd=None`` only sleeps."""
            if self._closed or timeout <= 0:
                return False
            poller = select.poll()
            poller.register(self._wake_r, select.POLLIN)
            if fd is not None:
                poller.register(fd, select.POLLOUT if write else select.POLLIN)
            events = poller.poll(timeout * 1000)
            return bool(events) and not self._closed and any(e[0] == fd for e in events)


def _read(conn: psycopg.AsyncConnection[Any]) -> None:
    """Read what the server sent (notifications, or the notice that it is going away)."""
    conn.pgconn.consume_input()
    if conn.pgconn.status == pq.ConnStatus.BAD:
        raise psycopg.OperationalError("the server closed the connection")


def _until(at: float, deadline: float | None, now: float) -> float:
    return (min(at, deadline) if deadline is not None else at) - now
