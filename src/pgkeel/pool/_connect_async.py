"""How the pool makes a connection: pgkeel's connection class (secret-free connection errors,
the last error, which connections exist), the first connection that settles
``session_settings="auto"``, and the setup every new connection gets (adapters, session settings,
the fresh-session baseline, the user's ``configure=``). The sync version is generated from the
asyncio one by ``tools/async_to_sync.py``.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable
from typing import Any, Self

import psycopg
from psycopg.rows import tuple_row

from pgkeel import types
from pgkeel._database_base import first_line, scrub_error
from pgkeel.config import Config, SessionSettings
from pgkeel.errors import ConfigError
from pgkeel.pool._counters import LastError
from pgkeel.pool._reset import SessionBaseline


class PoolConnection(psycopg.AsyncConnection[Any]):
    """A pooled connection: psycopg's, plus what pgkeel keeps about it."""

    #: When it last went back to the pool (``time.monotonic()``).
    idle_since = 0.0
    #: The poll object that watches its socket while idle (built on first use).
    pollfd: Any = None


def connection_class(
    config: Config, last_error: LastError, made: weakref.WeakSet[Any]
) -> type[PoolConnection]:
    """A connection class for one Database: its connection errors carry no secret (a server
    echoes a bad ``-c`` value in its FATAL message, and psycopg_pool logs the error), and it
    remembers why connecting last failed (for ``health()`` and timeouts) and which connections
    exist (for the exit-time cleanup)."""

    class PooledConnection(PoolConnection):
        @classmethod
        async def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
            try:
                conn = await super().connect(conninfo, **kwargs)
            except Exception as exc:
                scrub_error(exc, config.scrub)
                last_error.record(exc)
                raise
            last_error.clear()
            made.add(conn)
            return conn

    return PooledConnection


async def configure(
    conn: psycopg.AsyncConnection[Any],
    *,
    naive_datetime: str,
    session: SessionSettings,
    user_configure: Callable[[Any], Any] | None,
    baseline: SessionBaseline,
) -> None:
    """Set up a new connection: pgkeel's adapters, the session settings, then the user's
    configure= (last, so its adapters win). The first connection also shows what a fresh
    session looks like (before configure=: a session setting made there is lost at the first
    reset anyway, so the checks treat it as drift; ``-c`` settings in ``options`` are kept)."""
    types.configure(conn, naive_datetime=naive_datetime)
    await apply_settings(conn, session)
    if session.decided and not baseline.known(session.mode):
        cur = await conn.cursor(row_factory=tuple_row).execute(baseline.query)
        row = await cur.fetchone()
        if row is not None:
            baseline.learn(session.mode, row)
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


async def apply_settings(conn: psycopg.AsyncConnection[Any], session: SessionSettings) -> None:
    statement = session.statement()
    if statement is not None:
        try:
            # Never prepared: behind PgBouncer a prepared statement may not find its server.
            await conn.execute(statement[0], statement[1], prepare=False)
        except psycopg.Error as exc:
            # The server's message quotes a bad value, and a value may be a secret.
            scrub_error(exc, session.config.scrub)
            raise


async def first_connection(
    session: SessionSettings, cls: type[PoolConnection], kwargs: dict[str, Any]
) -> psycopg.AsyncConnection[Any]:
    """Connect once; for session_settings="auto", first learn whether the server takes the
    settings in the startup packet (PgBouncer refuses them, or ignores them if configured to)."""
    if session.decided:
        return await cls.connect(session.conninfo(), **kwargs)
    try:
        conn = await cls.connect(session.conninfo(), **kwargs)
    except psycopg.OperationalError as exc:
        if not session.startup_refused(exc):
            raise
        session.use_set(f"the server refused the startup packet's options ({first_line(exc)})")
        return await cls.connect(session.conninfo(), **kwargs)
    try:
        cur = await conn.cursor(row_factory=tuple_row).execute(
            session.IGNORED_QUERY, [session.names()], prepare=False
        )
        session.started([row[0] for row in await cur.fetchall()])
    except BaseException:
        await conn.close()
        raise
    return conn


async def pool_conninfo(
    session: SessionSettings, cls: type[PoolConnection], kwargs: dict[str, Any]
) -> str:
    """The pool's connection string (open(wait=False) leaves "auto" undecided until here)."""
    if not session.decided:
        try:
            conn = await first_connection(session, cls, kwargs)
        except Exception:
            # No server answered: still undecided. The pool's own attempt with the startup
            # packet fails the same way, and is counted and retried like any other.
            return session.conninfo()
        await conn.close()
    return session.conninfo()
