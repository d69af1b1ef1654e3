"""Database / AsyncDatabase: query methods, row shapes, raw connections and their reset, stats,
health, leak warnings, multi-host failover, redaction of a canary password."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
import traceback
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg_pool import PoolClosed, PoolTimeout

import pgkeel

pytest_plugins = ["fix_db"]

CANARY = "canary-Pw-7f3a9c"


@dataclasses.dataclass
class Item:
    id: int
    name: str


def setup_items(db: pgkeel.Database) -> None:
    db.execute("CREATE TABLE item (id int PRIMARY KEY, name text NOT NULL)")
    db.execute_many("INSERT INTO item VALUES (%s, %s)", [(1, "a"), (2, "b"), (3, "c")])


def test_query_methods_sync(db: pgkeel.Database) -> None:
    """execute/execute_many return row counts; fetch_* return dict rows by default, None if none."""
    setup_items(db)
    assert db.execute("UPDATE item SET name = upper(name) WHERE id > %s", (1,)) == 2
    assert db.fetch_one("SELECT * FROM item WHERE id = %s", (2,)) == {"id": 2, "name": "B"}
    assert db.fetch_one("SELECT * FROM item WHERE id = %s", (99,)) is None
    assert db.fetch_all("SELECT id FROM item ORDER BY id") == [{"id": 1}, {"id": 2}, {"id": 3}]
    assert db.fetch_val("SELECT count(*) FROM item") == 3
    assert db.fetch_val("SELECT 1 WHERE false") is None
    assert db.fetch_val("SELECT name FROM item WHERE id = %(id)s", {"id": 1}) == "a"


def test_row_shapes(db: pgkeel.Database) -> None:
    """row= builds tuples, dataclasses (by column name) or uses a psycopg row factory."""
    setup_items(db)
    assert db.fetch_one("SELECT id, name FROM item WHERE id = 1", row=tuple) == (1, "a")
    assert db.fetch_all("SELECT name, id FROM item ORDER BY id", row=Item)[0] == Item(1, "a")
    named = db.fetch_one("SELECT id FROM item WHERE id = 3", row=psycopg.rows.namedtuple_row)
    assert named.id == 3
    with pytest.raises(TypeError, match="row="):
        db.fetch_one("SELECT 1", row=42)  # type: ignore[arg-type]


def test_identifiers_through_sql_composition(db: pgkeel.Database) -> None:
    """psycopg.sql compositions are accepted as queries, quoting identifiers."""
    db.execute(sql.SQL("CREATE TABLE {} (x int)").format(sql.Identifier("Odd Name")))
    db.execute(sql.SQL("INSERT INTO {} VALUES (%s)").format(sql.Identifier("Odd Name")), (5,))
    assert db.fetch_val('SELECT x FROM "Odd Name"') == 5


def test_execute_many_is_all_or_nothing(db: pgkeel.Database) -> None:
    """execute_many outside a transaction rolls back every row if one fails."""
    setup_items(db)
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute_many("INSERT INTO item VALUES (%s, %s)", [(10, "x"), (1, "dup")])
    assert db.fetch_val("SELECT count(*) FROM item") == 3
    assert db.stats()["errors"] == 1


def test_server_errors_are_psycopg_classes_and_pool_stays_healthy(db: pgkeel.Database) -> None:
    """SQLSTATE errors are psycopg's own classes; the connection goes back usable."""
    with pytest.raises(psycopg.errors.UndefinedTable):
        db.fetch_all("SELECT * FROM missing")
    for _ in range(6):
        assert db.fetch_val("SELECT 1") == 1


def test_session_defaults_on_connections(db: pgkeel.Database) -> None:
    """Pooled connections carry the server-side timeouts and autocommit for single statements."""
    assert db.fetch_val("SHOW statement_timeout") == "30s"
    assert db.fetch_val("SHOW lock_timeout") == "10s"
    assert db.fetch_val("SHOW idle_in_transaction_session_timeout") == "1min"
    with db.connection() as conn:
        assert conn.autocommit


def test_raw_connection_state_is_reset(pg_url: str) -> None:
    """SET / temp tables / isolation changed on a raw connection do not leak to the next user."""
    with pgkeel.Database(pg_url, min_size=1, max_size=1) as db:
        with db.connection() as conn:
            pid = conn.info.backend_pid
            conn.execute("SET statement_timeout = '1s'")
            conn.execute("CREATE TEMP TABLE scratch (x int)")
            conn.autocommit = False
            conn.isolation_level = psycopg.IsolationLevel.SERIALIZABLE
        with db.connection() as conn:
            assert conn.info.backend_pid == pid  # same connection, reset
            assert conn.autocommit
            assert conn.isolation_level is None
        assert db.fetch_val("SHOW statement_timeout") == "30s"
        assert db.fetch_val("SELECT to_regclass('scratch')") is None
        db.execute("SET lock_timeout = '1ms'")  # via a query method: detected, also reset
        assert db.fetch_val("SHOW lock_timeout") == "10s"


def test_stats_and_health(db: pgkeel.Database) -> None:
    """stats() counts checkouts and errors; health() does a real round trip."""
    before = db.stats()["checkouts"]
    db.fetch_val("SELECT 1")
    with pytest.raises(psycopg.errors.DivisionByZero):
        db.fetch_val("SELECT 1/0")
    stats = db.stats()
    assert stats["checkouts"] == before + 2
    assert stats["errors"] == 1
    assert stats["max_size"] == 4
    assert stats["size"] >= 1
    assert {
        "available",
        "waiting",
        "wait_ms_total",
        "wait_ms_max",
        "retries",
        "connections_lost",
    } <= set(stats)
    health = db.health()
    assert health["status"] == "ok"
    assert health["error"] is None
    assert 0 < health["latency_ms"] < 2000


def test_health_degraded_when_server_unreachable() -> None:
    """health() reports degraded (not raises) when no connection can be made."""
    db = pgkeel.Database("postgresql://u:pw@127.0.0.1:1/db", min_size=0, max_size=1)
    db.open(wait=False)
    try:
        health = db.health(timeout=0.5)
    finally:
        db.close()
    assert health["status"] == "degraded"
    assert "PoolTimeout" in health["error"]


def test_leak_warning_with_stack(pg_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """A connection held past leak_timeout logs a warning naming where it was taken."""
    caplog.set_level(logging.WARNING, logger="pgkeel")
    with pgkeel.Database(pg_url, min_size=1, leak_timeout=0.2) as db:
        with db.connection():
            time.sleep(0.6)
        with db.connection():
            pass  # short use: no warning
    warnings = [r.getMessage() for r in caplog.records if "leak_timeout" in r.getMessage()]
    assert len(warnings) == 1
    assert "test_leak_warning_with_stack" in warnings[0]


def test_multi_host_failover(pg_server: Any) -> None:
    """A multi-host URL skips a dead first host and connects to the next (target_session_attrs)."""
    info = psycopg.conninfo.conninfo_to_dict(pg_server.url)
    url = psycopg.conninfo.make_conninfo(
        pg_server.url,
        host=f"127.0.0.1,{info.get('host') or '127.0.0.1'}",
        port=f"1,{info.get('port') or 5432}",
        target_session_attrs="read-write",
    )
    with pgkeel.Database(url, min_size=1, max_size=2) as db:
        assert db.fetch_val("SELECT inet_server_port()") == int(info.get("port") or 5432)


def test_canary_password_never_leaks(pg_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A wrong (canary) password shows up in no repr, str, log record, error or traceback."""
    caplog.set_level(logging.DEBUG)
    info = psycopg.conninfo.conninfo_to_dict(pg_server.url)
    url = psycopg.conninfo.make_conninfo(pg_server.url, password=CANARY)
    seen: list[str] = []
    db = pgkeel.Database(url, min_size=1, max_size=1, timeout=0.5)
    seen += [repr(db), str(db), repr(db.config), str(db.stats())]
    with pytest.raises(psycopg.OperationalError) as info_exc:
        db.open()
    seen.append("".join(traceback.format_exception(info_exc.value)))
    db.open(wait=False)
    health = db.health(timeout=0.5)
    seen.append(str(health))
    db.close()
    adb = pgkeel.AsyncDatabase(url, min_size=1, max_size=1)
    seen.append(repr(adb))

    async def async_open() -> None:
        with pytest.raises(psycopg.OperationalError) as exc:
            await adb.open()
        seen.append("".join(traceback.format_exception(exc.value)))

    asyncio.run(async_open())
    for bad in (
        url.replace("@", "@@"),
        f"postgresql://{info['user']}:{CANARY}@127.0.0.1:notaport/x",
        f"user={info['user']} password={CANARY} dbname",
    ):
        try:
            pgkeel.Database(bad)
        except pgkeel.ConfigError as exc:
            seen.append("".join(traceback.format_exception(exc)))
        else:
            seen.append("accepted")
    seen += [r.getMessage() + str(r.args) for r in caplog.records]
    assert "authentication failed" in "".join(seen) or "password" in "".join(seen)
    assert not [text for text in seen if CANARY in text]


def test_async_query_methods(pg_url: str) -> None:
    """AsyncDatabase has the same methods, awaited, with the same results."""

    async def main() -> None:
        async with pgkeel.AsyncDatabase(pg_url, min_size=1, max_size=4) as db:
            await db.execute("CREATE TABLE item (id int PRIMARY KEY, name text NOT NULL)")
            n = await db.execute_many("INSERT INTO item VALUES (%s, %s)", [(1, "a"), (2, "b")])
            assert n == 2
            assert await db.fetch_one("SELECT * FROM item WHERE id = %s", (1,)) == {
                "id": 1,
                "name": "a",
            }
            assert await db.fetch_all("SELECT * FROM item ORDER BY id", row=Item) == [
                Item(1, "a"),
                Item(2, "b"),
            ]
            assert await db.fetch_val("SELECT count(*) FROM item") == 2
            with pytest.raises(psycopg.errors.UniqueViolation):
                await db.execute_many("INSERT INTO item VALUES (%s, %s)", [(3, "c"), (1, "x")])
            assert await db.fetch_val("SELECT count(*) FROM item") == 2
            async with db.connection() as conn:
                await conn.execute("SET statement_timeout = '1s'")
            assert await db.fetch_val("SHOW statement_timeout") == "30s"
            stats = db.stats()
            assert stats["errors"] == 1
            assert stats["checkouts"] >= 6
            health = await db.health()
            assert health["status"] == "ok"

    asyncio.run(main())


SESSION = """SELECT pg_backend_pid() AS pid,
       current_setting('statement_timeout') AS statement_timeout,
       current_setting('lock_timeout') AS lock_timeout,
       current_setting('search_path') AS search_path,
       (SELECT count(*) FROM pg_locks
         WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS advisory_locks,
       (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()) AS temp_tables,
       (SELECT count(*) FROM pg_listening_channels()) AS listening,
       (SELECT count(*) FROM pg_prepared_statements WHERE from_sql) AS prepared"""

PREPARED_QUERY = "SELECT %s::int * 2"


def _leak_raw(db: pgkeel.Database, statement: str) -> None:
    with db.connection() as conn:
        conn.execute(statement)  # type: ignore[arg-type]


def _leak_tx(db: pgkeel.Database, statement: str) -> None:
    with db.transaction() as tx:
        tx.connection.execute(statement)  # type: ignore[arg-type]


LEAKS = [
    ("multi-statement SET", lambda db: db.execute("SELECT 1; SET search_path TO evil")),
    ("multi-statement via fetch", lambda db: db.fetch_all("SELECT 1; SET lock_timeout = 0")),
    ("tx.connection SET", lambda db: _leak_tx(db, "SET lock_timeout = 0")),
    ("tx.connection advisory lock", lambda db: _leak_tx(db, "SELECT pg_advisory_lock(7)")),
    ("raw advisory lock", lambda db: _leak_raw(db, "SELECT pg_advisory_lock(7)")),
    ("temp table", lambda db: db.execute("CREATE TEMP TABLE scratch (x int)")),
    ("tx.connection temp table", lambda db: _leak_tx(db, "CREATE TEMP TABLE s2 (x int)")),
    ("tx.connection LISTEN", lambda db: _leak_tx(db, "LISTEN somewhere")),
    ("tx.connection PREPARE", lambda db: _leak_tx(db, "PREPARE mine AS SELECT 1")),
    ("raw set_config", lambda db: _leak_raw(db, "SELECT set_config('lock_timeout', '0', false)")),
    # A function's side effects, through the query methods: only the text shows them.
    (
        "fetch_val set_config",
        lambda db: db.fetch_val("SELECT set_config('statement_timeout', '0', false)"),
    ),
    (
        "fetch_one set_config search_path",
        lambda db: db.fetch_one("select SET_CONFIG('search_path', 'evil', false) AS x"),
    ),
    (
        "execute_many set_config",
        lambda db: db.execute_many("SELECT set_config('lock_timeout', %s, false)", [("0",)]),
    ),
    ("fetch_val advisory lock", lambda db: db.fetch_val("SELECT pg_advisory_lock(7)")),
    (
        "fetch_all try advisory lock shared",
        lambda db: db.fetch_all("SELECT pg_catalog.pg_try_advisory_lock_shared(1, 2)"),
    ),
    ("create temp table as", lambda db: db.execute("CREATE TEMP TABLE t AS SELECT 1 AS x")),
    ("select into temp", lambda db: db.execute("SELECT 1 AS x INTO TEMPORARY t2")),
    (
        "composed identifier set_config",
        lambda db: db.fetch_val(
            sql.SQL("SELECT {}(%s, %s, false)").format(sql.Identifier("set_config")),
            ("search_path", "evil"),
        ),
    ),
    (
        "tx.fetch_val set_config",
        lambda db: _tx_query(db, "SELECT set_config('lock_timeout', %s, false)"),
    ),
    ("DO block", lambda db: db.execute("DO $$ BEGIN EXECUTE 'SET search_path TO evil'; END $$")),
]


def _tx_query(db: pgkeel.Database, query: Any) -> None:
    with db.transaction() as tx:
        tx.fetch_val(query, ("0",))


@pytest.mark.parametrize("leak", [fn for _, fn in LEAKS], ids=[name for name, _ in LEAKS])
def test_session_state_never_reaches_the_next_user(pg_url: str, leak: Any) -> None:
    """Each way of leaving session state behind (multi-statement text, tx.connection, raw
    connection, temp table, LISTEN, PREPARE, advisory lock) is undone before the same connection
    is handed out again; psycopg's prepared statements stay usable afterwards."""
    with pgkeel.Database(pg_url, min_size=1, max_size=1) as db:
        clean = db.fetch_one(SESSION)
        leak(db)
        assert db.fetch_one(SESSION) == clean
        for i in range(6):  # past psycopg's prepare threshold: a prepared statement
            assert db.fetch_val(PREPARED_QUERY, (i,)) == 2 * i
        leak(db)  # a second reset of the connection, now with a prepared statement
        assert db.fetch_one(SESSION) == clean
        assert db.fetch_val(PREPARED_QUERY, (21,)) == 42


QUIET_FUNCTION = """\
CREATE FUNCTION quietly_unsafe() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('statement_timeout', '0', false);
    PERFORM set_config('search_path', 'evil', false);
    EXECUTE 'LISTEN sneaky';
    RETURN 1;
END $$"""


def test_function_side_effects_caught_by_the_check(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A user function that calls set_config (invisible in the query's text) is caught by the
    round-trip check on the next checkout (check_idle=0: every checkout), which resets the
    connection and names the settings, not their values."""
    with pgkeel.Database(pg_url, min_size=1, max_size=1, check_idle=0) as db:
        db.execute(QUIET_FUNCTION)
        clean = db.fetch_one(SESSION)
        resets = db.stats()["resets"]
        with caplog.at_level(logging.WARNING, logger="pgkeel"):
            assert db.fetch_val("SELECT quietly_unsafe()") == 1
            assert db.fetch_one(SESSION) == clean
        assert db.stats()["resets"] == resets + 1
        (record,) = [r for r in caplog.records if "differs from a fresh" in r.getMessage()]
        message = record.getMessage()
        assert "statement_timeout" in message
        assert "search_path" in message
        assert "LISTEN" in message
        assert "evil" not in message


@pytest.mark.parametrize("mode", ["startup", "set"])
def test_plain_statements_do_not_reset(pg_url: str, mode: str) -> None:
    """Statements that leave no session state do not pay a reset, even where their text looks
    close (temperature, template, the _xact_ advisory lock, a sql.Literal or parameter value), and
    the round-trip check (on every checkout with check_idle=0) finds nothing to reset either,
    whether the settings travel in the startup packet or by SET."""
    with pgkeel.Database(pg_url, min_size=1, max_size=1, check_idle=0, session_settings=mode) as db:
        db.execute("CREATE TABLE reading (id int PRIMARY KEY, temperature int, template text)")
        resets = db.stats()["resets"]  # CREATE TABLE resets (its tag: temp tables)
        db.execute("INSERT INTO reading VALUES (1, 20, 'x') ON CONFLICT DO NOTHING")
        assert db.fetch_val("SELECT temperature FROM reading WHERE id = %s", (1,)) == 20
        assert db.fetch_one("SELECT template, 'x' AS attempt FROM reading")
        assert db.fetch_all("SELECT pg_advisory_xact_lock(3)") == [{"pg_advisory_xact_lock": ""}]
        assert db.fetch_val(sql.SQL("SELECT {}").format(sql.Literal("temp"))) == "temp"
        assert db.fetch_val("SELECT %s::text", ("pg_advisory_lock",)) == "pg_advisory_lock"
        db.execute_many("UPDATE reading SET temperature = %s WHERE id = 1", [(21,), (22,)])
        for i in range(6):  # past psycopg's prepare threshold
            assert db.fetch_val(PREPARED_QUERY, (i,)) == 2 * i
        db.fetch_one(SESSION)
        assert db.stats()["resets"] == resets


def test_discard_all_keeps_the_set_settings(pg_url: str) -> None:
    """DISCARD ALL run through execute() with session_settings="set" does not leave the next
    user without pgkeel's timeouts (the reset applies them again)."""
    with pgkeel.Database(pg_url, min_size=1, max_size=1, session_settings="set") as db:
        db.execute("DISCARD ALL")
        assert db.fetch_val("SHOW statement_timeout") == "30s"
        assert db.fetch_val("SHOW lock_timeout") == "10s"


def test_session_word_verdict() -> None:
    """The text verdict: whole words in any case, in SQL parts and identifiers of compositions,
    never in literals or placeholders (data)."""
    from pgkeel.pool._reset import _HINTS, SESSION_WORDS, changes_session

    assert all(any(hint in word for hint in _HINTS) for word in SESSION_WORDS)

    assert changes_session("SELECT Set_Config('a', 'b', false)")
    assert changes_session('SELECT "pg_advisory_lock"(1)')
    assert changes_session("CREATE TEMP TABLE t AS SELECT 1")
    assert changes_session("CREATE VIEW pg_temp.v AS SELECT 1")
    assert changes_session("SELECT setseed(0.5)")
    assert changes_session(b"SELECT set_config('a', 'b', false)")
    assert changes_session(sql.SQL("SELECT {}").format(sql.Identifier("pg_temp", "t")))
    assert changes_session(sql.Composed([sql.SQL("SELECT "), sql.SQL("pg_advisory_lock(1)")]))
    assert not changes_session("SELECT temperature, template, attempt FROM t")
    assert not changes_session("SELECT pg_advisory_xact_lock(1), pg_my_temp_schema()")
    assert not changes_session("INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING")
    assert not changes_session(sql.SQL("SELECT {}, %s").format(sql.Literal("set_config")))


def test_function_side_effects_async(pg_url: str) -> None:
    """The asyncio face: set_config, a session advisory lock and CREATE TEMP TABLE AS through
    the query methods are undone; a function's set_config is caught by the check; a plain
    SELECT does not reset."""

    async def main() -> None:
        async with pgkeel.AsyncDatabase(pg_url, min_size=1, max_size=1, check_idle=0) as db:
            await db.execute(QUIET_FUNCTION)
            clean = await db.fetch_one(SESSION)
            resets = db.stats()["resets"]
            await db.fetch_val("SELECT temperature FROM (SELECT 1 AS temperature) t")
            assert db.stats()["resets"] == resets
            await db.fetch_val("SELECT set_config('statement_timeout', '0', false)")
            assert await db.fetch_one(SESSION) == clean
            await db.fetch_val("SELECT pg_advisory_lock(7)")
            assert await db.fetch_one(SESSION) == clean
            await db.execute("CREATE TEMP TABLE t AS SELECT 1 AS x")
            assert await db.fetch_one(SESSION) == clean
            await db.fetch_val("SELECT quietly_unsafe()")
            assert await db.fetch_one(SESSION) == clean
            assert db.stats()["resets"] == resets + 4

    asyncio.run(main())


def test_session_state_never_reaches_the_next_user_async(pg_url: str) -> None:
    """The asyncio face: multi-statement SET, tx.connection SET / advisory lock / LISTEN, a temp
    table are undone before the connection is handed out again."""

    async def main() -> None:
        async with pgkeel.AsyncDatabase(pg_url, min_size=1, max_size=1) as db:
            clean = await db.fetch_one(SESSION)
            await db.execute("SELECT 1; SET search_path TO evil")
            assert await db.fetch_one(SESSION) == clean
            async with db.transaction() as tx:
                await tx.connection.execute("SET lock_timeout = 0")
                await tx.connection.execute("SELECT pg_advisory_lock(7)")
                await tx.connection.execute("LISTEN somewhere")
            assert await db.fetch_one(SESSION) == clean
            await db.execute("CREATE TEMP TABLE scratch (x int)")
            assert await db.fetch_one(SESSION) == clean
            for i in range(6):
                assert await db.fetch_val(PREPARED_QUERY, (i,)) == 2 * i
            async with db.connection() as conn:
                await conn.execute("PREPARE mine AS SELECT 1")
            async with db.connection() as conn:
                await conn.execute("PREPARE mine AS SELECT 1")
            assert await db.fetch_one(SESSION) == clean
            assert await db.fetch_val(PREPARED_QUERY, (21,)) == 42

    asyncio.run(main())


CLOSED_PORT_URL = "postgresql://u:canary-Pw-7f3a9c@127.0.0.1:1/db"


def _wait_for_connection_error(db: Any) -> None:
    """Wait (at most 30 s) until the pool has tried to connect and failed at least once."""
    deadline = time.monotonic() + 30
    while db.stats()["connection_errors"] < 1:
        assert time.monotonic() < deadline, "the pool never tried to connect"
        time.sleep(0.01)


def test_outage_reason_in_timeout_health_and_stats() -> None:
    """With nothing listening on the port, a checkout's PoolTimeout, health()['error'] and
    stats()['last_connection_error'] say why (connection refused), never the password; and
    stats()['waiting'] counts clients waiting now, not the ones that already timed out."""
    db = pgkeel.Database(CLOSED_PORT_URL, min_size=1, max_size=1, timeout=0.2)
    db.open(wait=False)
    try:
        _wait_for_connection_error(db)
        for _ in range(4):
            with pytest.raises(PoolTimeout) as info:
                db.fetch_val("SELECT 1")
            assert "refused" in str(info.value)
        health = db.health(timeout=0.2)
        stats = db.stats()
    finally:
        db.close()
    assert health["status"] == "degraded"
    assert "refused" in health["error"]
    assert "refused" in stats["last_connection_error"]
    assert stats["waiting"] == 0
    assert health["pool"]["waiting"] == 0
    assert CANARY not in str(info.value) + str(health) + str(stats)


def test_outage_reason_async() -> None:
    """The asyncio face: PoolTimeout and health() carry the connection error too."""

    async def main() -> None:
        db = pgkeel.AsyncDatabase(CLOSED_PORT_URL, min_size=1, max_size=1, timeout=0.2)
        await db.open(wait=False)
        try:
            async with asyncio.timeout(30):
                while db.stats()["connection_errors"] < 1:
                    await asyncio.sleep(0.01)
            with pytest.raises(PoolTimeout, match="refused"):
                await db.fetch_val("SELECT 1")
            health = await db.health(timeout=0.2)
        finally:
            await db.close()
        assert "refused" in health["error"]
        assert health["pool"]["waiting"] == 0
        assert CANARY not in str(health)

    asyncio.run(main())


def test_not_open_says_how(pg_url: str) -> None:
    """A Database used before open() (or after close()) says to use `with` or call open()."""
    db = pgkeel.Database(pg_url, min_size=1)
    with pytest.raises(PoolClosed, match=r"is not open yet: use it as a context manager.*open\(\)"):
        db.fetch_val("SELECT 1")
    with db:
        pass
    with pytest.raises(PoolClosed, match=r"has been closed: .*open\(\)"):
        db.fetch_val("SELECT 1")

    async def main() -> None:
        adb = pgkeel.AsyncDatabase(pg_url, min_size=1)
        with pytest.raises(PoolClosed, match=r"async with AsyncDatabase"):
            await adb.fetch_val("SELECT 1")

    asyncio.run(main())


def test_open_after_close(pg_url: str) -> None:
    """A closed Database (sync and async) opens again and works."""
    db = pgkeel.Database(pg_url, min_size=1, max_size=2)
    for _ in range(2):
        with db:
            assert db.fetch_val("SELECT 1") == 1

    async def main() -> None:
        adb = pgkeel.AsyncDatabase(pg_url, min_size=1, max_size=2)
        for _ in range(2):
            async with adb:
                assert await adb.fetch_val("SELECT 1") == 1

    asyncio.run(main())


def test_open_error_keeps_its_cause(pg_server: Any) -> None:
    """A connection error whose message would show the password is psycopg's own error (its
    class, its traceback and any cause kept), with the password scrubbed from its message."""
    user = "canary_user_5c1e"
    with psycopg.connect(pg_server.url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {user} LOGIN PASSWORD 'right-one'")  # type: ignore[arg-type]
    try:
        # The wrong password equals the user name, so the server's message contains it.
        url = psycopg.conninfo.make_conninfo(pg_server.url, user=user, password=user)
        db = pgkeel.Database(url, min_size=1, max_size=1)
        with pytest.raises(psycopg.OperationalError) as exc:
            db.open()
        assert "***" in str(exc.value)
        text = "".join(traceback.format_exception(exc.value))
        assert user not in text
        assert "authentication failed" in text
    finally:
        with psycopg.connect(pg_server.url, autocommit=True) as admin:
            admin.execute(f"DROP ROLE {user}")  # type: ignore[arg-type]


def test_waiting_counts_live_waiters(pg_url: str) -> None:
    """stats()['waiting'] is 1 while one client waits for the only connection, 0 once it got
    it, and stays 0 after clients that timed out."""
    with pgkeel.Database(pg_url, min_size=1, max_size=1, timeout=10) as db:
        with db.connection():
            for _ in range(3):
                with pytest.raises(PoolTimeout):
                    db._acquire(timeout=0.01)
            assert db.stats()["waiting"] == 0
            waiter = threading.Thread(target=db.fetch_val, args=("SELECT 1",))
            waiter.start()
            deadline = time.monotonic() + 30
            while db.stats()["waiting"] != 1:
                assert time.monotonic() < deadline, "the waiter never showed"
                time.sleep(0.01)
        waiter.join()
        assert db.stats()["waiting"] == 0


def test_pipeline_and_stream_never_leave_session_state(pg_url: str) -> None:
    """A pipeline's statements and a stream's query run outside the query methods: a SET in a
    pipeline, set_config through a pipeline or a stream, are undone before the next checkout."""
    with pgkeel.Database(pg_url, min_size=1, max_size=1) as db:
        clean = db.fetch_one(SESSION)
        with db.pipeline() as p:
            p.execute("SET search_path TO evil")
        assert db.fetch_one(SESSION) == clean
        with db.pipeline() as p:
            p.fetch_val("SELECT set_config('lock_timeout', '0', false)")
        assert db.fetch_one(SESSION) == clean
        assert list(db.stream("SELECT set_config('statement_timeout', '0', false)")) == [
            {"set_config": "0"}
        ]
        assert db.fetch_one(SESSION) == clean
        with db.transaction() as tx, tx.pipeline() as p:
            p.execute("SELECT pg_advisory_lock(11)")
        assert db.fetch_one(SESSION) == clean
        resets = db.stats()["resets"]
        assert [r["n"] for r in db.stream("SELECT 1 AS n")] == [1]
        assert db.stats()["resets"] == resets  # a plain stream needs no reset


def test_pipeline_and_stream_never_leave_session_state_async(pg_url: str) -> None:
    """The asyncio face: pipelines and streams reset a connection whose session they changed."""

    async def main() -> None:
        async with pgkeel.AsyncDatabase(pg_url, min_size=1, max_size=1) as db:
            clean = await db.fetch_one(SESSION)
            async with db.pipeline() as p:
                await p.execute("SET search_path TO evil")
            assert await db.fetch_one(SESSION) == clean
            rows = [r async for r in db.stream("SELECT set_config('lock_timeout', '0', false)")]
            assert rows == [{"set_config": "0"}]
            assert await db.fetch_one(SESSION) == clean

    asyncio.run(main())
