"""The driver contract on the sync face: pgkeel's core behaviour (queries, transactions,
savepoints, retry, values, errors, hostile input, interruption, session reset, timeouts, lost
connections, health, the pool's waiting, COPY, upsert and streams) on every driver of
:class:`pgkeel.Database`, through the one parametrized fixture ``on_sync_driver``. The types
table and the queries are the asyncio contract's (``test_drivers_contract``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import math
import threading
import time
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg_pool import PoolTimeout

import pgkeel
from pgkeel.errors import BadValueError, NotStorableError
from test_drivers_contract import TABLE, TYPES_DDL, TYPES_INSERT, TYPES_SELECT, VALUES, _same

pytest_plugins = ["fix_drivers"]


def _raw_class(db: pgkeel.Database) -> type:
    with db.connection() as conn:
        return type(getattr(conn, "raw", conn))


def test_each_run_uses_its_driver(on_sync_driver: Any, sync_driver: str) -> None:
    """The connection under a sync contract run is the driver's own class (the suite really
    runs on psycopg2, not on psycopg twice)."""
    cls = on_sync_driver(_raw_class)
    if sync_driver == "psycopg2":
        import psycopg2.extensions

        assert issubclass(cls, psycopg2.extensions.connection)
    else:
        assert issubclass(cls, psycopg.Connection)


def test_queries_placeholders_and_rows(on_sync_driver: Any) -> None:
    """execute returns rows affected; %s and %(name)s work; dict, tuple and dataclass rows;
    None and [] for no rows; %% is a literal %; a psycopg.sql composition runs."""

    @dataclasses.dataclass
    class Item:
        id: int
        name: str
        qty: int | None

    def body(db: pgkeel.Database) -> None:
        db.execute(TABLE)
        assert db.execute("INSERT INTO item VALUES (%s, %s, %s), (2, 'b', 5)", (1, "a", 3)) == 2
        assert db.fetch_one("SELECT * FROM item WHERE id = %(id)s", {"id": 1}) == {
            "id": 1,
            "name": "a",
            "qty": 3,
        }
        assert db.fetch_one("SELECT id, name FROM item WHERE id = %s", [2], row=tuple) == (2, "b")
        assert db.fetch_all("SELECT * FROM item ORDER BY id", row=Item) == [
            Item(1, "a", 3),
            Item(2, "b", 5),
        ]
        assert db.fetch_all("SELECT id FROM item ORDER BY id", row=tuple) == [(1,), (2,)]
        assert db.fetch_one("SELECT * FROM item WHERE id = %s", [99]) is None
        assert db.fetch_all("SELECT * FROM item WHERE id = %s", [99]) == []
        assert db.fetch_val("SELECT '100%%' || %s::text -- a comment", ["!"]) == "100%!"
        assert db.fetch_val("SELECT $$1%%$$ || %(a)s::text || %(a)s::text", {"a": "x"}) == "1%xx"
        q = sql.SQL("SELECT {} FROM {} WHERE id = %s").format(
            sql.Identifier("name"), sql.Identifier("item")
        )
        assert db.fetch_val(q, [2]) == "b"
        assert db.execute("UPDATE item SET qty = qty + 1") == 2
        assert db.execute_many("UPDATE item SET name = %s WHERE id = %s", [("x", 1), ("y", 2)]) == 2
        with pytest.raises(psycopg.ProgrammingError):
            db.fetch_one("UPDATE item SET qty = 0 WHERE id = 1")

    on_sync_driver(body)


def test_execute_many_is_all_or_none(on_sync_driver: Any) -> None:
    """A failing parameter set in execute_many leaves none of the others written."""

    def body(db: pgkeel.Database) -> None:
        db.execute(TABLE)
        with pytest.raises(pg_errors.UniqueViolation):
            db.execute_many("INSERT INTO item VALUES (%s, 'n', 1)", [(1,), (2,), (1,)])
        assert db.fetch_val("SELECT count(*) FROM item") == 0

    on_sync_driver(body)


def test_transactions_savepoints_isolation(on_sync_driver: Any) -> None:
    """Commit, rollback, a savepoint rolled back alone, isolation level and read-only."""

    def body(db: pgkeel.Database) -> None:
        db.execute(TABLE)
        with db.transaction() as tx:
            tx.execute("INSERT INTO item VALUES (1, 'a', 1)")

        def fails() -> None:
            with db.transaction() as tx:
                tx.execute("INSERT INTO item VALUES (2, 'b', 1)")
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            fails()

        def savepoint_fails(tx: pgkeel.Transaction) -> None:
            with tx.transaction() as sp:
                sp.execute("INSERT INTO item VALUES (4, 'd', 1)")
                sp.execute("INSERT INTO item VALUES (1, 'dup', 1)")

        with db.transaction() as tx:
            tx.execute("INSERT INTO item VALUES (3, 'c', 1)")
            with pytest.raises(pg_errors.UniqueViolation):
                savepoint_fails(tx)
            with tx.transaction() as sp:
                sp.execute("INSERT INTO item VALUES (5, 'e', 1)")
        assert [r["id"] for r in db.fetch_all("SELECT id FROM item ORDER BY id")] == [1, 3, 5]
        with db.transaction(isolation="serializable", read_only=True) as tx:
            assert tx.fetch_val("SHOW transaction_isolation") == "serializable"
            with pytest.raises(pg_errors.ReadOnlySqlTransaction):
                tx.execute("INSERT INTO item VALUES (6, 'f', 1)")
        with db.transaction() as tx:
            assert tx.fetch_val("SHOW transaction_isolation") == "read committed"
            assert tx.fetch_val("SHOW transaction_read_only") == "off"

    on_sync_driver(body)


def test_run_transaction_retries_serialization_failures(on_sync_driver: Any) -> None:
    """A forced write skew between two threads: one gets 40001 and is retried; both commit."""

    def body(db: pgkeel.Database) -> None:
        db.execute("CREATE TABLE duty (doctor int PRIMARY KEY, on_call bool)")
        db.execute("INSERT INTO duty VALUES (1, true), (2, true)")
        barrier = threading.Barrier(2, timeout=10)
        attempts = [0, 0]
        errors: list[BaseException] = []

        def leave(me: int) -> None:
            def fn(tx: pgkeel.Transaction) -> None:
                attempts[me - 1] += 1
                n = tx.fetch_val("SELECT count(*) FROM duty WHERE on_call")
                if attempts[me - 1] == 1:
                    barrier.wait()
                if n > 1:
                    tx.execute("UPDATE duty SET on_call = false WHERE doctor = %s", [me])

            try:
                db.run_transaction(fn)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=leave, args=(n,)) for n in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert db.fetch_val("SELECT count(*) FROM duty WHERE on_call") == 1
        assert sorted(attempts) == [1, 2]
        assert db.stats()["retries"] == 1

    on_sync_driver(body)


def test_types_round_trip(on_sync_driver: Any) -> None:
    """Every type of the types table comes back as the same Python value (and type)."""

    def body(db: pgkeel.Database) -> None:
        db.execute(TYPES_DDL)
        db.execute(TYPES_INSERT, [1, *VALUES.values()])
        _same(db.fetch_one(TYPES_SELECT, [1]), VALUES)
        # And through COPY: the same values, read back by the driver's queries and its stream.
        db.copy_in("typed", [(2, *VALUES.values())])
        _same(db.fetch_one(TYPES_SELECT, [2]), VALUES)
        with db.stream("SELECT * FROM typed ORDER BY k") as rows:
            for row in rows:
                _same(row, VALUES)

    on_sync_driver(body)


def test_type_table_is_the_same_across_sync_drivers(pg_url: str) -> None:
    """Rows written through each sync driver read back identically through every one, and the
    server stores the same text for them (both directions, value by value)."""
    from fix_drivers import SYNC_DRIVERS

    dbs = [pgkeel.Database(pg_url, driver=d, min_size=1) for d in SYNC_DRIVERS]
    for db in dbs:
        db.open()
    try:
        dbs[0].execute(TYPES_DDL)
        for k, db in enumerate(dbs):
            # One row through each driver, on purpose.
            db.execute(TYPES_INSERT, [k, *VALUES.values()])  # noqa: PGK005
        for reader in dbs:
            for k in range(len(dbs)):
                _same(reader.fetch_one(TYPES_SELECT, [k]), VALUES)
        for name in VALUES:
            texts = dbs[0].fetch_all(
                sql.SQL("SELECT DISTINCT {}::text AS t FROM typed").format(sql.Identifier(name))
            )
            assert len(texts) == 1, (name, texts)
    finally:
        for db in dbs:
            db.close()


def test_hostile_values_get_the_same_errors(on_sync_driver: Any) -> None:
    """A naive datetime, NaN in JSON, NUL in text and an out-of-range int are refused with the
    same error classes on every driver, in queries and in COPY, and nothing is written."""

    def body(db: pgkeel.Database) -> None:
        db.execute("CREATE TABLE h (ts timestamptz, j jsonb, t text, i int4)")
        with pytest.raises(NotStorableError, match="naive datetime"):
            db.execute("INSERT INTO h (ts) VALUES (%s)", [dt.datetime(2024, 1, 1)])
        with pytest.raises(NotStorableError, match="naive datetime"):
            db.execute("INSERT INTO h (ts) VALUES (%s[1])", [[dt.datetime(2024, 1, 1)]])
        with pytest.raises(NotStorableError):
            db.execute("INSERT INTO h (j) VALUES (%s)", [{"x": math.nan}])
        with pytest.raises(psycopg.DataError):
            db.execute("INSERT INTO h (t) VALUES (%s)", ["a\x00b"])
        with pytest.raises(pg_errors.NumericValueOutOfRange):
            db.execute("INSERT INTO h (i) VALUES (%s)", [2**40])
        good = (dt.datetime(2024, 1, 1, tzinfo=dt.UTC), {}, "ok", 1)
        with pytest.raises(BadValueError, match="row 2"):
            db.copy_in("h", [good, (None, None, None, 2**40)])
        with pytest.raises(psycopg.DataError, match="row 2, column 't'"):
            db.upsert("h", [good, (None, None, "a\x00b", 2)], key="i")
        assert db.fetch_val("SELECT count(*) FROM h") == 0

    on_sync_driver(body)


def test_errors_are_psycopg_classes_with_the_driver_cause(
    on_sync_driver: Any, sync_driver: str
) -> None:
    """Unique and check violations, a statement timeout and a syntax error raise psycopg's
    SQLSTATE classes; on psycopg2 its own exception is the __cause__."""

    def body(db: pgkeel.Database) -> list[BaseException]:
        db.execute(TABLE)
        db.execute("INSERT INTO item VALUES (1, 'a', 1)")
        caught = []
        for cls, query in [
            (pg_errors.UniqueViolation, "INSERT INTO item VALUES (1, 'a', 1)"),
            (pg_errors.CheckViolation, "INSERT INTO item VALUES (2, 'a', -1)"),
            (pg_errors.SyntaxError, "SELEC 1"),
        ]:
            with pytest.raises(cls) as info:
                db.execute(query)
            caught.append(info.value)
        with db.transaction() as tx:
            tx.execute("SET LOCAL statement_timeout = '50ms'")
            with pytest.raises(pg_errors.QueryCanceled) as info:
                tx.execute("SELECT pg_sleep(2)")
            caught.append(info.value)
        assert db.fetch_val("SELECT 1") == 1
        return caught

    for exc in on_sync_driver(body):
        assert exc.sqlstate is not None  # type: ignore[attr-defined]
        if sync_driver == "psycopg2":
            assert type(exc.__cause__).__module__.startswith("psycopg2")


def test_defaults_timeouts_and_session_reset(on_sync_driver: Any) -> None:
    """The default server settings are in force; a SET through connection(), a SET statement
    and a multi-statement text do not reach the next user of the same pooled connection."""

    def body(db: pgkeel.Database) -> None:
        assert db.fetch_val("SHOW statement_timeout") == "30s"
        assert db.fetch_val("SHOW lock_timeout") == "10s"
        assert db.fetch_val("SHOW idle_in_transaction_session_timeout") == "1min"
        with db.connection() as conn:
            conn.execute("SET statement_timeout = '1s'")
            conn.execute("CREATE TEMP TABLE scratch (x int)")
        db.execute("SET lock_timeout = '2s'")
        assert db.fetch_val("SHOW statement_timeout") == "30s"
        assert db.fetch_val("SHOW lock_timeout") == "10s"
        db.execute("SET search_path = nowhere; SELECT 1")
        assert db.fetch_val("SHOW search_path") == '"$user", public'
        assert db.fetch_val("SELECT to_regclass('pg_temp.scratch') IS NULL")
        assert db.stats()["resets"] >= 3

    on_sync_driver(body, min_size=1, max_size=1)


def test_interrupted_blocks_never_leak_a_connection(on_sync_driver: Any) -> None:
    """A KeyboardInterrupt raised inside a transaction and a statement cancelled by its timeout
    each return their connection, rolled back; the pool serves at once."""

    def body(db: pgkeel.Database) -> None:
        db.execute(TABLE)

        def interrupted() -> None:
            with db.transaction() as tx:
                tx.execute("INSERT INTO item VALUES (1, 'a', 1)")
                raise KeyboardInterrupt

        def timed_out() -> None:
            with db.transaction() as tx:
                tx.execute("INSERT INTO item VALUES (2, 'a', 1)")
                tx.execute("SET LOCAL statement_timeout = '50ms'")
                tx.execute("SELECT pg_sleep(5)")

        with pytest.raises(KeyboardInterrupt):
            interrupted()
        with pytest.raises(pg_errors.QueryCanceled):
            timed_out()
        assert db.fetch_val("SELECT count(*) FROM item") == 0
        stats = db.stats()
        assert stats["available"] == stats["size"]
        assert db.fetch_val("SELECT 1") == 1

    on_sync_driver(body, min_size=1, max_size=1, timeout=3)


def test_lost_connections_are_replaced(on_sync_driver: Any) -> None:
    """Backends killed under idle pooled connections: the next queries succeed on new ones; a
    connection killed inside a transaction raises OperationalError."""

    def body(db: pgkeel.Database) -> None:
        threads = [
            threading.Thread(target=db.fetch_val, args=("SELECT pg_sleep(0.05)",)) for _ in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with db.transaction() as tx:
            me = tx.fetch_val("SELECT pg_backend_pid()")
            with pgkeel.Database(db.config.conninfo, min_size=1) as other:
                other.execute("SELECT pg_terminate_backend(%s)", [me])
            with pytest.raises(psycopg.OperationalError):
                tx.fetch_val("SELECT 1")
        db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        time.sleep(0.2)
        for _ in range(6):
            assert db.fetch_val("SELECT 1") == 1

    on_sync_driver(body, max_size=3)


def test_health_stats_and_pool_timeout(on_sync_driver: Any) -> None:
    """health() and stats() have the same fields on every driver; an exhausted pool times out
    with PoolTimeout."""

    def body(db: pgkeel.Database) -> None:
        health = db.health()
        assert health["status"] == "ok"
        assert set(health["pool"]) == {"size", "available", "waiting", "max_size"}
        assert set(db.stats()) >= {
            "checkouts",
            "connections_made",
            "timeouts",
            "last_connection_error",
        }
        with db.connection(), pytest.raises(PoolTimeout):
            db.fetch_val("SELECT 1")
        assert db.stats()["timeouts"] >= 1
        assert db.fetch_val("SELECT 1") == 1

    on_sync_driver(body, min_size=1, max_size=1, timeout=0.3)


def test_threads_wait_for_a_connection(on_sync_driver: Any) -> None:
    """Sixteen threads share two connections: each waits its turn, all queries succeed, and
    the pool never grows past max_size."""

    def body(db: pgkeel.Database) -> None:
        done: list[int] = []
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for i in range(20):
                    got = db.fetch_val("SELECT %s::int + 0 * pg_backend_pid()", [n * 100 + i])
                    assert got == n * 100 + i
                done.append(n)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert sorted(done) == list(range(16))
        stats = db.stats()
        assert stats["size"] <= 2
        assert stats["checkouts"] >= 320

    on_sync_driver(body, min_size=1, max_size=2, timeout=10)


def test_bulk_copy_upsert_copy_out_and_stream(on_sync_driver: Any) -> None:
    """copy_in (tuples and dicts), copy_in_csv, upsert (insert + update, repeated key named),
    copy_out (query with params, CSV) and stream (COPY path, cursor path, early close) give the
    same results on every driver."""

    def body(db: pgkeel.Database) -> None:
        db.execute(TABLE)
        assert db.copy_in("item", [(i, f"n{i}", i) for i in range(1, 1001)]) == 1000
        assert db.copy_in("item", [{"id": 1001, "name": "d", "qty": None}]) == 1
        csv = io.BytesIO(b'id,name,qty\n2001,c1,1\n2002,"c,2",2\n')
        assert db.copy_in_csv("item", csv) == 2
        assert db.upsert("item", [(1, "new", 7), (5000, "ins", 1)], key="id") == 2
        assert db.fetch_one("SELECT name, qty FROM item WHERE id = 1") == {"name": "new", "qty": 7}
        with pytest.raises(pgkeel.DuplicateKeyError):
            db.upsert("item", [(2, "a", 1), (2, "b", 1)], key="id")
        out = io.StringIO()
        assert (
            db.copy_out("SELECT id, name FROM item WHERE id > %s ORDER BY id", out, params=[2000])
            == 3
        )
        assert out.getvalue().splitlines() == ["id,name", "2001,c1", '2002,"c,2"', "5000,ins"]
        with db.stream("SELECT id, name FROM item ORDER BY id", batch_size=100) as rows:
            got = list(rows)
        assert len(got) == 1004
        assert got[0] == {"id": 1, "name": "new"}
        with db.stream("SELECT id FROM item WHERE id <= %s ORDER BY id", [10], row=tuple) as rows:
            assert list(rows) == [(i,) for i in range(1, 11)]
        for query in ("SELECT id FROM item ORDER BY id", "SELECT id FROM item WHERE %s"):
            params = None if "%s" not in query else [True]
            with db.stream(query, params, batch_size=10) as rows:  # type: ignore[call-overload]
                assert next(rows) is not None
        stats = db.stats()
        assert stats["available"] == stats["size"]
        assert db.fetch_val("SELECT count(*) FROM item") == 1004

    on_sync_driver(body)


def test_max_lifetime_and_liveness(on_sync_driver: Any) -> None:
    """A connection past max_lifetime is replaced by a new backend; a backend killed while its
    connection is idle is noticed at checkout (the socket poll), not by the user's query."""

    def body(db: pgkeel.Database) -> None:
        first = db.fetch_val("SELECT pg_backend_pid()")
        deadline = time.monotonic() + 5
        pid = first
        while pid == first and time.monotonic() < deadline:
            time.sleep(0.2)
            pid = db.fetch_val("SELECT pg_backend_pid()")
        assert pid != first
        with pgkeel.Database(db.config.conninfo, min_size=1) as other:
            other.execute("SELECT pg_terminate_backend(%s)", [pid])
        time.sleep(0.2)
        assert db.fetch_val("SELECT pg_backend_pid()") != pid

    on_sync_driver(body, min_size=1, max_size=1, max_lifetime=0.5)


@pytest.mark.slow
@pytest.mark.fault
def test_server_restart_recovery(sync_driver: str, cluster_dir: Any) -> None:
    """The server stops and starts again under an open Database: queries fail fast while it is
    down and succeed again within 10 s of its return, and the pool holds no more connections
    than the server sees (none leaked, none counted twice)."""
    from pgkeel import embedded
    from test_drivers_contract import BACKENDS

    data = cluster_dir / "data"
    server = embedded.start(data)
    port, url = server.port, server.url
    try:
        with pgkeel.Database(
            url, driver=sync_driver, min_size=2, max_size=4, timeout=1.0, size_check="off"
        ) as db:
            _in_threads(db, "SELECT pg_sleep(0.05)", 3)
            assert db.stats()["size"] >= 3
            server.stop()
            t0 = time.monotonic()
            with pytest.raises((psycopg.OperationalError, PoolTimeout)):
                db.fetch_val("SELECT 1")
            assert time.monotonic() - t0 < 1.0 + 10  # the pool timeout, and a loaded box's margin
            server = embedded.start(data, port=port)
            back = time.monotonic()
            while True:
                try:
                    assert db.fetch_val("SELECT 1") == 1
                    break
                except (psycopg.OperationalError, PoolTimeout):
                    assert time.monotonic() - back < 10, "no recovery within 10 s"
                    time.sleep(0.1)
            # Every connection the pool holds now works (the dead ones were all replaced).
            _in_threads(db, "SELECT pg_sleep(0.05)", 4)
            # Connections still being opened count in the size until they land in the pool.
            while (stats := db.stats())["available"] != stats["size"]:
                assert time.monotonic() - back < 10, f"connections never came back: {stats}"
                time.sleep(0.1)
            assert 1 <= stats["size"] <= 4
            assert db.fetch_val(BACKENDS) == stats["size"] - 1
    finally:
        server.stop()


def _in_threads(db: pgkeel.Database, query: Any, n: int) -> None:
    """Run ``query`` on ``n`` threads at once; raise the first failure."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            db.fetch_val(query)
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    if errors:
        raise errors[0]


def test_max_idle_shrinks_the_pool(on_sync_driver: Any) -> None:
    """After a burst, connections idle longer than max_idle are closed (their backends gone),
    whether the pool is left alone or light traffic goes on, down to min_size and never below."""
    from test_drivers_contract import BACKENDS

    def body(db: pgkeel.Database) -> None:
        for traffic in (False, True):
            _in_threads(db, "SELECT pg_sleep(0.2)", 4)
            assert db.stats()["size"] >= 2
            deadline = time.monotonic() + 15
            while db.stats()["size"] > 1 or db.fetch_val(BACKENDS) > 0:
                assert time.monotonic() < deadline, f"never shrank ({traffic=}): {db.stats()}"
                if traffic:
                    assert db.fetch_val("SELECT 1") == 1
                time.sleep(0.05)
        for _ in range(10):
            assert db.fetch_val("SELECT 1") == 1
            time.sleep(0.1)
        assert db.stats()["size"] == 1
        assert db.fetch_val(BACKENDS) == 0

    on_sync_driver(body, min_size=1, max_size=4, max_idle=0.3)
