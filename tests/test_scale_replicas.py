"""Read replicas against a real streaming standby: routing, read-your-writes with replay paused,
lag and outages taking a replica out of rotation and back, refusing a primary as a replica, and
failover with a multi-host URL."""

from __future__ import annotations

import asyncio
import logging
import time

import psycopg
import pytest

import pgkeel
from fix_standby import Pair, replayed, wait_for
from fix_standby import primary_and_standby as primary_and_standby
from fix_standby import shared_pair as shared_pair
from pgkeel import embedded


def _standby(standby: embedded.EmbeddedServer, statement: str) -> None:
    with psycopg.connect(standby.url, autocommit=True) as conn:
        conn.execute(statement)  # type: ignore[arg-type]


def test_reads_go_to_the_replica_writes_to_the_primary(shared_pair: Pair) -> None:
    """Reads outside a transaction are served by the standby once it is measured in rotation;
    transactions and execute() use the primary; stats() and health() show the replica."""
    primary, standby = shared_pair
    with pgkeel.Database(primary.url, replicas=[standby.url], size_check="off") as db:
        health = db.health()
        assert health["replicas"][0]["state"] == "ok", health
        for _ in range(20):
            assert db.fetch_val("SELECT pg_is_in_recovery()") is True
        with db.transaction() as tx:
            assert tx.fetch_val("SELECT pg_is_in_recovery()") is False
        routing = db.stats()["routing"]
        assert routing["replicas"][0]["reads"] == 20
        assert routing["replicas"][0]["pool"]["checkouts"] >= 20
        assert routing["replicas"][0]["lag_s"] is not None


def test_read_your_writes_with_replay_paused(shared_pair: Pair) -> None:
    """With replay paused on the standby, a read right after a write through the Database
    always sees it (from the primary), though the standby itself does not have it; once replay
    resumes, reads go back to the standby."""
    primary, standby = shared_pair
    with pgkeel.Database(
        primary.url, replicas=[standby.url], max_replica_lag=30, size_check="off"
    ) as db:
        db.execute("CREATE TABLE note (id int PRIMARY KEY)")
        wait_for(lambda: replayed(primary.url, standby.url), 30, "the table reaching the standby")
        _standby(standby, "SELECT pg_wal_replay_pause()")
        for i in range(30):
            db.execute("INSERT INTO note VALUES (%s)", [i])  # noqa: PGK005 - a write, then a read
            assert db.fetch_val("SELECT count(*) FROM note WHERE id = %s", [i]) == 1
            time.sleep(0.01 * (i % 3))  # some reads after the monitor has seen the write
        with psycopg.connect(standby.url) as conn:  # the standby really is behind
            assert conn.execute("SELECT count(*) FROM note").fetchone() == (0,)
        assert db.stats()["routing"]["primary_reads"] >= 30
        _standby(standby, "SELECT pg_wal_replay_resume()")
        before = db.stats()["routing"]["replicas"][0]["reads"]

        def served_by_standby() -> bool:
            db.fetch_val("SELECT count(*) FROM note")
            return bool(db.stats()["routing"]["replicas"][0]["reads"] > before)

        wait_for(served_by_standby, 10, "reads returning to the standby")
        assert db.fetch_val("SELECT count(*) FROM note") == 30


def test_insert_returning_through_fetch_is_routed_to_the_primary(shared_pair: Pair) -> None:
    """A write sent through fetch_one (INSERT ... RETURNING) that reaches a replica is refused
    there and runs once on the primary; the next read sees it."""
    primary, standby = shared_pair
    with pgkeel.Database(primary.url, replicas=[standby.url], size_check="off") as db:
        db.execute("CREATE TABLE item (id serial PRIMARY KEY, name text)")
        wait_for(lambda: replayed(primary.url, standby.url), 30, "the table reaching the standby")
        wait_for(lambda: db.health()["replicas"][0]["state"] == "ok", 10, "replica in rotation")
        time.sleep(0.5)  # the monitor sees the primary after the CREATE: the floor is reached
        for name in ("a", "b", "c"):
            row = db.fetch_one("INSERT INTO item (name) VALUES (%s) RETURNING id", [name])
            assert row is not None
            assert db.fetch_val("SELECT name FROM item WHERE id = %s", [row["id"]]) == name
        assert db.fetch_val("SELECT count(*) FROM item") == 3


def test_lagging_and_down_replicas_leave_and_rejoin_rotation(
    primary_and_standby: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    """A replica past max_replica_lag, then one that is stopped, leaves rotation within a
    bounded time with a warning; reads go to the primary without an error; a healthy replica
    on the same address comes back."""
    caplog.set_level(logging.INFO, logger="pgkeel.scale")
    primary, standby = primary_and_standby
    port = standby.port
    db = pgkeel.Database(primary.url, replicas=[standby.url], max_replica_lag=0.5, size_check="off")
    with db:
        state = lambda: db.health()["replicas"][0]["state"]  # noqa: E731
        assert state() == "ok"
        _standby(standby, "SELECT pg_wal_replay_pause()")
        db.execute("CREATE TABLE t (id int)")
        took = wait_for(lambda: state() == "lagging", 5, "a paused replica out of rotation")
        # max_replica_lag + interval + one check's deadline, and slack for a loaded machine.
        assert took < 0.5 + 0.2 + 1.0 + 1.0
        assert db.fetch_val("SELECT pg_is_in_recovery()") is False
        _standby(standby, "SELECT pg_wal_replay_resume()")
        wait_for(lambda: state() == "ok", 5, "the replica back after replay resumed")

        standby.stop()
        t0 = time.monotonic()
        for _ in range(50):  # never an error while it goes down
            assert db.fetch_val("SELECT 1") == 1
        wait_for(lambda: state() == "down", 5, "a stopped replica out of rotation")
        assert time.monotonic() - t0 < 5
        assert db.fetch_val("SELECT pg_is_in_recovery()") is False
        with embedded.start(standby_of=primary, port=port):
            wait_for(lambda: state() == "ok", 30, "a new standby on the same address")
            wait_for(lambda: db.fetch_val("SELECT pg_is_in_recovery()") is True, 10, "reads on it")
    messages = [r.getMessage() for r in caplog.records if r.name == "pgkeel.scale"]
    assert any("out of rotation: replay lag" in m for m in messages), messages
    assert any("back in rotation" in m for m in messages), messages
    assert standby.password not in "\n".join(messages)


def test_a_primary_is_refused_as_a_replica(shared_pair: Pair) -> None:
    """A replica URL that points at a server not in recovery fails open() with the reason."""
    primary, _ = shared_pair
    db = pgkeel.Database(primary.url, replicas=[primary.url], size_check="off")
    with pytest.raises(pgkeel.ConfigError, match=r"replica 0 .* not in recovery"):
        db.open()
    db.close()


def test_max_replica_lag_must_be_positive() -> None:
    """max_replica_lag <= 0 (and a replicas value that is not a list) is a ConfigError."""
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(pgkeel.ConfigError, match="max_replica_lag"):
            pgkeel.Database("postgresql://h/db", replicas=["postgresql://r/"], max_replica_lag=bad)
    with pytest.raises(pgkeel.ConfigError, match="list of connection strings"):
        pgkeel.Database("postgresql://h/db", replicas="postgresql://r/db")


def test_async_face_routes_and_reads_its_writes(shared_pair: Pair) -> None:
    """AsyncDatabase routes reads to the standby and reads its own writes with replay paused."""
    primary, standby = shared_pair

    async def main() -> None:
        async with pgkeel.AsyncDatabase(
            primary.url, replicas=[standby.url], max_replica_lag=30, size_check="off"
        ) as db:
            assert (await db.health())["replicas"][0]["state"] == "ok"
            assert await db.fetch_val("SELECT pg_is_in_recovery()") is True
            await db.execute("CREATE TABLE n (id int)")
            await asyncio.to_thread(
                wait_for, lambda: replayed(primary.url, standby.url), 30, "table on the standby"
            )
            await asyncio.to_thread(_standby, standby, "SELECT pg_wal_replay_pause()")
            try:
                for i in range(10):
                    await db.execute("INSERT INTO n VALUES (%s)", [i])  # noqa: PGK005
                    assert await db.fetch_all("SELECT id FROM n WHERE id = %s", [i]) == [{"id": i}]
            finally:
                await asyncio.to_thread(_standby, standby, "SELECT pg_wal_replay_resume()")

    asyncio.run(main())


@pytest.mark.slow
@pytest.mark.fault
def test_failover_with_a_multi_host_url(primary_and_standby: Pair) -> None:
    """Stop the primary, promote the standby: with target_session_attrs=read-write, writes
    through the same Database succeed again within a bounded time."""
    primary, standby = primary_and_standby
    url = (
        f"postgresql://postgres:{primary.password}@127.0.0.1:{primary.port},"
        f"127.0.0.1:{standby.port}/postgres?target_session_attrs=read-write"
    )
    with pgkeel.Database(url, size_check="off", timeout=2) as db:
        db.execute("CREATE TABLE t (id int)")
        db.execute("INSERT INTO t VALUES (1)")
        wait_for(lambda: replayed(primary.url, standby.url), 30, "the row on the standby")
        primary.stop()
        _standby(standby, "SELECT pg_promote()")
        t0 = time.monotonic()
        while True:
            try:
                db.execute("INSERT INTO t VALUES (2)")
                break
            except psycopg.Error:
                if time.monotonic() - t0 > 30:
                    raise
                time.sleep(0.1)
        assert time.monotonic() - t0 < 30
        assert db.fetch_val("SELECT count(*) FROM t") == 2
        assert db.fetch_val("SELECT pg_is_in_recovery()") is False


@pytest.mark.slow
@pytest.mark.fault
def test_a_replica_left_on_the_old_timeline_is_dropped(
    primary_and_standby: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    """After a failover, a standby still on the old primary's timeline is never served from:
    it leaves rotation with a warning naming the timelines."""
    caplog.set_level(logging.WARNING, logger="pgkeel.scale")
    primary, promoted = primary_and_standby
    with embedded.start(standby_of=primary) as left_behind:
        wait_for(lambda: replayed(primary.url, left_behind.url), 30, "the second standby")
        primary.stop()
        _standby(promoted, "SELECT pg_promote()")
        wait_for(lambda: _is_primary(promoted), 30, "the promoted standby accepting writes")
        with psycopg.connect(promoted.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE after_failover (id int)")
        with pgkeel.Database(
            promoted.url, replicas=[left_behind.url], max_replica_lag=0.5, size_check="off"
        ) as db:
            for _ in range(20):
                assert db.fetch_val("SELECT pg_is_in_recovery()") is False
                time.sleep(0.05)
            wait_for(lambda: db.health()["replicas"][0]["state"] == "diverged", 10, "diverged")
    assert any("on timeline 1 while the primary is on 2" in r.getMessage() for r in caplog.records)


def _is_primary(server: embedded.EmbeddedServer) -> bool:
    with psycopg.connect(server.url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    return row == (False,)
