"""The async face of pgkeel.cdc: same names, reads in a worker thread, same acknowledgement."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

import pgkeel
from fix_cdc import wait_inactive
from pgkeel import cdc
from pgkeel.cdc import CdcError

pytest_plugins = ["fix_cdc"]


def test_async_transactions_ack_and_resume(cdc_url: str, admin: psycopg.Connection[Any]) -> None:
    """async for over transactions and changes; ack confirms; a new stream resumes after it."""
    admin.execute("CREATE TABLE t (id int PRIMARY KEY, doc jsonb)")

    async def main() -> tuple[list[list[Any]], int]:
        async with (
            pgkeel.AsyncDatabase(cdc_url, min_size=1, max_size=2) as db,
            cdc.AsyncChanges(db, slot="s", publication="p", create=True, tables=["t"]) as stream,
        ):
            await db.execute("INSERT INTO t SELECT i, '{\"a\": 1}' FROM generate_series(1, 1500) i")
            await db.execute("INSERT INTO t VALUES (0, NULL)")
            seen: list[list[Any]] = []
            async for tx in stream.transactions():
                with pytest.raises(CdcError):
                    stream.ack(tx)
                seen.append([c.new async for c in tx])
                stream.ack(tx)
                if len(seen) == 1:
                    end = tx.end_lsn
                    break
            assert end is not None
            return seen, end

    seen, end = asyncio.run(main())
    assert len(seen[0]) == 1500
    assert seen[0][0] == {"id": 1, "doc": {"a": 1}}
    # The walsender applies the last feedback before it notices the close; a busy machine can
    # be slower than the query below.
    wait_inactive(admin, "s")
    row = admin.execute(
        "SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots WHERE slot_name = 's'"
    ).fetchone()
    assert row == (end,)

    async def rest() -> list[Any]:
        while admin.execute("SELECT bool_or(active) FROM pg_replication_slots").fetchone() == (
            True,
        ):
            await asyncio.sleep(0.05)
        async with cdc.AsyncChanges(cdc_url, slot="s", publication="p") as stream:
            async for change in stream:
                stream.ack()
                return [change.new]
        return []

    assert asyncio.run(rest()) == [{"id": 0, "doc": None}]


def test_async_database_changes_method(cdc_url: str, admin: psycopg.Connection[Any]) -> None:
    """AsyncDatabase.changes(...) gives the asyncio stream on the Database's own settings."""
    admin.execute("CREATE TABLE t (id int PRIMARY KEY)")

    async def main() -> list[Any]:
        async with (
            pgkeel.AsyncDatabase(cdc_url, min_size=1, max_size=2) as db,
            db.changes(slot="am", publication="p", create=True, tables=["t"]) as stream,
        ):
            await db.execute("INSERT INTO t VALUES (7)")
            async for tx in stream.transactions():
                rows = [c.new async for c in tx]
                stream.ack(tx)
                return rows
        return []

    assert asyncio.run(main()) == [{"id": 7}]
