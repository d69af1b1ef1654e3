"""The async twins of the bulk and streaming tests: AsyncDatabase against a real server."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

import pgkeel
from pgkeel.errors import DuplicateKeyError, RowError
from test_bulk_copy import COLUMNS, EVERY_TYPE_DDL, EVERY_TYPE_ROWS, count, rows_of

pytest_plugins = ["fix_bulk"]


def test_async_copy_in_every_type_round_trips(arun: Any, admin: Any) -> None:
    """Every common type survives AsyncDatabase.copy_in and comes back through async stream."""
    admin.execute(EVERY_TYPE_DDL)

    async def body(adb: pgkeel.AsyncDatabase) -> tuple[int, list[Any], list[Any]]:
        n = await adb.copy_in("every_type", EVERY_TYPE_ROWS)
        tuples = [r async for r in adb.stream("SELECT * FROM every_type ORDER BY id", row=tuple)]
        dicts = [r async for r in adb.stream("SELECT * FROM every_type ORDER BY id")]
        return n, tuples, dicts

    n, tuples, dicts = arun(body)
    assert n == 3
    assert tuples == EVERY_TYPE_ROWS
    assert dicts == [dict(zip(COLUMNS, r, strict=True)) for r in EVERY_TYPE_ROWS]


def test_async_copy_in_from_async_generator_of_dicts(arun: Any, admin: Any) -> None:
    """An async generator of dict rows streams in, mapped by name, with progress reports."""
    admin.execute("CREATE TABLE t (id int, name text)")
    seen: list[int] = []

    async def rows() -> AsyncIterator[dict[str, Any]]:
        for i in range(12_000):
            yield {"name": f"n{i}", "id": i}

    async def body(adb: pgkeel.AsyncDatabase) -> int:
        return await adb.copy_in("t", rows(), progress=seen.append)

    assert arun(body) == 12_000
    assert seen == [10_000, 12_000]
    assert rows_of(admin, "t")[-1] == (11_999, "n11999")


def test_async_copy_in_iterator_raising_half_way_leaves_table_empty(arun: Any, admin: Any) -> None:
    """An exception from an async row iterator half way aborts the COPY; the pool still works."""
    admin.execute("CREATE TABLE t (id int)")

    class Boom(Exception):
        pass

    async def rows() -> AsyncIterator[tuple[int]]:
        for i in range(30_000):
            if i == 15_000:
                raise Boom
            yield (i,)

    async def body(adb: pgkeel.AsyncDatabase) -> Any:
        with pytest.raises(Boom):
            await adb.copy_in("t", rows())
        return await adb.fetch_val("SELECT 1")

    assert arun(body) == 1
    assert count(admin, "t") == 0


def test_async_bad_value_and_missing_key_abort_cleanly(arun: Any, admin: Any) -> None:
    """A value the server rejects, or a dict without a column, aborts the whole async COPY."""
    admin.execute("CREATE TABLE t (id int, price numeric(10, 2))")

    async def body(adb: pgkeel.AsyncDatabase) -> Any:
        rows = [(i, Decimal("1e12") if i == 20_001 else Decimal(1)) for i in range(1, 25_000)]
        with pytest.raises(psycopg.errors.NumericValueOutOfRange):
            await adb.copy_in("t", rows)
        with pytest.raises(RowError, match="row 2 has no value for column 'price'"):
            await adb.copy_in("t", [{"id": 1, "price": 1}, {"id": 2}])
        return await adb.fetch_val("SELECT 1")

    assert arun(body) == 1
    assert count(admin, "t") == 0


def test_async_copy_in_is_part_of_the_callers_transaction(arun: Any, admin: Any) -> None:
    """Inside an async transaction(), copy_in's rows roll back with it."""
    admin.execute("CREATE TABLE t (id int)")

    class Abort(Exception):
        pass

    async def body(adb: pgkeel.AsyncDatabase) -> None:
        async def work() -> None:
            async with adb.transaction() as tx:
                await tx.copy_in("t", [(1,), (2,)])
                assert await tx.fetch_val("SELECT count(*) FROM t") == 2
                raise Abort

        with pytest.raises(Abort):
            await work()

    arun(body)
    assert count(admin, "t") == 0


def test_async_copy_out_then_copy_in_csv_round_trips(arun: Any, admin: Any, tmp_path: Path) -> None:
    """Async copy_out to CSV then copy_in_csv into a twin table gives back identical rows."""
    admin.execute(EVERY_TYPE_DDL + "; CREATE TABLE twin (LIKE every_type)")
    path = tmp_path / "out.csv"

    async def body(adb: pgkeel.AsyncDatabase) -> tuple[int, int, str]:
        await adb.copy_in("every_type", EVERY_TYPE_ROWS)
        out = await adb.copy_out("every_type", path)
        loaded = await adb.copy_in_csv("twin", path)
        text = io.StringIO()
        await adb.copy_out("SELECT id FROM twin WHERE id > %s ORDER BY id", text, params=(1,))
        return out, loaded, text.getvalue()

    assert arun(body) == (3, 3, "id\n2\n3\n")
    assert rows_of(admin, "twin") == EVERY_TYPE_ROWS


def test_async_upsert_half_conflicts_and_duplicates(arun: Any, admin: Any) -> None:
    """Async upsert with 50% conflicts gives the expected table; duplicates raise or last wins."""
    admin.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")

    async def body(adb: pgkeel.AsyncDatabase) -> None:
        await adb.copy_in("t", [(i, "old") for i in range(1000)])
        assert await adb.upsert("t", [(i, "new") for i in range(500, 1500)], key="id") == 1000
        with pytest.raises(DuplicateKeyError, match="id=7 appears 2 times"):
            await adb.upsert("t", [(7, "a"), (8, "b"), (7, "c")], key="id")
        assert await adb.upsert("t", [(7, "a"), (7, "c")], key="id", on_duplicate="last") == 1

    arun(body)
    got = dict(admin.execute("SELECT id, v FROM t").fetchall())
    expected = {i: "old" if i < 500 else "new" for i in range(1500)}
    expected[7] = "c"
    assert got == expected


def test_async_stream_closed_early_and_memory_bounded_batches(arun: Any, admin: Any) -> None:
    """Closing an async stream half way closes its cursor and ends its transaction."""

    async def body(adb: pgkeel.AsyncDatabase) -> tuple[list[Any], Any]:
        got = []
        async with adb.stream("SELECT * FROM generate_series(1, 100000) g", batch_size=10) as rows:
            async for r in rows:
                got.append(r["g"])
                if len(got) == 25:
                    break
        return got, await adb.fetch_val("SELECT count(*) FROM pg_cursors")

    got, cursors = arun(body)
    assert got == list(range(1, 26))
    assert cursors == 0
    idle_in_tx = admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND state = 'idle in transaction'"
    ).fetchone()
    assert idle_in_tx == (0,)


def test_async_pipeline_commits_together_or_not_at_all(arun: Any, admin: Any) -> None:
    """An async pipeline commits all its statements, or none when one fails."""
    admin.execute("CREATE TABLE t (id int PRIMARY KEY)")

    async def body(adb: pgkeel.AsyncDatabase) -> None:
        async with adb.pipeline() as p:
            for i in range(50):
                await p.execute("INSERT INTO t VALUES (%s)", (i,))
            assert await p.fetch_val("SELECT count(*) FROM t") == 50

        async def failing() -> None:
            async with adb.pipeline() as p:
                await p.execute("INSERT INTO t VALUES (100)")
                await p.execute("INSERT INTO t VALUES (1)")

        with pytest.raises(psycopg.errors.UniqueViolation):
            await failing()

    arun(body)
    assert count(admin, "t") == 50
