"""The connection hooks against a real server: ``configure=`` (sync and async, on every pooled
connection, replacements included), ``prepare_threshold=``, ``connect_kwargs=`` and the
``session_settings`` modes."""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import traceback
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg.adapt import AdaptersMap, Dumper, Loader
from psycopg.types.enum import EnumInfo, register_enum

import pgkeel
from pgkeel.errors import ConfigError


class Mood(enum.Enum):
    sad = "sad"
    happy = "happy"


def _make_enum(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TYPE mood AS ENUM ('sad', 'happy')")


def register_mood(conn: psycopg.Connection[Any]) -> None:
    register_enum(EnumInfo.fetch(conn, "mood"), conn, Mood)  # type: ignore[arg-type]


def test_configure_runs_on_every_pooled_connection(pg_url: str, pg_server: Any) -> None:
    """configure= registers an enum on each pooled connection, and on the replacements made
    after their backends are killed."""
    _make_enum(pg_url)
    with pgkeel.Database(pg_url, min_size=2, max_size=2, configure=register_mood) as db:
        with db.connection() as a, db.connection() as b:
            pids = set()
            for conn in (a, b):
                row = conn.execute("SELECT 'happy'::mood AS m, pg_backend_pid() AS pid").fetchone()
                assert row is not None
                assert row["m"] is Mood.happy
                pids.add(row["pid"])
        admin = pg_server.admin()
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [list(pids)]
        )
        # Wait for the backends to be gone (their sockets then show it), not for a time.
        gone = "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)"
        while admin.execute(gone, [list(pids)]).fetchone()[0]:
            time.sleep(0.01)
        for _ in range(4):
            assert db.fetch_val("SELECT 'sad'::mood") is Mood.sad
        assert db.fetch_val("SELECT pg_backend_pid()") not in pids


def test_async_configure_awaited(pg_url: str) -> None:
    """AsyncDatabase takes an async configure= and awaits it on each new connection."""
    _make_enum(pg_url)

    async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
        register_enum(await EnumInfo.fetch(conn, "mood"), conn, Mood)  # type: ignore[arg-type]

    async def main() -> None:
        async with pgkeel.AsyncDatabase(pg_url, min_size=1, max_size=2, configure=configure) as db:
            assert await db.fetch_val("SELECT 'happy'::mood") is Mood.happy

    asyncio.run(main())


def test_sync_database_refuses_async_configure(pg_url: str) -> None:
    """Database cannot await: an async configure= is a ConfigError saying what to do."""

    async def configure(conn: Any) -> None:
        pass

    with pytest.raises(ConfigError, match=r"configure=.*async"):
        pgkeel.Database(pg_url, configure=configure)


def test_sync_database_refuses_configure_returning_awaitable(pg_url: str) -> None:
    """A plain function that returns a coroutine (a lambda around an async one) is caught at
    open(), not silently left un-awaited."""

    async def setup(conn: Any) -> None:
        pass

    db = pgkeel.Database(pg_url, min_size=1, max_size=1, configure=lambda conn: setup(conn))
    with pytest.raises(ConfigError, match="awaitable"):
        db.open()
    db.close()


class _MarkedJson(Loader):
    def load(self, data: Any) -> Any:
        return ("user loader", bytes(data).decode())


def test_user_adapters_win_over_pgkeels(pg_url: str) -> None:
    """configure= runs after pgkeel's own type setup, so a user loader for jsonb wins."""

    def configure(conn: psycopg.Connection[Any]) -> None:
        conn.adapters.register_loader("jsonb", _MarkedJson)

    with pgkeel.Database(pg_url, min_size=1, max_size=1, configure=configure) as db:
        assert db.fetch_val("SELECT '{}'::jsonb") == ("user loader", "{}")


def test_failing_configure_fails_open(pg_url: str) -> None:
    """A configure= that raises makes open() raise that error (not a pool retrying forever)."""

    def configure(conn: Any) -> None:
        raise RuntimeError("configure broke")

    db = pgkeel.Database(pg_url, min_size=1, max_size=1, configure=configure)
    with pytest.raises(RuntimeError, match="configure broke"):
        db.open()
    db.close()


def _prepared_after_repeats(db: pgkeel.Database) -> int:
    with db.connection() as conn:
        for i in range(10):
            conn.execute("SELECT %s::int + 1", [i])
        row = conn.execute("SELECT count(*) AS n FROM pg_prepared_statements").fetchone()
        assert row is not None
        return int(row["n"])


def test_prepare_threshold(pg_url: str) -> None:
    """prepare_threshold reaches the pooled connections: None never prepares, psycopg's default
    (5) does."""
    with pgkeel.Database(pg_url, min_size=1, max_size=1, prepare_threshold=None) as db:
        assert _prepared_after_repeats(db) == 0
        with db.connection() as conn:
            assert conn.prepare_threshold is None
    with pgkeel.Database(pg_url, min_size=1, max_size=1) as db:
        assert _prepared_after_repeats(db) >= 1


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y


class PointDumper(Dumper):
    oid = psycopg.adapters.types["text"].oid

    def dump(self, obj: Point) -> bytes:
        return f"({obj.x},{obj.y})".encode()


def test_connect_kwargs_context(pg_url: str) -> None:
    """connect_kwargs passes psycopg connect() arguments: an adapters context with a dumper."""
    context = AdaptersMap(psycopg.adapters)
    context.register_dumper(Point, PointDumper)
    with pgkeel.Database(pg_url, min_size=1, max_size=1, connect_kwargs={"context": context}) as db:
        assert db.fetch_val("SELECT %s::point::text", [Point(1, 2)]) == "(1,2)"


def test_session_settings_set_survives_reset(pg_url: str) -> None:
    """session_settings='set' applies the settings with SET (none in the startup packet) on new
    connections and again after a reset (DISCARD ALL would otherwise wipe them)."""
    with pgkeel.Database(
        pg_url, min_size=1, max_size=1, session_settings="set", statement_timeout=0.1
    ) as db:
        assert "statement_timeout" not in db.config.conninfo
        assert (
            db.fetch_val("SELECT source FROM pg_settings WHERE name = 'statement_timeout'")
            == "session"
        )
        with pytest.raises(pg_errors.QueryCanceled):
            db.fetch_val("SELECT pg_sleep(3)")
        with db.connection() as conn:
            conn.execute("SET statement_timeout = 0")
        assert db.fetch_val("SHOW statement_timeout") == "100ms"


def test_session_settings_startup_survives_reset(pg_url: str) -> None:
    """In the startup packet (the default, direct to PostgreSQL) the settings are the session's
    own defaults: a reset goes back to them, no SET needed."""
    with pgkeel.Database(pg_url, min_size=1, max_size=1, statement_timeout=0.1) as db:
        assert (
            db.fetch_val("SELECT source FROM pg_settings WHERE name = 'statement_timeout'")
            == "client"
        )
        with db.connection() as conn:
            conn.execute("SET statement_timeout = 0")
        assert db.fetch_val("SHOW statement_timeout") == "100ms"


def test_session_settings_server(pg_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """session_settings='server' sends none of pgkeel's settings; open() warns about each
    timeout the role/database leaves off, and is quiet once ALTER DATABASE ... SET has them."""
    caplog.set_level(logging.WARNING, logger="pgkeel")
    with pgkeel.Database(pg_url, min_size=1, max_size=1, session_settings="server") as db:
        assert db.fetch_val("SHOW statement_timeout") == "0"
    warned = [
        r.getMessage() for r in caplog.records if "session_settings='server'" in r.getMessage()
    ]
    assert warned
    assert "statement_timeout" in warned[0]
    assert "ALTER ROLE" in warned[0]
    caplog.clear()
    dbname = psycopg.conninfo.conninfo_to_dict(pg_url)["dbname"]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for name in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout"):
            conn.execute(
                psycopg.sql.SQL("ALTER DATABASE {} SET {} = '5s'").format(
                    psycopg.sql.Identifier(str(dbname)), psycopg.sql.Identifier(name)
                )
            )
    with pgkeel.Database(pg_url, min_size=1, max_size=1, session_settings="server") as db:
        assert db.fetch_val("SHOW statement_timeout") == "5s"
    assert not [r for r in caplog.records if "session_settings" in r.getMessage()]


CANARY = "canary-Opt-4d2e"


@pytest.mark.parametrize("mode", ["auto", "set"])
def test_secret_setting_echoed_by_server_never_leaks(
    pg_server: Any, pg_url: str, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    """A server that echoes a bad secret-named setting (-c password_encryption=<canary>) in its
    error: the canary, and an sslpassword canary, are in no error, traceback, health report,
    log record (the pool's own included) or repr."""
    caplog.set_level(logging.DEBUG)
    url = psycopg.conninfo.make_conninfo(
        pg_url, sslpassword=CANARY + "-ssl", options=f"-c password_encryption={CANARY}"
    )
    seen: list[str] = []
    extra = {} if mode == "auto" else {"session_settings": mode}  # auto: the default
    db = pgkeel.Database(url, min_size=1, max_size=1, timeout=0.5, **extra)
    seen += [repr(db), repr(db.config), str(db.config)]
    with pytest.raises(psycopg.Error) as info:
        db.open()
    seen.append("".join(traceback.format_exception(info.value)))
    assert "password_encryption" in seen[-1]  # the server's error is there, value masked
    db.open(wait=False)
    seen.append(str(db.health(timeout=0.5)))
    db.close()
    seen += [r.getMessage() + str(r.args) for r in caplog.records]
    assert not [text for text in seen if CANARY in text]


def test_passfile_password_never_leaks(
    pg_url: str, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """A (wrong) password that libpq reads from a passfile shows up in no error, health report,
    log record or repr either."""
    caplog.set_level(logging.DEBUG)
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"*:*:*:*:{CANARY}-pass\n")
    passfile.chmod(0o600)
    info = psycopg.conninfo.conninfo_to_dict(pg_url)
    info.pop("password")
    url = psycopg.conninfo.make_conninfo("", **info, passfile=str(passfile))
    seen: list[str] = []
    db = pgkeel.Database(url, min_size=1, max_size=1, timeout=0.5)
    seen += [repr(db), repr(db.config), str(db.config)]
    with pytest.raises(psycopg.OperationalError) as exc:
        db.open()
    seen.append("".join(traceback.format_exception(exc.value)))
    assert "password authentication failed" in seen[-1]
    db.open(wait=False)
    seen.append(str(db.health(timeout=0.5)))
    db.close()
    seen += [r.getMessage() + str(r.args) for r in caplog.records]
    assert not [text for text in seen if CANARY in text]
