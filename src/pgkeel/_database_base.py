"""What :class:`~pgkeel.Database` and :class:`~pgkeel.AsyncDatabase` share, without I/O.

Configuration and pool arguments, counters behind ``stats()``, the leak watcher, the pool sizing
verdict, the retry backoff and the rules for what is retried, the ``isolation=`` names, when a
checked-out connection needs a round-trip check, and when it needs a reset before going back. The
two faces only add the I/O (blocking or awaited) around these.

The session rule: a connection goes back to the pool as clean as a new one. It is reset
(ROLLBACK, then DISCARD ALL: settings, temp tables, LISTEN, advisory locks, prepared statements,
cursors; then the session settings are applied again; counted in ``stats()["resets"]``):

- after every raw use (``connection()``, ``tx.connection``), after any error or interruption
  (cancellation, KeyboardInterrupt), and when a transaction is left open;
- after a query method's statement (fetch_*, execute, execute_many, on a Database or a
  transaction) that may have changed the session, as far as the client can tell without asking
  the server: a session command tag (SET, RESET, LISTEN, PREPARE, DECLARE, CREATE TABLE, DO,
  DISCARD),
  multi-statement text (any result after the first), or text that mentions, as a whole word in
  any case, a built-in that changes the session from inside a statement
  (``_query_base.SESSION_WORDS``: ``set_config``, the session-level ``pg_advisory_lock``
  family, ``temp`` / ``temporary`` / ``pg_temp``, ``setseed``, ``dblink_connect``...). The text
  verdict over-approximates (a word in a string literal or a column name is a false alarm,
  costing one reset) and is cached per query string, so the hot path pays a dict lookup, a
  prefix test and a transaction-status read, never a round trip; a reset costs three or four
  round trips, paid only by the connections that need it;
- after the round-trip check on checkout (a connection idle longer than ``check_idle``, see
  ``needs_check``) finds the session differs from a fresh one (``SessionBaseline``: pgkeel's
  settings, the ``options`` settings, ``WATCHED_SETTINGS`` such as ``search_path`` and ``role``,
  and the LISTEN channels). This catches what no text shows, a user function that calls
  ``set_config`` or ``SET``; it replaces the check's empty query, so it costs the hot path
  nothing, but a change made that way stays with the connection until its next check.

What neither sees: session advisory locks and temp tables created inside a user function
(checking ``pg_locks`` would scan the server's lock table); run such functions through
``connection()``, which is always reset. (The statements of ``pipeline()`` and ``stream()`` run
on ``_atomic()``'s connection, outside the query methods: they are not judged yet, beyond the
check on checkout.)
"""

from __future__ import annotations

import logging
import random
import select
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import Any

import psycopg
from psycopg import IsolationLevel, sql
from psycopg import errors as pg_errors
from psycopg.rows import dict_row

from pgkeel.config import Config, resolve
from pgkeel.errors import PoolSizeError

logger = logging.getLogger("pgkeel.pool")

#: SQLSTATEs after which running the whole transaction again is safe and likely to succeed.
RETRYABLE: tuple[type[psycopg.Error], ...] = (
    pg_errors.SerializationFailure,
    pg_errors.DeadlockDetected,
)

#: Command tags after which a connection carries session state that the next user must not see.
#: (DO: an anonymous code block may do anything a function can, SET included. DISCARD: it also
#: drops the settings pgkeel applied with SET, session_settings="set".)
_DIRTY_TAGS = ("SET", "RESET", "LISTEN", "PREPARE", "DECLARE", "CREATE TABLE", "DO", "DISCARD")

SIZE_QUERY = """\
SELECT current_setting('max_connections')::int,
       current_setting('superuser_reserved_connections')::int
         + coalesce(current_setting('reserved_connections', true), '0')::int,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int"""


def backoff(attempt: int, *, base: float = 0.01, cap: float = 1.0) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): capped exponential, full jitter."""
    return random.uniform(0, min(cap, base * 2**attempt))  # noqa: S311 - jitter, not crypto


def pool_size_problem(
    *, max_size: int, max_connections: int, reserved: int, in_use: int, ours: int
) -> str | None:
    """Explain why ``max_size`` does not fit in the server's free slots, or return ``None``."""
    others = max(in_use - ours, 0)
    free = max_connections - reserved - others
    if max_size <= free:
        return None
    return (
        f"pool max_size={max_size} does not fit: the server has max_connections="
        f"{max_connections}, {reserved} reserved, {others} used by other clients, so {free} "
        f"free; lower max_size to at most {max(free, 0)} (less if other processes share the "
        "server), raise max_connections on the server, or put PgBouncer in front"
    )


def commit_unknown_message(exc: BaseException) -> str:
    return (
        f"the connection was lost during COMMIT ({type(exc).__name__}): the transaction may or "
        "may not have committed; check the data (or use an idempotency key) before retrying"
    )


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


def transaction_ended() -> psycopg.ProgrammingError:
    return psycopg.ProgrammingError(
        "this transaction has ended; run queries inside its `with` block"
    )


_POLL_EVENTS = select.POLLIN | select.POLLERR | select.POLLHUP if hasattr(select, "poll") else 0


def socket_ready(conn: psycopg.BaseConnection[Any]) -> bool:
    """True if the server sent something on an idle connection: an error before closing it
    (terminated backend, shutdown) or EOF. Costs one poll(2), no round trip."""
    try:
        # The poll object is built once per connection and kept on it (a pgkeel connection).
        pfd = getattr(conn, "pollfd", None)
        if pfd is None:
            pfd = select.poll()
            pfd.register(conn.pgconn.socket, _POLL_EVENTS)
            if hasattr(conn, "pollfd"):
                conn.pollfd = pfd
        return bool(pfd.poll(0))
    except (OSError, psycopg.Error):
        return True


#: A connection back in the pool for less than this (seconds) is taken without the socket poll.
#: It finished a query that long ago; a backend killed in that window fails the next query just
#: as one killed during it would (psycopg_pool then replaces the connection). Only a hot pool
#: hands out connections this young, and there the poll, a system call per query, cost ~10 % of
#: 16-thread throughput (bench/RESULTS.md).
POLL_AFTER = 0.002


def needs_check(conn: psycopg.BaseConnection[Any], check_idle: float) -> bool:
    """Decide if a connection just taken from the pool gets a round-trip check: idle longer
    than ``check_idle``, or idle at least ``POLL_AFTER`` and the server has written to it."""
    idle = time.monotonic() - getattr(conn, "idle_since", 0.0)
    return idle > check_idle or (idle >= POLL_AFTER and socket_ready(conn))


def is_dirty(statusmessage: str | None) -> bool:
    return statusmessage is not None and statusmessage.startswith(_DIRTY_TAGS)


def left_state(cur: psycopg.Cursor[Any] | psycopg.AsyncCursor[Any]) -> bool:
    """After a query method's statement: may the session now differ from a fresh one, as far as
    the client can tell without a round trip? True for a session command tag (SET, LISTEN...)
    and for multi-statement text (any result after the first). (A transaction left open is seen
    by the Database when the connection comes back.)"""
    return is_dirty(cur.statusmessage) or bool(cur.nextset())


#: Settings the round-trip check on checkout compares with a fresh session's, besides the ones
#: pgkeel applies (``Config.settings``: the timeouts and any ``-c`` of ``options``): the ones a
#: function could change for the session (set_config) that matter most to the next user.
WATCHED_SETTINGS = (
    "search_path",
    "role",
    "session_authorization",
    "default_transaction_isolation",
    "default_transaction_read_only",
    "session_replication_role",
    "timezone",
    "datestyle",
)


class SessionBaseline:
    """The second line of the session rule, for what a query's text cannot show (a user
    function that calls set_config or LISTENs): what a fresh session looks like, learned once
    from the first connection pgkeel sets up, and the check that compares a pooled connection
    with it. The check is one query that reads the settings with ``current_setting()`` and
    counts the LISTEN channels; it replaces the empty query of the round-trip check on checkout,
    so it costs the hot path nothing (see ``needs_check``)."""

    __slots__ = ("expected", "names", "query")

    def __init__(self, config: Config) -> None:
        names = dict.fromkeys([*(name.lower() for name, _ in config.settings), *WATCHED_SETTINGS])
        self.names = tuple(names)
        # Composed once (no connection needed for literals), sent as plain text every time.
        calls = sql.SQL(", ").join(
            sql.SQL("current_setting({}, true)").format(sql.Literal(name)) for name in self.names
        )
        self.query = (
            sql.SQL("SELECT ") + calls + sql.SQL(", (SELECT count(*) FROM pg_listening_channels())")
        ).as_string()
        #: By session-settings mode (the fresh session differs between them).
        self.expected: dict[str | None, tuple[Any, ...]] = {}

    def known(self, mode: str | None) -> bool:
        return mode in self.expected

    def learn(self, mode: str | None, row: Sequence[Any]) -> None:
        self.expected.setdefault(mode, tuple(row))

    def drift(self, mode: str | None, row: Sequence[Any] | None) -> list[str]:
        """The names (never the values: a setting may be a secret) of what differs from a fresh
        session; empty if nothing does or if no fresh session was seen yet."""
        expected = self.expected.get(mode)
        if expected is None or row is None or tuple(row) == expected:
            return []
        labels = [*self.names, "LISTEN channels"]
        return [label for label, a, b in zip(labels, row, expected, strict=False) if a != b]


class LastError:
    """The last reason the pool could not connect (password-free), for ``health()`` and for
    the message of a checkout that timed out; cleared by the next successful connection."""

    __slots__ = ("message",)

    def __init__(self) -> None:
        self.message: str | None = None

    def record(self, exc: BaseException) -> None:
        """Remember ``exc`` (already scrubbed by :func:`scrub_error`)."""
        text = " ".join(str(exc).split())
        self.message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__

    def clear(self) -> None:
        self.message = None


def scrub_error(exc: BaseException, scrub: Callable[[str], str]) -> None:
    """Remove secrets from ``exc``'s message in place, so that the error keeps its class, its
    SQLSTATE, its diagnostics and its cause while no traceback or log shows the secret."""
    text = str(exc)
    clean = scrub(text)
    if clean != text:
        exc.args = (clean,)


def not_open_message(name: str | None, closed: bool) -> str:
    state = "has been closed" if closed else "is not open yet"
    return (
        f"the Database (pool {name!r}) {state}: use it as a context manager "
        "(`with Database(...) as db:`, `async with AsyncDatabase(...) as db:`) or call "
        "`open()` first"
    )


class Counters:
    """The figures pgkeel adds to psycopg_pool's own in ``stats()``."""

    __slots__ = ("checkouts", "errors", "lock", "resets", "retries", "wait_max", "wait_total")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.checkouts = 0
        self.wait_total = 0.0
        self.wait_max = 0.0
        self.errors = 0
        self.retries = 0
        self.resets = 0

    def checkout(self, waited: float) -> None:
        with self.lock:
            self.checkouts += 1
            self.wait_total += waited
            if waited > self.wait_max:
                self.wait_max = waited

    def error(self) -> None:
        with self.lock:
            self.errors += 1

    def retry(self) -> None:
        with self.lock:
            self.retries += 1

    def reset(self) -> None:
        with self.lock:
            self.resets += 1


class LeakWatcher:
    """Warns, once per checkout, about a connection held longer than ``timeout`` seconds, with
    the stack where it was taken. One daemon thread per open Database; the hot query path does
    not register here (its queries are bounded by ``statement_timeout``), only the blocks that
    hand out a connection (``connection()``, ``transaction()``)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.held: dict[int, tuple[float, FrameType | None, int]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.timeout <= 0 or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=_watch, args=(weakref.ref(self), self._stop), name="pgkeel-leaks", daemon=True
        )
        self._thread.start()

    def stop(self, wait: bool = True) -> None:
        """Stop the watcher thread; with ``wait=False`` (the asyncio face, which must not block
        its event loop) let it end by itself within one scan interval."""
        self._stop.set()
        if wait and self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._thread = None
        # A restart gets a fresh event: the old thread may still be about to see this one.
        self._stop = threading.Event()

    def taken(self, key: int, frame: FrameType) -> None:
        # Keep the frame (cheap) and format the stack only if a warning is due.
        self.held[key] = (time.monotonic(), frame, frame.f_lineno)

    def returned(self, key: int) -> None:
        self.held.pop(key, None)

    def scan(self) -> None:
        now = time.monotonic()
        for key, (since, frame, lineno) in list(self.held.items()):
            if frame is not None and now - since > self.timeout:
                stack = "".join(traceback.format_stack(frame))
                logger.warning(
                    "connection held for %.1f s (leak_timeout=%.1f s), taken at line %s of:\n%s",
                    now - since,
                    self.timeout,
                    lineno,
                    stack,
                )
                # Warn once per checkout; drop the frame reference.
                if key in self.held:
                    self.held[key] = (since, None, lineno)


def _watch(ref: weakref.ref[LeakWatcher], stop: threading.Event) -> None:
    while True:
        watcher = ref()
        if watcher is None:
            return
        interval = min(max(watcher.timeout / 4, 0.05), 5.0)
        watcher.scan()
        del watcher
        if stop.wait(interval):
            return


class DatabaseBase:
    """State and pure logic shared by the sync and async faces."""

    config: Config

    def __init__(self, url: str | None, options: Mapping[str, Any]) -> None:
        self.config = resolve(url, options)
        self._counters = Counters()
        self._leaks = LeakWatcher(self.config.leak_timeout)
        self._dirty: set[int] = set()
        if self.config.ssl_warning:
            logger.warning(
                "%s; add sslmode=verify-full (with sslrootcert) to the URL",
                self.config.ssl_warning,
            )

    def _pool_kwargs(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "conninfo": cfg.conninfo,
            "min_size": cfg.min_size,
            "max_size": cfg.max_size,
            "timeout": cfg.timeout,
            "max_idle": cfg.max_idle,
            "max_lifetime": cfg.max_lifetime,
            "max_waiting": cfg.max_waiting,
            "name": cfg.name,
            # One statement is one transaction: no BEGIN/ROLLBACK round trips around single
            # queries; transaction() issues BEGIN itself.
            "kwargs": {
                **cfg.connect_kwargs,
                "autocommit": True,
                "row_factory": dict_row,
                "prepare_threshold": cfg.prepare_threshold,
            },
            "open": False,
        }

    def _target(self) -> str:
        info = psycopg.conninfo.conninfo_to_dict(self.config.conninfo)
        host = info.get("host") or info.get("hostaddr") or "default host"
        port = f":{info['port']}" if info.get("port") else ""
        return f"{host}{port}/{info.get('dbname') or ''}"

    def _stats(
        self, pool_stats: Mapping[str, int], waiting: int | None, last_error: str | None
    ) -> dict[str, Any]:
        c = self._counters
        with c.lock:
            own = {
                "checkouts": c.checkouts,
                "wait_ms_total": round(c.wait_total * 1000, 3),
                "wait_ms_max": round(c.wait_max * 1000, 3),
                "errors": c.errors,
                "retries": c.retries,
                "resets": c.resets,
            }
        return {
            "size": pool_stats.get("pool_size", 0),
            "available": pool_stats.get("pool_available", 0),
            # Clients waiting now (psycopg_pool's requests_waiting also counts ones that timed
            # out, until a connection comes back: see pgkeel._compat.waiting).
            "waiting": pool_stats.get("requests_waiting", 0) if waiting is None else waiting,
            "min_size": self.config.min_size,
            "max_size": self.config.max_size,
            **own,
            "connections_made": pool_stats.get("connections_num", 0),
            "connection_errors": pool_stats.get("connections_errors", 0),
            "connections_lost": pool_stats.get("connections_lost", 0)
            + pool_stats.get("returns_bad", 0),
            "timeouts": pool_stats.get("requests_errors", 0),
            "last_connection_error": last_error,
        }

    def _size_verdict(self, row: tuple[int, int, int], ours: int) -> None:
        problem = pool_size_problem(
            max_size=self.config.max_size,
            max_connections=row[0],
            reserved=row[1],
            in_use=row[2],
            ours=ours,
        )
        if problem is None or self.config.size_check == "off":
            return
        if self.config.size_check == "error":
            raise PoolSizeError(problem)
        logger.warning("%s", problem)
