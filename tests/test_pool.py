"""The pool under faults and limits: recovery after terminated backends and a server restart,
the sizing check against a small max_connections, and TLS with verify-full."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg_pool import PoolTimeout

import pgkeel
from pgkeel import embedded
from pgkeel.pool import _liveness

pytest_plugins = ["fix_db"]


def wait_backends_gone(url: str) -> None:
    """Wait (at most 30 s) until no other backend of this database is left: the terminated ones
    have sent their FATAL message and closed their sockets."""
    deadline = time.monotonic() + 30
    with psycopg.connect(url, autocommit=True) as admin:
        while True:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
            if row == (0,):
                return
            assert time.monotonic() < deadline, "terminated backends did not go away"
            time.sleep(0.01)


def terminate_others(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.fault
def test_recovers_after_backends_terminated(pg_url: str) -> None:
    """After every pooled backend is killed, the next queries succeed, none of them failing
    (sync and async): the dead connections are replaced before a query uses them."""
    with pgkeel.Database(pg_url, min_size=3, max_size=3) as db:
        db.fetch_val("SELECT 1")
        while db.stats()["size"] < 3 or db.stats()["available"] < 3:
            time.sleep(0.05)
        assert terminate_others(pg_url) >= 3
        wait_backends_gone(pg_url)
        for _ in range(5):
            assert db.fetch_val("SELECT 1") == 1
        with db.transaction() as tx:
            assert tx.fetch_val("SELECT 2") == 2
        assert db.stats()["connections_lost"] >= 1
        assert db.stats()["errors"] == 0

    async def main() -> None:
        async with pgkeel.AsyncDatabase(pg_url, min_size=2, max_size=2) as adb:
            await adb.fetch_val("SELECT 1")
            while adb.stats()["size"] < 2 or adb.stats()["available"] < 2:
                await asyncio.sleep(0.05)
            assert terminate_others(pg_url) >= 2
            wait_backends_gone(pg_url)
            for _ in range(4):
                assert await adb.fetch_val("SELECT 1") == 1
            assert adb.stats()["errors"] == 0

    asyncio.run(main())


@pytest.mark.fault
def test_socket_poll_sees_terminated_backend(pg_url: str) -> None:
    """The checkout poll is quiet on a healthy idle connection and fires once the server has
    terminated its backend; a Database whose round-trip check never runs (check_idle=1h)
    still replaces the dead connection before a query uses it."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert not _liveness.socket_ready(conn)
        assert not _liveness.socket_ready(conn)  # the cached poll argument is reusable
        assert terminate_others(pg_url) >= 1
        deadline = time.monotonic() + 5
        while not _liveness.socket_ready(conn):
            assert time.monotonic() < deadline, "poll never saw the terminated backend"
            time.sleep(0.02)
    with pgkeel.Database(pg_url, min_size=1, max_size=1, check_idle=3600) as db:
        assert db.fetch_val("SELECT 1") == 1
        assert terminate_others(pg_url) >= 1
        wait_backends_gone(pg_url)
        assert db.fetch_val("SELECT 2") == 2
        assert db.stats()["connections_lost"] >= 1


def test_checkout_poll_skipped_only_for_just_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    """needs_check: a connection returned under POLL_AFTER ago is not polled; an older one is
    polled (and checked if the server wrote to it); one idle past check_idle always is."""
    polled: list[object] = []
    ready = False

    def fake_ready(conn: object) -> bool:
        polled.append(conn)
        return ready

    monkeypatch.setattr(_liveness, "socket_ready", fake_ready)

    class Conn:
        idle_since = 0.0

    conn: Any = Conn()
    now = time.monotonic()
    conn.idle_since = now
    assert not _liveness.needs_check(conn, 1.0)
    assert polled == []
    conn.idle_since = now - 2 * _liveness.POLL_AFTER
    assert not _liveness.needs_check(conn, 1.0)
    assert polled == [conn]
    ready = True
    assert _liveness.needs_check(conn, 1.0)
    conn.idle_since = now - 5
    assert _liveness.needs_check(conn, 1.0)


@pytest.fixture(scope="module")
def small_server() -> Iterator[embedded.EmbeddedServer]:
    """An embedded server of our own with only 12 connections."""
    with embedded.start(settings={"max_connections": 12}) as server:
        yield server


@pytest.fixture(scope="module")
def tls_server(require_tls: None) -> Iterator[embedded.EmbeddedServer]:
    """An embedded server of our own serving TLS with a throwaway CA."""
    with embedded.start(ssl=True) as server:
        yield server


def test_sizing_check(
    small_server: embedded.EmbeddedServer, caplog: pytest.LogCaptureFixture
) -> None:
    """max_size beyond the server's free slots warns (default) or raises PoolSizeError with the
    numbers and the fix; a pool that fits says nothing."""
    url = small_server.url
    caplog.set_level(logging.WARNING, logger="pgkeel")
    with pgkeel.Database(url, min_size=1, max_size=20) as db:
        assert db.fetch_val("SELECT 1") == 1
    messages = [r.getMessage() for r in caplog.records if "max_size=20" in r.getMessage()]
    assert len(messages) == 1
    assert "max_connections=12" in messages[0]
    assert "lower max_size" in messages[0]
    with pytest.raises(pgkeel.PoolSizeError, match=r"max_connections=12, \d+ reserved") as info:
        pgkeel.Database(url, min_size=1, max_size=20, size_check="error").open()
    assert "PgBouncer" in str(info.value)
    caplog.clear()
    with pgkeel.Database(url, min_size=1, max_size=4, size_check="error") as db:
        assert db.fetch_val("SELECT 1") == 1
    assert not [r for r in caplog.records if "does not fit" in r.getMessage()]


def test_verify_full_tls(tls_server: embedded.EmbeddedServer) -> None:
    """sslmode=verify-full with the server's CA connects over TLS (ssl='required' accepts it);
    a wrong CA file is refused."""
    url = tls_server.url
    assert "sslmode=verify-full" in url
    with pgkeel.Database(url, min_size=1, max_size=2, ssl="required") as db:
        assert db.fetch_val("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is True
    bad = psycopg.conninfo.make_conninfo(url, sslrootcert=str(Path(__file__)))
    with pytest.raises(psycopg.OperationalError):
        pgkeel.Database(bad, min_size=1, max_size=2).open()


@pytest.mark.slow
@pytest.mark.fault
def test_recovers_after_server_restart(cluster_dir: Path) -> None:
    """With the server stopped, queries fail and the pool stops retrying after
    reconnect_delay_max (psycopg_pool alone backs off for minutes); once the server is back,
    the next checkout connects on its first attempt (sync and async)."""
    data = cluster_dir / "data"
    server = embedded.start(data, settings={"max_connections": 30})
    port, url = server.port, server.url
    options: dict[str, Any] = {"min_size": 2, "max_size": 4, "timeout": 1}
    db = pgkeel.Database(url, **options)
    adb = pgkeel.AsyncDatabase(url, **options)
    loop = asyncio.new_event_loop()

    async def async_gave_up() -> None:
        async with asyncio.timeout(30):
            while adb.stats()["size"] > 0:
                await asyncio.sleep(0.05)

    try:
        db.open()
        loop.run_until_complete(adb.open())
        assert db.fetch_val("SELECT 1") == 1
        assert loop.run_until_complete(adb.fetch_val("SELECT 1")) == 1
        server.stop()
        with pytest.raises((psycopg.OperationalError, PoolTimeout)):
            db.fetch_val("SELECT 1")
        with pytest.raises((psycopg.OperationalError, PoolTimeout)):
            loop.run_until_complete(adb.fetch_val("SELECT 1"))
        deadline = time.monotonic() + 30
        while db.stats()["size"] > 0:  # every attempt given up: nothing scheduled for later
            assert time.monotonic() < deadline, "the pool kept retrying"
            time.sleep(0.05)
        loop.run_until_complete(async_gave_up())
        server = embedded.start(data, port=port, settings={"max_connections": 30})
        failed = db.stats()["connection_errors"], adb.stats()["connection_errors"]
        # A generous wait for the connection (this is not a timing test).
        assert db.health(timeout=30)["status"] == "ok"
        assert loop.run_until_complete(adb.health(timeout=30))["status"] == "ok"
        # Both came from the first connection attempt after the restart.
        assert (db.stats()["connection_errors"], adb.stats()["connection_errors"]) == failed
        assert db.stats()["connections_lost"] >= 1
    finally:
        db.close()
        loop.run_until_complete(adb.close())
        loop.close()
        server.stop()


PREPARED = "SELECT %s::int + 1"  # run often enough that psycopg prepares it


async def _random_op(db: pgkeel.AsyncDatabase, rnd: random.Random) -> None:
    kind = rnd.randrange(4)
    if kind == 0:
        await db.fetch_val(PREPARED, (rnd.randrange(100),))
    elif kind == 1:
        async with db.transaction() as tx:
            await tx.execute("SELECT pg_advisory_xact_lock(1)")
            await tx.fetch_val(PREPARED, (1,))
    elif kind == 2:
        async with db.connection() as conn:
            await conn.execute("SET lock_timeout = '1ms'")
            await conn.execute("SELECT pg_sleep(0.001)")
    else:
        await db.fetch_val("SELECT pg_sleep(0.002)")


async def _assert_full_and_clean(db: pgkeel.AsyncDatabase, size: int) -> None:
    """Every connection is back, usable, in step with the server on prepared statements, and
    carries no session state."""
    async with asyncio.timeout(30):
        while (s := db.stats())["available"] < size or s["size"] != size:
            await asyncio.sleep(0.02)
    held = []
    try:
        for _ in range(size):  # all of them at once: none is missing
            held.append(await db._acquire(timeout=5))
        for conn in held:
            for i in range(8):  # past psycopg's prepare threshold
                cur = await conn.execute(PREPARED, (i,))
                assert await cur.fetchone() == {"?column?": i + 1}
            cur = await conn.execute("SHOW lock_timeout")
            assert await cur.fetchone() == {"lock_timeout": "10s"}
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    finally:
        for conn in held:
            await db._release(conn)


@pytest.mark.fault
@pytest.mark.parametrize("check_idle", [1.0, 0.0])
def test_random_cancellations_lose_no_connection(pg_url: str, check_idle: float) -> None:
    """1,000 operations (query, transaction, raw connection) cancelled by wait_for at random
    tiny timeouts, from 8 tasks sharing a pool of 4: afterwards every connection is back, usable
    and clean, with psycopg's prepared statements in step with the server. check_idle=0 puts a
    round-trip check (itself cancellable) on every checkout."""

    async def main() -> None:
        async with pgkeel.AsyncDatabase(
            pg_url, min_size=4, max_size=4, timeout=10, check_idle=check_idle
        ) as db:
            cancelled = 0

            async def worker(n: int) -> None:
                nonlocal cancelled
                rnd = random.Random(n)  # noqa: S311 - reproducible test data
                for _ in range(125):
                    try:
                        await asyncio.wait_for(_random_op(db, rnd), rnd.uniform(0, 0.004))
                    except TimeoutError:
                        cancelled += 1
                    except psycopg.errors.LockNotAvailable:
                        pass

            await asyncio.gather(*(worker(n) for n in range(8)))
            assert cancelled > 0
            await _assert_full_and_clean(db, 4)

    asyncio.run(main())


@pytest.mark.fault
def test_exceptions_inside_blocks_lose_nothing_sync(pg_url: str) -> None:
    """Threads whose blocks raise (their own error, a statement timeout mid-query, a
    BaseException) leave the pool full, and the session state made before the error that a
    rollback does not undo (an advisory lock, a prepared statement) does not reach the next
    user."""

    class Interrupt(BaseException):
        pass

    def block(db: pgkeel.Database, n: int, kind: int) -> None:
        with db.transaction() as tx:
            # Session state that a rollback does not undo.
            tx.fetch_val("SELECT pg_try_advisory_lock(%s)", (n,))
            tx.connection.execute("PREPARE mine AS SELECT 1")
            tx.connection.execute("SET statement_timeout = '5ms'")
            if kind == 0:
                raise RuntimeError("boom")
            if kind == 1:
                tx.fetch_val("SELECT pg_sleep(0.05)")
            raise Interrupt

    def worker(db: pgkeel.Database, n: int, errors: list[BaseException]) -> None:
        rnd = random.Random(n)  # noqa: S311 - reproducible test data
        for _ in range(40):
            try:
                block(db, n, rnd.randrange(3))
            except (RuntimeError, Interrupt, psycopg.errors.QueryCanceled):
                pass
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

    with pgkeel.Database(pg_url, min_size=3, max_size=3, timeout=10) as db:
        errors: list[BaseException] = []
        threads = [threading.Thread(target=worker, args=(db, n, errors)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        stats = db.stats()
        assert (stats["size"], stats["available"]) == (3, 3)
        with db.connection() as a, db.connection() as b, db.connection() as c:
            for conn in (a, b, c):
                row = conn.execute(
                    "SELECT current_setting('statement_timeout') AS timeout, "
                    "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    " AND pid = pg_backend_pid()) AS locks, "
                    "(SELECT count(*) FROM pg_prepared_statements WHERE from_sql) AS prepared"
                ).fetchone()
                assert row == {"timeout": "30s", "locks": 0, "prepared": 0}
