"""Bulk calls and streams under pgkeel's server timeouts: bulk_timeout and stream_idle_timeout.

A slow COPY is simulated with a row trigger calling pg_sleep, a slow consumer with time.sleep
between rows; the server-side limits are set tiny so the tests stay short.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

import pgkeel
from pgkeel.errors import StreamIdleTimeoutError

pytest_plugins = ["fix_bulk"]

SLOW_TABLE = """
CREATE TABLE slow (id int PRIMARY KEY, v text);
CREATE FUNCTION nap() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN PERFORM pg_sleep(0.05); RETURN NEW; END $$;
CREATE TRIGGER nap BEFORE INSERT ON slow FOR EACH ROW EXECUTE FUNCTION nap();
"""
ROWS = [{"id": i, "v": f"v{i}"} for i in range(6)]  # 6 x 50 ms: 300 ms in one statement
SLOW_QUERY = "SELECT g, pg_sleep(0.05) FROM generate_series(1, 6) g"


def test_bulk_calls_outlive_a_short_statement_timeout(
    pg_url: str, admin: Any, tmp_path: Path
) -> None:
    """With the default bulk_timeout (no limit), every bulk call runs past statement_timeout,
    and the pooled connection keeps the short limit for ordinary queries afterwards."""
    admin.execute(SLOW_TABLE)
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text("id,v\n" + "".join(f"{i + 10},w{i}\n" for i in range(6)))
    with pgkeel.Database(pg_url, min_size=1, max_size=1, statement_timeout="100ms") as db:
        assert db.copy_in("slow", ROWS) == 6
        assert db.copy_in_csv("slow", csv_path) == 6
        assert db.upsert("slow", ROWS, key="id") == 6
        assert db.copy_out(SLOW_QUERY, tmp_path / "out.csv") == 6
        with pytest.raises(psycopg.errors.QueryCanceled):
            db.fetch_val("SELECT pg_sleep(0.3)")
    assert admin.execute("SELECT count(*) FROM slow").fetchone() == (12,)


def test_bulk_timeout_when_set_cancels_the_call(pg_url: str, admin: Any) -> None:
    """bulk_timeout bounds one bulk call even where statement_timeout is off; nothing is left."""
    admin.execute(SLOW_TABLE)
    with pgkeel.Database(
        pg_url, min_size=1, max_size=1, statement_timeout=0, bulk_timeout=0.1
    ) as db:
        with pytest.raises(psycopg.errors.QueryCanceled):
            db.copy_in("slow", ROWS)
        with pytest.raises(psycopg.errors.QueryCanceled):
            db.upsert("slow", ROWS, key="id")
        assert db.fetch_val("SELECT pg_sleep(0.2)::text") == ""
    assert admin.execute("SELECT count(*) FROM slow").fetchone() == (0,)


def test_bulk_timeout_inside_a_transaction_is_put_back(pg_url: str, admin: Any) -> None:
    """In the caller's transaction the bulk limit applies to the call only, not to what follows."""
    admin.execute(SLOW_TABLE)
    with (
        pgkeel.Database(pg_url, min_size=1, max_size=1, statement_timeout="100ms") as db,
        db.transaction() as tx,
    ):
        assert tx.copy_in("slow", ROWS) == 6
        assert tx.fetch_val("SHOW statement_timeout") == "100ms"
    assert admin.execute("SELECT count(*) FROM slow").fetchone() == (6,)


def test_async_bulk_calls_follow_bulk_timeout(pg_url: str, admin: Any) -> None:
    """The async face: no limit by default past statement_timeout, bulk_timeout when set."""
    admin.execute(SLOW_TABLE)

    async def body() -> None:
        async with pgkeel.AsyncDatabase(
            pg_url, min_size=1, max_size=1, statement_timeout="100ms"
        ) as adb:
            assert await adb.copy_in("slow", ROWS) == 6
            with pytest.raises(psycopg.errors.QueryCanceled):
                await adb.fetch_val("SELECT pg_sleep(0.3)")
        async with pgkeel.AsyncDatabase(pg_url, min_size=1, max_size=1, bulk_timeout=0.1) as adb:
            with pytest.raises(psycopg.errors.QueryCanceled):
                await adb.upsert("slow", ROWS, key="id")

    asyncio.run(body())
    assert admin.execute("SELECT count(*) FROM slow").fetchone() == (6,)


# --- streams ----------------------------------------------------------------------------------

# A parameter keeps the stream on a server-side cursor (idle in transaction between fetches).
CURSOR_QUERY = "SELECT g FROM generate_series(1, %s) g"


def slow_consumer(rows: Any, pause: float) -> list[Any]:
    out = []
    for r in rows:
        out.append(r)
        time.sleep(pause)
    return out


def test_paused_stream_survives_with_stream_idle_timeout(pg_url: str) -> None:
    """A consumer pausing longer than the session's idle-in-transaction limit between batches
    keeps its stream when stream_idle_timeout allows it, on a cursor and on COPY."""
    with pgkeel.Database(
        pg_url,
        min_size=1,
        max_size=1,
        idle_in_transaction_session_timeout="200ms",
        statement_timeout="200ms",
        stream_idle_timeout=5,
    ) as db:
        got = slow_consumer(db.stream(CURSOR_QUERY, (4,), row=tuple, batch_size=1), 0.3)
        assert got == [(1,), (2,), (3,), (4,)]
        got = slow_consumer(db.stream("SELECT g FROM generate_series(1, 4) g", row=tuple), 0.3)
        assert got == [(1,), (2,), (3,), (4,)]
        assert db.fetch_val("SELECT 1") == 1


def test_paused_stream_past_its_idle_limit_fails_clearly(pg_url: str) -> None:
    """Without stream_idle_timeout the session's limit applies; the error names the option,
    and the pool recovers."""
    with pgkeel.Database(
        pg_url, min_size=1, max_size=1, idle_in_transaction_session_timeout="200ms"
    ) as db:
        with pytest.raises(StreamIdleTimeoutError, match="stream_idle_timeout"):
            slow_consumer(db.stream(CURSOR_QUERY, (4,), row=tuple, batch_size=1), 0.4)
        assert db.fetch_val("SELECT 1") == 1


def test_async_paused_stream_survives_with_stream_idle_timeout(pg_url: str) -> None:
    """The async face applies stream_idle_timeout too, and names it when it is too short."""

    async def consume(adb: pgkeel.AsyncDatabase) -> list[Any]:
        out = []
        async for r in adb.stream(CURSOR_QUERY, (3,), row=tuple, batch_size=1):
            out.append(r)
            await asyncio.sleep(0.4)
        return out

    async def body() -> None:
        async with pgkeel.AsyncDatabase(
            pg_url,
            min_size=1,
            max_size=1,
            idle_in_transaction_session_timeout="200ms",
            stream_idle_timeout=5,
        ) as adb:
            assert await consume(adb) == [(1,), (2,), (3,)]
        async with pgkeel.AsyncDatabase(
            pg_url,
            min_size=1,
            max_size=1,
            idle_in_transaction_session_timeout="10s",
            stream_idle_timeout=0.2,
        ) as adb:
            with pytest.raises(StreamIdleTimeoutError, match=r"stream_idle_timeout=0\.2 s"):
                await consume(adb)

    asyncio.run(body())
