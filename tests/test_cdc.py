"""pgkeel.cdc against the real server: typed values, TOAST, acknowledgement and resume, schema
changes, truncate, slot hygiene and the errors raised before streaming."""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psutil
import psycopg
import pytest

import pgkeel
from fix_cdc import wait_inactive
from pgkeel import cdc
from pgkeel.cdc import UNCHANGED, CdcError, CdcSetupError, SlotLostError

pytest_plugins = ["fix_cdc"]


def take(stream: cdc.Changes, n: int) -> list[tuple[cdc.Transaction, list[cdc.Change]]]:
    """The next ``n`` transactions, each read to its end."""
    out = []
    for tx in stream.transactions():
        out.append((tx, list(tx)))
        if len(out) == n:
            break
    return out


def confirmed(admin: psycopg.Connection[Any], slot: str) -> int:
    row = admin.execute(
        "SELECT confirmed_flush_lsn - '0/0'::pg_lsn FROM pg_replication_slots WHERE slot_name = %s",
        (slot,),
    ).fetchone()
    assert row is not None
    return int(row[0])


TYPES_DDL = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TABLE t (
    id bigint PRIMARY KEY, txt text, num numeric(12, 3), doc jsonb, tags text[], ints int[],
    u uuid, at timestamptz, raw bytea, flag bool, feeling mood, n posint, f float8
)
"""

ROWS = [
    {
        "id": 1,
        "txt": "quotes ' \" tab\tnewline\n back\\slash unicode é 🐘",
        "num": Decimal("123456789.125"),
        "doc": {"a": [1, 2, {"b": None}], "s": "x\ny"},
        "tags": ["a", "b c", 'd"e', None, "{}"],
        "ints": [1, -2, 3],
        "u": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "at": datetime(2024, 2, 29, 12, 30, 15, 123456, tzinfo=UTC),
        "raw": b"\x00\x01\xff\\x",
        "flag": True,
        "feeling": "happy",
        "n": 7,
        "f": 1.5,
    },
    {
        "id": 2,
        "txt": None,
        "num": None,
        "doc": None,
        "tags": [],
        "ints": None,
        "u": None,
        "at": None,
        "raw": None,
        "flag": False,
        "feeling": None,
        "n": None,
        "f": float("-inf"),
    },
]


def test_types_round_trip(cdc_url: str, admin: psycopg.Connection[Any]) -> None:
    """Insert/update/delete rows come out with the same Python values as db.fetch_one gives."""
    admin.execute(TYPES_DDL)
    with (
        pgkeel.Database(cdc_url, min_size=1, max_size=2) as db,
        cdc.changes(db, slot="rt", publication="p", create=True, tables=["t"]) as stream,
    ):
        db.copy_in("t", ROWS)
        db.execute("UPDATE t SET txt = 'changed', feeling = 'sad' WHERE id = 1")
        db.execute("DELETE FROM t WHERE id = 2")
        expected = db.fetch_all("SELECT * FROM t ORDER BY id")
        (tx1, ins), (_, upd), (_, dele) = take(stream, 3)
        assert [c.op for c in ins] == ["insert", "insert"]
        assert ins[0].new == ROWS[0]
        assert ins[1].new == ROWS[1]
        assert all(c.table == ("public", "t") for c in ins)
        assert ins[0].commit_lsn == tx1.commit_lsn
        assert upd[0].op == "update"
        assert upd[0].new == dict(expected[0])
        assert upd[0].old is None  # the key did not change: the server sends no old key
        assert dele[0].op == "delete"
        assert dele[0].old is not None
        assert dele[0].old["id"] == 2
        assert dele[0].new is None


def test_unchanged_toast_is_never_null(cdc_url: str, admin: psycopg.Connection[Any]) -> None:
    """A TOASTed value left alone by an update is UNCHANGED (default identity) or the old value
    (REPLICA IDENTITY FULL, where the server sends it), never None."""
    admin.execute("CREATE TABLE t (id int PRIMARY KEY, big text, n int)")
    admin.execute("ALTER TABLE t ALTER COLUMN big SET STORAGE EXTERNAL")  # no compression
    big = "x" * 100_000
    admin.execute("INSERT INTO t VALUES (1, %s, 0)", (big,))
    with cdc.changes(cdc_url, slot="toast", publication="p", create=True, tables=["t"]) as stream:
        admin.execute("UPDATE t SET n = 1")
        admin.execute("ALTER TABLE t REPLICA IDENTITY FULL")
        admin.execute("UPDATE t SET n = 2")
        (_, [first]), (_, [second]) = take(stream, 2)
    assert first.new is not None
    assert first.new["big"] is UNCHANGED
    assert first.new["n"] == 1
    assert second.new is not None
    assert second.new["big"] is not None
    assert second.new["big"] in (big, UNCHANGED)


def test_ack_resume_and_redelivery(cdc_url: str, admin: psycopg.Connection[Any]) -> None:
    """Only acknowledged transactions are confirmed; a new stream gets the rest again, with the
    same commit_lsn (at-least-once), and the confirmed position never passes the ack."""
    admin.execute("CREATE TABLE t (id int PRIMARY KEY)")
    with cdc.changes(cdc_url, slot="s", publication="p", create=True, tables=["t"]) as stream:
        before = confirmed(admin, "s")
        for i in range(3):  # three transactions
            admin.execute("INSERT INTO t VALUES (%s)", (i,))  # noqa: PGK005
        (tx0, _), (tx1, _), (tx2, _) = take(stream, 3)
        stream.ack(tx0)
        with pytest.raises(TypeError):
            stream.ack("0/0")  # type: ignore[arg-type]
    wait_inactive(admin, "s")  # the walsender applies the last feedback before it exits
    assert before <= confirmed(admin, "s") == tx0.end_lsn
    with cdc.changes(cdc_url, slot="s", publication="p") as stream:
        (again1, c1), (again2, c2) = take(stream, 2)
        assert (again1.commit_lsn, again2.commit_lsn) == (tx1.commit_lsn, tx2.commit_lsn)
        assert [c1[0].new, c2[0].new] == [{"id": 1}, {"id": 2}]
        stream.ack()  # everything read so far
    wait_inactive(admin, "s")
    assert confirmed(admin, "s") == tx2.end_lsn


def test_ack_before_the_end_is_refused(cdc_url: str, admin: psycopg.Connection[Any]) -> None:
    """ack(tx) while tx is still being read raises: it would confirm changes not yet seen."""
    admin.execute("CREATE TABLE t (id int PRIMARY KEY)")
    with cdc.changes(cdc_url, slot="s", publication="p", create=True, tables=["t"]) as stream:
        admin.execute("INSERT INTO t VALUES (1), (2)")
        tx = next(stream.transactions())
        first = next(iter(tx))
        assert first.new == {"id": 1}
        with pytest.raises(CdcError, match="read to its end"):
            stream.ack(tx)
    wait_inactive(admin, "s")
    assert confirmed(admin, "s") < (tx.commit_lsn + 1)


def test_flat_iteration(cdc_url: str, admin: psycopg.Connection[Any]) -> None:
    """Iterating the stream itself gives the changes of every transaction in order."""
    admin.execute("CREATE TABLE t (id int PRIMARY KEY)")
    with cdc.changes(cdc_url, slot="s", publication="p", create=True, tables=["t"]) as stream:
        admin.execute("INSERT INTO t VALUES (1), (2)")
        admin.execute("INSERT INTO t VALUES (3)")
        got = []
        for change in stream:
            got.append(change.new)
            if len(got) == 3:
                break
    assert got == [{"id": 1}, {"id": 2}, {"id": 3}]


def test_schema_changes_mid_stream(cdc_url: str, admin: psycopg.Connection[Any]) -> None:
    """A column added, retyped, then dropped mid-stream: each row decodes with its own shape."""
    admin.execute("CREATE TABLE t (id int PRIMARY KEY, a text)")
    with cdc.changes(cdc_url, slot="s", publication="p", create=True, tables=["t"]) as stream:
        admin.execute("INSERT INTO t VALUES (1, 'x')")
        admin.execute("ALTER TABLE t ADD COLUMN b int")
        admin.execute("INSERT INTO t VALUES (2, 'y', 5)")
        admin.execute("ALTER TABLE t ALTER COLUMN b TYPE numeric")
        admin.execute("INSERT INTO t VALUES (3, 'z', 6.5)")
        admin.execute("ALTER TABLE t DROP COLUMN a")
        admin.execute("INSERT INTO t VALUES (4, 7)")
        rows = [changes[0].new for _, changes in take(stream, 4)]
    assert rows == [
        {"id": 1, "a": "x"},
        {"id": 2, "a": "y", "b": 5},
        {"id": 3, "a": "z", "b": Decimal("6.5")},
        {"id": 4, "b": Decimal(7)},
    ]


def test_truncate(cdc_url: str, admin: psycopg.Connection[Any]) -> None:
    """TRUNCATE of two tables gives one truncate change per table."""
    admin.execute("CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY)")
    with cdc.changes(cdc_url, slot="s", publication="p", create=True, tables=["a", "b"]) as stream:
        admin.execute("TRUNCATE a, b")
        [(_, changes)] = take(stream, 1)
    assert sorted((c.op, c.table) for c in changes) == [
        ("truncate", ("public", "a")),
        ("truncate", ("public", "b")),
    ]


def test_slot_lost_between_runs_is_an_error(cdc_url: str, admin: psycopg.Connection[Any]) -> None:
    """A slot pgkeel created and that was dropped is SlotLostError, even with create=True; after
    `drop_slot` forgets it, create=True starts again."""
    admin.execute("CREATE TABLE t (id int PRIMARY KEY)")
    with cdc.changes(cdc_url, slot="s", publication="p", create=True, tables=["t"]):
        pass
    wait_inactive(admin, "s")
    admin.execute("SELECT pg_drop_replication_slot('s')")
    with (
        pytest.raises(SlotLostError, match="may have been lost"),
        cdc.changes(cdc_url, slot="s", publication="p", create=True),
    ):
        pass
    assert cdc.drop_slot(admin, "s") is False
    wait_inactive(admin, "s")
    with cdc.changes(cdc_url, slot="s", publication="p", create=True):
        pass


def test_slot_dropped_while_streaming_fails_loudly(
    cdc_url: str, admin: psycopg.Connection[Any]
) -> None:
    """Terminating the consumer's walsender and dropping its slot raises from the iteration."""
    admin.execute("CREATE TABLE t (id int PRIMARY KEY)")
    with cdc.changes(cdc_url, slot="s", publication="p", create=True, tables=["t"]) as stream:
        admin.execute("INSERT INTO t VALUES (1)")
        take(stream, 1)
        pid = admin.execute("SELECT active_pid FROM pg_replication_slots WHERE slot_name = 's'")
        admin.execute("SELECT pg_terminate_backend(%s)", (pid.fetchone()[0],))  # type: ignore[index]
        wait_inactive(admin, "s")
        admin.execute("SELECT pg_drop_replication_slot('s')")
        with pytest.raises((psycopg.Error, CdcError, Exception)) as info:
            take(stream, 1)
    assert "terminat" in str(info.value) or "closed" in str(info.value)


def test_slots_reports_lag(cdc_url: str, admin: psycopg.Connection[Any]) -> None:
    """list_slots shows the slot, its retained WAL and a lag that grows with unread changes."""
    admin.execute("CREATE TABLE t (id int PRIMARY KEY)")
    with cdc.changes(cdc_url, slot="s", publication="p", create=True, tables=["t"]):
        pass
    wait_inactive(admin, "s")
    admin.execute("INSERT INTO t SELECT generate_series(1, 1000)")
    [info] = [s for s in cdc.list_slots(admin) if s.name == "s"]
    assert info.recorded
    assert not info.active
    assert info.lag_seconds is None
    assert info.lag_bytes is not None
    assert info.lag_bytes > 0
    assert info.retained_bytes is not None
    assert info.retained_bytes >= info.lag_bytes


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"slot": "s", "publication": "nope"}, "publication 'nope' does not exist"),
        ({"slot": "Bad-Name", "publication": "p"}, "slot name 'Bad-Name' is not valid"),
        ({"slot": "s'; DROP TABLE t; --", "publication": "p"}, "slot name"),
        ({"slot": "s", "publication": "a,b"}, "publication name"),
        ({"slot": "s", "publication": "x" * 64}, "publication name"),
        ({"slot": "s\0", "publication": "p"}, "slot name"),
        ({"slot": 5, "publication": "p"}, "slot name 5"),
        ({"slot": "missing", "publication": "p", "create": False}, "pass create=True"),
    ],
)
def test_setup_errors(
    cdc_url: str, admin: psycopg.Connection[Any], kwargs: dict[str, Any], match: str
) -> None:
    """Bad names, a missing publication or slot: a CdcSetupError naming the fix, no slot made."""
    admin.execute("CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION p FOR TABLE t")
    kwargs.setdefault("create", True)
    with pytest.raises(CdcSetupError, match=match), cdc.changes(cdc_url, **kwargs):
        pass
    assert admin.execute("SELECT count(*) FROM pg_replication_slots").fetchone() == (0,)


def test_table_without_replica_identity(cdc_url: str, admin: psycopg.Connection[Any]) -> None:
    """A published table without primary key or replica identity is refused before streaming."""
    admin.execute("CREATE TABLE nokey (v int)")
    with (
        pytest.raises(CdcSetupError, match="REPLICA IDENTITY FULL"),
        cdc.changes(cdc_url, slot="s", publication="p", create=True, tables=["nokey"]),
    ):
        pass


def test_role_without_replication(cdc_url: str, admin: psycopg.Connection[Any]) -> None:
    """A role lacking REPLICATION gets the ALTER ROLE fix, before any slot is made."""
    admin.execute("CREATE ROLE cdc_norepl LOGIN PASSWORD 'pw-secret-123'")
    try:
        admin.execute("GRANT ALL ON SCHEMA public TO cdc_norepl")
        url = psycopg.conninfo.make_conninfo(cdc_url, user="cdc_norepl", password="pw-secret-123")
        with (
            pytest.raises(CdcSetupError, match="ALTER ROLE cdc_norepl REPLICATION") as info,
            cdc.changes(url, slot="s", publication="p", create=True),
        ):
            pass
        assert "pw-secret-123" not in str(info.value)
    finally:
        admin.execute("DROP OWNED BY cdc_norepl")
        admin.execute("DROP ROLE cdc_norepl")


def test_bad_arguments() -> None:
    """Wrong types for the source and status interval are refused at once."""
    with pytest.raises(TypeError, match="Database or a URL"):
        cdc.changes(42, slot="s", publication="p")
    with pytest.raises(ValueError, match="status_interval"):
        cdc.changes("postgresql://x/y", slot="s", publication="p", status_interval=0)


def test_slow_consumer_keeps_the_connection(cdc_url: str, admin: psycopg.Connection[Any]) -> None:
    """Status updates go out while the application does not read and the reader is blocked on
    a full queue: with wal_sender_timeout=1s, a 3 s pause does not end the connection."""
    admin.execute("CREATE TABLE t (id int PRIMARY KEY)")
    url = psycopg.conninfo.make_conninfo(cdc_url, options="-c wal_sender_timeout=1000")
    with cdc.changes(
        url, slot="s", publication="p", create=True, tables=["t"], status_interval=0.2
    ) as stream:
        admin.execute("INSERT INTO t VALUES (0)")
        # More rows than the reader's queue holds: it stops reading the socket while we pause.
        admin.execute("INSERT INTO t SELECT generate_series(1, 50000)")
        ((tx, _),) = take(stream, 1)
        stream.ack(tx)
        time.sleep(3)
        ((_, changes),) = take(stream, 1)
    assert len(changes) == 50000


@pytest.mark.slow
def test_million_row_transaction_memory_is_flat(
    cdc_url: str, admin: psycopg.Connection[Any]
) -> None:
    """A 1M-row transaction is handed out row by row: peak RSS grows by far less than its size."""
    admin.execute("CREATE TABLE t (id int PRIMARY KEY, pad text)")
    proc = psutil.Process(os.getpid())
    peak = [proc.memory_info().rss]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], proc.memory_info().rss)

    with cdc.changes(cdc_url, slot="s", publication="p", create=True, tables=["t"]) as stream:
        admin.execute("INSERT INTO t SELECT i, repeat('p', 100) FROM generate_series(1, 1000000) i")
        start = proc.memory_info().rss
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            count = 0
            tx = next(stream.transactions())
            for _ in tx:
                count += 1
            stream.ack(tx)
        finally:
            done.set()
            watcher.join()
    assert count == 1_000_000
    # The transaction's rows as dicts would take well over 300 MB.
    assert peak[0] - start < 60 * 2**20


def test_readme_cdc_example_runs(cdc_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's CDC example runs as written and prints the insert and the update."""
    import re
    from pathlib import Path

    text = (Path(__file__).parent.parent / "README.md").read_text()
    section = text.split("## Change data capture", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match
    monkeypatch.setenv("DATABASE_URL", cdc_url)
    printed: list[tuple[Any, ...]] = []
    exec(compile(match.group(1), "README.md", "exec"), {"print": lambda *a: printed.append(a)})  # noqa: S102
    table = ("public", "products")
    assert printed == [
        ("insert", table, {"id": 1, "name": "kettle", "price": Decimal("24.90")}, None),
        ("update", table, {"id": 1, "name": "kettle", "price": Decimal("19.90")}, None),
    ]


def test_database_changes_method(cdc_url: str, admin: psycopg.Connection[Any]) -> None:
    """db.changes(...) is pgkeel.cdc.changes on the Database's own settings."""
    admin.execute("CREATE TABLE t (id int PRIMARY KEY, doc jsonb)")
    with (
        pgkeel.Database(cdc_url, min_size=1, max_size=2) as db,
        db.changes(slot="m", publication="p", create=True, tables=["t"]) as stream,
    ):
        db.execute("INSERT INTO t VALUES (1, %s)", [{"a": [1, 2]}])
        ((tx, rows),) = take(stream, 1)
        assert [c.new for c in rows] == [{"id": 1, "doc": {"a": [1, 2]}}]
        stream.ack(tx)
