"""stream() and pipeline() against a real server (sync face)."""

from __future__ import annotations

import dataclasses
import gc
from typing import Any

import psutil
import psycopg
import pytest

import pgkeel

pytest_plugins = ["fix_bulk"]


@dataclasses.dataclass
class Item:
    id: int
    name: str


def test_stream_yields_every_row_in_order_across_batches(db: pgkeel.Database) -> None:
    """Rows come back complete and in order when the result spans many small batches."""
    rows = list(
        db.stream("SELECT g AS id, 'n' || g AS name FROM generate_series(1, 100) g", batch_size=7)
    )
    assert rows == [{"id": i, "name": f"n{i}"} for i in range(1, 101)]


def test_stream_row_shapes(db: pgkeel.Database) -> None:
    """row= gives tuples or instances of a class built by column name."""
    query = "SELECT g AS id, 'n' || g AS name FROM generate_series(1, 3) g"
    assert list(db.stream(query, row=tuple)) == [(1, "n1"), (2, "n2"), (3, "n3")]
    assert list(db.stream(query, row=Item)) == [Item(1, "n1"), Item(2, "n2"), Item(3, "n3")]


def test_stream_with_params_and_empty_result(db: pgkeel.Database) -> None:
    """Parameters are bound; a query with no rows yields nothing."""
    query = "SELECT g FROM generate_series(1, %s) g WHERE g > %s"
    assert list(db.stream(query, (10, 8), row=tuple)) == [(9,), (10,)]
    assert list(db.stream(query, (10, 10), row=tuple)) == []


def test_stream_closed_early_frees_cursor_and_connection(db: pgkeel.Database, admin: Any) -> None:
    """Leaving a stream's with-block half way closes the cursor and ends its transaction."""
    with db.stream("SELECT * FROM generate_series(1, 1000000)", batch_size=100) as rows:
        assert next(rows) == {"generate_series": 1}
        in_tx = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND xact_start IS NOT NULL AND pid <> pg_backend_pid()"
        ).fetchone()[0]
        assert in_tx == 1
    in_tx = admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND xact_start IS NOT NULL AND pid <> pg_backend_pid()"
    ).fetchone()[0]
    assert in_tx == 0
    assert db.fetch_val("SELECT count(*) FROM pg_cursors") == 0


def test_stream_error_in_query_propagates_and_leaves_pool_healthy(db: pgkeel.Database) -> None:
    """A failing query raises the server's error when iterated; the pool still works."""
    with pytest.raises(psycopg.errors.DivisionByZero):
        list(db.stream("SELECT 1 / (g - 5) FROM generate_series(1, 10) g", batch_size=2))
    assert db.fetch_val("SELECT 1") == 1


def test_stream_inside_a_transaction_sees_its_writes(db: pgkeel.Database, admin: Any) -> None:
    """Streaming from a transaction sees its uncommitted rows and leaves it open and usable."""
    admin.execute("CREATE TABLE t (id int)")
    with db.transaction() as tx:
        tx.copy_in("t", [(1,), (2,)])
        assert list(tx.stream("SELECT id FROM t ORDER BY id", row=tuple)) == [(1,), (2,)]
        tx.execute("INSERT INTO t VALUES (3)")
    assert admin.execute("SELECT count(*) FROM t").fetchone() == (3,)


def test_stream_rejects_a_bad_batch_size(db: pgkeel.Database) -> None:
    """batch_size below 1 is refused."""
    with pytest.raises(ValueError, match="batch_size"):
        list(db.stream("SELECT 1", batch_size=0))


@pytest.mark.slow
def test_stream_of_a_million_rows_keeps_memory_flat(db: pgkeel.Database) -> None:
    """Streaming 1M rows of ~100 bytes grows RSS by less than 50 MB (the result is ~100 MB+)."""
    proc = psutil.Process()
    gc.collect()
    start = peak = proc.memory_info().rss
    n = 0
    query = (
        "SELECT g AS id, repeat('x', 100) AS pad, now() AS ts FROM generate_series(1, 1000000) g"
    )
    for row in db.stream(query):
        n += 1
        if n % 50_000 == 0:
            peak = max(peak, proc.memory_info().rss)
            assert row["id"] == n
    assert n == 1_000_000
    assert peak - start < 50 * 2**20, f"RSS grew by {(peak - start) / 2**20:.1f} MB"


# --- pipeline -----------------------------------------------------------------------------------


def test_pipeline_runs_statements_in_one_transaction(db: pgkeel.Database, admin: Any) -> None:
    """Statements queued in a pipeline all commit together; fetches inside it see earlier ones."""
    admin.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
    with db.pipeline() as p:
        for i in range(100):
            p.execute("INSERT INTO t VALUES (%s, %s)", (i, str(i)))
        p.execute_many("UPDATE t SET v = %s WHERE id = %s", [("x", i) for i in range(10)])
        assert p.fetch_val("SELECT count(*) FROM t") == 100
        assert p.fetch_one("SELECT v FROM t WHERE id = 3") == {"v": "x"}
        assert p.fetch_all("SELECT id FROM t WHERE id < 2 ORDER BY id", row=tuple) == [(0,), (1,)]
        assert p.statements == 104
    assert admin.execute("SELECT count(*), count(*) FILTER (WHERE v = 'x') FROM t").fetchone() == (
        100,
        10,
    )


def test_pipeline_error_rolls_everything_back(db: pgkeel.Database, admin: Any) -> None:
    """One failing statement in a pipeline raises and none of the statements are kept."""
    admin.execute("CREATE TABLE t (id int PRIMARY KEY)")
    with pytest.raises(psycopg.errors.UniqueViolation), db.pipeline() as p:  # noqa: PT012
        p.execute("INSERT INTO t VALUES (1)")
        p.execute("INSERT INTO t VALUES (1)")
        p.execute("INSERT INTO t VALUES (2)")
    assert admin.execute("SELECT count(*) FROM t").fetchone() == (0,)
    assert db.fetch_val("SELECT 1") == 1


def test_stream_accepts_what_a_cursor_accepted(db: pgkeel.Database) -> None:
    """A trailing semicolon or comment, % signs and braces read the same through COPY."""
    assert list(db.stream("SELECT 1 AS a;  ")) == [{"a": 1}]
    assert list(db.stream("SELECT 1 AS a -- the answer")) == [{"a": 1}]
    assert list(db.stream("SELECT '100%' AS p, '{x}'::text[] AS b", row=tuple)) == [("100%", ["x"])]
    with pytest.raises(psycopg.errors.SyntaxError):
        list(db.stream("UPDATE nothing SET x = 1"))
    assert db.fetch_val("SELECT 1") == 1
