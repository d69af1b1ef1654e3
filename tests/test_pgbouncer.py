"""pgkeel behind a real PgBouncer in transaction mode: the session defaults apply (with SET,
since PgBouncer refuses the startup ``options``), and ``prepare_threshold=None`` keeps prepared
statements from breaking when PgBouncer changes server connections."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors

import pgkeel

pytest_plugins = ["fix_pgbouncer"]

Factory = Callable[..., Callable[[str], str]]


def test_pgbouncer_refuses_startup_options(pg_url: str, pgbouncer_factory: Factory) -> None:
    """A default PgBouncer refuses a plain connection that sends settings in the startup packet
    (what pgkeel did unconditionally)."""
    url = pgbouncer_factory()(pg_url)
    with pytest.raises(psycopg.OperationalError, match="unsupported startup parameter"):
        psycopg.connect(url, options="-c statement_timeout=1s", prepare_threshold=None)


def test_defaults_in_force_through_pgbouncer(
    pg_url: str, pgbouncer_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    """Database with its defaults works through PgBouncer, statement_timeout really cancels a
    long query, and the switch to SET is logged at INFO."""
    caplog.set_level(logging.INFO, logger="pgkeel")
    url = pgbouncer_factory()(pg_url)
    with pgkeel.Database(url, min_size=1, max_size=1, statement_timeout=0.1) as db:
        assert db.fetch_val("SHOW statement_timeout") == "100ms"
        assert db.fetch_val("SHOW lock_timeout") == "10s"
        with pytest.raises(pg_errors.QueryCanceled):
            db.fetch_val("SELECT pg_sleep(3)")
        # A reset (DISCARD ALL) wipes SET values: they are applied again.
        with db.connection() as conn:
            conn.execute("SET work_mem = '2MB'")
        assert db.fetch_val("SHOW statement_timeout") == "100ms"
    assert any(
        r.name == "pgkeel.config" and r.levelno == logging.INFO and "SET" in r.getMessage()
        for r in caplog.records
    )


def test_async_open_without_wait_through_pgbouncer(pg_url: str, pgbouncer_factory: Factory) -> None:
    """open(wait=False) skips the probe: the pool's own first connection decides, and the
    settings are in force on the asyncio face too."""
    url = pgbouncer_factory()(pg_url)

    async def main() -> None:
        db = pgkeel.AsyncDatabase(url, min_size=1, max_size=1, statement_timeout=0.1)
        await db.open(wait=False)
        try:
            assert await db.fetch_val("SHOW statement_timeout") == "100ms"
            with pytest.raises(pg_errors.QueryCanceled):
                await db.fetch_val("SELECT pg_sleep(3)")
        finally:
            await db.close()

    asyncio.run(main())


def test_ignored_startup_options_detected(pg_url: str, pgbouncer_factory: Factory) -> None:
    """A PgBouncer told to ignore the options parameter would silently drop the settings:
    session_settings="auto" sees that they are not in force and applies them with SET."""
    url = pgbouncer_factory(ignore_startup_parameters="options")(pg_url)
    with pgkeel.Database(url, min_size=1, max_size=1, statement_timeout=0.1) as db:
        assert db.fetch_val("SHOW statement_timeout") == "100ms"
        with pytest.raises(pg_errors.QueryCanceled):
            db.fetch_val("SELECT pg_sleep(3)")


def test_startup_mode_fails_clearly_behind_pgbouncer(
    pg_url: str, pgbouncer_factory: Factory
) -> None:
    """session_settings="startup" does not fall back: open() reports PgBouncer's refusal."""
    url = pgbouncer_factory()(pg_url)
    db = pgkeel.Database(url, min_size=1, max_size=1, session_settings="startup")
    with pytest.raises(psycopg.OperationalError, match="startup parameter"):
        db.open()
    db.close()


@pytest.mark.parametrize("threshold", [5, None])
def test_prepare_threshold_none_survives_server_switch(
    pg_url: str, pgbouncer_factory: Factory, threshold: int | None
) -> None:
    """With prepared statements (psycopg's default), a query prepared on one server connection
    fails when PgBouncer (transaction mode, < 1.21) runs the next one on another;
    prepare_threshold=None never prepares, so it keeps working."""
    url = pgbouncer_factory()(pg_url)
    with pgkeel.Database(url, min_size=1, max_size=1, prepare_threshold=threshold) as db:
        for i in range(8):  # past psycopg's threshold: prepared on PgBouncer's one server conn
            assert db.fetch_val("SELECT %s::int + 1", [i]) == i + 1
        # Another client takes that server connection and keeps it (a transaction)...
        with psycopg.connect(url, prepare_threshold=None) as other:
            other.execute("SELECT 1")
            assert other.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
            # ... so PgBouncer opens a second one for ours.
            run: Callable[[], Any] = lambda: db.fetch_val("SELECT %s::int + 1", [41])  # noqa: E731
            if threshold is None:
                assert run() == 42
            else:
                with pytest.raises(pg_errors.InvalidSqlStatementName):
                    run()


def test_server_settings_through_pgbouncer(
    pg_url: str, pgbouncer_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    """The README's transaction-mode recipe: database settings + session_settings='server' +
    prepare_threshold=None work through PgBouncer with no SET, on every server connection."""
    caplog.set_level(logging.INFO, logger="pgkeel")
    dbname = str(psycopg.conninfo.conninfo_to_dict(pg_url)["dbname"])
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("ALTER DATABASE {} SET statement_timeout = '100ms'").format(
                psycopg.sql.Identifier(dbname)
            )
        )
    url = pgbouncer_factory(default_pool_size=2)(pg_url)
    options: dict[str, Any] = {"session_settings": "server", "prepare_threshold": None}
    with pgkeel.Database(url, min_size=2, max_size=2, size_check="off", **options) as db:
        with db.connection() as a, db.connection() as b:
            for conn in (a, b):  # two server connections, both with the setting
                conn.execute("BEGIN")
                assert conn.execute("SHOW statement_timeout").fetchone() == {
                    "statement_timeout": "100ms"
                }
            for conn in (a, b):
                conn.execute("ROLLBACK")
        with pytest.raises(pg_errors.QueryCanceled):
            db.fetch_val("SELECT pg_sleep(3)")
    assert not [r for r in caplog.records if r.name == "pgkeel.config"]  # no switch to SET
