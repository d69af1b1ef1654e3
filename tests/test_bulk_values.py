"""Values in the bulk paths: copy_in and upsert store each value exactly as an INSERT would.

The table below gives, per column type, Python values to store. For each value ``execute("INSERT
... VALUES (%s)")``, ``copy_in`` and ``upsert`` run on an empty table and must agree: the same
stored value, or all three refuse (the bulk paths with a pgkeel error naming the row, the column
and the types, or the server's error with a note saying the same; the table left empty). Two
kinds of values are marked: ``CONVERTS`` where an INSERT converts the value on the server (a
float rounded into an integer, a str parsed as a date) and the bulk paths refuse it instead of
guessing; ``Via(x)`` where the bulk paths store a value an INSERT refuses as it is, exactly as
the INSERT stores ``x``.
"""

from __future__ import annotations

import datetime as dt
import enum
import io
import threading
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

import pgkeel
from pgkeel.errors import BadValueError, NotStorableError

pytest_plugins = ["fix_bulk"]

UTC = dt.UTC
UID = uuid.UUID("12345678-1234-5678-1234-567812345678")


class Level(enum.IntEnum):
    HIGH = 3


class Converts:
    """An INSERT converts this value on the server; the bulk paths refuse it (BadValueError)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Converts({self.value!r})"


class Via:
    """The bulk paths store ``value`` as an INSERT stores ``insert`` (it refuses ``value``)."""

    def __init__(self, value: Any, insert: Any) -> None:
        self.value = value
        self.insert = insert

    def __repr__(self) -> str:
        return f"Via({self.value!r})"


CASES: dict[str, list[Any]] = {
    "int2": [1, -32768, 32767, 70000, -32769, True, Converts("12"), Converts(1.7), "x"],
    "int4": [
        *(0, 2**31 - 1, -(2**31), 2**31, 2**40, -(2**31) - 1, True, False),
        *(Converts("12"), Converts(1.7), Converts(2.5), Converts(Decimal("1.0")), None),
        Level.HIGH,
    ],
    "int8": [2**63 - 1, -(2**63), 2**63, 2**70, True, Converts(Decimal(5))],
    "oid": [0, 2**32 - 1, 2**32, -1, -(2**31), -(2**31) - 1, True],
    "float4": [
        *(1.5, 1, 0.1, 1e300, -1e300, 1e-50, 1e-45, float("nan"), float("inf")),
        *(True, Converts("2.5"), Converts(Decimal("1.1"))),
    ],
    "float8": [
        *(1.5, 1, 2**70, 0.1, float("-inf"), Decimal("1.1"), Decimal("1e400"), True),
        Converts("2.5"),
    ],
    "numeric(5,2)": [
        *(Decimal("123.456"), Decimal("12345.6"), 3, Decimal("NaN"), True),
        *(Converts(1.005), Converts("1.5")),
    ],
    "numeric": [Decimal("12345678901234567890.123456789"), 2**70, Decimal("-0.00"), Level.HIGH],
    "varchar(3)": ["abc", "abcd", "abc ", "", Converts(5), b"ab"],
    "char(3)": ["ab", "abcd", "abc   "],
    "text": [
        "plain",
        "a\x00b",
        "ü ✓ 🐘",
        Converts(5),
        Converts(1.5),
        Converts(True),
        Converts(b"x"),
    ],
    "bool": [True, False, 1, 0, 2, Converts("t"), Converts("yes"), None],
    "date": [
        *(dt.date(2020, 1, 1), dt.date(1, 1, 1), dt.date(9999, 12, 31)),
        *(Converts(dt.datetime(2020, 1, 1, 5, tzinfo=UTC)), dt.datetime(2020, 1, 1, 5)),
        Converts("2020-01-02"),
    ],
    "timestamp": [
        Via(dt.datetime(2020, 1, 1, 5, 6, 7, 8), "2020-01-01 05:06:07.000008"),
        *(Converts(dt.datetime(2020, 1, 1, 5, tzinfo=UTC)), Converts(dt.date(2020, 1, 1))),
        Converts("2020-01-02 03:04"),
    ],
    "timestamptz": [
        *(dt.datetime(2020, 1, 1, 5, tzinfo=UTC), dt.datetime(2020, 1, 1, 5)),
        *(Converts(dt.date(2020, 1, 1)), Converts("2020-01-02 03:04+00")),
    ],
    "uuid": [
        *(UID, str(UID), str(UID).upper(), "{" + str(UID) + "}", UID.hex),
        *("nope", "urn:uuid:" + str(UID), str(UID)[:-1], 5),
    ],
    "bytea": [b"ab", b"", bytearray(b"x"), memoryview(b"y"), Converts("ab"), 3, True],
    "jsonb": [
        *({"a": 1}, {"a": 2**70}, {1: "a", None: [True]}, {"d": Decimal("1.50")}),
        *({"big": Decimal("123456789012345678901234567890")}, {"f": 0.1}, '{"k": [1, 2]}'),
        *('"text"', "not json", Jsonb("s"), Jsonb([1])),
        Via([1, 2], Jsonb([1, 2])),
        *(2**70, Decimal("1.5"), 5, {"nan": float("nan")}, {"d": Decimal("NaN")}),
    ],
    "json": [{"a": 1}, {"a": 2**70}, '{"k": 1}', "nope"],
    "int4[]": [[1, 2], [1, None], [[1, 2], [3, 4]], [2**40], [True], Converts(["1"]), []],
    "text[]": [["a", None], [["a"], ["b"]], ["a,b", '"q"'], [], Converts([5])],
    "mood": ["sad", "nope", 5],
    "posint": [5, 0, -1, 2**40, True],
    "float8[]": [[1.5, None], [True]],
}


def _outcome(
    admin: psycopg.Connection[Any], run: Any
) -> tuple[str, str | None, BaseException | None]:
    """Run ``run()`` on an empty table; ('stored', text of the value, None) or ('refused', ...)."""
    admin.execute("TRUNCATE x")
    try:
        run()
    except (pgkeel.errors.Error, psycopg.Error) as exc:
        assert admin.execute("SELECT count(*) FROM x").fetchone() == (0,), "half-written"
        return "refused", None, exc
    stored = admin.execute("SELECT to_jsonb(c)::text FROM x").fetchall()
    assert len(stored) == 1
    return "stored", stored[0][0], None


@pytest.mark.parametrize("coltype", list(CASES))
def test_copy_in_and_upsert_store_what_insert_stores(
    db: pgkeel.Database, admin: psycopg.Connection[Any], coltype: str
) -> None:
    """Per column type and value, copy_in and upsert store what INSERT stores, or all refuse."""
    admin.execute("CREATE TYPE mood AS ENUM ('sad', 'happy')")
    admin.execute("CREATE DOMAIN posint AS int CHECK (VALUE > 0)")
    admin.execute(
        # The column types are this file's own constants (CASES), not input.
        sql.SQL("CREATE TABLE x (id int PRIMARY KEY, c {})").format(sql.SQL(coltype))  # type: ignore[arg-type]  # noqa: PGK001
    )
    insert = "INSERT INTO x VALUES (1, %s)"
    for case in CASES[coltype]:
        value = case.value if isinstance(case, Converts | Via) else case
        as_insert = case.insert if isinstance(case, Via) else value
        expected = _outcome(admin, lambda v=as_insert: db.execute(insert, (v,)))
        for name, bulk in (
            ("copy_in", lambda v=value: db.copy_in("x", [(1, v)])),
            ("upsert", lambda v=value: db.upsert("x", [{"id": 1, "c": v}], key="id")),
        ):
            got = _outcome(admin, bulk)
            where = f"{coltype} {case!r} {name}: INSERT {expected[:2]}, bulk {got[:2]}"
            if isinstance(case, Converts):
                assert expected[0] == "stored", where
                assert isinstance(got[2], BadValueError), where
            else:
                assert got[:2] == expected[:2], where
            if isinstance(got[2], BadValueError):
                assert (got[2].row, got[2].column) == (1, "c"), where
                assert got[2].value_type == type(value).__name__, where
                assert f"row 1, column 'c' ({got[2].column_type})" in str(got[2]), where
            elif isinstance(got[2], psycopg.Error):
                # The server refused what only it can check: its error gets a note.
                assert "row 1, column 'c'" in "".join(getattr(got[2], "__notes__", [])), where
    # Every refusal left the connection clean.
    assert db.fetch_val("SELECT 41 + 1") == 42


def test_refused_value_names_its_row_in_a_long_load_and_leaves_nothing(
    db: pgkeel.Database, admin: psycopg.Connection[Any]
) -> None:
    """A value refused at row 25,003 of dict rows names that row, its column and both types."""
    admin.execute("CREATE TABLE t (id int PRIMARY KEY, n int, v varchar(3))")
    rows = [{"id": i, "n": i, "v": "ok"} for i in range(1, 30_001)]
    rows[25_002]["n"] = 2**31
    with pytest.raises(BadValueError) as info:
        db.copy_in("t", rows)
    err = info.value
    assert (err.row, err.column, err.column_type, err.value_type) == (25_003, "n", "integer", "int")
    assert "out of range for integer" in str(err)
    rows[25_002]["n"] = 1
    rows[25_004]["v"] = "long"  # only the server knows varchar(3): its error gets a note
    with pytest.raises(psycopg.errors.StringDataRightTruncation) as server:
        db.upsert("t", rows, key="id")
    note = "".join(server.value.__notes__)
    assert "row 25005, column 'v' (character varying(3)): a value of type str" in note
    assert admin.execute("SELECT count(*) FROM t").fetchone() == (0,)
    with db.transaction() as tx:
        tx.execute("INSERT INTO t VALUES (0, 0, 'a')")
        with pytest.raises(BadValueError):
            tx.copy_in("t", [(1, True, "b")])
        tx.execute("INSERT INTO t VALUES (2, 2, 'c')")
    assert admin.execute("SELECT id FROM t ORDER BY id").fetchall() == [(0,), (2,)]


def test_rows_of_the_wrong_length_are_refused(
    db: pgkeel.Database, admin: psycopg.Connection[Any]
) -> None:
    """A tuple shorter or longer than the columns fails the COPY (even past a checked column)."""
    admin.execute("CREATE TABLE t (a int, b int)")
    for rows in ([(1, 2), (1,)], [(1, 2, 3)]):
        with pytest.raises(psycopg.DataError, match="expected 2 values in row"):
            db.copy_in("t", rows)
    with pytest.raises((psycopg.DataError, BadValueError)):
        db.copy_in("t", [(1, 1), (2**40, 1), (1,)])
    assert admin.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_async_copy_in_and_upsert_store_exactly_or_refuse(
    arun: Any, admin: psycopg.Connection[Any]
) -> None:
    """The asyncio face refuses the same values (no wrapped integer) and accepts a uuid str."""
    admin.execute("CREATE TABLE t (id int PRIMARY KEY, n int2, u uuid, ts timestamptz)")
    now = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)

    async def body(adb: pgkeel.AsyncDatabase) -> list[BaseException]:
        errors: list[BaseException] = []
        for bad in [
            (1, 70000, UID, now),
            (1, 1, "nope", now),
            (1, 1, UID, now.replace(tzinfo=None)),
        ]:
            for call in (
                adb.copy_in("t", [(0, 0, UID, now), bad]),
                adb.upsert("t", [(0, 0, UID, now), bad], key="id"),
            ):
                try:
                    await call
                except BadValueError as exc:
                    errors.append(exc)
        await adb.copy_in("t", [(1, 7, str(UID), now)])
        await adb.upsert("t", [(1, 8, UID.hex, now)], key="id")
        return errors

    errors = arun(body)
    assert [(e.row, e.column) for e in errors] == [(2, "n")] * 2 + [(2, "u")] * 2 + [(2, "ts")] * 2
    assert "naive datetime" in str(errors[-1])
    assert admin.execute("SELECT * FROM t").fetchall() == [(1, 8, UID, now)]


def test_column_type_changed_by_another_session_is_seen(
    pg_url: str, admin: psycopg.Connection[Any]
) -> None:
    """After another session's ALTER COLUMN ... TYPE real, copy_in stores 1.0 and 2.0, not 1e-45."""
    admin.execute("CREATE TABLE f (c int)")
    with pgkeel.Database(pg_url, min_size=1, max_size=1) as db:  # one connection for both calls
        db.copy_in("f", [(1,)])
        admin.execute("ALTER TABLE f ALTER COLUMN c TYPE real")
        admin.execute("TRUNCATE f")
        db.copy_in("f", [(1,), (2,)])
    assert admin.execute("SELECT c FROM f ORDER BY c").fetchall() == [(1.0,), (2.0,)]


def test_json_values_are_read_and_written_unchanged(
    db: pgkeel.Database, admin: psycopg.Connection[Any]
) -> None:
    """jsonb numbers beyond a double or 64 bits are read exactly; what orjson cannot write
    (2**70, non-str keys, Decimal) is written as the stdlib json would, digit for digit."""
    admin.execute("CREATE TABLE j (id int, v jsonb, w json)")
    big = 123456789012345678901234567890
    admin.execute(
        "INSERT INTO j VALUES (1, %s, %s)",
        ('{"i": 123456789012345678901234567890, "f": 0.1000000000000000055511151231257827}',) * 2,
    )
    expected = {"i": big, "f": Decimal("0.1000000000000000055511151231257827")}
    assert db.fetch_val("SELECT v FROM j") == expected
    assert db.fetch_val("SELECT w FROM j") == expected
    assert db.fetch_val("SELECT %s::jsonb", (str(big),)) == big
    assert [r["v"] for r in db.stream("SELECT v FROM j")] == [expected]
    assert db.fetch_val('SELECT \'{"x": 1.5, "y": 12}\'::jsonb') == {"x": 1.5, "y": 12}
    # Written: execute, copy_in and upsert agree, and reading gives the value back.
    value = {"n": 2**70, 1: "one", "d": Decimal("1.50"), "back": expected}
    text = '{"1": "one", "d": 1.50, "n": 1180591620717411303424, "back": {"f": 0.1000000000000000055511151231257827, "i": 123456789012345678901234567890}}'  # noqa: E501
    admin.execute("TRUNCATE j")
    db.execute("INSERT INTO j (id, v) VALUES (1, %s)", (value,))
    db.copy_in("j", [{"id": 2, "v": value}])
    stored = admin.execute("SELECT v = %s::jsonb FROM j ORDER BY id", (text,)).fetchall()
    assert stored == [(True,), (True,)]
    assert db.fetch_val("SELECT v FROM j WHERE id = 2")["n"] == 2**70
    with pytest.raises(NotStorableError, match="Decimal NaN"):
        db.execute("SELECT %s::jsonb", ({"d": Decimal("NaN")},))


class _ThreadRecordingFile(io.BytesIO):
    """A file that records the threads its read() and write() ran on."""

    def __init__(self, data: bytes = b"") -> None:
        super().__init__(data)
        self.threads: set[int] = set()

    def read(self, size: int | None = -1) -> bytes:
        self.threads.add(threading.get_ident())
        return super().read(size)

    def readline(self, size: int | None = -1) -> bytes:
        self.threads.add(threading.get_ident())
        return super().readline(size)

    def write(self, data: Any) -> int:
        self.threads.add(threading.get_ident())
        return super().write(data)


def test_async_copy_file_io_runs_off_the_event_loop(
    arun: Any, admin: psycopg.Connection[Any], tmp_path: Path
) -> None:
    """AsyncDatabase.copy_in_csv and copy_out read and write files outside the loop's thread."""
    admin.execute("CREATE TABLE t (id int, name text)")
    source = _ThreadRecordingFile(
        b"id,name\n" + b"".join(b"%d,n%d\n" % (i, i) for i in range(5000))
    )
    out = _ThreadRecordingFile()

    async def body(adb: pgkeel.AsyncDatabase) -> int:
        loop_thread = threading.get_ident()
        assert await adb.copy_in_csv("t", source) == 5000
        assert await adb.copy_out("SELECT * FROM t ORDER BY id", out) == 5000
        await adb.copy_out("t", tmp_path / "t.csv")
        return loop_thread

    loop_thread = arun(body)
    assert source.threads
    assert loop_thread not in source.threads
    assert out.threads
    assert loop_thread not in out.threads
    assert out.getvalue().startswith(b"id,name\n0,n0\n1,n1\n")
    assert out.getvalue().count(b"\n") == 5001
    assert (tmp_path / "t.csv").read_bytes() == out.getvalue()


def test_pipeline_sync_uses_the_public_pipeline(db: pgkeel.Database) -> None:
    """Pipeline.sync() waits for queued statements and raises the first error among them."""
    reached: list[str] = []

    def run() -> None:
        with db.pipeline() as p:
            p.execute("SELECT 1")
            p.execute("SELECT 1 / 0")
            p.sync()
            reached.append("after sync")

    with pytest.raises(psycopg.errors.DivisionByZero):
        run()
    assert reached == []
    assert db.fetch_val("SELECT 1") == 1
