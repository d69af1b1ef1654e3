"""Durable topics (pgkeel.events.topics): publish and subscribe on both faces, transactional
publish, the out-of-order commit a naive `id > last_id` consumer skips, stored positions,
redelivery, several consumers, pruning, hostile input, and the tables' creation under races."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

import pgkeel
from pgkeel.events import SCHEMA_SQL, Event

pytest_plugins = ["fix_db"]


def drain(sub: pgkeel.events.Subscription, n: int, timeout: float = 10.0) -> list[Event]:
    """The next ``n`` events, each acknowledged."""
    out = []
    for _ in range(n):
        event = sub.get(timeout)
        assert event is not None, f"only {len(out)} of {n} events within {timeout} s"
        out.append(event)
        sub.ack(event)
    return out


def naive_consume(db: pgkeel.Database, last_id: int) -> tuple[list[int], int]:
    """The hand-written consumer the issue warns about: ``id > last_id`` in id order."""
    rows = db.fetch_all(
        "SELECT id FROM pgkeel_events WHERE topic = 't' AND id > %s ORDER BY id", [last_id]
    )
    ids = [r["id"] for r in rows]
    return ids, max(ids, default=last_id)


def test_publish_subscribe_sync(db: pgkeel.Database) -> None:
    """A new consumer starts after the latest event; start="earliest" reads the history."""
    db.publish("t", {"n": 0})
    with db.subscribe("t", "late") as late, db.subscribe("t", "all", start="earliest") as every:
        first = db.publish("t", {"n": 1, "nested": [1.5, "é", None]})
        db.publish("t", "a string")
        got = drain(late, 2)
        assert late.get(0.2) is None
        assert [e.payload for e in drain(every, 3)] == [{"n": 0}, got[0].payload, "a string"]
    assert got[0].id == first
    assert got[0].payload == {"n": 1, "nested": [1.5, "é", None]}
    assert got[0].topic == "t"
    assert got[0].created_at.tzinfo is not None


def test_publish_subscribe_async(pg_url: str) -> None:
    """The asyncio face: same names, async with / async for, tx.publish."""

    async def main() -> list[Any]:
        async with (
            pgkeel.AsyncDatabase(pg_url, size_check="off") as db,
            db.subscribe("t", "c", start="earliest", auto_ack=True) as sub,
        ):
            await db.publish("t", 1)
            async with db.transaction() as tx:
                await tx.publish("t", 2)
            got = []
            async for event in sub:
                got.append(event.payload)
                if len(got) == 2:
                    break
            return got

    assert asyncio.run(main()) == [1, 2]


def test_transactional_publish(db: pgkeel.Database) -> None:
    """tx.publish: a rolled-back event is never delivered; a committed one only after COMMIT."""
    with db.subscribe("t", "c") as sub:

        def rolled_back() -> None:
            with db.transaction() as tx:
                tx.publish("t", "rolled back")
                raise RuntimeError

        with pytest.raises(RuntimeError):
            rolled_back()
        with db.transaction() as tx:
            tx.publish("t", "committed")
            assert sub.get(0.3) is None
        assert [e.payload for e in drain(sub, 1)] == ["committed"]
        assert sub.get(0.3) is None


def test_late_commit_of_a_lower_id_is_not_skipped(db: pgkeel.Database, pg_url: str) -> None:
    """Hold the transaction with the lower id open while a higher id commits and is consumed:
    the naive `id > last_id` consumer loses the lower one; the subscription (and a restarted
    one) delivers it once it commits."""
    db.publish("t", "warm-up")  # creates the tables
    naive_last = db.fetch_val("SELECT max(id) FROM pgkeel_events")
    with db.subscribe("t", "c", ack_interval=0) as sub:
        with pgkeel.Database(pg_url, size_check="off") as other, other.transaction() as slow:
            low = slow.publish("t", "low")  # takes the lower id, stays in flight
            high = db.publish("t", "high")
            assert low < high
            assert [e.id for e in drain(sub, 1)] == [high]
            assert sub.get(0.3) is None  # "low" is not visible yet: nothing to deliver
            naive_ids, naive_last = naive_consume(db, naive_last)
            assert naive_ids == [high]
            # A consumer restarted now must not skip "low" either.
            sub.close()
        naive_ids, naive_last = naive_consume(db, naive_last)
        assert naive_ids == []  # the naive consumer has lost "low" for good
    with db.subscribe("t", "c") as again:
        assert [e.id for e in drain(again, 1)] == [low]
        assert again.get(0.3) is None


def test_batch_larger_than_a_page(db: pgkeel.Database, pg_url: str) -> None:
    """A batch read in several pages (bounded id ranges), interleaved with another topic and a
    lower id still in flight, resumed by a restarted consumer mid-batch: every event once, in
    id order, and the late lower id after it commits."""
    db.publish("t", "warm-up")
    with db.subscribe("t", "c", batch_size=3, ack_interval=0) as sub:
        with pgkeel.Database(pg_url, size_check="off") as other, other.transaction() as slow:
            low = slow.publish("t", "low")
            ids = []
            for i in range(10):
                ids.append(db.publish("t", i))
                db.publish("u", i)
            assert [e.id for e in drain(sub, 4)] == ids[:4]
            sub.close()  # mid-batch: the stored position is inside a batch of 10
            with db.subscribe("t", "c", batch_size=3, ack_interval=0) as again:
                assert [e.id for e in drain(again, 6)] == ids[4:]
                assert again.get(0.3) is None
        with db.subscribe("t", "c", batch_size=3) as again:
            assert [e.id for e in drain(again, 1)] == [low]
            assert again.get(0.3) is None


def test_position_survives_restart(db: pgkeel.Database) -> None:
    """A restarted consumer resumes after its last acknowledged event; an unacknowledged one
    (its handler raised) is delivered again."""
    with db.subscribe("t", "c") as sub:
        ids = [db.publish("t", i) for i in range(5)]
        drain(sub, 2)

        def handle() -> None:
            event = sub.get(5)
            assert event is not None
            raise ValueError(event.id)  # never acknowledged

        with pytest.raises(ValueError, match=str(ids[2])):
            handle()
    with db.subscribe("t", "c") as sub:
        assert [e.id for e in drain(sub, 3)] == ids[2:]
        assert sub.get(0.2) is None


def test_auto_ack(db: pgkeel.Database) -> None:
    """auto_ack acknowledges an event when the next one is asked for, not before."""
    with db.subscribe("t", "c", auto_ack=True, ack_interval=0) as sub:
        ids = [db.publish("t", i) for i in range(3)]
        assert [sub.get(5).id for _ in range(2)] == ids[:2]  # type: ignore[union-attr]
    with db.subscribe("t", "c") as sub:
        assert [e.id for e in drain(sub, 2)] == ids[1:]


def test_two_consumers_each_get_every_event(db: pgkeel.Database) -> None:
    """Consumers with different names each get all events, in publication order."""
    with db.subscribe("t", "a") as a, db.subscribe("t", "b") as b:
        ids = [db.publish("t", i) for i in range(50)]
        assert [e.id for e in drain(a, 50)] == ids
        assert [e.id for e in drain(b, 50)] == ids


def test_prune_keeps_what_a_consumer_needs(db: pgkeel.Database) -> None:
    """prune_events deletes only events every consumer acknowledged (stored), and older ones."""
    with db.subscribe("t", "a", ack_interval=0) as a, db.subscribe("t", "b", ack_interval=0) as b:
        ids = [db.publish("t", i) for i in range(10)]
        drain(a, 10)
        drain(b, 4)
        assert db.prune_events(older_than=3600) == 0  # all too young
        assert db.prune_events(older_than=0) == 4
        left = [r["id"] for r in db.fetch_all("SELECT id FROM pgkeel_events ORDER BY id")]
        assert left == ids[4:]
        assert [e.id for e in drain(b, 6)] == ids[4:]
        assert db.prune_events(older_than=0) == 6
    with pytest.raises(ValueError, match="older_than"):
        db.prune_events(older_than=-1)


def test_status_reports_lag(db: pgkeel.Database) -> None:
    """status(): events per topic and each consumer's lag in events and seconds."""
    from pgkeel.events.topics import status

    with db.subscribe("t", "c", ack_interval=0) as sub:
        for i in range(3):
            db.publish("t", i)
        drain(sub, 1)
        report = status(db)
    assert [(t["topic"], t["events"]) for t in report["topics"]] == [("t", 3)]
    (consumer,) = report["consumers"]
    assert (consumer["consumer"], consumer["lag_events"]) == ("c", 2)
    assert consumer["lag_seconds"] >= 0


def test_wakeup_lost_poll_delivers(db: pgkeel.Database) -> None:
    """An event stored without its NOTIFY is still delivered by the poll fallback."""
    with db.subscribe("t", "c", poll_interval=0.3) as sub:
        db.execute("INSERT INTO pgkeel_events (topic, payload) VALUES ('t', '1')")
        t0 = time.monotonic()
        assert [e.payload for e in drain(sub, 1, timeout=5)] == [1]
    assert time.monotonic() - t0 < 2.0


def test_big_payload(db: pgkeel.Database) -> None:
    """Durable payloads are not bound by NOTIFY's 8000 bytes."""
    payload = {"blob": "x" * 1_000_000}
    with db.subscribe("t", "c") as sub:
        db.publish("t", payload)
        assert drain(sub, 1)[0].payload == payload


HOSTILE = ['t"; DROP TABLE pgkeel_events; --', "Ünïcødé ✓", "it's"]


def test_hostile_names(db: pgkeel.Database) -> None:
    """Quotes, SQL and unicode in topic and consumer names are data, never SQL."""
    for name in HOSTILE:
        with db.subscribe(name, name) as sub:
            db.publish(name, name)
            assert [e.payload for e in drain(sub, 1)] == [name]
    assert db.fetch_val("SELECT count(*) FROM pgkeel_events") == len(HOSTILE)


@pytest.mark.parametrize("name", ["", "a" * 64, "a\x00b", None])
def test_bad_names_refused(db: pgkeel.Database, name: object) -> None:
    """Bad topic or consumer names raise IdentifierError before anything is stored."""
    with pytest.raises(pgkeel.IdentifierError):
        db.publish(name, 1)  # type: ignore[arg-type]
    with pytest.raises(pgkeel.IdentifierError):
        db.subscribe("t", name)  # type: ignore[arg-type]
    with pytest.raises(pgkeel.IdentifierError):
        db.subscribe(name, "c")  # type: ignore[arg-type]


def test_bad_payloads_store_nothing(db: pgkeel.Database) -> None:
    """Non-JSON-able, NaN and NUL payloads raise the errors a query gives, and store nothing,
    in a transaction too (which stays usable)."""
    db.publish("t", "ok")
    cases: list[tuple[Any, type[Exception]]] = [
        ({"a": object()}, TypeError),
        ({"a": math.inf}, pgkeel.NotStorableError),
        ([math.nan], pgkeel.NotStorableError),
        ({"a": "x\x00y"}, psycopg.errors.UntranslatableCharacter),
        ({"k\x00": 1}, psycopg.errors.UntranslatableCharacter),
    ]
    for payload, error in cases:
        with pytest.raises(error):
            db.publish("t", payload)
        # A query with the same value fails the same way.
        with pytest.raises(error):
            db.execute("SELECT %s", [Jsonb(payload)])
    with db.transaction() as tx:
        for payload, error in cases:
            with pytest.raises(error):
                tx.publish("t", payload)
        tx.publish("t", "still fine")
    assert db.fetch_val("SELECT count(*) FROM pgkeel_events") == 2
    # A literal backslash-u-0000 in a string is text, not a NUL.
    db.publish("t", "\\u0000")


def test_tables_created_once_under_concurrent_first_use(pg_url: str) -> None:
    """Eight Databases publishing at once on a fresh database: no error, one set of tables."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def first_use(i: int) -> None:
        try:
            with pgkeel.Database(pg_url, min_size=1, max_size=2, size_check="off") as db:
                barrier.wait(10)
                db.publish("t", i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first_use, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    with pgkeel.Database(pg_url, size_check="off") as db:
        assert db.fetch_val("SELECT count(*) FROM pgkeel_events") == 8


def test_schema_sql_for_migrations(db: pgkeel.Database) -> None:
    """SCHEMA_SQL applied by a migration gives tables pgkeel uses as they are; it is
    idempotent."""
    db.execute(SCHEMA_SQL)
    db.execute(SCHEMA_SQL)
    with db.subscribe("t", "c") as sub:
        db.publish("t", 1)
        assert [e.payload for e in drain(sub, 1)] == [1]


@pytest.mark.fault
def test_subscriber_survives_terminated_backends(db: pgkeel.Database, pg_url: str) -> None:
    """Every backend terminated (pool and listener) while a subscriber waits: it goes on and
    delivers what was published meanwhile, without an error reaching the caller."""
    with db.subscribe("t", "c", poll_interval=0.5) as sub:
        ids = [db.publish("t", 1)]
        drain(sub, 1)
        db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        with pgkeel.Database(pg_url, size_check="off") as publisher:
            ids += [publisher.publish("t", i) for i in range(2, 5)]
        assert [e.id for e in drain(sub, 3)] == ids[1:]


def test_first_use_inside_a_transaction_on_a_one_connection_pool(pg_url: str) -> None:
    """tx.publish as the very first use, on a pool of one connection: the tables are made on
    the transaction's own connection (no second checkout that would time out), go away with a
    rollback, and come back on the next use."""
    with pgkeel.Database(pg_url, min_size=1, max_size=1, timeout=2, size_check="off") as db:

        def rolled_back() -> None:
            with db.transaction() as tx:
                tx.publish("t", 1)
                raise RuntimeError

        with pytest.raises(RuntimeError):
            rolled_back()
        assert db.fetch_val("SELECT to_regclass('pgkeel_events') IS NULL")
        with db.transaction() as tx:
            tx.publish("t", 2)
        with db.subscribe("t", "c", start="earliest") as sub:
            assert [e.payload for e in drain(sub, 1)] == [2]
