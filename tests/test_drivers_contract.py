"""The driver contract: pgkeel's core behaviour (queries, transactions, savepoints, retry, values,
errors, hostile input, cancellation, session reset, timeouts, lost connections, health) on every
driver of the asyncio face, through the one parametrized fixture ``on_driver``."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import math
import time
import uuid
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg import sql

import pgkeel
from pgkeel.errors import NotStorableError

pytest_plugins = ["fix_drivers", "fix_pgbouncer"]

TABLE = "CREATE TABLE item (id int PRIMARY KEY, name text NOT NULL, qty int CHECK (qty >= 0))"


#: Counts the client connections to the current database other than the one asking.
BACKENDS = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
)


async def _raw_class(db: pgkeel.AsyncDatabase) -> type:
    async with db.connection() as conn:
        return type(getattr(conn, "raw", conn))


def test_each_run_uses_its_driver(on_driver: Any, driver: str) -> None:
    """The connection under a contract run is the driver's own class (the suite really runs on
    asyncpg, not on psycopg twice)."""
    cls = on_driver(_raw_class)
    if driver == "asyncpg":
        import asyncpg

        assert issubclass(cls, asyncpg.Connection)
    else:
        assert issubclass(cls, psycopg.AsyncConnection)


def test_queries_placeholders_and_rows(on_driver: Any) -> None:
    """execute returns rows affected; %s and %(name)s work; dict, tuple and dataclass rows;
    None and [] for no rows; %% is a literal %; a psycopg.sql composition runs."""

    @dataclasses.dataclass
    class Item:
        id: int
        name: str
        qty: int | None

    async def body(db: pgkeel.AsyncDatabase) -> None:
        await db.execute(TABLE)
        assert (
            await db.execute("INSERT INTO item VALUES (%s, %s, %s), (2, 'b', 5)", (1, "a", 3)) == 2
        )
        assert await db.fetch_one("SELECT * FROM item WHERE id = %(id)s", {"id": 1}) == {
            "id": 1,
            "name": "a",
            "qty": 3,
        }
        assert await db.fetch_one("SELECT id, name FROM item WHERE id = %s", [2], row=tuple) == (
            2,
            "b",
        )
        assert await db.fetch_all("SELECT * FROM item ORDER BY id", row=Item) == [
            Item(1, "a", 3),
            Item(2, "b", 5),
        ]
        assert await db.fetch_one("SELECT * FROM item WHERE id = %s", [99]) is None
        assert await db.fetch_all("SELECT * FROM item WHERE id = %s", [99]) == []
        assert await db.fetch_val("SELECT '100%%' || %s::text -- a comment", ["!"]) == "100%!"
        assert (
            await db.fetch_val("SELECT $$1%%$$ || %(a)s::text || %(a)s::text", {"a": "x"}) == "1%xx"
        )
        q = sql.SQL("SELECT {} FROM {} WHERE id = %s").format(
            sql.Identifier("name"), sql.Identifier("item")
        )
        assert await db.fetch_val(q, [2]) == "b"
        assert await db.execute("UPDATE item SET qty = qty + 1") == 2
        assert (
            await db.execute_many("UPDATE item SET name = %s WHERE id = %s", [("x", 1), ("y", 2)])
            == 2
        )

    on_driver(body)


def test_untyped_placeholders_take_the_values_type(on_driver: Any) -> None:
    """A placeholder the statement does not type (`SELECT %s`) gets the Python value's type on
    every driver, as psycopg sends it; in a transaction too, which the retry leaves intact."""
    now = dt.datetime(2026, 12, 7, 12, 30, tzinfo=dt.UTC)
    values: list[Any] = [
        7,
        2**70,
        1.5,
        Decimal("1.50"),
        True,
        now,
        dt.date(2026, 12, 7),
        dt.timedelta(seconds=90),
        uuid.UUID(int=5),
        {"a": [1, 2]},
        [1, 2, 3],
        b"\x00\x01",
        "text",
        None,
    ]

    async def body(db: pgkeel.AsyncDatabase) -> list[Any]:
        got = [await db.fetch_val("SELECT %s", [v]) for v in values]
        assert await db.fetch_val("SELECT %s + %s", [2, 3]) == 5
        assert await db.fetch_val("SELECT %(a)s::text || %(b)s", {"a": 1, "b": 2}) == "12"
        async with db.transaction() as tx:
            assert await tx.fetch_val("SELECT %s", [41]) == 41
            assert await tx.fetch_val("SELECT 1") == 1
        await db.execute("CREATE TABLE u (name text, n int)")
        # An int into a text column: the server's assignment cast, on either driver.
        await db.execute("INSERT INTO u VALUES (%s, %s)", [5, 6])
        assert await db.fetch_one("SELECT * FROM u") == {"name": "5", "n": 6}
        return got

    got = on_driver(body)
    assert got == [
        *values[:1],
        2**70,
        1.5,
        Decimal("1.50"),
        True,
        now,
        *values[6:11],
        b"\x00\x01",
        "text",
        None,
    ]


def test_execute_many_is_all_or_none(on_driver: Any) -> None:
    """A failing parameter set in execute_many leaves none of the others written."""

    async def body(db: pgkeel.AsyncDatabase) -> None:
        await db.execute(TABLE)
        with pytest.raises(pg_errors.UniqueViolation):
            await db.execute_many("INSERT INTO item VALUES (%s, 'n', 1)", [(1,), (2,), (1,)])
        assert await db.fetch_val("SELECT count(*) FROM item") == 0

    on_driver(body)


def test_transactions_savepoints_isolation(on_driver: Any) -> None:
    """Commit, rollback, a savepoint rolled back alone, isolation level and read-only."""

    async def body(db: pgkeel.AsyncDatabase) -> None:
        await db.execute(TABLE)
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO item VALUES (1, 'a', 1)")

        async def fails() -> None:
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO item VALUES (2, 'b', 1)")
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            await fails()

        async def savepoint_fails(tx: pgkeel.AsyncTransaction) -> None:
            async with tx.transaction() as sp:
                await sp.execute("INSERT INTO item VALUES (4, 'd', 1)")
                await sp.execute("INSERT INTO item VALUES (1, 'dup', 1)")

        async with db.transaction() as tx:
            await tx.execute("INSERT INTO item VALUES (3, 'c', 1)")
            with pytest.raises(pg_errors.UniqueViolation):
                await savepoint_fails(tx)
            async with tx.transaction() as sp:
                await sp.execute("INSERT INTO item VALUES (5, 'e', 1)")
        assert [r["id"] for r in await db.fetch_all("SELECT id FROM item ORDER BY id")] == [1, 3, 5]
        async with db.transaction(isolation="serializable", read_only=True) as tx:
            assert await tx.fetch_val("SHOW transaction_isolation") == "serializable"
            with pytest.raises(pg_errors.ReadOnlySqlTransaction):
                await tx.execute("INSERT INTO item VALUES (6, 'f', 1)")
        async with db.transaction() as tx:
            assert await tx.fetch_val("SHOW transaction_isolation") == "read committed"
            assert await tx.fetch_val("SHOW transaction_read_only") == "off"

    on_driver(body)


def test_run_transaction_retries_serialization_failures(on_driver: Any) -> None:
    """A forced write skew between two tasks: one gets 40001 and is retried; both commit."""

    async def body(db: pgkeel.AsyncDatabase) -> None:
        await db.execute("CREATE TABLE duty (doctor int PRIMARY KEY, on_call bool)")
        await db.execute("INSERT INTO duty VALUES (1, true), (2, true)")
        barrier = asyncio.Barrier(2)
        attempts = [0, 0]

        async def leave(me: int) -> None:
            async def fn(tx: pgkeel.AsyncTransaction) -> None:
                attempts[me - 1] += 1
                n = await tx.fetch_val("SELECT count(*) FROM duty WHERE on_call")
                if attempts[me - 1] == 1:
                    await barrier.wait()
                if n > 1:
                    await tx.execute("UPDATE duty SET on_call = false WHERE doctor = %s", [me])

            await db.run_transaction(fn)

        await asyncio.gather(leave(1), leave(2))
        assert await db.fetch_val("SELECT count(*) FROM duty WHERE on_call") == 1
        assert sorted(attempts) == [1, 2]
        assert db.stats()["retries"] == 1

    on_driver(body)


#: The types table: one column per type, the same row written and read on every driver.
TYPES_DDL = """
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE TABLE typed (
    k int PRIMARY KEY, c_int8 int8, c_numeric numeric, c_text text, c_bool bool,
    c_float8 float8, c_uuid uuid, c_timestamptz timestamptz, c_date date, c_interval interval,
    c_bytea bytea, c_jsonb jsonb, c_json json, c_int4_arr int4[], c_text_arr text[],
    c_numeric_arr numeric[], c_timestamptz_arr timestamptz[], c_uuid_arr uuid[], c_mood mood,
    c_null text
)"""
TYPES_INSERT = (
    "INSERT INTO typed VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
    "%s, %s, %s, %s)"
)
TYPES_SELECT = "SELECT * FROM typed WHERE k = %s"
VALUES: dict[str, Any] = {
    "c_int8": 2**62,
    "c_numeric": Decimal("12.3400"),
    "c_text": "héllo ☃ '%s' \\",
    "c_bool": True,
    "c_float8": 1.5,
    "c_uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "c_timestamptz": dt.datetime(2024, 5, 1, 12, 30, 1, 5, tzinfo=dt.UTC),
    "c_date": dt.date(2024, 2, 29),
    "c_interval": dt.timedelta(days=3, seconds=7, microseconds=9),
    "c_bytea": b"\x00\x01\xff",
    "c_jsonb": {"big": 2**70, "list": [1, "a", None], "f": 0.1},
    "c_json": {"nested": {"k": [True]}},
    "c_int4_arr": [1, None, 3],
    "c_text_arr": ["a", None, "c"],
    "c_numeric_arr": [Decimal("1.10"), Decimal("-2")],
    "c_timestamptz_arr": [dt.datetime(2024, 1, 1, tzinfo=dt.UTC)],
    "c_uuid_arr": [uuid.UUID(int=1)],
    "c_mood": "happy",
    "c_null": None,
}


def _same(got: dict[str, Any], expected: dict[str, Any]) -> None:
    for name, value in expected.items():
        assert got[name] == value, name
        if value is not None:
            assert isinstance(got[name], type(value)), (name, type(got[name]))
        if isinstance(value, Decimal):
            assert str(got[name]) == str(value), name  # the scale too


def test_types_round_trip(on_driver: Any) -> None:
    """Every type of the types table comes back as the same Python value (and type)."""

    async def body(db: pgkeel.AsyncDatabase) -> None:
        await db.execute(TYPES_DDL)
        await db.execute(TYPES_INSERT, [1, *VALUES.values()])
        _same(await db.fetch_one(TYPES_SELECT, [1]), VALUES)

    on_driver(body)


def test_type_table_is_the_same_across_drivers(pg_url: str) -> None:
    """Rows written through each driver read back identically through every driver, and the
    server stores the same text for them (both directions, value by value)."""
    from fix_drivers import ASYNC_DRIVERS

    async def main() -> None:
        dbs = [pgkeel.AsyncDatabase(pg_url, driver=d, min_size=1) for d in ASYNC_DRIVERS]
        for db in dbs:
            await db.open()
        try:
            await dbs[0].execute(TYPES_DDL)
            for k, db in enumerate(dbs):
                # One row through each driver, on purpose.
                await db.execute(TYPES_INSERT, [k, *VALUES.values()])  # noqa: PGK005
            for reader in dbs:
                for k in range(len(dbs)):
                    _same(await reader.fetch_one(TYPES_SELECT, [k]), VALUES)
            # json (not jsonb) keeps the text it is sent: psycopg sends a dict as jsonb (which the
            # server re-renders, with spaces), asyncpg as orjson's compact text. Equal values
            # (checked above), different text: a known difference, in the driver notes.
            for name in [n for n in VALUES if n != "c_json"]:
                texts = await dbs[0].fetch_all(
                    sql.SQL("SELECT DISTINCT {}::text AS t FROM typed").format(sql.Identifier(name))
                )
                assert len(texts) == 1, (name, texts)
        finally:
            for db in dbs:
                await db.close()

    asyncio.run(main())


def test_hostile_values_get_the_same_errors(on_driver: Any) -> None:
    """A naive datetime, NaN in JSON, NUL in text and an out-of-range int are refused with the
    same error classes on every driver, and nothing is written."""

    async def body(db: pgkeel.AsyncDatabase) -> None:
        await db.execute("CREATE TABLE h (ts timestamptz, j jsonb, t text, i int4)")
        with pytest.raises(NotStorableError, match="naive datetime"):
            await db.execute("INSERT INTO h (ts) VALUES (%s)", [dt.datetime(2024, 1, 1)])
        with pytest.raises(NotStorableError):
            await db.execute("INSERT INTO h (j) VALUES (%s)", [{"x": math.nan}])
        with pytest.raises(psycopg.DataError):
            await db.execute("INSERT INTO h (t) VALUES (%s)", ["a\x00b"])
        with pytest.raises(pg_errors.NumericValueOutOfRange):
            await db.execute("INSERT INTO h (i) VALUES (%s)", [2**40])
        assert await db.fetch_val("SELECT count(*) FROM h") == 0

    on_driver(body)


def test_errors_are_psycopg_classes_with_the_driver_cause(on_driver: Any, driver: str) -> None:
    """Unique and check violations, a statement timeout and a syntax error raise psycopg's
    SQLSTATE classes; on another driver its own exception is the __cause__."""

    async def body(db: pgkeel.AsyncDatabase) -> list[BaseException]:
        await db.execute(TABLE)
        await db.execute("INSERT INTO item VALUES (1, 'a', 1)")
        caught = []
        for cls, query in [
            (pg_errors.UniqueViolation, "INSERT INTO item VALUES (1, 'a', 1)"),
            (pg_errors.CheckViolation, "INSERT INTO item VALUES (2, 'a', -1)"),
            (pg_errors.SyntaxError, "SELEC 1"),
        ]:
            with pytest.raises(cls) as info:
                await db.execute(query)
            caught.append(info.value)
        async with db.transaction() as tx:
            await tx.execute("SET LOCAL statement_timeout = '50ms'")
            with pytest.raises(pg_errors.QueryCanceled) as info:
                await tx.execute("SELECT pg_sleep(2)")
            caught.append(info.value)
        return caught

    for exc in on_driver(body):
        assert exc.sqlstate is not None  # type: ignore[attr-defined]
        if driver == "asyncpg":
            assert type(exc.__cause__).__module__.startswith("asyncpg")


def test_defaults_timeouts_and_session_reset(on_driver: Any) -> None:
    """The default server settings are in force; a SET through connection() does not reach the
    next user of the same pooled connection."""

    async def body(db: pgkeel.AsyncDatabase) -> None:
        assert await db.fetch_val("SHOW statement_timeout") == "30s"
        assert await db.fetch_val("SHOW lock_timeout") == "10s"
        assert await db.fetch_val("SHOW idle_in_transaction_session_timeout") == "1min"
        async with db.connection() as conn:
            await conn.execute("SET statement_timeout = '1s'")
            await conn.execute("CREATE TEMP TABLE scratch (x int)")
        await db.execute("SET lock_timeout = '2s'")
        assert await db.fetch_val("SHOW statement_timeout") == "30s"
        assert await db.fetch_val("SHOW lock_timeout") == "10s"
        assert await db.fetch_val("SELECT to_regclass('pg_temp.scratch') IS NULL")
        assert db.stats()["resets"] >= 2

    on_driver(body, min_size=1, max_size=1)


def test_cancellation_never_leaks_a_connection(on_driver: Any) -> None:
    """Cancelling tasks mid-query (and mid-transaction) returns every connection; the
    interrupted backends stop; the pool serves at once."""

    async def body(db: pgkeel.AsyncDatabase) -> None:
        async def slow() -> None:
            async with db.transaction() as tx:
                await tx.execute("SELECT pg_sleep(5)")

        tasks = [asyncio.create_task(db.execute("SELECT pg_sleep(5)")) for _ in range(2)]
        tasks += [asyncio.create_task(slow()) for _ in range(2)]
        await asyncio.sleep(0.3)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _ in range(8):
            assert await db.fetch_val("SELECT 1", None) == 1
        stats = db.stats()
        assert stats["size"] <= 2
        assert stats["available"] == stats["size"]
        for _ in range(50):
            n = await db.fetch_val(
                "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(5)' "
                "AND state = 'active'"
            )
            if n == 0:
                break
            await asyncio.sleep(0.1)
        assert n == 0

    on_driver(body, min_size=1, max_size=2, timeout=3)


def test_lost_connections_are_replaced(on_driver: Any) -> None:
    """Backends killed under idle pooled connections: the next queries succeed on new ones; a
    connection killed inside a transaction raises OperationalError."""

    async def body(db: pgkeel.AsyncDatabase) -> None:
        await asyncio.gather(*(db.fetch_val("SELECT pg_sleep(0.05)") for _ in range(3)))
        async with db.transaction() as tx:
            me = await tx.fetch_val("SELECT pg_backend_pid()")
            async with pgkeel.AsyncDatabase(db.config.conninfo, min_size=1) as other:
                await other.execute("SELECT pg_terminate_backend(%s)", [me])
            with pytest.raises(psycopg.OperationalError):
                await tx.fetch_val("SELECT 1")
        await db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        await asyncio.sleep(0.2)
        for _ in range(6):
            assert await db.fetch_val("SELECT 1") == 1

    on_driver(body, max_size=3)


def test_health_stats_and_pool_timeout(on_driver: Any) -> None:
    """health() and stats() have the same fields on every driver; an exhausted pool times out
    with PoolTimeout."""
    from psycopg_pool import PoolTimeout

    async def body(db: pgkeel.AsyncDatabase) -> None:
        health = await db.health()
        assert health["status"] == "ok"
        assert set(health["pool"]) == {
            "size",
            "available",
            "waiting",
            "max_size",
        }
        assert set(db.stats()) >= {
            "checkouts",
            "connections_made",
            "timeouts",
            "last_connection_error",
        }
        async with db.connection():
            with pytest.raises(PoolTimeout):
                await db.fetch_val("SELECT 1")
        assert db.stats()["timeouts"] >= 1
        assert await db.fetch_val("SELECT 1") == 1

    on_driver(body, min_size=1, max_size=1, timeout=0.3)


BULK_TABLE = (
    "CREATE TABLE stock (id int PRIMARY KEY, name text, qty int4, price numeric, "
    "seen timestamptz, tags text[])"
)


def test_copy_in_and_upsert(on_driver: Any) -> None:
    """copy_in (tuples and dicts) and upsert (insert + update) store the same values on every
    driver; a bad value names its row and column and leaves the table unchanged; a repeated
    key is refused."""
    now = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)

    async def body(db: pgkeel.AsyncDatabase) -> None:
        await db.execute(BULK_TABLE)
        rows = [(i, f"n{i}", i, Decimal(i) / 4, now, ["a", str(i)]) for i in range(1, 25_001)]
        assert await db.copy_in("stock", rows) == 25_000
        dicts = [{"id": 30_000 + i, "name": None, "qty": 1} for i in range(3)]
        assert await db.copy_in("stock", dicts) == 3
        assert await db.fetch_one("SELECT * FROM stock WHERE id = 7") == {
            "id": 7,
            "name": "n7",
            "qty": 7,
            "price": Decimal("1.75"),
            "seen": now,
            "tags": ["a", "7"],
        }
        bad = [(40_001, "x", 1), (40_002, "y", 2**40)]
        with pytest.raises(pgkeel.BadValueError) as info:
            await db.copy_in("stock", bad, columns=["id", "name", "qty"])
        assert (info.value.row, info.value.column) == (2, "qty")
        with pytest.raises(pgkeel.BadValueError):
            await db.copy_in("stock", [(40_003, "z", "3")], columns=["id", "name", "qty"])
        with pytest.raises(NotStorableError):
            await db.copy_in("stock", [(40_004, dt.datetime(2024, 1, 1))], columns=["id", "seen"])
        assert await db.fetch_val("SELECT count(*) FROM stock") == 25_003
        changed = [{"id": 1, "name": "one", "qty": 10}, {"id": 50_000, "name": "new", "qty": 0}]
        assert await db.upsert("stock", changed, key="id") == 2
        assert await db.fetch_val("SELECT name FROM stock WHERE id = 1") == "one"
        assert await db.fetch_val("SELECT qty FROM stock WHERE id = 50000") == 0
        with pytest.raises(pgkeel.DuplicateKeyError):
            await db.upsert("stock", [{"id": 2, "qty": 1}, {"id": 2, "qty": 2}], key="id")
        assert await db.fetch_val("SELECT qty FROM stock WHERE id = 2") == 2

    on_driver(body)


def test_stream_and_copy_out(on_driver: Any, tmp_path: Any) -> None:
    """stream() yields every row in order (dict or tuple rows, with parameters) with bounded
    batches, and stops early cleanly; copy_out() writes the same CSV on every driver."""

    async def body(db: pgkeel.AsyncDatabase) -> str:
        await db.execute(BULK_TABLE)
        await db.execute(
            "INSERT INTO stock (id, name) SELECT g, 'n' || g FROM generate_series(1, 5000) g"
        )
        ids = [r["id"] async for r in db.stream("SELECT id FROM stock ORDER BY id", batch_size=333)]
        assert ids == list(range(1, 5001))
        got = [
            r
            async for r in db.stream(
                "SELECT id, name FROM stock WHERE id > %s ORDER BY id", [4990], row=tuple
            )
        ]
        assert got[0] == (4991, "n4991")
        assert len(got) == 10
        async with db.stream("SELECT id FROM stock ORDER BY id", batch_size=10) as rows:
            async for r in rows:
                if r["id"] == 3:
                    break
        assert db.stats()["available"] == db.stats()["size"]
        out = tmp_path / "out.csv"
        n = await db.copy_out(
            "SELECT id, name FROM stock WHERE id <= %s ORDER BY id", out, params=[3]
        )
        assert n == 3
        return str(out.read_text())

    assert on_driver(body) == "id,name\n1,n1\n2,n2\n3,n3\n"


IGNORED = "options,statement_timeout,lock_timeout,idle_in_transaction_session_timeout"


@pytest.mark.parametrize("ignore", [None, IGNORED])
def test_pgbouncer_transaction_mode(
    on_driver: Any, pg_url: str, pgbouncer_factory: Any, ignore: str | None
) -> None:
    """Through PgBouncer in transaction mode with prepare_threshold=None: startup settings it
    refuses (or silently ignores) switch to SET, statement_timeout really cancels, and queries
    keep working when PgBouncer moves the client to another server connection."""
    settings = {} if ignore is None else {"ignore_startup_parameters": ignore}
    url = pgbouncer_factory(**settings)(pg_url)

    async def body(db: pgkeel.AsyncDatabase) -> None:
        assert await db.fetch_val("SHOW statement_timeout") == "100ms"
        with pytest.raises(pg_errors.QueryCanceled):
            await db.fetch_val("SELECT pg_sleep(3)")
        for i in range(8):
            assert await db.fetch_val("SELECT %s::int + 1", [i]) == i + 1
        other = pgkeel.AsyncDatabase(url, min_size=1, prepare_threshold=None)
        # other's transaction holds PgBouncer's first server connection.
        async with other, other.transaction() as tx:
            await tx.fetch_val("SELECT 1")
            assert await db.fetch_val("SELECT %s::int + 1", [41]) == 42

    from fix_drivers import run_on

    run_on(url, on_driver.driver, body, statement_timeout=0.1, prepare_threshold=None, max_size=1)


def test_pool_limits_waiting_and_lifetime(on_driver: Any) -> None:
    """max_waiting refuses the waiter beyond it with TooManyRequests; a connection older than
    max_lifetime is replaced rather than handed out again."""
    from psycopg_pool import TooManyRequests

    async def body(db: pgkeel.AsyncDatabase) -> None:
        first = await db.fetch_val("SELECT pg_backend_pid()")
        async with db.connection():
            waiter = asyncio.create_task(db.fetch_val("SELECT 1"))
            await asyncio.sleep(0.1)
            with pytest.raises(TooManyRequests):
                await db.fetch_val("SELECT 1")
        assert await waiter == 1
        await asyncio.sleep(1.1)
        for _ in range(20):
            pid = await db.fetch_val("SELECT pg_backend_pid()")
            if pid != first:
                break
            await asyncio.sleep(0.2)
        assert pid != first

    on_driver(body, min_size=1, max_size=1, max_waiting=1, max_lifetime=1.0, timeout=3)


def test_max_idle_shrinks_the_pool(on_driver: Any) -> None:
    """After a burst, connections idle longer than max_idle are closed (their backends gone),
    whether the pool is left alone or light traffic goes on, down to min_size and never below."""

    async def body(db: pgkeel.AsyncDatabase) -> None:
        for traffic in (False, True):
            await asyncio.gather(*(db.fetch_val("SELECT pg_sleep(0.2)") for _ in range(4)))
            assert db.stats()["size"] >= 2
            deadline = time.monotonic() + 15
            while db.stats()["size"] > 1 or await db.fetch_val(BACKENDS) > 0:
                assert time.monotonic() < deadline, f"never shrank ({traffic=}): {db.stats()}"
                if traffic:
                    assert await db.fetch_val("SELECT 1") == 1
                await asyncio.sleep(0.05)
        for _ in range(10):
            assert await db.fetch_val("SELECT 1") == 1
            await asyncio.sleep(0.1)
        assert db.stats()["size"] == 1
        assert await db.fetch_val(BACKENDS) == 0

    on_driver(body, min_size=1, max_size=4, max_idle=0.3)


@pytest.mark.usefixtures("require_tls")
def test_tls_verify_full(driver: str) -> None:
    """With ssl="required", a verify-full URL (the embedded server's CA) connects over TLS on
    every driver."""
    from fix_drivers import run_on
    from pgkeel import embedded

    async def body(db: pgkeel.AsyncDatabase) -> Any:
        return await db.fetch_val("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")

    server = embedded.start(ssl=True)
    try:
        assert "sslmode=verify-full" in server.url
        assert run_on(server.url, driver, body, ssl="required") is True
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.fault
def test_server_restart_recovery(driver: str, cluster_dir: Any) -> None:
    """The server stops and starts again under an open Database: queries fail fast while it is
    down and succeed again within 10 s of its return, and the pool holds no more connections
    than the server sees (none leaked, none counted twice)."""
    from psycopg_pool import PoolTimeout

    from fix_drivers import run_on
    from pgkeel import embedded

    data = cluster_dir / "data"
    server = embedded.start(data)
    port, url = server.port, server.url

    async def body(db: pgkeel.AsyncDatabase) -> None:
        nonlocal server
        await asyncio.gather(*(db.fetch_val("SELECT pg_sleep(0.05)") for _ in range(3)))
        assert db.stats()["size"] >= 3
        await asyncio.to_thread(server.stop)
        t0 = time.monotonic()
        with pytest.raises((psycopg.OperationalError, PoolTimeout)):
            await db.fetch_val("SELECT 1")
        assert time.monotonic() - t0 < 1.0 + 10  # the pool timeout, and a loaded box's margin
        server = await asyncio.to_thread(embedded.start, data, port=port)
        back = time.monotonic()
        while True:
            try:
                assert await db.fetch_val("SELECT 1") == 1
                break
            except (psycopg.OperationalError, PoolTimeout):
                assert time.monotonic() - back < 10, "no recovery within 10 s"
                await asyncio.sleep(0.1)
        # Every connection the pool holds now works (the dead ones were all replaced).
        results = await asyncio.gather(
            *(db.fetch_val("SELECT pg_sleep(0.05)::text || 'ok'") for _ in range(4))
        )
        assert results == ["ok"] * 4
        # Connections still being opened count in the size until they land in the pool.
        while (stats := db.stats())["available"] != stats["size"]:
            assert time.monotonic() - back < 10, f"connections never came back: {stats}"
            await asyncio.sleep(0.1)
        assert 1 <= stats["size"] <= 4
        assert await db.fetch_val(BACKENDS) == stats["size"] - 1

    try:
        run_on(url, driver, body, min_size=2, max_size=4, timeout=1.0, size_check="off")
    finally:
        server.stop()
