"""Types: JSONB via orjson, arrays, UUID, aware timestamptz, Decimal; clear errors for naive
datetimes, NaN in JSON and NUL in text, with the pool healthy afterwards."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest
from psycopg.types.json import Jsonb

import pgkeel

pytest_plugins = ["fix_db"]


def test_round_trip_of_common_types(db: pgkeel.Database) -> None:
    """dict->jsonb, lists->arrays, UUID, aware datetimes and Decimal survive a round trip."""
    db.execute(
        "CREATE TABLE t (j jsonb, js json, tags text[], u uuid, at timestamptz, price numeric)"
    )
    doc = {"a": [1, 2.5, None], "b": {"c": "é"}}
    u = uuid.uuid4()
    at = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    db.execute(
        "INSERT INTO t VALUES (%s, %s, %s, %s, %s, %s)",
        (doc, Jsonb([1, 2]), ["x", "y"], u, at, Decimal("10.05")),
    )
    row = db.fetch_one("SELECT * FROM t")
    assert row == {
        "j": doc,
        "js": [1, 2],
        "tags": ["x", "y"],
        "u": u,
        "at": at,
        "price": Decimal("10.05"),
    }
    assert row["at"].tzinfo is not None
    assert db.fetch_val("SELECT j->'b'->>'c' FROM t") == "é"


def test_naive_datetime_raises_by_default(db: pgkeel.Database) -> None:
    """A naive datetime parameter raises NotStorableError naming the fix; the pool stays fine."""
    db.execute("CREATE TABLE t (at timestamptz)")
    with pytest.raises(pgkeel.NotStorableError, match="aware datetime"):
        db.execute("INSERT INTO t VALUES (%s)", (datetime(2024, 1, 1),))
    assert db.fetch_val("SELECT count(*) FROM t") == 0


def test_naive_datetime_allowed_when_switched_off(pg_url: str) -> None:
    """naive_datetime='allow' sends naive values as timestamp without time zone."""
    with pgkeel.Database(pg_url, min_size=1, naive_datetime="allow") as db:
        assert db.fetch_val("SELECT %s::timestamp", (datetime(2024, 1, 1),)) == datetime(2024, 1, 1)


def test_nan_in_json_raises(db: pgkeel.Database) -> None:
    """NaN/Infinity in a JSON document raise instead of being stored as null."""
    db.execute("CREATE TABLE t (j jsonb)")
    with pytest.raises(pgkeel.NotStorableError, match="NaN"):
        db.execute("INSERT INTO t VALUES (%s)", ({"x": [1.0, float("nan")]},))
    with pytest.raises(pgkeel.NotStorableError):
        db.execute("INSERT INTO t VALUES (%s)", (Jsonb({"x": float("inf")}),))
    db.execute("INSERT INTO t VALUES (%s)", ({"x": None},))  # a real null is fine
    assert db.fetch_val("SELECT j FROM t") == {"x": None}


def test_values_postgres_rejects_leave_pool_healthy(pg_url: str) -> None:
    """NUL in text and out-of-range values give clear errors; the single connection still works."""
    with pgkeel.Database(pg_url, min_size=1, max_size=1) as db:
        db.execute("CREATE TABLE t (s text, n smallint)")
        with pytest.raises(psycopg.DataError, match="NUL"):
            db.execute("INSERT INTO t VALUES (%s, 1)", ("a\x00b",))
        with pytest.raises(psycopg.errors.NumericValueOutOfRange):
            db.execute("INSERT INTO t VALUES ('x', %s::int)", (70000,))
        with db.transaction() as tx, pytest.raises(psycopg.DataError):
            tx.execute("INSERT INTO t VALUES (%s, 1)", ("\x00",))
        db.execute("INSERT INTO t VALUES ('ok', 1)")
        assert db.fetch_val("SELECT count(*) FROM t") == 1
        assert db.stats()["size"] == 1
        assert db.stats()["connections_lost"] == 0


def test_async_types(pg_url: str) -> None:
    """The async face applies the same adapters."""

    async def main() -> None:
        async with pgkeel.AsyncDatabase(pg_url, min_size=1) as db:
            assert await db.fetch_val("SELECT %s::jsonb", ({"k": [1]},)) == {"k": [1]}
            with pytest.raises(pgkeel.NotStorableError):
                await db.fetch_val("SELECT %s", (datetime(2024, 1, 1),))
            assert await db.fetch_val("SELECT 1") == 1

    asyncio.run(main())
