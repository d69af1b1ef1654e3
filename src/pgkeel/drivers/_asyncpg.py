"""asyncpg under :class:`~pgkeel.AsyncDatabase` (``driver="asyncpg"``, ``pgkeel[asyncpg]``).

Three parts: :class:`Connection`, an adapter that gives an asyncpg connection the part of
psycopg's connection API the faces use (so ``query_async``, ``transaction_async`` and the
Database's checkout code run unchanged, and ``conn.raw`` is the asyncpg connection); the
:class:`LeanPool`, pgkeel's own pool over those connections (asyncpg's pool costs more than the
queries at 16 clients, bench/RESULTS.md), with psycopg_pool's ``getconn`` / ``putconn`` and
errors; and :class:`Driver`, which connects with pgkeel's defaults (the server settings, connect
timeout, keepalives, TLS), installs the same JSON codecs, and resets a connection before it goes
back.

Values: ``%s`` / ``%(name)s`` become ``$n`` (``_placeholders``); a naive datetime is refused as
on psycopg; JSON goes through pgkeel's orjson functions; every asyncpg exception becomes the
psycopg class for its SQLSTATE (``_errors``). One asyncpg private method is used:
``Connection._execute(..., return_status=True)``, the call asyncpg's own ``fetch`` makes, because
it is the only one that returns both the rows and the command tag in one round trip (pgkeel's
``execute()`` returns the rows affected, and the tag tells a ``SET`` apart).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NoReturn
from uuid import UUID

import asyncpg
import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row, tuple_row
from psycopg.types.json import Json, Jsonb
from psycopg_pool import PoolClosed, PoolTimeout, TooManyRequests

from pgkeel._database_base import scrub_error
from pgkeel.drivers import _asyncpg_bulk
from pgkeel.drivers._errors import translate
from pgkeel.drivers._placeholders import sql_text, to_dollar, typed_text
from pgkeel.drivers._shapes import Column, Result
from pgkeel.errors import Error as PgkeelError
from pgkeel.errors import NotSupportedError
from pgkeel.pool._sizing import SIZE_QUERY
from pgkeel.types import dumps_json, loads_json, loads_jsonb
from pgkeel.types._datetime import _naive

if TYPE_CHECKING:
    from pgkeel.config import Config
    from pgkeel.database_async import AsyncDatabase

__all__ = ["Connection", "Driver", "LeanPool"]

logger = logging.getLogger("pgkeel.pool")
NAME = "asyncpg"
_IDLE = TransactionStatus.IDLE
_INTRANS = TransactionStatus.INTRANS
_ACTIVE = TransactionStatus.ACTIVE
_MULTI = "cannot insert multiple commands into a prepared statement"


def _fail(exc: BaseException) -> NoReturn:
    if isinstance(exc.__cause__, PgkeelError):
        # pgkeel's own refusal from inside a codec (NaN in JSON): the same error as on psycopg.
        raise exc.__cause__ from None
    err = translate(exc, driver=NAME)
    if err is None:
        raise exc
    raise err from exc


def _not_supported(what: str) -> NoReturn:
    raise NotSupportedError(
        f"{what} is not available on driver='asyncpg' yet; use AsyncDatabase(url) (driver="
        "'psycopg', the default) for it, or conn.raw (the asyncpg connection) inside "
        "db.connection()"
    )


class _Untyped(Exception):
    """asyncpg refused a value for the type the server inferred for its parameter."""


#: Python type -> the PostgreSQL type psycopg sends for it (pgkeel: dict and list as jsonb
#: and arrays, aware datetimes as timestamptz).
_CASTS: dict[type, str] = {
    bool: "bool",
    float: "float8",
    Decimal: "numeric",
    bytes: "bytea",
    bytearray: "bytea",
    memoryview: "bytea",
    date: "date",
    timedelta: "interval",
    UUID: "uuid",
    dict: "jsonb",
}


#: What the server says when it cannot type a parameter: indeterminate datatype, ambiguous or
#: undefined function or operator (``unknown + unknown``).
_UNINFERRED = frozenset({"42P18", "42725", "42883"})


def _cast(value: Any) -> str | None:
    """The type psycopg would send ``value`` as, or None to leave the server's inference."""
    cls = type(value)
    if cls is int:  # psycopg picks the smallest integer type that holds the value
        if -(2**15) <= value < 2**15:
            return "int2"
        if -(2**31) <= value < 2**31:
            return "int4"
        return "int8" if -(2**63) <= value < 2**63 else "numeric"
    if cls is datetime:
        return "timestamp" if value.tzinfo is None else "timestamptz"
    if cls is dt_time:
        return "time" if value.tzinfo is None else "timetz"
    if cls is list or cls is tuple:
        inner = {_cast(v) for v in value if v is not None}
        return f"{inner.pop()}[]" if len(inner) == 1 and None not in inner else None
    return _CASTS.get(cls)


class _PgConn:
    """What the faces read of psycopg's ``pgconn``: the transaction status and the socket."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    @property
    def transaction_status(self) -> TransactionStatus:
        return self._conn._status()

    @property
    def socket(self) -> int:
        sock = self._conn.raw._transport.get_extra_info("socket")
        if sock is None:
            raise psycopg.OperationalError("the connection has no socket")
        return int(sock.fileno())

    def finish(self) -> None:
        self._conn.raw.terminate()


class _Info:
    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    @property
    def transaction_status(self) -> TransactionStatus:
        return self._conn._status()


class Cursor:
    """A psycopg-shaped cursor over one asyncpg connection: one result at a time."""

    __slots__ = (
        "_conn",
        "_factory",
        "_i",
        "_make",
        "_multi",
        "_rows",
        "rowcount",
        "statusmessage",
    )

    def __init__(self, conn: Connection, row_factory: Any) -> None:
        self._conn = conn
        self._factory = row_factory
        self._rows: list[Any] = []
        self._i = 0
        self._make: Any = None
        self._multi = False
        self.rowcount = -1
        self.statusmessage: str | None = None

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._rows = []

    async def execute(
        self, query: Any, params: Any = None, *, prepare: bool | None = None
    ) -> Cursor:
        rows, status = await self._conn._run_query(sql_text(query), params)
        conn = self._conn
        self._multi = conn._multi
        self._rows = rows
        self._i = 0
        self._make = None
        self.statusmessage = status
        self.rowcount = _rowcount(status)
        return self

    @property
    def description(self) -> list[Column] | None:
        # Built on demand (a row factory other than dict or tuple): most queries never ask.
        # A Record iterates over its values; keys() are the column names.
        rows = self._rows
        return [Column(k) for k in rows[0].keys()] if rows else None  # noqa: SIM118

    @property
    def pgresult(self) -> Result | None:
        desc = self.description
        return Result([c.name for c in desc]) if desc else None

    #: What psycopg's row factories decode the column names with (``Result.fname``).
    _encoding = "utf-8"

    async def executemany(self, query: Any, params_seq: Iterable[Any]) -> None:
        text = sql_text(query)
        total = 0
        status = None
        for params in params_seq:
            _, status = await self._conn._run_query(text, params)
            n = _rowcount(status)
            if n > 0:
                total += n
        self.rowcount = total
        self.statusmessage = status
        self._rows = []

    def _row(self, record: Any) -> Any:
        factory = self._factory
        if factory is dict_row:
            return dict(record.items())
        if factory is tuple_row:
            return tuple(record.values())
        if self._make is None:
            self._make = factory(self)
        return self._make(tuple(record.values()))

    async def fetchone(self) -> Any:
        if self._i >= len(self._rows):
            return None
        record = self._rows[self._i]
        self._i += 1
        return self._row(record)

    async def fetchall(self) -> list[Any]:
        rows = self._rows[self._i :]
        self._i = len(self._rows)
        factory = self._factory
        if factory is dict_row:
            return [dict(r.items()) for r in rows]
        return [self._row(r) for r in rows]

    def copy(self, *args: Any, **kwargs: Any) -> NoReturn:
        _not_supported("COPY through psycopg's cursor.copy()")

    def nextset(self) -> bool | None:
        # Several statements run as one simple query: the session may have changed.
        return True if self._multi else None


def _rowcount(status: str | None) -> int:
    if not status:
        return -1
    last = status.rpartition(" ")[2]
    return int(last) if last.isdigit() else -1


_LEVELS = {
    psycopg.IsolationLevel.READ_UNCOMMITTED: "READ UNCOMMITTED",
    psycopg.IsolationLevel.READ_COMMITTED: "READ COMMITTED",
    psycopg.IsolationLevel.REPEATABLE_READ: "REPEATABLE READ",
    psycopg.IsolationLevel.SERIALIZABLE: "SERIALIZABLE",
}


class Connection:
    """An asyncpg connection with the part of psycopg's ``AsyncConnection`` API pgkeel's faces
    use. ``raw`` is the asyncpg connection itself, for anything else."""

    #: When it last went back to the pool (``time.monotonic()``); see ``pool._liveness``.
    idle_since = 0.0
    pollfd: Any = None

    def __init__(self, raw: asyncpg.Connection, naive_datetime: str) -> None:
        self.raw = raw
        self.pgconn = _PgConn(self)
        self.info = _Info(self)
        self.row_factory: Any = dict_row
        self.born = time.monotonic()
        self._strict = naive_datetime == "error"
        self._active = False
        self._multi = False
        self._failed = False  # an error inside the current transaction (psycopg's INERROR)
        self._depth = 0
        self._isolation: psycopg.IsolationLevel | None = None
        self._read_only: bool | None = None

    def __repr__(self) -> str:
        return f"<pgkeel asyncpg Connection {self._status().name}>"

    @property
    def closed(self) -> bool:
        return bool(self.raw.is_closed())

    def _in_tx(self) -> bool:
        return not self.raw.is_closed() and bool(self.raw.is_in_transaction())

    def _status(self) -> TransactionStatus:
        if self._active:
            return _ACTIVE
        if self.raw.is_closed():
            return TransactionStatus.UNKNOWN
        if self.raw.is_in_transaction():
            return TransactionStatus.INERROR if self._failed else _INTRANS
        return _IDLE

    def _check_args(self, args: list[Any]) -> None:
        for i, arg in enumerate(args):
            cls = type(arg)
            if cls is datetime:
                if self._strict and arg.tzinfo is None:
                    raise _naive(arg)
            elif cls is Json or cls is Jsonb:
                args[i] = arg.obj
            elif cls is list or cls is tuple:
                self._check_nested(arg)

    def _check_nested(self, seq: Sequence[Any]) -> None:
        for item in seq:
            if type(item) is datetime and self._strict and item.tzinfo is None:
                raise _naive(item)
            if type(item) is list or type(item) is tuple:
                self._check_nested(item)

    async def _run_query(self, query: str, params: Any) -> tuple[list[Any], str | None]:
        """``query`` with psycopg-style placeholders and ``params``: its rows and command tag.

        asyncpg types each parameter by what the server infers from the statement, where
        psycopg sends the type of the Python value: ``SELECT %s`` with an int is text to the
        server, and asyncpg refuses to send an int as text. When it refuses so (on the client,
        after the statement was prepared: a transaction is not affected), the statement runs
        again with each parameter cast to the type psycopg would have sent for its value.
        """
        text, args = to_dollar(query, params)
        if not args:
            return await self._run(text, args)
        self._check_args(args)
        try:
            return await self._run(text, args, retype=True)
        except _Untyped:
            casts = tuple(_cast(a) for a in args)
            return await self._run(typed_text(query, casts), args)

    async def _run(
        self, text: str, args: list[Any], retype: bool = False
    ) -> tuple[list[Any], str | None]:
        """One statement: its rows and command tag, errors translated. A statement interrupted
        by cancellation leaves the connection ACTIVE, so the Database closes it."""
        self._active = True
        self._multi = False
        try:
            result = await self.raw._execute(text, args, 0, None, return_status=True)
        except asyncpg.PostgresSyntaxError as exc:
            if args or _MULTI not in str(exc):
                self._active = False
                self._failed = self._in_tx()
                _fail(exc)
            # Several statements without parameters: psycopg runs them as one simple query.
            try:
                status = await self.raw.execute(text)
            except Exception as exc2:
                self._active = False
                self._failed = self._in_tx()
                _fail(exc2)
            self._active = False
            self._multi = True
            return [], status
        except asyncpg.DataError as exc:
            self._active = False
            if retype and isinstance(exc.__cause__, TypeError):
                raise _Untyped from None
            self._failed = self._in_tx()
            _fail(exc)
        except asyncpg.PostgresError as exc:
            self._active = False
            if retype and exc.sqlstate in _UNINFERRED and not self._in_tx():
                # The server could not type a parameter (``SELECT %s + %s``): nothing ran, and
                # outside a transaction nothing was aborted, so the typed statement may run.
                raise _Untyped from None
            self._lost(exc)
            self._failed = self._in_tx()
            _fail(exc)
        except Exception as exc:
            self._active = False
            self._lost(exc)
            self._failed = self._in_tx()
            _fail(exc)
        self._active = False
        rows, status, _ = result
        return rows, status.decode() if status else None

    async def _simple(self, text: str) -> None:
        self._active = True
        try:
            await self.raw.execute(text)
        except Exception as exc:
            self._active = False
            self._lost(exc)
            self._failed = self._in_tx()
            _fail(exc)
        self._active = False

    def _lost(self, exc: Exception) -> None:
        """A terminated backend shows in asyncpg as a closed connection or, if its FATAL came
        while idle, as a protocol state error: both are a lost connection."""
        if self.raw.is_closed() or isinstance(exc, asyncpg.exceptions.InternalClientError):
            self.raw.terminate()
            raise psycopg.OperationalError(
                f"the connection to the server was lost (asyncpg: {exc})"
            ) from exc

    def cursor(self, name: str | None = None, *, row_factory: Any = None, **_: Any) -> Cursor:
        if name is not None:
            _not_supported("a server-side cursor (stream())")
        return Cursor(self, row_factory or self.row_factory)

    def pipeline(self) -> NoReturn:
        _not_supported("pipeline()")

    async def execute(
        self, query: Any, params: Any = None, *, prepare: bool | None = None
    ) -> Cursor:
        return await self.cursor().execute(query, params)

    # --- transactions, as psycopg's autocommit connection does them ------------------------

    async def set_isolation_level(self, level: psycopg.IsolationLevel | None) -> None:
        self._isolation = level

    async def set_read_only(self, value: bool | None) -> None:
        self._read_only = value

    async def set_deferrable(self, value: bool | None) -> None:
        pass

    async def set_autocommit(self, value: bool) -> None:
        pass

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """BEGIN (with the isolation and read-only options set) on an idle connection, a
        SAVEPOINT inside a transaction; committed / released if the block ends normally."""
        if self._status() == _IDLE:
            begin = "BEGIN"
            if self._isolation is not None:
                begin += f" ISOLATION LEVEL {_LEVELS[self._isolation]}"
            if self._read_only:
                begin += " READ ONLY"
            await self._simple(begin)
            self._failed = False
            self._depth = 0
            try:
                yield
            except BaseException:
                if not self.closed and not self._active:
                    await self._simple("ROLLBACK")
                raise
            if self.closed:
                # Lost before the block ended: a statement in it already raised that (the
                # caller caught it); as psycopg does, there is nothing left to commit.
                return
            await self._simple("COMMIT")
            return
        self._depth += 1
        name = f"_pgkeel_sp_{self._depth}"
        await self._simple(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            if not self.closed and not self._active:
                await self._simple(f"ROLLBACK TO SAVEPOINT {name}")
                self._failed = False
                await self._simple(f"RELEASE SAVEPOINT {name}")
            raise
        else:
            await self._simple(f"RELEASE SAVEPOINT {name}")
        finally:
            self._depth -= 1

    # --- bulk (pgkeel.bulk hands these the connection where it would use psycopg's COPY) ----

    #: pgkeel.bulk calls copy_into / stream_batches / copy_out below (``drivers.adapter``).
    own_bulk = True

    async def copy_into(self, *args: Any) -> int:
        return await _asyncpg_bulk.copy_into(self, *args)

    def stream_batches(self, query: Any, params: Any, **kwargs: Any) -> AsyncIterator[list[Any]]:
        return _asyncpg_bulk.stream_batches(self, query, params, **kwargs)

    async def copy_out(self, *args: Any) -> int:
        return await _asyncpg_bulk.copy_out(self, *args)

    async def rollback(self) -> None:
        if self._in_tx():
            await self._simple("ROLLBACK")
        self._failed = False

    async def close(self) -> None:
        if self.raw.is_closed():
            return
        try:
            async with asyncio.timeout(2.0):
                await self.raw.close()
        except BaseException:
            self.raw.terminate()
            raise


class LeanPool:
    """pgkeel's pool over asyncpg connections: a LIFO stack of idle connections and a FIFO of
    waiters, handed a connection directly on return; no background task on the hot path.
    Same surface as psycopg_pool's (``getconn``, ``putconn``, ``get_stats``, its errors)."""

    def __init__(self, driver: Driver, db: AsyncDatabase) -> None:
        cfg = db.config
        self._driver = driver
        self._db = db
        self.name = cfg.name or "pool"
        self.min_size = cfg.min_size
        self.max_size = cfg.max_size
        self.timeout = cfg.timeout
        self._max_idle = cfg.max_idle
        self._max_lifetime = cfg.max_lifetime
        self._max_waiting = cfg.max_waiting
        self._reconnect = cfg.reconnect_delay_max
        self._idle: collections.deque[Connection] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[Connection]] = collections.deque()
        self._size = 0
        self._closed = True
        self._tasks: set[asyncio.Task[None]] = set()
        self._stats = collections.Counter[str]()
        #: The timer that retires connections idle past max_idle when no return comes to.
        self._shrinker: asyncio.TimerHandle | None = None

    async def open(self) -> None:
        self._closed = False
        for _ in range(self.min_size - self._size):
            self._grow()

    async def close(self) -> None:
        self._closed = True
        if self._shrinker is not None:
            self._shrinker.cancel()
            self._shrinker = None
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(PoolClosed(f"the pool {self.name!r} is closed"))
        idle = list(self._idle)
        self._idle.clear()
        self._size -= len(idle)
        for task in list(self._tasks):
            task.cancel()
        for conn in idle:
            with contextlib.suppress(Exception):
                await conn.close()

    def get_stats(self) -> dict[str, int]:
        return {
            "pool_size": self._size,
            "pool_available": len(self._idle),
            "requests_waiting": sum(1 for f in self._waiters if not f.done()),
            **self._stats,
        }

    async def getconn(self, timeout: float | None = None) -> Connection:
        if self._closed:
            raise PoolClosed(f"the pool {self.name!r} is closed")
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.closed or time.monotonic() - conn.born > self._max_lifetime:
                self._discard(conn)
                continue
            return conn
        timeout = self.timeout if timeout is None else timeout
        if self._size < self.max_size:
            self._size += 1
            try:
                return await self._connect(time.monotonic() + timeout)
            except BaseException:
                self._size -= 1
                raise
        if self._max_waiting and len(self._waiters) >= self._max_waiting:
            self._stats["requests_errors"] += 1
            raise TooManyRequests(
                f"the pool {self.name!r} has already {len(self._waiters)} requests waiting"
            )
        fut: asyncio.Future[Connection] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            async with asyncio.timeout(timeout):
                return await fut
        except BaseException as exc:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                # Handed a connection just as the wait ended (timeout, cancellation): pass it on.
                self._put_nowait(fut.result())
            else:
                fut.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
            if isinstance(exc, TimeoutError):
                self._stats["requests_errors"] += 1
                raise PoolTimeout(f"couldn't get a connection after {timeout:.2f} sec") from None
            raise

    async def _connect(self, deadline: float) -> Connection:
        """A new connection, trying again until ``deadline`` (a restarting server)."""
        delay = 0.05
        while True:
            try:
                async with asyncio.timeout(max(deadline - time.monotonic(), 0.001)):
                    conn = await self._driver.connect()
            except TimeoutError:
                self._stats["requests_errors"] += 1
                raise PoolTimeout(
                    f"couldn't get a connection after {self.timeout:.2f} sec"
                ) from None
            except psycopg.OperationalError:
                self._stats["connections_errors"] += 1
                if time.monotonic() + delay >= deadline:
                    self._stats["requests_errors"] += 1
                    raise PoolTimeout(
                        f"couldn't get a connection after {self.timeout:.2f} sec"
                    ) from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            self._stats["connections_num"] += 1
            return conn

    def _grow(self) -> None:
        """Open one connection in the background (to min_size, or for a waiter after a
        connection was discarded); gives up after ``reconnect_delay_max``."""
        self._size += 1

        async def grow() -> None:
            try:
                conn = await self._connect(time.monotonic() + self._reconnect)
            except BaseException:
                self._size -= 1
                return
            # Idle from now: max_idle must not count from 0 and retire it at the next return.
            conn.idle_since = time.monotonic()
            self._put_nowait(conn)

        task = asyncio.get_running_loop().create_task(grow())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _discard(self, conn: Connection) -> None:
        self._size -= 1
        if not conn.closed:
            conn.raw.terminate()
        else:
            self._stats["connections_lost"] += 1
        if not self._closed and (self._waiters or self._size < self.min_size):
            self._grow()

    def _put_nowait(self, conn: Connection) -> None:
        if self._closed or conn.closed:
            self._discard(conn)
            return
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(conn)
                return
        idle = self._idle
        idle.append(conn)
        if self._size > self.min_size:
            # The bottom of the stack has been idle longest: retire it past max_idle.
            if len(idle) > 1:
                oldest = idle[0]
                if conn.idle_since - oldest.idle_since > self._max_idle:
                    idle.popleft()
                    self._discard(oldest)
            if self._shrinker is None:
                # A pool left alone gets no return to retire on: a timer does it then.
                loop = asyncio.get_running_loop()
                self._shrinker = loop.call_later(self._max_idle, self._shrink)

    def _shrink(self) -> None:
        """Retire the connections idle longer than max_idle, down to min_size; run again when
        the next one will be, while the pool is above min_size."""
        self._shrinker = None
        if self._closed:
            return
        idle = self._idle
        now = time.monotonic()
        while idle and self._size > self.min_size and now - idle[0].idle_since > self._max_idle:
            self._discard(idle.popleft())
        if idle and self._size > self.min_size:
            wait = idle[0].idle_since + self._max_idle - now
            loop = asyncio.get_running_loop()
            self._shrinker = loop.call_later(max(wait, 0.01), self._shrink)

    async def putconn(self, conn: Connection) -> None:
        if time.monotonic() - conn.born > self._max_lifetime:
            self._discard(conn)
            return
        self._put_nowait(conn)


class Driver:
    """asyncpg behind :class:`~pgkeel.AsyncDatabase`."""

    name = NAME
    raw_class = asyncpg.Connection

    def __init__(self, config: Config) -> None:
        self.config = config
        self.db: AsyncDatabase | None = None
        self._kwargs = connect_arguments(config)

    def new_pool(self, db: AsyncDatabase) -> LeanPool:
        self.db = db
        return LeanPool(self, db)

    async def connect(self) -> Connection:
        db = self.db
        assert db is not None
        session = db._session
        kwargs = dict(self._kwargs)
        mode = session.mode if session.decided else "startup"
        if mode == "startup":
            kwargs["server_settings"] = {**kwargs["server_settings"], **dict(self.config.settings)}
        try:
            raw = await asyncpg.connect(**kwargs)
        except Exception as exc:
            err = translate(exc, driver=NAME) or exc
            scrub_error(err, self.config.scrub)
            db._last_error.record(err)
            if not session.decided and session.startup_refused(err):
                session.use_set(f"the server refused the startup packet's settings ({err})")
                return await self.connect()
            if err is exc:
                raise
            raise err from None
        db._last_error.clear()
        _keepalive(raw, self.config)
        # Binary codecs, so that binary COPY (copy_in, upsert) can send JSON too.
        await raw.set_type_codec(
            "json", encoder=dumps_json, decoder=loads_json, schema="pg_catalog", format="binary"
        )
        await raw.set_type_codec(
            "jsonb",
            encoder=_dumps_jsonb,
            decoder=_loads_jsonb,
            schema="pg_catalog",
            format="binary",
        )
        conn = Connection(raw, self.config.naive_datetime)
        try:
            if not session.decided:
                # As on psycopg: a pooler may drop startup parameters it was told to ignore.
                cur = await conn.cursor(row_factory=tuple_row).execute(
                    session.IGNORED_QUERY, [session.names()]
                )
                session.started([row[0] for row in await cur.fetchall()])
            await self._session_setup(conn)
            baseline = db._baseline
            if not baseline.known(session.mode):
                cur = await conn.cursor(row_factory=tuple_row).execute(baseline.query)
                row = await cur.fetchone()
                if row is not None:
                    baseline.learn(session.mode, row)
            if self.config.configure is not None:
                result = self.config.configure(conn)
                if asyncio.iscoroutine(result):
                    await result
        except BaseException:
            raw.terminate()
            raise
        db._made.add(conn)
        return conn

    async def _session_setup(self, conn: Connection) -> None:
        db = self.db
        assert db is not None
        statement = db._session.statement()
        if statement is not None:
            try:
                await conn.execute(statement[0], statement[1])
            except psycopg.Error as exc:
                scrub_error(exc, self.config.scrub)
                raise

    async def probe(self, db: AsyncDatabase) -> None:
        self.db = db
        conn = await self.connect()
        try:
            if db.config.size_check != "off":
                cur = await conn.cursor(row_factory=tuple_row).execute(SIZE_QUERY)
                row = await cur.fetchone()
                assert row is not None
                db._size_verdict(row, ours=1)
        finally:
            await conn.close()

    async def reset(self, conn: Connection, db: AsyncDatabase) -> None:
        """Back to a fresh session: roll back, then what DISCARD ALL does. asyncpg keeps its
        prepared statements (its statement cache) across the reset, so DEALLOCATE ALL is left
        out; a statement the user prepared with PREPARE survives (use ``conn.raw`` for such)."""
        if conn._active:
            raise psycopg.InterfaceError("connection interrupted during a query")
        await conn.rollback()
        conn._isolation = None
        conn._read_only = None
        conn.row_factory = dict_row
        await conn._simple(
            "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; "
            "SELECT pg_advisory_unlock_all(); DISCARD PLANS; DISCARD TEMP; DISCARD SEQUENCES"
        )
        await self._session_setup(conn)


def _dumps_jsonb(obj: Any) -> bytes:
    return b"\x01" + dumps_json(obj)  # jsonb's binary form: a version byte, then the text


def _loads_jsonb(data: bytes) -> Any:
    return loads_jsonb(data[1:])


def connect_arguments(config: Config) -> dict[str, Any]:
    """asyncpg's ``connect()`` arguments for pgkeel's connection string (settings aside)."""
    info = conninfo_to_dict(config.plain_conninfo or config.conninfo)
    kw: dict[str, Any] = {}
    server: dict[str, str] = {}
    for key, attr in (
        ("host", "host"),
        ("hostaddr", "host"),
        ("port", "port"),
        ("user", "user"),
        ("password", "password"),
        ("dbname", "database"),
        ("passfile", "passfile"),
        ("target_session_attrs", "target_session_attrs"),
    ):
        value = info.get(key)
        if value:
            kw[attr] = str(value)
    if "port" in kw and kw["port"].isdigit():
        kw["port"] = int(kw["port"])
    kw["timeout"] = float(info.get("connect_timeout") or 60)
    sslmode = info.get("sslmode")
    dsn_params = {
        k: info[k] for k in ("sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl") if info.get(k)
    }
    if dsn_params:
        from urllib.parse import urlencode

        kw["dsn"] = "postgresql://?" + urlencode(dsn_params)
    elif sslmode is None:
        kw["ssl"] = "prefer"
    if info.get("application_name"):
        server["application_name"] = str(info["application_name"])
    if info.get("options"):
        server["options"] = str(info["options"])
    kw["server_settings"] = server
    kw["statement_cache_size"] = 0 if config.prepare_threshold is None else 100
    return kw


def _keepalive(raw: asyncpg.Connection, config: Config) -> None:
    """TCP keepalives as libpq sets them (asyncpg has no option for them)."""
    info = conninfo_to_dict(config.conninfo)
    if str(info.get("keepalives", "1")) == "0":
        return
    sock = raw._transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for opt, key in (
            ("TCP_KEEPIDLE", "keepalives_idle"),
            ("TCP_KEEPINTVL", "keepalives_interval"),
            ("TCP_KEEPCNT", "keepalives_count"),
        ):
            if hasattr(socket, opt) and info.get(key):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), int(str(info[key])))
