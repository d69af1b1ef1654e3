"""The pool under faults and limits: recovery after terminated backends and a server restart,
the sizing check against a small max_connections, and TLS with verify-full."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg_pool import PoolTimeout

import pgkeel
from pgkeel import _database_base, embedded

pytest_plugins = ["fix_db"]


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
    """After every pooled backend is killed, the next queries succeed at once (sync and async)."""
    with pgkeel.Database(pg_url, min_size=3, max_size=3) as db:
        db.fetch_val("SELECT 1")
        while db.stats()["size"] < 3 or db.stats()["available"] < 3:
            time.sleep(0.05)
        assert terminate_others(pg_url) >= 3
        time.sleep(0.2)  # let the FATAL messages arrive
        t0 = time.monotonic()
        for _ in range(5):
            assert db.fetch_val("SELECT 1") == 1
        with db.transaction() as tx:
            assert tx.fetch_val("SELECT 2") == 2
        assert time.monotonic() - t0 < 2.0
        assert db.stats()["connections_lost"] >= 1

    async def main() -> None:
        async with pgkeel.AsyncDatabase(pg_url, min_size=2, max_size=2) as adb:
            await adb.fetch_val("SELECT 1")
            await asyncio.sleep(0.3)
            assert terminate_others(pg_url) >= 1
            await asyncio.sleep(0.2)
            for _ in range(4):
                assert await adb.fetch_val("SELECT 1") == 1

    asyncio.run(main())


@pytest.mark.fault
def test_socket_poll_sees_terminated_backend(pg_url: str) -> None:
    """The checkout poll is quiet on a healthy idle connection and fires once the server has
    terminated its backend; a Database whose round-trip check never runs (check_idle=1h)
    still replaces the dead connection before a query uses it."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert not _database_base.socket_ready(conn)
        assert not _database_base.socket_ready(conn)  # the cached poll argument is reusable
        assert terminate_others(pg_url) >= 1
        deadline = time.monotonic() + 5
        while not _database_base.socket_ready(conn):
            assert time.monotonic() < deadline, "poll never saw the terminated backend"
            time.sleep(0.02)
    with pgkeel.Database(pg_url, min_size=1, max_size=1, check_idle=3600) as db:
        assert db.fetch_val("SELECT 1") == 1
        assert terminate_others(pg_url) >= 1
        time.sleep(0.2)  # let the FATAL message arrive
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

    monkeypatch.setattr(_database_base, "socket_ready", fake_ready)

    class Conn:
        idle_since = 0.0

    conn: Any = Conn()
    now = time.monotonic()
    conn.idle_since = now
    assert not _database_base.needs_check(conn, 1.0)
    assert polled == []
    conn.idle_since = now - 2 * _database_base.POLL_AFTER
    assert not _database_base.needs_check(conn, 1.0)
    assert polled == [conn]
    ready = True
    assert _database_base.needs_check(conn, 1.0)
    conn.idle_since = now - 5
    assert _database_base.needs_check(conn, 1.0)


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
    """With the server stopped, queries fail fast; once it is back, the first success (sync
    and async) comes within 5 s."""
    data = cluster_dir / "data"
    server = embedded.start(data, settings={"max_connections": 30})
    port, url = server.port, server.url
    db = pgkeel.Database(url, min_size=2, max_size=4, timeout=1)
    adb = pgkeel.AsyncDatabase(url, min_size=2, max_size=4, timeout=1)
    loop = asyncio.new_event_loop()
    try:
        db.open()
        loop.run_until_complete(adb.open())
        assert db.fetch_val("SELECT 1") == 1
        assert loop.run_until_complete(adb.fetch_val("SELECT 1")) == 1
        server.stop()
        with pytest.raises((psycopg.OperationalError, PoolTimeout)):
            db.fetch_val("SELECT 1")
        # Long enough for psycopg_pool's own backoff (1, 2, 4, 8 s) to overshoot by seconds.
        time.sleep(6)
        server = embedded.start(data, port=port, settings={"max_connections": 30})
        back = time.monotonic()
        first_ok = until_ok(lambda: db.fetch_val("SELECT 1"))
        async_ok = until_ok(lambda: loop.run_until_complete(adb.fetch_val("SELECT 1")))
        assert first_ok - back < 5.0
        assert async_ok - back < 5.0
        assert db.stats()["connections_lost"] >= 1
    finally:
        db.close()
        loop.run_until_complete(adb.close())
        loop.close()
        server.stop()


def until_ok(fn: Any, limit: float = 15.0) -> float:
    deadline = time.monotonic() + limit
    while True:
        try:
            fn()
        except (psycopg.OperationalError, PoolTimeout):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        else:
            return time.monotonic()
