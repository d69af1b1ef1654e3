"""``pooler="pgbouncer"``: pgkeel unchanged behind a real PgBouncer in transaction mode, with a
small server pool so that clients share server connections; and the features that need a
session of their own failing with the fix (``direct_url=``)."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg import sql

import pgkeel
from pgkeel import migrate
from pgkeel.config import direct_conninfo, resolve

pytest_plugins = ["fix_pgbouncer", "fix_migrate"]

Factory = Callable[..., Callable[[str], str]]


def _database_statement_timeout(pg_url: str) -> None:
    dbname = str(psycopg.conninfo.conninfo_to_dict(pg_url)["dbname"])
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET statement_timeout = '100ms'").format(
                sql.Identifier(dbname)
            )
        )


def test_pooler_option_and_environment() -> None:
    """pooler= turns prepared statements off (unless asked for) and keeps every setting out of
    the startup packet; PGKEEL_POOLER does the same; session_settings='set' is refused."""
    cfg = resolve("postgresql://u@h/db", {"pooler": "pgbouncer"})
    assert cfg.prepare_threshold is None
    assert "options" not in cfg.conninfo
    assert dict(cfg.pooler_settings)["statement_timeout"] == "30s"
    assert (
        resolve(
            "postgresql://u@h/db", {"pooler": "pgbouncer", "prepare_threshold": 5}
        ).prepare_threshold
        == 5
    )
    env = resolve("postgresql://u@h/db", environ={"PGKEEL_POOLER": "pgbouncer"})
    assert env.pooler == "pgbouncer"
    assert resolve("postgresql://u@h/db", environ={"PGKEEL_POOLER": "none"}).pooler is None
    with pytest.raises(pgkeel.ConfigError, match="shares between clients"):
        resolve("postgresql://u@h/db", {"pooler": "pgbouncer", "session_settings": "set"})
    with pytest.raises(pgkeel.ConfigError, match="pooler takes 'pgbouncer'"):
        resolve("postgresql://u@h/db", {"pooler": "pgpool"})


def test_direct_conninfo_names_direct_url() -> None:
    """The one entry point for session-bound features: the error names direct_url=, the
    direct URL gets pgkeel's defaults, and no pooler means the Database's own URL."""
    behind = resolve("postgresql://u:secret@pooler/db", {"pooler": "pgbouncer"})
    with pytest.raises(pgkeel.PoolerError, match=r"LISTEN .* direct_url=") as err:
        direct_conninfo(behind, "LISTEN")
    assert "secret" not in str(err.value)
    direct = resolve(
        "postgresql://u@pooler/db",
        {"pooler": "pgbouncer", "direct_url": "postgresql://u@server/db"},
    )
    info = psycopg.conninfo.conninfo_to_dict(direct_conninfo(direct, "LISTEN"))
    assert info["host"] == "server"
    assert "statement_timeout=30s" in str(info["options"])
    plain = resolve("postgresql://u@server/db")
    assert direct_conninfo(plain, "LISTEN") == plain.conninfo


def test_many_concurrent_async_queries(pg_url: str, pgbouncer_factory: Factory) -> None:
    """500 concurrent async queries of different shapes, repeated past psycopg's prepare
    threshold, through 2 server connections: no prepared-statement error."""
    url = pgbouncer_factory(default_pool_size=2)(pg_url)

    async def main() -> None:
        async with pgkeel.AsyncDatabase(
            url, pooler="pgbouncer", min_size=4, max_size=20, size_check="off"
        ) as db:
            shapes = [
                ("SELECT %s::int + 1", lambda i: [i], lambda i: i + 1),
                ("SELECT %s::int * %s::int", lambda i: [i, 2], lambda i: i * 2),
                ("SELECT length(%s::text)", lambda i: ["x" * (i % 7)], lambda i: i % 7),
                ("SELECT %s::int, %s::text, %s::bool", lambda i: [i, "a", True], lambda i: i),
            ]

            async def one(i: int) -> None:
                query, params, expected = shapes[i % len(shapes)]
                assert await db.fetch_val(query, params(i)) == expected(i)  # type: ignore[arg-type]

            await asyncio.gather(*(one(i) for i in range(500)))
            assert db.stats()["errors"] == 0

    asyncio.run(main())


def test_timeouts_from_the_server_apply_to_single_statements(
    pg_url: str, pgbouncer_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    """With the settings on the database (the recipe), a statement outside a transaction is
    canceled by statement_timeout, and open() warns about nothing."""
    _database_statement_timeout(pg_url)
    url = pgbouncer_factory(default_pool_size=2)(pg_url)
    caplog.set_level(logging.WARNING, logger="pgkeel")
    options = {"lock_timeout": None, "idle_in_transaction_session_timeout": None}
    db = pgkeel.Database(
        url, pooler="pgbouncer", statement_timeout=0.1, size_check="off", **options
    )
    with db, pytest.raises(pg_errors.QueryCanceled):
        db.fetch_val("SELECT pg_sleep(3)")
    assert not [r for r in caplog.records if r.name == "pgkeel.scale"]


def test_missing_server_settings_applied_per_transaction(
    pg_url: str, pgbouncer_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    """Without them on the server, open() warns with the ALTER ROLE fix, and each transaction
    gets them with SET LOCAL: canceled inside, never left on the shared server connection."""
    url = pgbouncer_factory(default_pool_size=1)(pg_url)
    caplog.set_level(logging.WARNING, logger="pgkeel")
    with pgkeel.Database(url, pooler="pgbouncer", statement_timeout=0.1, size_check="off") as db:
        with pytest.raises(pg_errors.QueryCanceled), db.transaction() as tx:
            tx.fetch_val("SELECT pg_sleep(3)")
        with db.transaction() as tx:
            assert tx.fetch_val("SHOW statement_timeout") == "100ms"
        # Outside a transaction (one server connection, so the same one): the server default.
        assert db.fetch_val("SHOW statement_timeout") == "0"
    warnings = [r.getMessage() for r in caplog.records if r.name == "pgkeel.scale"]
    assert any("ALTER ROLE current_user SET statement_timeout" in w for w in warnings)


def test_reset_sends_no_discard_all(pg_url: str, pgbouncer_factory: Factory) -> None:
    """A reset (after connection()) does not run DISCARD ALL, which would wipe the session of
    another client sharing PgBouncer's one server connection."""
    url = pgbouncer_factory(default_pool_size=1)(pg_url)
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as other:
        other.execute("SET work_mem = '3MB'")  # stays on the one server connection
        with pgkeel.Database(url, pooler="pgbouncer", min_size=1, size_check="off") as db:
            with db.connection() as conn:
                conn.execute("SELECT 1")
            assert db.stats()["resets"] == 1
        row = other.execute("SHOW work_mem").fetchone()
        assert row == ("3MB",)


def test_transactions_bulk_and_pipeline_through_pgbouncer(
    pg_url: str, pgbouncer_factory: Factory, tmp_path: Path
) -> None:
    """Transactions with retry, COPY in and out, upsert, a stream inside a transaction and a
    pipeline all work through PgBouncer in transaction mode."""
    url = pgbouncer_factory(default_pool_size=2)(pg_url)
    with pgkeel.Database(url, pooler="pgbouncer", size_check="off") as db:
        db.execute("CREATE TABLE item (id int PRIMARY KEY, name text)")
        db.copy_in("item", [{"id": i, "name": f"n{i}"} for i in range(100)])
        db.upsert("item", [{"id": 1, "name": "one"}, {"id": 500, "name": "new"}], key="id")
        calls = []

        def body(tx: pgkeel.Transaction) -> int:
            calls.append(1)
            if len(calls) == 1:
                raise pg_errors.SerializationFailure("try again")
            return int(tx.fetch_val("SELECT count(*) FROM item"))

        assert db.run_transaction(body) == 101
        assert len(calls) == 2
        out = io.StringIO()
        db.copy_out("SELECT id, name FROM item WHERE id < 3 ORDER BY id", out)
        assert out.getvalue().splitlines() == ["id,name", "0,n0", "1,one", "2,n2"]
        with db.transaction() as tx:
            assert sum(1 for _ in tx.stream("SELECT id FROM item", batch_size=7)) == 101
        with db.pipeline() as p:
            p.execute("UPDATE item SET name = 'p' WHERE id = 2")
            p.execute("UPDATE item SET name = 'q' WHERE id = 3")
        assert db.fetch_all("SELECT name FROM item WHERE id IN (2, 3) ORDER BY id", row=tuple) == [
            ("p",),
            ("q",),
        ]


def test_migrate_and_cdc_need_direct_url(
    pg_url: str, pgbouncer_factory: Factory, migrations: Callable[..., Path]
) -> None:
    """Migrations (a session advisory lock) and CDC (the replication protocol) refuse a
    Database behind the pooler with the fix; with direct_url= migrations run."""
    url = pgbouncer_factory()(pg_url)
    root = migrations(**{"0001_t": "CREATE TABLE t (id int)"})
    with pgkeel.Database(url, pooler="pgbouncer", size_check="off") as db:
        with pytest.raises(pgkeel.PoolerError, match=r"pgkeel.migrate .*direct_url="):
            migrate.up(db, root)
        with pytest.raises(pgkeel.PoolerError, match=r"pgkeel.cdc .*direct_url="):
            db.changes(slot="s", publication="p")
    with pgkeel.Database(url, pooler="pgbouncer", direct_url=pg_url, size_check="off") as db:
        assert [a.version for a in migrate.up(db, root)] == [1]
        assert db.fetch_val("SELECT count(*) FROM t") == 0


def test_listen_and_subscribe_need_direct_url(pg_url: str, pgbouncer_factory: Factory) -> None:
    """LISTEN (plain and under a durable subscription) refuses a Database behind the pooler
    without direct_url=, at once; with it, the listener connects to the server itself and a
    NOTIFY sent through the pooler reaches it."""
    url = pgbouncer_factory()(pg_url)
    with pgkeel.Database(url, pooler="pgbouncer", size_check="off") as db:
        with pytest.raises(pgkeel.PoolerError, match=r"LISTEN .*direct_url="):
            db.listen("orders")
        with pytest.raises(pgkeel.PoolerError, match=r"LISTEN .*direct_url="):
            db.subscribe("orders", consumer="c")
    with (
        pgkeel.Database(url, pooler="pgbouncer", direct_url=pg_url, size_check="off") as db,
        db.listen("orders") as listener,
    ):
        db.notify("orders", "hello")
        note = listener.get(timeout=10)
        assert note is not None
        assert (note.channel, note.payload) == ("orders", "hello")
