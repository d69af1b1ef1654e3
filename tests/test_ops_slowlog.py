"""The slow query log (``slow_query_ms=``, ``PGKEEL_SLOW_QUERY_MS``): query-method calls at
least that slow are logged at WARNING on ``pgkeel.query`` with the parameterised text, the
duration and the row count, never a parameter value; faster ones are not; off by default."""

from __future__ import annotations

import asyncio
import logging

import psycopg
import pytest

import pgkeel
from pgkeel.config import resolve

SECRET = "canary-slowlog-94d1"


def _slow(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "pgkeel.query"]


def test_slow_queries_are_logged_fast_ones_not(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A query slower than slow_query_ms is one WARNING with text, duration and rows; a fast
    one is not logged; the parameter value appears nowhere in the record."""
    caplog.set_level(logging.DEBUG, logger="pgkeel")
    with pgkeel.Database(pg_url, min_size=1, max_size=2, slow_query_ms=500) as db:
        db.fetch_one("SELECT %s::text AS v", (SECRET,))
        rows = db.fetch_all(
            "SELECT g, %s::text AS v, pg_sleep(0.3) FROM generate_series(1, 2) g", (SECRET,)
        )
        assert len(rows) == 2
    (record,) = _slow(caplog)
    assert record.levelno == logging.WARNING
    assert record.query == "SELECT g, %s::text AS v, pg_sleep(0.3) FROM generate_series(1, 2) g"  # type: ignore[attr-defined]
    assert record.rows == 2  # type: ignore[attr-defined]
    assert record.duration_ms >= 500  # type: ignore[attr-defined]
    message = record.getMessage()
    assert "2 rows" in message
    assert "pg_sleep(0.3)" in message
    assert SECRET not in message + repr(record.__dict__)


def test_every_query_method_is_covered_and_failures_say_so(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With slow_query_ms=0 every query method logs (execute_many with its total rows), and a
    failed query is logged with its SQLSTATE instead of a row count, never its message."""
    caplog.set_level(logging.WARNING, logger="pgkeel")
    with pgkeel.Database(pg_url, min_size=1, max_size=2, slow_query_ms=0) as db:
        db.execute("CREATE TABLE t (id int PRIMARY KEY)")
        db.execute_many("INSERT INTO t VALUES (%s)", [(1,), (2,), (3,)])
        db.execute("UPDATE t SET id = id + %s", (10,))
        db.fetch_one("SELECT * FROM t WHERE id = %s", (11,))
        db.fetch_all("SELECT * FROM t")
        db.fetch_val("SELECT count(*) FROM t")
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            db.fetch_val("SELECT %s::int", (SECRET,))
        with db.transaction() as tx:
            tx.fetch_val("SELECT 1")
    got = [(r.query, r.rows) for r in _slow(caplog)]  # type: ignore[attr-defined]
    assert got == [
        ("CREATE TABLE t (id int PRIMARY KEY)", None),  # no row count for DDL
        ("INSERT INTO t VALUES (%s)", 3),
        ("UPDATE t SET id = id + %s", 3),
        ("SELECT * FROM t WHERE id = %s", 1),
        ("SELECT * FROM t", 3),
        ("SELECT count(*) FROM t", 1),
        ("SELECT %s::int", None),
        ("SELECT 1", 1),
    ]
    failed = _slow(caplog)[6].getMessage()
    assert "failed (22P02)" in failed
    assert SECRET not in "".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)


def test_off_by_default(pg_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Without slow_query_ms nothing is logged, however slow the query."""
    caplog.set_level(logging.DEBUG, logger="pgkeel")
    with pgkeel.Database(pg_url, min_size=1, max_size=1) as db:
        assert db.config.slow_query_ms is None
        db.fetch_one("SELECT pg_sleep(0.05)")
    assert _slow(caplog) == []


def test_async_face(pg_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """AsyncDatabase logs slow queries the same way, inside transactions too."""
    caplog.set_level(logging.WARNING, logger="pgkeel")

    async def main() -> None:
        async with pgkeel.AsyncDatabase(pg_url, min_size=1, max_size=1, slow_query_ms=500) as db:
            await db.fetch_val("SELECT 1")
            async with db.transaction() as tx:
                await tx.execute("SELECT pg_sleep(0.6), %s::text", (SECRET,))

    asyncio.run(main())
    (record,) = _slow(caplog)
    assert record.query == "SELECT pg_sleep(0.6), %s::text"  # type: ignore[attr-defined]
    assert SECRET not in record.getMessage()


def test_option_from_keyword_and_environment() -> None:
    """slow_query_ms comes from the keyword or PGKEEL_SLOW_QUERY_MS (the keyword wins), and a
    bad value is refused naming the option and the unit."""
    url = "postgresql://u@db.internal/app"
    assert resolve(url, {"slow_query_ms": 200}).slow_query_ms == 200.0
    assert resolve(url, {}, {"PGKEEL_SLOW_QUERY_MS": "250"}).slow_query_ms == 250.0
    assert resolve(url, {"slow_query_ms": 5}, {"PGKEEL_SLOW_QUERY_MS": "250"}).slow_query_ms == 5
    assert resolve(url, {"slow_query_ms": None}).slow_query_ms is None
    with pytest.raises(pgkeel.ConfigError, match="slow_query_ms takes a number of milliseconds"):
        resolve(url, {"slow_query_ms": "fast"})
    with pytest.raises(pgkeel.ConfigError, match="PGKEEL_SLOW_QUERY_MS"):
        resolve(url, {}, {"PGKEEL_SLOW_QUERY_MS": "soon"})
    with pytest.raises(pgkeel.ConfigError, match="cannot be negative"):
        resolve(url, {"slow_query_ms": -1})
