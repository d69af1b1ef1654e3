"""asyncpg's lean pool (``pgkeel.drivers._asyncpg.LeanPool``) where its behaviour is its own
rather than the contract's: which connection ``max_idle`` retires, and when."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pgkeel

pytest_plugins = ["fix_drivers"]


async def _until(what: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


def test_a_connection_opened_in_the_background_is_not_retired_as_idle(pg_url: str) -> None:
    """A connection the pool opened in the background (to refill min_size) counts as idle from
    when it arrived, so another connection's return does not retire it under max_idle."""
    from fix_drivers import run_on

    async def body(db: pgkeel.AsyncDatabase) -> None:
        pool = db._pool
        await _until(lambda: pool.get_stats()["pool_available"] == 2)
        first = await pool.getconn()
        try:
            second = await pool.getconn()
            try:
                # A lost connection takes the pool below min_size: a replacement grows in the
                # background while the next checkout, finding no idle connection, opens its own.
                second.raw.terminate()
            finally:
                await pool.putconn(second)
            third = await pool.getconn()
            try:
                await _until(lambda: pool.get_stats()["pool_available"] == 1)
                third.idle_since = time.monotonic()  # as the Database does when it gives one back
            finally:
                await pool.putconn(third)
            stats = pool.get_stats()
            assert (stats["pool_size"], stats["pool_available"]) == (3, 2), stats
        finally:
            first.idle_since = time.monotonic()
            await pool.putconn(first)

    run_on(pg_url, "asyncpg", body, min_size=2, max_size=3, max_idle=60)
