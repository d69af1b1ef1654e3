"""psycopg2 under :class:`~pgkeel.Database` (``driver="psycopg2"``, ``pgkeel[psycopg2]``).

Three parts, as for asyncpg: :class:`Connection`, an adapter that gives a psycopg2 connection
the part of psycopg's connection API the sync face uses (so ``query``, ``transaction``, the bulk
functions and the Database's checkout code run unchanged, and ``conn.raw`` is the psycopg2
connection); the :class:`LeanPool`, pgkeel's own thread-safe pool over those connections
(``ThreadedConnectionPool`` cannot wait for a connection, has no timeout, lifetime, liveness or
metrics); and :class:`Driver`, which connects with pgkeel's connection string (psycopg2 is libpq
too, so connect timeout, keepalives, TLS and the ``-c`` settings apply as they are), installs
the same loaders, and resets a connection before it goes back.

Values: psycopg2 speaks ``%s`` / ``%(name)s`` itself (binding client-side); the parameters
psycopg2 would adapt differently are wrapped first (dicts as jsonb through pgkeel's orjson
dumper, UUIDs, naive datetimes refused as on psycopg) without touching psycopg2's global
adapters; loaders for JSON, uuid and bytea are registered per connection. Every psycopg2
exception becomes the psycopg class for its SQLSTATE (``_errors``). COPY (``copy_in``,
``upsert``, ``copy_out``, ``stream``) uses psycopg's own row formatter and parser with
psycopg2's ``copy_expert`` moving the bytes (``_psycopg2_copy``).
"""

from __future__ import annotations

import collections
import contextlib
import enum
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NoReturn

import psycopg
import psycopg2
import psycopg2.extensions as ext
import psycopg2.extras
from psycopg import sql
from psycopg.adapt import AdaptersMap
from psycopg.pq import DiagnosticField, TransactionStatus
from psycopg.rows import dict_row, tuple_row
from psycopg.types.json import Json, Jsonb
from psycopg_pool import PoolClosed, PoolTimeout, TooManyRequests

from pgkeel import types
from pgkeel._database_base import scrub_error
from pgkeel.drivers._errors import translate
from pgkeel.drivers._placeholders import sql_text
from pgkeel.drivers._shapes import Column, Result
from pgkeel.errors import Error as PgkeelError
from pgkeel.errors import NotSupportedError
from pgkeel.pool._sizing import SIZE_QUERY
from pgkeel.types import loads_json, loads_jsonb
from pgkeel.types._datetime import _naive

if TYPE_CHECKING:
    from pgkeel.config import Config
    from pgkeel.database import Database

__all__ = ["Connection", "Cursor", "Driver", "LeanPool"]

logger = logging.getLogger("pgkeel.pool")
NAME = "psycopg2"
_IDLE = TransactionStatus.IDLE
_ACTIVE = TransactionStatus.ACTIVE
#: psycopg2's transaction status numbers are libpq's, as psycopg's enum is.
_STATUS = tuple(TransactionStatus(i) for i in range(5))
_UNKNOWN = TransactionStatus.UNKNOWN
_INTRANS = TransactionStatus.INTRANS


def _fail(exc: BaseException) -> NoReturn:
    """Raise the pgkeel (psycopg) exception for a psycopg2 one, with it as the cause."""
    if isinstance(exc, PgkeelError):
        raise exc
    if isinstance(exc, ValueError) and "NUL" in str(exc):
        # psycopg2 refuses a NUL in a string before sending it; psycopg says DataError.
        raise psycopg.DataError(f"{NAME}: {exc}") from exc
    if isinstance(exc, psycopg2.ProgrammingError) and exc.pgcode is None:
        raise psycopg.ProgrammingError(f"{NAME}: {exc}") from exc
    err = translate(exc, driver=NAME)
    if err is None:
        raise exc
    diag = getattr(exc, "diag", None)
    if diag is not None and getattr(exc, "pgcode", None):
        # The server's diagnostics (constraint, context, detail...) as psycopg exposes them in
        # ``err.diag``: pgkeel's bulk errors read the COPY context from there, users the rest.
        info: dict[int, bytes | None] = {
            int(field): value.encode()
            for field in DiagnosticField
            if isinstance(value := getattr(diag, field.name.lower(), None), str)
        }
        err = type(err)(*err.args, info=info)
    raise err from exc


def not_supported(what: str) -> NoReturn:
    raise NotSupportedError(
        f"{what} is not available on driver='psycopg2'; use Database(url) (driver='psycopg', "
        "the default) for it, or conn.raw (the psycopg2 connection) inside db.connection()"
    )


#: Verdicts by query text: may it hold several statements? (psycopg2 keeps only the last
#: result, so a ``SET ...; SELECT ...`` shows no SET tag.) Conservative: any ``;`` before the
#: trailing ones counts, a ``;`` in a literal costs one needless reset. Bounded like
#: ``pool._reset``'s verdicts.
_MULTI: dict[str, bool] = {}


def _is_multi(text: str) -> bool:
    verdict = _MULTI.get(text)
    if verdict is None:
        body = text.rstrip()
        while body.endswith(";"):
            body = body[:-1].rstrip()
        verdict = ";" in body
        if len(_MULTI) >= 4096:
            _MULTI.clear()
        _MULTI[text] = verdict
    return verdict


# --- values --------------------------------------------------------------------------------


def _dumps(obj: Any) -> str:
    return types.dumps_json(obj).decode()


class _Jsonb(psycopg2.extras.Json):  # type: ignore[misc]
    """A dict (or psycopg's ``Jsonb``) as jsonb, written by pgkeel's orjson dumper."""

    def __init__(self, obj: Any) -> None:
        super().__init__(obj, dumps=_dumps)

    def getquoted(self) -> bytes:
        return bytes(super().getquoted()) + b"::jsonb"


class _Json(_Jsonb):
    """psycopg's ``Json`` wrapper: sent as json, as psycopg does."""

    def getquoted(self) -> bytes:
        return bytes(psycopg2.extras.Json.getquoted(self)) + b"::json"


#: Parameter types psycopg2 binds as psycopg does: passed through untouched (the hot path).
_PLAIN = frozenset(
    {int, str, float, bool, type(None), Decimal, bytes, bytearray, memoryview, date}
    | {dtime, timedelta}
)


def _loader(fn: Any) -> Any:
    return lambda value, cur: None if value is None else fn(value)


_UUID = ext.new_type((2950,), "PGKEEL_UUID", _loader(uuid.UUID))
_UUIDS = ext.new_array_type((2951,), "PGKEEL_UUID[]", _UUID)
_BYTEA = ext.new_type(
    (17,),
    "PGKEEL_BYTEA",
    lambda value, cur: None if value is None else bytes(psycopg2.BINARY(value, cur)),
)
_BYTEAS = ext.new_array_type((1001,), "PGKEEL_BYTEA[]", _BYTEA)


def _loads_json(text: str) -> Any:
    return loads_json(text.encode())


def _loads_jsonb(text: str) -> Any:
    return loads_jsonb(text.encode())


# --- the psycopg-shaped surface ------------------------------------------------------------


class _PgConn:
    """What the faces read of psycopg's ``pgconn``: the transaction status and the socket."""

    __slots__ = ("_raw",)

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    @property
    def transaction_status(self) -> TransactionStatus:
        raw = self._raw
        return _UNKNOWN if raw.closed else _STATUS[raw.get_transaction_status()]

    @property
    def socket(self) -> int:
        return int(self._raw.fileno())

    def finish(self) -> None:
        self._raw.close()


class _Info:
    __slots__ = ("_raw",)

    encoding = "utf-8"

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    @property
    def transaction_status(self) -> TransactionStatus:
        raw = self._raw
        return _UNKNOWN if raw.closed else _STATUS[raw.get_transaction_status()]


class Cursor:
    """A psycopg-shaped cursor over one psycopg2 cursor (client-side)."""

    __slots__ = ("_adapters", "_conn", "_cur", "_factory", "_make", "_multi", "_total")

    #: What psycopg's row factories decode the column names with (``Result.fname``).
    _encoding = "utf-8"
    #: psycopg's dumpers take a context's connection; COPY formatting needs none.
    connection = None

    def __init__(self, conn: Connection, row_factory: Any) -> None:
        self._conn = conn
        self._cur = conn.raw.cursor()
        self._factory = row_factory
        self._make: Any = None
        self._multi = False
        self._total = -1
        self._adapters: AdaptersMap | None = None

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self._cur.close()

    def close(self) -> None:
        self._cur.close()

    def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None) -> Cursor:
        conn = self._conn
        text = query if type(query) is str else sql_text(query)
        if params is not None:
            params = conn._params(params)
        try:
            self._cur.execute(text, params)
        except BaseException as exc:
            conn._lost(exc)
            _fail(exc)
        self._multi = _is_multi(text)
        self._make = None
        self._total = -1
        return self

    def executemany(self, query: Any, params_seq: Any) -> None:
        conn = self._conn
        text = sql_text(query)
        cur = self._cur
        total = 0
        try:
            for params in params_seq:
                cur.execute(text, conn._params(params))
                if cur.rowcount > 0:
                    total += cur.rowcount
        except BaseException as exc:
            conn._lost(exc)
            _fail(exc)
        self._multi = _is_multi(text)
        self._total = total

    @property
    def rowcount(self) -> int:
        return self._total if self._total >= 0 else int(self._cur.rowcount)

    @property
    def statusmessage(self) -> str | None:
        return self._cur.statusmessage  # type: ignore[no-any-return]

    @property
    def description(self) -> list[Column] | None:
        desc = self._cur.description
        return None if desc is None else [Column(d.name, d.type_code) for d in desc]

    @property
    def pgresult(self) -> Result | None:
        desc = self._cur.description
        return None if desc is None else Result([d.name for d in desc])

    @property
    def adapters(self) -> AdaptersMap:
        """A psycopg adapters map of this cursor's own, as psycopg's cursors have (COPY's
        formatter reads and tunes it)."""
        if self._adapters is None:
            self._adapters = AdaptersMap(self._conn.adapters)
        return self._adapters

    def nextset(self) -> bool | None:
        # Several statements in one text: the session may have changed (see _is_multi).
        return True if self._multi else None

    def _no_result(self) -> NoReturn:
        raise psycopg.ProgrammingError("the last operation didn't produce a result")

    def fetchone(self) -> Any:
        cur = self._cur
        desc = cur.description
        if desc is None:
            self._no_result()
        record = cur.fetchone()
        if record is None:
            return None
        factory = self._factory
        if factory is dict_row:
            return dict(zip([d[0] for d in desc], record, strict=True))
        if factory is tuple_row:
            return record
        if self._make is None:
            self._make = factory(self)
        return self._make(record)

    def fetchmany(self, size: int) -> list[Any]:
        return self._rows(self._cur.fetchmany(size))

    def fetchall(self) -> list[Any]:
        if self._cur.description is None:
            self._no_result()
        return self._rows(self._cur.fetchall())

    def _rows(self, records: list[tuple[Any, ...]]) -> list[Any]:
        factory = self._factory
        if factory is tuple_row:
            return records
        if factory is dict_row:
            names = [d[0] for d in self._cur.description]
            return [dict(zip(names, r, strict=True)) for r in records]
        if self._make is None:
            self._make = factory(self)
        make = self._make
        return [make(r) for r in records]

    def copy(self, statement: Any, params: Any = None) -> Any:
        from pgkeel.drivers._psycopg2_copy import Copy

        return Copy(self, statement, params)


class ServerCursor:
    """psycopg's server-side cursor, as ``stream()`` uses it: DECLARE in the caller's
    transaction (with ``FETCH FORWARD 0`` in the same round trip, which returns no row but the
    columns, as psycopg's describe does), then FETCH FORWARD ``size`` rows at a time."""

    def __init__(self, conn: Connection, name: str, row_factory: Any) -> None:
        self._conn = conn
        self._name = sql.Identifier(name)
        self._cursor = Cursor(conn, row_factory)
        self._declared = False
        self.itersize = 100

    def __enter__(self) -> ServerCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        conn = self._conn
        if self._declared and not conn.closed and conn.info.transaction_status == _INTRANS:
            self._declared = False
            conn._simple(sql_text(sql.SQL("CLOSE {}").format(self._name)))
        self._cursor.close()

    def execute(self, query: Any, params: Any = None) -> ServerCursor:
        if self._conn.info.transaction_status == _IDLE:
            raise psycopg.ProgrammingError("a server-side cursor needs a transaction")
        # One round trip: psycopg2 sends the text as one simple query and keeps the last result.
        # The query is the caller's (a Query, checked where it entered pgkeel), wrapped in a
        # DECLARE as psycopg's server-side cursors wrap it.
        declare = sql.SQL("DECLARE {} NO SCROLL CURSOR FOR {}; FETCH FORWARD 0 FROM {}").format(
            self._name, sql.SQL(sql_text(query)), self._name
        )
        self._cursor.execute(declare, params)  # noqa: PGK001
        self._declared = True
        return self

    @property
    def description(self) -> list[Column] | None:
        return self._cursor.description

    def fetchmany(self, size: int) -> list[Any]:
        fetch = sql.SQL("FETCH FORWARD {} FROM {}").format(sql.Literal(int(size)), self._name)
        self._cursor.execute(fetch)
        return self._cursor.fetchmany(size)


_LEVELS = {
    psycopg.IsolationLevel.READ_UNCOMMITTED: "READ UNCOMMITTED",
    psycopg.IsolationLevel.READ_COMMITTED: "READ COMMITTED",
    psycopg.IsolationLevel.REPEATABLE_READ: "REPEATABLE READ",
    psycopg.IsolationLevel.SERIALIZABLE: "SERIALIZABLE",
}


class Connection:
    """A psycopg2 connection (autocommit: pgkeel issues BEGIN itself) with the part of
    psycopg's ``Connection`` API pgkeel's sync face uses. ``raw`` is the psycopg2 connection
    itself, for anything else."""

    #: When it last went back to the pool (``time.monotonic()``); see ``pool._liveness``.
    idle_since = 0.0
    pollfd: Any = None
    #: An adaptation context for psycopg's COPY formatter (no psycopg connection under it).
    connection = None

    def __init__(self, raw: Any, naive_datetime: str) -> None:
        raw.autocommit = True
        self.raw = raw
        self.pgconn = _PgConn(raw)
        self.info = _Info(raw)
        self.row_factory: Any = dict_row
        self.born = time.monotonic()
        self._strict = naive_datetime == "error"
        self._naive_policy = naive_datetime
        self._depth = 0
        self._isolation: psycopg.IsolationLevel | None = None
        self._read_only: bool | None = None
        self._adapters: AdaptersMap | None = None

    def __repr__(self) -> str:
        return f"<pgkeel psycopg2 Connection {self.info.transaction_status.name}>"

    @property
    def closed(self) -> bool:
        return bool(self.raw.closed)

    @property
    def adapters(self) -> AdaptersMap:
        """psycopg adapters configured as on a psycopg connection (pgkeel's JSON dumpers, the
        naive-datetime policy), for the COPY formatter."""
        if self._adapters is None:
            self._adapters = AdaptersMap(psycopg.adapters)
            types.configure(self, naive_datetime=self._naive_policy)  # type: ignore[arg-type]
        return self._adapters

    # --- parameters --------------------------------------------------------------------------

    def _params(self, params: Any) -> Any:
        """``params`` as psycopg2 must get them to bind them as psycopg does (a new container
        only when a value needs wrapping)."""
        plain = _PLAIN
        cls = type(params)
        if cls is tuple or cls is list:
            for value in params:
                if type(value) not in plain:
                    return [self._value(v) for v in params]
            return params
        if isinstance(params, Mapping):
            for value in params.values():
                if type(value) not in plain:
                    return {k: self._value(v) for k, v in params.items()}
            return params
        if isinstance(params, Sequence) and not isinstance(params, str | bytes):
            return [self._value(v) for v in params]
        raise TypeError(
            f"query parameters must be a sequence or a mapping, not {type(params).__name__}"
        )

    def _value(self, value: Any) -> Any:
        cls = type(value)
        if cls in _PLAIN:
            return value
        if cls is datetime:
            if self._strict and value.tzinfo is None:
                raise _naive(value)
            return value
        if cls is dict or cls is Jsonb:
            return _Jsonb(value if cls is dict else value.obj)
        if cls is Json:
            return _Json(value.obj)
        if cls is list:
            return [self._value(v) for v in value]
        if cls is uuid.UUID:
            return psycopg2.extras.UUID_adapter(value)
        if isinstance(value, enum.Enum) and not isinstance(value, str | int):
            # psycopg dumps an Enum member by its name (a PostgreSQL enum label).
            return value.name
        return value

    # --- statements ------------------------------------------------------------------------

    def _lost(self, exc: BaseException) -> None:
        """A connection psycopg2 found broken is closed; the error says it was lost."""
        if self.raw.closed and isinstance(exc, psycopg2.Error) and exc.pgcode is None:
            raise psycopg.OperationalError(
                f"the connection to the server was lost ({NAME}: {str(exc).strip()})"
            ) from exc

    def _simple(self, text: str) -> None:
        cur = self.raw.cursor()
        try:
            cur.execute(text)
        except BaseException as exc:
            self._lost(exc)
            _fail(exc)
        finally:
            cur.close()

    def cursor(
        self,
        name: str | None = None,
        *,
        row_factory: Any = None,
        scrollable: bool | None = None,
        **_: Any,
    ) -> Any:
        if name is not None:
            return ServerCursor(self, name, row_factory or self.row_factory)
        return Cursor(self, row_factory or self.row_factory)

    def pipeline(self) -> NoReturn:
        not_supported("pipeline()")

    def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None) -> Cursor:
        return Cursor(self, self.row_factory).execute(query, params)

    # --- transactions, as psycopg's autocommit connection does them ------------------------

    def set_isolation_level(self, level: psycopg.IsolationLevel | None) -> None:
        self._isolation = level

    def set_read_only(self, value: bool | None) -> None:
        self._read_only = value

    def set_deferrable(self, value: bool | None) -> None:
        pass

    def set_autocommit(self, value: bool) -> None:
        pass

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN (with the isolation and read-only options set) on an idle connection, a
        SAVEPOINT inside a transaction; committed / released if the block ends normally."""
        if self.info.transaction_status == _IDLE:
            begin = "BEGIN"
            if self._isolation is not None:
                begin += f" ISOLATION LEVEL {_LEVELS[self._isolation]}"
            if self._read_only:
                begin += " READ ONLY"
            self._simple(begin)
            self._depth = 0
            try:
                yield
            except BaseException:
                if not self.closed:
                    self._simple("ROLLBACK")
                raise
            if self.closed:
                # Lost before the block ended: a statement in it already raised that (the
                # caller caught it); as psycopg does, there is nothing left to commit.
                return
            self._simple("COMMIT")
            return
        self._depth += 1
        name = f"_pgkeel_sp_{self._depth}"
        self._simple(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            if not self.closed:
                self._simple(f"ROLLBACK TO SAVEPOINT {name}")
                self._simple(f"RELEASE SAVEPOINT {name}")
            raise
        else:
            self._simple(f"RELEASE SAVEPOINT {name}")
        finally:
            self._depth -= 1

    def rollback(self) -> None:
        if not self.closed and self.info.transaction_status != _IDLE:
            self._simple("ROLLBACK")

    def close(self) -> None:
        self.raw.close()


# --- the pool ------------------------------------------------------------------------------


class _Waiter:
    """A thread waiting for a connection: its lock is released when one is handed over."""

    __slots__ = ("conn", "error", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lock.acquire()
        self.conn: Connection | None = None
        self.error: BaseException | None = None


class LeanPool:
    """pgkeel's pool over psycopg2 connections: a LIFO stack of idle connections and a FIFO of
    waiting threads, each handed a connection directly on return; one lock, held for a few
    list operations, and no thread on the hot path. Same surface as psycopg_pool's
    (``getconn``, ``putconn``, ``get_stats``, its errors)."""

    def __init__(self, driver: Driver, db: Database) -> None:
        cfg = db.config
        self._driver = driver
        self.name = cfg.name or "pool"
        self.min_size = cfg.min_size
        self.max_size = cfg.max_size
        self.timeout = cfg.timeout
        self._max_idle = cfg.max_idle
        self._max_lifetime = cfg.max_lifetime
        self._max_waiting = cfg.max_waiting
        self._reconnect = cfg.reconnect_delay_max
        self._lock = threading.Lock()
        self._idle: collections.deque[Connection] = collections.deque()
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._size = 0
        self._closed = True
        self._stats = collections.Counter[str]()
        #: The timer that retires connections idle past max_idle when no return comes to.
        self._shrinker: threading.Timer | None = None

    def open(self) -> None:
        with self._lock:
            self._closed = False
            missing = self.min_size - self._size
        for _ in range(missing):
            self._grow()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._shrinker is not None:
                self._shrinker.cancel()
                self._shrinker = None
            waiters = list(self._waiters)
            self._waiters.clear()
            idle = list(self._idle)
            self._idle.clear()
            self._size -= len(idle)
        for waiter in waiters:
            waiter.error = PoolClosed(f"the pool {self.name!r} is closed")
            waiter.lock.release()
        for conn in idle:
            with contextlib.suppress(Exception):
                conn.close()

    def get_stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "pool_size": self._size,
                "pool_available": len(self._idle),
                "requests_waiting": len(self._waiters),
                **self._stats,
            }

    def getconn(self, timeout: float | None = None) -> Connection:
        expired: list[Connection] = []
        with self._lock:
            if self._closed:
                raise PoolClosed(f"the pool {self.name!r} is closed")
            idle = self._idle
            conn = None
            while idle:
                candidate = idle.pop()
                if candidate.raw.closed or (time.monotonic() - candidate.born > self._max_lifetime):
                    self._size -= 1
                    expired.append(candidate)
                    continue
                conn = candidate
                break
            waiter = None
            if conn is None:
                if self._size < self.max_size:
                    self._size += 1
                else:
                    if self._max_waiting and len(self._waiters) >= self._max_waiting:
                        self._stats["requests_errors"] += 1
                        raise TooManyRequests(
                            f"the pool {self.name!r} has already {len(self._waiters)} "
                            "requests waiting"
                        )
                    waiter = _Waiter()
                    self._waiters.append(waiter)
        if expired:
            self._drop(expired)
        if conn is not None:
            return conn
        timeout = self.timeout if timeout is None else timeout
        if waiter is None:
            try:
                return self._connect(time.monotonic() + timeout)
            except BaseException:
                with self._lock:
                    self._size -= 1
                raise
        got = waiter.lock.acquire(timeout=max(timeout, 0))
        if not got:
            with self._lock:
                if waiter.conn is None and waiter.error is None:
                    self._waiters.remove(waiter)
                    self._stats["requests_errors"] += 1
                    raise PoolTimeout(f"couldn't get a connection after {timeout:.2f} sec")
            # Handed one just as the wait ended: take it.
        if waiter.error is not None:
            raise waiter.error
        assert waiter.conn is not None
        return waiter.conn

    def _connect(self, deadline: float) -> Connection:
        """A new connection, trying again until ``deadline`` (a restarting server)."""
        delay = 0.05
        while True:
            try:
                conn = self._driver.connect()
            except psycopg.OperationalError:
                with self._lock:
                    self._stats["connections_errors"] += 1
                if time.monotonic() + delay >= deadline:
                    with self._lock:
                        self._stats["requests_errors"] += 1
                    raise PoolTimeout(
                        f"couldn't get a connection after {self.timeout:.2f} sec"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            with self._lock:
                self._stats["connections_num"] += 1
            return conn

    def _grow(self) -> None:
        """Open one connection in a background thread (to min_size, or for a waiter after a
        connection was discarded); gives up after ``reconnect_delay_max``."""
        with self._lock:
            self._size += 1

        def grow() -> None:
            try:
                conn = self._connect(time.monotonic() + self._reconnect)
            except BaseException:
                with self._lock:
                    self._size -= 1
                return
            conn.idle_since = time.monotonic()
            self._put(conn)

        threading.Thread(target=grow, name="pgkeel-psycopg2-grow", daemon=True).start()

    def _drop(self, conns: list[Connection]) -> None:
        """Close connections already taken out of the size count; replace as needed."""
        for conn in conns:
            if conn.raw.closed:
                with self._lock:
                    self._stats["connections_lost"] += 1
            else:
                with contextlib.suppress(Exception):
                    conn.close()
        with self._lock:
            need = not self._closed and (bool(self._waiters) or self._size < self.min_size)
        if need:
            self._grow()

    def _put(self, conn: Connection) -> None:
        retired: list[Connection] = []
        timer = None
        with self._lock:
            if self._closed or conn.raw.closed:
                self._size -= 1
                retired.append(conn)
            else:
                waiters = self._waiters
                if waiters:
                    waiter = waiters.popleft()
                    waiter.conn = conn
                    waiter.lock.release()
                    return
                idle = self._idle
                idle.append(conn)
                # The bottom of the stack has been idle longest: retire it past max_idle.
                if len(idle) > 1 and self._size > self.min_size:
                    oldest = idle[0]
                    if conn.idle_since - oldest.idle_since > self._max_idle:
                        idle.popleft()
                        self._size -= 1
                        retired.append(oldest)
                if self._size > self.min_size and self._shrinker is None:
                    # A pool left alone gets no return to retire on: a timer does it then.
                    timer = self._shrinker = self._timer(self._max_idle)
        if timer is not None:
            timer.start()
        if retired:
            self._drop(retired)

    def _timer(self, delay: float) -> threading.Timer:
        timer = threading.Timer(delay, self._shrink)
        timer.name = "pgkeel-psycopg2-shrink"
        timer.daemon = True
        return timer

    def _shrink(self) -> None:
        """Retire the connections idle longer than max_idle, down to min_size; run again when
        the next one will be, while the pool is above min_size."""
        retired: list[Connection] = []
        timer = None
        with self._lock:
            self._shrinker = None
            if self._closed:
                return
            idle = self._idle
            now = time.monotonic()
            while idle and self._size > self.min_size and now - idle[0].idle_since > self._max_idle:
                retired.append(idle.popleft())
                self._size -= 1
            if idle and self._size > self.min_size:
                wait = idle[0].idle_since + self._max_idle - now
                timer = self._shrinker = self._timer(max(wait, 0.01))
        if timer is not None:
            timer.start()
        if retired:
            self._drop(retired)

    def putconn(self, conn: Connection) -> None:
        if time.monotonic() - conn.born > self._max_lifetime:
            with self._lock:
                self._size -= 1
            self._drop([conn])
            return
        self._put(conn)


class Driver:
    """psycopg2 behind :class:`~pgkeel.Database`."""

    name = NAME
    raw_class = ext.connection

    def __init__(self, config: Config) -> None:
        self.config = config
        self.db: Database | None = None
        # psycopg's keyword arguments (autocommit, row_factory, prepare_threshold...) are not
        # psycopg2's; libpq parameters passed as connect_kwargs are.
        self._kwargs = {
            k: v
            for k, v in config.connect_kwargs.items()
            if k not in ("autocommit", "row_factory", "prepare_threshold", "cursor_factory")
        }

    def new_pool(self, db: Database) -> LeanPool:
        self.db = db
        return LeanPool(self, db)

    def connect(self) -> Connection:
        db = self.db
        assert db is not None
        session = db._session
        try:
            raw = psycopg2.connect(session.conninfo(), **self._kwargs)
        except Exception as exc:
            err: BaseException = translate(exc, driver=NAME) or exc
            scrub_error(err, self.config.scrub)
            db._last_error.record(err)
            if not session.decided and session.startup_refused(err):
                session.use_set(f"the server refused the startup packet's settings ({err})")
                return self.connect()
            if err is exc:
                raise
            raise err from None
        db._last_error.clear()
        conn = Connection(raw, self.config.naive_datetime)
        try:
            ext.register_type(_UUID, raw)
            ext.register_type(_UUIDS, raw)
            ext.register_type(_BYTEA, raw)
            ext.register_type(_BYTEAS, raw)
            psycopg2.extras.register_default_json(raw, loads=_loads_json)
            psycopg2.extras.register_default_jsonb(raw, loads=_loads_jsonb)
            if not session.decided:
                cur = conn.cursor(row_factory=tuple_row).execute(
                    session.IGNORED_QUERY, [session.names()]
                )
                session.started([row[0] for row in cur.fetchall()])
            self._session_setup(conn)
            baseline = db._baseline
            if not baseline.known(session.mode):
                row = conn.cursor(row_factory=tuple_row).execute(baseline.query).fetchone()
                if row is not None:
                    baseline.learn(session.mode, row)
            if self.config.configure is not None:
                self.config.configure(conn)
        except BaseException:
            raw.close()
            raise
        db._made.add(conn)
        return conn

    def _session_setup(self, conn: Connection) -> None:
        db = self.db
        assert db is not None
        statement = db._session.statement()
        if statement is not None:
            try:
                conn.execute(statement[0], statement[1])
            except psycopg.Error as exc:
                scrub_error(exc, self.config.scrub)
                raise

    def probe(self, db: Database) -> None:
        self.db = db
        conn = self.connect()
        try:
            if db.config.size_check != "off":
                row = conn.cursor(row_factory=tuple_row).execute(SIZE_QUERY).fetchone()
                assert row is not None
                db._size_verdict(row, ours=1)
        finally:
            conn.close()

    def reset(self, conn: Connection, db: Database) -> None:
        """Back to a fresh session: roll back, then DISCARD ALL (psycopg2 keeps no prepared
        statements of its own), then the session settings again."""
        if conn.info.transaction_status == _ACTIVE:
            raise psycopg.InterfaceError("connection interrupted during a query")
        conn.rollback()
        conn._isolation = None
        conn._read_only = None
        conn.row_factory = dict_row
        conn._simple("DISCARD ALL")
        self._session_setup(conn)
