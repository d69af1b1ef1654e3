"""copy_in, copy_in_csv, copy_out and upsert against a real server (sync face)."""

from __future__ import annotations

import datetime as dt
import importlib
import io
import ipaddress
import itertools
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

import pgkeel
from pgkeel.errors import (
    BadValueError,
    ColumnNotFoundError,
    DuplicateKeyError,
    IdentifierError,
    RowError,
    TableNotFoundError,
)

pytest_plugins = ["fix_bulk"]

TZ = dt.timezone(dt.timedelta(hours=5, minutes=30))

EVERY_TYPE_DDL = """
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE every_type (
    id int PRIMARY KEY, t text, vc varchar(40), b bool, i2 int2, i8 int8, f8 float8,
    n numeric, n2 numeric(10, 2), u uuid, ts timestamptz, tsn timestamp, d date, by bytea,
    j jsonb, js json, ta text[], ia int[], m mood, p posint, iv interval, ip inet
)
"""

EVERY_TYPE_ROWS: list[tuple[Any, ...]] = [
    (
        1,
        "tab\there, quote \" and ', new\nline\r\n, back\\slash \\N, unicode ✓ 日本 🐘",
        "",
        True,
        -32768,
        2**62,
        float("inf"),
        Decimal("12345678901234567890.123456789"),
        Decimal("-99999999.99"),
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        dt.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=TZ),
        dt.datetime(1999, 12, 31, 0, 0, 1),
        dt.date(1, 1, 1),
        bytes(range(256)),
        {"nested": [1, "two", None, {"x": "ü\n\t\"'\\"}], "empty": {}},
        [1, "a", None],
        ["a,b", 'c"d', None, "", "e\\f", "{}", "NULL"],
        [1, None, 3],
        "happy",
        7,
        dt.timedelta(days=-3, seconds=5, microseconds=1),
        ipaddress.ip_address("10.1.2.3"),
    ),
    (2, *([None] * 21)),
    (
        *(3, "", "", False, 0, 0, -0.0, Decimal(0), Decimal("0.00"), uuid.UUID(int=0)),
        *(dt.datetime(1970, 1, 1, tzinfo=dt.UTC), dt.datetime(1970, 1, 1), dt.date(2000, 1, 1)),
        *(b"", [], {"": ""}, [], [], "sad", 1, dt.timedelta(0), ipaddress.ip_address("::1")),
    ),
]
COLUMNS = (
    "id t vc b i2 i8 f8 n n2 u ts tsn d by j js ta ia m p iv ip".split()  # noqa: SIM905
)


def rows_of(admin: psycopg.Connection[Any], table: str | sql.Composable) -> list[tuple[Any, ...]]:
    ident = sql.Identifier(table) if isinstance(table, str) else table
    return admin.execute(sql.SQL("SELECT * FROM {} ORDER BY 1").format(ident)).fetchall()


def count(admin: psycopg.Connection[Any], table: str) -> int:
    record = admin.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
    return record.fetchone()[0]  # type: ignore[index]


def assert_healthy(db: Any) -> None:
    assert db.fetch_val("SELECT 41 + 1") == 42


def test_copy_in_every_type_round_trips_through_stream(db: Any, admin: Any) -> None:
    """Every common type (odd text, NULL vs '', arrays, json, numeric...) survives copy_in."""
    admin.execute(EVERY_TYPE_DDL)
    assert db.copy_in("every_type", EVERY_TYPE_ROWS) == 3
    assert list(db.stream("SELECT * FROM every_type ORDER BY id", row=tuple)) == EVERY_TYPE_ROWS
    dicts = list(db.stream("SELECT * FROM every_type ORDER BY id"))
    assert dicts == [dict(zip(COLUMNS, r, strict=True)) for r in EVERY_TYPE_ROWS]
    assert dicts[1]["t"] is None
    assert dicts[2]["t"] == ""


def test_copy_in_dicts_map_by_name_in_any_order(db: Any, admin: Any) -> None:
    """Dict rows are mapped by column name whatever their key order; absent columns get defaults."""
    admin.execute("CREATE TABLE t (id int, name text, note text DEFAULT 'dflt')")
    rows = [{"name": "a", "id": 1}, {"id": 2, "name": "b"}]
    assert db.copy_in("t", rows) == 2
    assert rows_of(admin, "t") == [(1, "a", "dflt"), (2, "b", "dflt")]


def test_copy_in_accepts_a_generator_and_reports_progress(db: Any, admin: Any) -> None:
    """A generator of rows streams in, and progress gets increasing counts ending at the total."""
    admin.execute("CREATE TABLE t (id int, v text)")
    seen: list[int] = []
    n = db.copy_in("t", ((i, str(i)) for i in range(25_001)), progress=seen.append)
    assert n == 25_001
    assert seen == [10_000, 20_000, 25_001]
    assert count(admin, "t") == 25_001


def test_copy_in_empty_iterable_writes_nothing(db: Any, admin: Any) -> None:
    """No rows is not an error: 0 is returned and nothing is written."""
    admin.execute("CREATE TABLE t (id int)")
    assert db.copy_in("t", iter([])) == 0
    assert count(admin, "t") == 0


def test_copy_in_unknown_column_fails_before_sending(db: Any, admin: Any) -> None:
    """A dict key or columns= entry the table lacks raises ColumnNotFoundError; no rows sent."""
    admin.execute("CREATE TABLE t (id int, name text)")
    consumed = []

    def rows() -> Iterator[dict[str, Any]]:
        for i in range(5):
            consumed.append(i)
            yield {"id": i, "nmae": "typo"}

    with pytest.raises(ColumnNotFoundError, match=r"'nmae'.*'id', 'name'"):
        db.copy_in("t", rows())
    assert consumed == [0]
    with pytest.raises(ColumnNotFoundError, match="'nope'"):
        db.copy_in("t", [(1,)], columns=["nope"])
    assert count(admin, "t") == 0
    assert_healthy(db)


def test_copy_in_dict_missing_a_key_aborts_everything(db: Any, admin: Any) -> None:
    """A later dict row without one of the columns raises RowError naming row and key; none kept."""
    admin.execute("CREATE TABLE t (id int, name text)")
    rows = [{"id": i, "name": "x"} for i in range(15_000)]
    del rows[12_345]["name"]
    with pytest.raises(RowError, match="row 12346 has no value for column 'name'"):
        db.copy_in("t", rows)
    assert count(admin, "t") == 0
    assert_healthy(db)


def test_copy_in_missing_table_names_it(db: Any) -> None:
    """A table that does not exist raises TableNotFoundError, with a hint for a dotted name."""
    with pytest.raises(TableNotFoundError, match="'nosuch' does not exist"):
        db.copy_in("nosuch", [(1,)])
    with pytest.raises(TableNotFoundError, match=r"pass \('public', 'nosuch'\)"):
        db.copy_in("public.nosuch", [(1,)])


def test_copy_in_iterator_raising_half_way_leaves_table_empty(db: Any, admin: Any) -> None:
    """An exception from the row iterator half way aborts the COPY: no rows, connection usable."""
    admin.execute("CREATE TABLE t (id int)")

    class Boom(Exception):
        pass

    def rows() -> Iterator[tuple[int]]:
        for i in range(50_000):
            if i == 25_000:
                raise Boom
            yield (i,)

    with pytest.raises(Boom):
        db.copy_in("t", rows())
    assert count(admin, "t") == 0
    assert_healthy(db)
    assert db.copy_in("t", [(1,)]) == 1


@pytest.mark.slow
def test_copy_in_bad_value_at_row_500001_leaves_table_empty(db: Any, admin: Any) -> None:
    """A value the server rejects at row 500,001 aborts the whole COPY, the error's note names
    the row and column; the pool stays usable."""
    admin.execute("CREATE TABLE t (id int, price numeric(10, 2))")

    def rows() -> Iterator[tuple[int, Decimal]]:
        for i in range(1, 600_001):
            yield (i, Decimal("1e12") if i == 500_001 else Decimal("9.99"))

    with pytest.raises(psycopg.errors.NumericValueOutOfRange) as info:
        db.copy_in("t", rows())
    assert "row 500001, column 'price' (numeric(10,2))" in "".join(info.value.__notes__)
    assert count(admin, "t") == 0
    assert_healthy(db)


def test_copy_in_wrong_python_type_aborts_cleanly(db: Any, admin: Any) -> None:
    """A value of the wrong Python type for the column's catalog type fails, leaving nothing."""
    admin.execute("CREATE TABLE t (id int, n int)")
    with pytest.raises(BadValueError, match=r"row 2, column 'n' \(integer\).* str"):
        db.copy_in("t", [(1, 2), (2, "three")])
    assert count(admin, "t") == 0
    assert_healthy(db)


def test_copy_in_is_part_of_the_callers_transaction(db: Any, admin: Any) -> None:
    """Inside transaction(), copy_in's rows are rolled back with the caller's transaction."""
    if not hasattr(db, "transaction"):
        pytest.skip("needs pgkeel.Database")
    admin.execute("CREATE TABLE t (id int)")

    class Abort(Exception):
        pass

    def body() -> None:
        with db.transaction() as tx:
            assert tx.copy_in("t", [(1,), (2,)]) == 2
            assert tx.fetch_val("SELECT count(*) FROM t") == 2
            raise Abort

    with pytest.raises(Abort):
        body()
    assert count(admin, "t") == 0


def test_copy_in_generated_columns_are_skipped_or_refused(db: Any, admin: Any) -> None:
    """Tuple rows fill the non-generated columns; naming a generated column is a RowError."""
    admin.execute("CREATE TABLE t (a int, b int GENERATED ALWAYS AS (a * 2) STORED, c text)")
    assert db.copy_in("t", [(1, "x")]) == 1
    assert rows_of(admin, "t") == [(1, 2, "x")]
    with pytest.raises(RowError, match=r"'b'.*generated"):
        db.copy_in("t", [{"a": 1, "b": 2}])


def test_text_arrays_of_every_shape_survive_the_fast_dumper(db: Any, admin: Any) -> None:
    """text[] values take the flat-list fast path or psycopg's dumper, same result either way."""
    admin.execute("CREATE TABLE t (id int, a text[])")
    values = [
        ["x", "ü🐘", "", "a,b", 'q"', "NULL", "{}"],
        [],
        None,
        ["x", None],
        [["a", "b"], ["c", "d"]],
        ["é" * 1000],
    ]
    assert db.copy_in("t", list(enumerate(values))) == len(values)
    assert [r[1] for r in rows_of(admin, "t")] == values


def test_copy_in_enum_array_falls_back_to_text_format(db: Any, admin: Any) -> None:
    """A column psycopg cannot dump in binary (an enum array) still loads, via text COPY."""
    admin.execute("CREATE TYPE mood AS ENUM ('sad', 'happy'); CREATE TABLE t (id int, m mood[])")
    assert db.copy_in("t", [(1, ["sad", "happy"]), (2, None)]) == 2
    assert admin.execute("SELECT m::text[] FROM t ORDER BY id").fetchall() == [
        (["sad", "happy"],),
        (None,),
    ]


@pytest.mark.parametrize(
    "name",
    ['we"ird', "with space", "ünïcødé_表", "Mixed Case", "semi;colon", "a.b", "select"],
)
def test_odd_identifiers_work(db: Any, admin: Any, name: str) -> None:
    """Table and column names with quotes, spaces, unicode, dots or keywords are quoted right."""
    ident = sql.Identifier(name)
    admin.execute(
        sql.SQL("CREATE TABLE {} ({} int PRIMARY KEY, {} text)").format(
            ident, ident, sql.Identifier(name + "2")
        )
    )
    assert db.copy_in(name, [{name: 1, name + "2": "x"}]) == 1
    assert db.upsert(name, [(1, "y")], key=name) == 1
    out = io.StringIO()
    assert db.copy_out(("public", name), out) == 1
    assert out.getvalue().splitlines()[1] == "1,y"
    assert rows_of(admin, name) == [(1, "y")]


def test_schema_qualified_table(db: Any, admin: Any) -> None:
    """A (schema, name) pair reaches the table in that schema, not one on the search_path."""
    admin.execute("CREATE SCHEMA s; CREATE TABLE s.t (id int); CREATE TABLE t (id int)")
    assert db.copy_in(("s", "t"), [(1,)]) == 1
    assert admin.execute("SELECT count(*) FROM s.t").fetchone() == (1,)
    assert count(admin, "t") == 0


@pytest.mark.parametrize(
    "evil",
    [
        'victim"; DROP TABLE victim; --',
        "victim (id) FROM STDIN; DROP TABLE victim; --",
        "victim\x00",
    ],
)
def test_injection_in_table_or_column_names_fails_safely(db: Any, admin: Any, evil: str) -> None:
    """Injection attempts in a table or column name are an error and the victim table survives."""
    admin.execute("CREATE TABLE victim (id int)")
    with pytest.raises((TableNotFoundError, IdentifierError)):
        db.copy_in(evil, [(1,)])
    with pytest.raises((ColumnNotFoundError, IdentifierError)):
        db.copy_in("victim", [{evil: 1}])
    with pytest.raises((TableNotFoundError, IdentifierError)):
        db.copy_in((evil, "victim"), [(1,)])
    assert count(admin, "victim") == 0
    assert_healthy(db)


def test_names_longer_than_63_bytes_are_rejected(db: Any, admin: Any) -> None:
    """A name PostgreSQL would truncate (64 bytes, or 32 two-byte chars) raises IdentifierError."""
    admin.execute("CREATE TABLE t (id int)")
    with pytest.raises(IdentifierError, match=r"64 bytes.*truncate"):
        db.copy_in("x" * 64, [(1,)])
    with pytest.raises(IdentifierError, match="64 bytes"):
        db.copy_in("t", [{"é" * 32: 1}])
    with pytest.raises(IdentifierError, match="empty"):
        db.copy_in("", [(1,)])


# --- copy_out / copy_in_csv ---------------------------------------------------------------------


def test_copy_out_then_copy_in_csv_round_trips_every_type(
    db: Any, admin: Any, tmp_path: Path
) -> None:
    """copy_out to a CSV file then copy_in_csv into a twin table gives back identical rows."""
    admin.execute(EVERY_TYPE_DDL + "; CREATE TABLE twin (LIKE every_type)")
    db.copy_in("every_type", EVERY_TYPE_ROWS)
    path = tmp_path / "out.csv"
    assert db.copy_out("every_type", path) == 3
    assert db.copy_in_csv("twin", path) == 3
    assert rows_of(admin, "twin") == EVERY_TYPE_ROWS
    # NULL and '' stay distinct in CSV.
    assert admin.execute("SELECT t IS NULL, vc FROM twin ORDER BY id").fetchall() == [
        (False, ""),
        (True, None),
        (False, ""),
    ]


def test_copy_out_query_with_params_to_text_file(db: Any, admin: Any) -> None:
    """A query with parameters goes out to a text file object, header first."""
    admin.execute("CREATE TABLE t AS SELECT g AS id, 'n' || g AS name FROM generate_series(1, 5) g")
    out = io.StringIO()
    n = db.copy_out("SELECT id, name FROM t WHERE id > %s ORDER BY id", out, params=(3,))
    assert n == 2
    assert out.getvalue() == "id,name\n4,n4\n5,n5\n"


def test_copy_out_tells_tables_from_queries(db: Any, admin: Any) -> None:
    """A bare word, a (schema, name) pair or an Identifier is a table; anything else a query."""
    admin.execute('CREATE TABLE "select" (id int); INSERT INTO "select" VALUES (7)')
    for source in ("select", ("public", "select"), sql.Identifier("select")):
        out = io.StringIO()
        assert db.copy_out(source, out, header=False) == 1
        assert out.getvalue() == "7\n"
    out = io.StringIO()
    assert db.copy_out('TABLE "select"', out, header=False) == 1
    assert db.copy_out("VALUES (1), (2)", out, header=False) == 2


def test_copy_out_text_and_binary_formats(db: Any, admin: Any) -> None:
    """format='text' writes tab-separated lines; 'binary' writes PostgreSQL's binary COPY format."""
    admin.execute("CREATE TABLE t (id int, v text); INSERT INTO t VALUES (1, 'a\tb'), (2, NULL)")
    out = io.BytesIO()
    assert db.copy_out(sql.SQL("SELECT * FROM t ORDER BY id"), out, format="text") == 2
    assert out.getvalue() == b"1\ta\\tb\n2\t\\N\n"
    out = io.BytesIO()
    assert db.copy_out("t", out, format="binary") == 2
    assert out.getvalue().startswith(b"PGCOPY\n\xff\r\n\x00")
    with pytest.raises(ValueError, match="binary file"):
        db.copy_out("t", io.StringIO(), format="binary")


def test_copy_in_csv_header_names_columns_in_any_order(db: Any, admin: Any) -> None:
    """With a header and no columns=, the header's names choose the columns, in its order."""
    admin.execute("CREATE TABLE t (id int, name text, note text DEFAULT 'd')")
    data = io.StringIO('name;id\n"semi;colon";1\n"multi\nline";2\n')
    seen: list[int] = []
    assert db.copy_in_csv("t", data, delimiter=";", progress=seen.append) == 2
    assert rows_of(admin, "t") == [(1, "semi;colon", "d"), (2, "multi\nline", "d")]
    assert seen[-1] == 2


def test_copy_in_csv_explicit_columns_and_no_header(db: Any, admin: Any) -> None:
    """columns= with header=False loads every line; with header=True the server skips line one."""
    admin.execute("CREATE TABLE t (id int, name text)")
    assert db.copy_in_csv("t", io.BytesIO(b"a,1\nb,2\n"), columns=["name", "id"], header=False) == 2
    assert db.copy_in_csv("t", io.BytesIO(b"x,y\nc,3\n"), columns=["name", "id"]) == 1
    assert rows_of(admin, "t") == [(1, "a"), (2, "b"), (3, "c")]


def test_copy_in_csv_bad_line_leaves_table_empty(db: Any, admin: Any) -> None:
    """A malformed CSV line aborts the whole load and names the problem."""
    admin.execute("CREATE TABLE t (id int, name text)")
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        db.copy_in_csv("t", io.StringIO("id,name\n1,a\nzwei,b\n"))
    assert count(admin, "t") == 0
    with pytest.raises(ColumnNotFoundError, match="'nmae'"):
        db.copy_in_csv("t", io.StringIO("id,nmae\n1,a\n"))
    assert_healthy(db)


# --- upsert -------------------------------------------------------------------------------------


def test_upsert_with_half_conflicts_gives_the_expected_table(db: Any, admin: Any) -> None:
    """Upserting 20k rows over 10k existing (50% conflicts) updates those and inserts the rest."""
    admin.execute("CREATE TABLE t (id int PRIMARY KEY, name text, stock int, note text)")
    db.copy_in("t", ((i, f"old{i}", i, "keep") for i in range(0, 20_000, 2)))
    new = [{"id": i, "name": f"new{i}", "stock": -i} for i in range(10_000, 30_000)]
    assert db.upsert("t", new, key="id") == 20_000
    expected = {i: (i, f"old{i}", i, "keep") for i in range(0, 10_000, 2)}
    expected.update(
        {
            i: (i, f"new{i}", -i, "keep" if i % 2 == 0 and i < 20_000 else None)
            for i in range(10_000, 30_000)
        }
    )
    assert rows_of(admin, "t") == [expected[k] for k in sorted(expected)]


def test_upsert_update_subset_and_do_nothing(db: Any, admin: Any) -> None:
    """update= limits the overwritten columns; update=[] inserts new keys and leaves old ones."""
    admin.execute("CREATE TABLE t (a int, b int, name text, stock int, PRIMARY KEY (a, b))")
    db.copy_in("t", [(1, 1, "x", 1), (1, 2, "y", 2)])
    assert db.upsert("t", [(1, 1, "X", 10), (2, 2, "Z", 20)], key=["a", "b"], update=["stock"]) == 2
    assert rows_of(admin, "t") == [(1, 1, "x", 10), (1, 2, "y", 2), (2, 2, "Z", 20)]
    assert db.upsert("t", [(1, 2, "Q", 0), (3, 3, "N", 3)], key=("a", "b"), update=[]) == 1
    assert admin.execute("SELECT name FROM t WHERE (a, b) = (1, 2)").fetchone() == ("y",)
    with pytest.raises(RowError, match="update column 'a'"):
        db.upsert("t", [(1, 1, "x", 1)], key=["a", "b"], update=["a"])
    with pytest.raises(RowError, match="key column 'zz'"):
        db.upsert("t", [(1, 1, "x", 1)], key="zz")


def test_upsert_duplicate_keys_raise_by_default_naming_the_key(db: Any, admin: Any) -> None:
    """A key repeated within one call raises DuplicateKeyError naming it; nothing is written."""
    admin.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
    db.copy_in("t", [(1, "old")])
    rows = [(1, "a"), (2, "b"), (3, "c"), (2, "d")]
    with pytest.raises(DuplicateKeyError, match=r"id=2 appears 2 times.*on_duplicate='last'") as ei:
        db.upsert("t", rows, key="id")
    assert ei.value.key == 2
    assert rows_of(admin, "t") == [(1, "old")]
    assert_healthy(db)


def test_upsert_duplicate_keys_last_wins(db: Any, admin: Any) -> None:
    """on_duplicate='last' keeps the last row given for each repeated key."""
    admin.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
    db.copy_in("t", [(1, "old")])
    rows = [(1, "a"), (2, "b"), (1, "c"), (2, "d"), (3, "e"), (1, "f")]
    assert db.upsert("t", rows, key="id", on_duplicate="last") == 3
    assert rows_of(admin, "t") == [(1, "f"), (2, "d"), (3, "e")]


def test_upsert_without_a_unique_index_on_key_is_a_server_error(db: Any, admin: Any) -> None:
    """A key with no unique index behind it is the server's InvalidColumnReference, table intact."""
    admin.execute("CREATE TABLE t (id int, v text)")
    with pytest.raises(psycopg.errors.InvalidColumnReference):
        db.upsert("t", [(1, "a")], key="id")
    assert_healthy(db)


def test_bulk_calls_leave_no_staging_tables_or_cursors(db: Any, admin: Any) -> None:
    """After upserts (ok and failed) and streams, no temp table or open cursor lingers."""
    admin.execute("CREATE TABLE t (id int PRIMARY KEY)")
    for _ in range(3):
        db.upsert("t", [(1,), (2,)], key="id")
    with pytest.raises(DuplicateKeyError):
        db.upsert("t", [(1,), (1,)], key="id")
    for _ in itertools.islice(db.stream("SELECT * FROM generate_series(1, 100)", batch_size=7), 3):
        pass
    assert db.fetch_val("SELECT count(*) FROM pg_class WHERE relname LIKE 'pgkeel_stage%%'") == 0
    assert db.fetch_val("SELECT count(*) FROM pg_cursors") == 0


def test_exports() -> None:
    """The bulk errors are part of the public surface."""
    for name in ("DuplicateKeyError", "IdentifierError", "RowError"):
        assert name in pgkeel.__all__


def test_copy_in_refuses_a_naive_datetime(db: pgkeel.Database, admin: Any) -> None:
    """A naive datetime for a timestamptz column fails the whole COPY (no guessed time zone)."""
    admin.execute("CREATE TABLE t (id int, ts timestamptz)")
    aware = dt.datetime(2024, 1, 1, tzinfo=TZ)
    with pytest.raises(BadValueError, match=r"row 2, column 'ts'.*naive datetime"):
        db.copy_in("t", [(1, aware), (2, dt.datetime(2024, 1, 1))])
    assert count(admin, "t") == 0


@pytest.mark.parametrize("face", ["", "_async"])
def test_old_module_warns_and_reexports(face: str) -> None:
    """`pgkeel.copy` / `pgkeel.copy_async` still import, warning, with the very same objects."""
    old = f"pgkeel.copy{face}"
    homes = [importlib.import_module("pgkeel.bulk")] + [
        importlib.import_module(f"pgkeel.bulk.{m}{face}") for m in ("copy", "upsert", "stream")
    ]
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=r"pgkeel\.bulk\.copy.*pgkeel\.bulk\.upsert"):
        module = importlib.import_module(old)
    assert len(module.__all__) == 10
    for name in module.__all__:
        assert any(getattr(m, name, None) is getattr(module, name) for m in homes), name
