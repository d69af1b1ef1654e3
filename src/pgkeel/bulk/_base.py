"""The I/O-free half of pgkeel's bulk and streaming operations.

Everything here is shared by the sync (:mod:`pgkeel.bulk.copy`) and async
(:mod:`pgkeel.bulk.copy_async`) faces: checking and quoting names, reading a table's column types
from the catalog (the query and the interpretation of its answer, not the round trip), choosing
the COPY format, shaping Python rows into the tuples COPY wants, and composing the statements.
Nothing here talks to the server.
"""

from __future__ import annotations

import csv
import io
import re
import struct
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter
from typing import Any, Literal, LiteralString, TypeAlias

import psycopg
from psycopg import pq, sql
from psycopg.adapt import AdaptersMap

from pgkeel.bulk._dumpers import describe_refusal, register_strict_dumpers, strict_dumper
from pgkeel.config import Config, duration
from pgkeel.errors import (
    BadValueError,
    ColumnNotFoundError,
    DuplicateKeyError,
    IdentifierError,
    RowError,
    StreamIdleTimeoutError,
    TableNotFoundError,
)

Table: TypeAlias = "str | tuple[str, str]"
"""A table name: one identifier (never split on dots), or a ``(schema, name)`` pair."""

Progress: TypeAlias = Callable[[int], object]
"""A callback given the number of rows done so far."""

CopyFormat: TypeAlias = Literal["csv", "text", "binary"]
OnDuplicate: TypeAlias = Literal["error", "last"]

# PostgreSQL truncates longer names silently (NAMEDATALEN - 1), so two long names could collide.
MAX_IDENTIFIER_BYTES = 63
# Rows handed to the writer between two progress reports; also the size of the slices the
# row iterator is read in, which bounds memory whatever the iterator yields.
BATCH_ROWS = 10_000
CSV_CHUNK_BYTES = 1 << 20
# Rows a COPY stream hands over at a time (at most batch_size): the round trips do not depend on
# it, and rows used while still in the CPU cache stream ~1.6x faster than 10,000-row lists.
COPY_STREAM_ROWS = 200

_TEXT_OID = 25
_BINARY = pq.Format.BINARY


def check_identifier(name: str, what: str = "name") -> str:
    """Return ``name`` if PostgreSQL would keep it as it is, else raise :class:`IdentifierError`."""
    if not isinstance(name, str):
        raise IdentifierError(f"{what} must be a str, got {type(name).__name__}")
    if not name:
        raise IdentifierError(f"{what} is empty")
    if "\x00" in name:
        raise IdentifierError(f"{what} {name!r} contains a NUL character")
    size = len(name.encode())
    if size > MAX_IDENTIFIER_BYTES:
        raise IdentifierError(
            f"{what} {name!r} is {size} bytes long; PostgreSQL would silently truncate it to"
            f" {MAX_IDENTIFIER_BYTES} bytes: use a shorter name"
        )
    return name


def table_identifier(table: Table) -> sql.Identifier:
    """Quote a table name (``"name"`` or ``("schema", "name")``) after checking its parts."""
    if isinstance(table, tuple):
        if len(table) != 2:
            raise IdentifierError(
                f"a qualified table name is a (schema, name) pair, got {len(table)} parts"
            )
        return sql.Identifier(
            check_identifier(table[0], "schema name"), check_identifier(table[1], "table name")
        )
    return sql.Identifier(check_identifier(table, "table name"))


def table_label(table: Table) -> str:
    """The table as a human reads it in an error message."""
    return ".".join(table) if isinstance(table, tuple) else table


# One round trip gives the table's oid (NULL if it does not exist) and its live columns. Domains
# are resolved to their base type here: binary COPY sends the base type's representation. The
# declared type (a domain, varchar(3)...) is kept for error messages.
CATALOG_QUERY = sql.SQL(
    """\
WITH RECURSIVE rel AS (SELECT to_regclass(%s) AS oid),
col AS (
    SELECT a.attnum, a.attname, a.attgenerated, a.atttypid AS typid, 0 AS depth,
        format_type(a.atttypid, a.atttypmod) AS declared
    FROM rel JOIN pg_attribute a ON a.attrelid = rel.oid
    WHERE a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
    SELECT col.attnum, col.attname, col.attgenerated, t.typbasetype, col.depth + 1, col.declared
    FROM col JOIN pg_type t ON t.oid = col.typid
    WHERE t.typtype = 'd'
)
SELECT rel.oid::int8, c.attname, c.attgenerated <> '', c.typid::int8, t.typtype,
    t.typname, t.typelem::int8, c.declared
FROM rel
LEFT JOIN LATERAL (
    SELECT DISTINCT ON (attnum) * FROM col ORDER BY attnum, depth DESC
) c ON true
LEFT JOIN pg_type t ON t.oid = c.typid
ORDER BY c.attnum"""
)


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    oid: int  # the oid binary COPY must be given (a domain's base type, text for an enum)
    type_name: str
    generated: bool
    declared: str = ""  # the column's SQL type as declared (a domain, varchar(3)...)


@dataclass(frozen=True, slots=True)
class TableInfo:
    """What the catalog says about a table: enough to COPY into it in binary without guessing."""

    identifier: sql.Identifier
    label: str
    columns: tuple[Column, ...]

    def column_map(self) -> dict[str, Column]:
        return {c.name: c for c in self.columns}

    def writable(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if not c.generated)


def parse_catalog(
    table: Table, identifier: sql.Identifier, records: Sequence[Sequence[Any]]
) -> TableInfo:
    """Turn :data:`CATALOG_QUERY`'s records into a :class:`TableInfo`, or raise if no table."""
    label = table_label(table)
    if not records or records[0][0] is None:
        hint = ""
        if isinstance(table, str) and "." in table:
            schema, _, name = table.partition(".")
            hint = f"; for table {name!r} in schema {schema!r} pass ({schema!r}, {name!r})"
        raise TableNotFoundError(
            f"table {label!r} does not exist (or is not on the search_path){hint}: create it,"
            " or pass the schema as (schema, name)"
        )
    columns = []
    for _, name, generated, oid, typtype, typname, _typelem, declared in records:
        if name is None:
            continue
        # An enum's binary form is its label's text, and COPY sends no type oid per field.
        send_oid = _TEXT_OID if typtype == "e" else oid
        columns.append(Column(name, send_oid, typname, bool(generated), declared or typname))
    return TableInfo(identifier, label, tuple(columns))


def select_columns(
    info: TableInfo, columns: Sequence[str] | None, first: object
) -> tuple[str, ...]:
    """The columns a COPY will fill, checked against the catalog before any data is sent.

    With ``columns=None`` a dict row names its own columns (its keys, in order); a tuple row fills
    every column that is not generated, in table order.
    """
    if columns is None:
        columns = tuple(first.keys()) if isinstance(first, Mapping) else info.writable()
        if not columns:
            raise RowError(f"no columns to copy into table {info.label!r}")
    elif isinstance(columns, str):
        raise TypeError("columns must be a sequence of names, not a str")
    cols = tuple(check_identifier(c, "column name") for c in columns)
    known = info.column_map()
    unknown = [c for c in cols if c not in known]
    if unknown:
        raise ColumnNotFoundError(
            f"table {info.label!r} has no column {', '.join(map(repr, unknown))};"
            f" its columns are {', '.join(map(repr, known))}: fix the dict keys or columns="
        )
    generated = [c for c in cols if known[c].generated]
    if generated:
        raise RowError(
            f"column {', '.join(map(repr, generated))} of table {info.label!r} is generated"
            " and cannot be written: leave it out"
        )
    if len(set(cols)) != len(cols):
        raise RowError(f"a column is named twice in {list(cols)!r}")
    return cols


def column_oids(info: TableInfo, cols: Sequence[str], adapters: AdaptersMap) -> list[int] | None:
    """The oids to give ``Copy.set_types()`` for a binary COPY, or None if one cannot be dumped.

    A type psycopg has no binary dumper for (an array of enums, a type from an extension that was
    not registered) makes the whole COPY fall back to the text format, where the server parses
    each value and no oid is needed.
    """
    known = info.column_map()
    oids = [known[c].oid for c in cols]
    for oid in oids:
        try:
            adapters.get_dumper_by_oid(oid, _BINARY)
        except Exception:  # psycopg raises ProgrammingError, or KeyError for a bad format
            return None
    return oids


_TEXT_ARRAY_OID = 1009
_ARRAY_HEAD = struct.Struct("!iiIii")  # ndim, has nulls, element oid, length, lower bound
_EMPTY_TEXT_ARRAY = struct.pack("!iiI", 0, 0, _TEXT_OID)  # what psycopg sends for []
_ITEM_LEN = struct.Struct("!i")


def speed_up_dumpers(
    adapters: AdaptersMap, oids: Sequence[int], encoding: str, batch_checked: Collection[int] = ()
) -> None:
    """Register the COPY's binary dumpers on ``adapters`` (a cursor's): strict and fast ones.

    The strict dumpers (:mod:`pgkeel.bulk._dumpers`) store each value exactly as an INSERT
    would, or refuse it. psycopg dumps a list with a general, Python-level array dumper (any
    depth, any element type, NULLs); a flat list of str for a ``text[]`` column, by far the
    common case, is packed here in one pass. ``timestamptz`` keeps psycopg's dumper (in C),
    which refuses a naive datetime with a TypeError the COPY turns into a BadValueError.
    Anything else goes to psycopg's dumper, unchanged.
    """
    register_strict_dumpers(adapters, batch_checked)
    if _TEXT_ARRAY_OID in oids and encoding in ("utf-8", "utf8"):
        adapters.register_dumper(None, _flat_text_array_dumper(adapters))


def _flat_text_array_dumper(adapters: AdaptersMap) -> type[Any]:
    general: Any = adapters.get_dumper_by_oid(_TEXT_ARRAY_OID, _BINARY)

    class FlatTextArrayBinaryDumper(general):  # type: ignore[misc]
        def dump(self, obj: Any, pack: Any = _ITEM_LEN.pack, head: Any = _ARRAY_HEAD.pack) -> Any:
            if not obj:
                return _EMPTY_TEXT_ARRAY if type(obj) is list else super().dump(obj)
            # A list joined once is ~2x faster than growing a bytearray item by item.
            out = [head(1, 0, _TEXT_OID, len(obj), 1)]
            try:
                for item in obj:
                    data = item.encode()
                    out.append(pack(len(data)))
                    out.append(data)
            except AttributeError:  # None, a nested list, a non-str element
                return super().dump(obj)
            return b"".join(out)

    return FlatTextArrayBinaryDumper


# --- values refused -------------------------------------------------------------------------


def _value_error(
    info: TableInfo,
    what: str,
    row: int,
    column: str,
    value_type: str | None,
    reason: str,
) -> BadValueError:
    col = info.column_map().get(column)
    declared = col.declared if col is not None else "?"
    vt = f"a value of type {value_type}" if value_type else "the value"
    return BadValueError(
        f"{what}: row {row}, column {column!r} ({declared}): {vt} was refused: {reason};"
        f" nothing was written to {info.label!r}",
        row=row,
        column=column,
        column_type=declared,
        value_type=value_type,
    )


def locate_bad_value(
    info: TableInfo,
    what: str,
    cols: Sequence[str],
    oids: Sequence[int],
    adapters: AdaptersMap,
    context: Any,
    batch: Sequence[Any],
    getter: Callable[[Any], Sequence[Any]] | None,
    start: int,
) -> BadValueError | None:
    """After a dumper raised while formatting ``batch``, find the first value it refuses.

    Each value is dumped again, alone, by its column's dumper; the first that raises names the
    row (``start`` rows came before the batch) and the column. None if none raises again.
    """
    dumpers = [
        (strict_dumper(oid, adapters) or adapters.get_dumper_by_oid(oid, _BINARY))(
            type(None), context
        )
        for oid in oids
    ]
    for i, raw in enumerate(batch):
        record = raw if getter is None else getter(raw)
        for col, oid, dumper, value in zip(cols, oids, dumpers, record, strict=False):
            if value is None:
                continue
            try:
                dumper.dump(value)
            except Exception as exc:
                reason = describe_refusal(oid, value, exc)
                return _value_error(info, what, start + i + 1, col, type(value).__name__, reason)
    return None


def note_server_refusal(
    exc: psycopg.Error,
    info: TableInfo,
    what: str,
    cols: Sequence[str],
    batch: Sequence[Any],
    getter: Callable[[Any], Sequence[Any]] | None,
    start: int,
) -> None:
    """Add to a server error raised by a COPY a note naming the row, the column and the types.

    The server refuses what only it can check (numeric precision, varchar(n), a domain's CHECK,
    an enum label) exactly as an INSERT would; its error context says ``line N, column c``,
    where line N is the Nth row sent. The value's Python type is known while its row is still
    in the current batch.
    """
    # The context's last line is the COPY's ("COPY t, line 3, column c: ..."); lines above it
    # come from the type's input function ("JSON data, line 1: ...").
    lines = [ln for ln in (exc.diag.context or "").splitlines() if ln.startswith("COPY ")]
    context = lines[-1] if lines else ""
    marker = ", line "
    at = context.find(marker)
    if at < 0:
        return
    number, _, rest = context[at + len(marker) :].partition(",")
    if not number.strip().isdigit():
        return
    row = int(number)
    rest = rest.strip()
    column = None
    if rest.startswith("column "):
        named = rest[len("column ") :]
        matches = [c for c in cols if named == c or named.startswith(c + ":")]
        column = max(matches, key=len) if matches else None
    if column is None:
        exc.add_note(f"{what}: the server refused row {row} of the rows given")
        return
    value_type = None
    if start < row <= start + len(batch):
        raw = batch[row - start - 1]
        record = raw if getter is None else getter(raw)
        value_type = type(record[list(cols).index(column)]).__name__
    error = _value_error(info, what, row, column, value_type, exc.diag.message_primary or "")
    exc.add_note(str(error))


def row_getter(first: object, cols: Sequence[str]) -> Callable[[Any], Sequence[Any]] | None:
    """A function turning one row into the tuple COPY writes, or None if rows are already tuples.

    Dict rows go through :func:`operator.itemgetter`, a single C call per row.
    """
    if not isinstance(first, Mapping):
        return None
    if len(cols) == 1:
        (col,) = cols
        return lambda row: (row[col],)
    return itemgetter(*cols)


def missing_key_error(exc: KeyError, row: object, cols: Sequence[str], number: int) -> RowError:
    key = exc.args[0] if exc.args else None
    return RowError(
        f"row {number} has no value for column {key!r}; every dict row needs the keys"
        f" {list(cols)!r} (pass columns= to choose them)"
    )


def is_missing_key(exc: KeyError, row: object, cols: Sequence[str]) -> bool:
    """Whether ``exc`` came from looking up a column in a dict row (not from the user's code)."""
    return (
        isinstance(row, Mapping)
        and bool(exc.args)
        and exc.args[0] in cols
        and exc.args[0] not in row
    )


def copy_in_statement(info: TableInfo, cols: Sequence[str], binary: bool) -> sql.Composed:
    fmt = sql.SQL("(FORMAT BINARY)" if binary else "")
    return sql.SQL("COPY {} ({}) FROM STDIN {}").format(
        info.identifier, sql.SQL(", ").join(map(sql.Identifier, cols)), fmt
    )


def csv_options(*, header: bool, delimiter: str) -> sql.Composed:
    if len(delimiter) != 1:
        raise ValueError(f"delimiter must be one character, got {delimiter!r}")
    return sql.SQL("(FORMAT csv, HEADER {}, DELIMITER {})").format(
        sql.SQL("true" if header else "false"), sql.Literal(delimiter)
    )


def copy_in_csv_statement(
    info: TableInfo, cols: Sequence[str], *, header: bool, delimiter: str
) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN {}").format(
        info.identifier,
        sql.SQL(", ").join(map(sql.Identifier, cols)),
        csv_options(header=header, delimiter=delimiter),
    )


def parse_header(line: str, delimiter: str) -> list[str]:
    """The column names in a CSV header line."""
    return next(csv.reader([line], delimiter=delimiter), [])


_BARE_NAME = re.compile(r"[^\W\d]\w*", re.UNICODE)


def copy_out_statement(
    query_or_table: LiteralString | sql.Composable | tuple[str, str],
    *,
    format: CopyFormat,
    header: bool,
) -> sql.Composed:
    """``COPY (query) TO STDOUT`` or ``COPY table TO STDOUT`` with the format's options.

    A table is a single bare word (``"products"``, taken as the exact name), a
    ``(schema, name)`` pair or a :class:`psycopg.sql.Identifier`; any other ``str`` or
    composed SQL is a query.
    """
    source: sql.Composable
    if isinstance(query_or_table, sql.Identifier):
        source = query_or_table
    elif isinstance(query_or_table, sql.Composable):
        source = sql.SQL("({})").format(query_or_table)
    elif isinstance(query_or_table, str) and not _BARE_NAME.fullmatch(query_or_table):
        # Typed str, not LiteralString, so that a table name can be passed too; a query here
        # is sent as written, exactly as Cursor.execute() would send it.
        source = sql.SQL("({})").format(sql.SQL(query_or_table))
    else:
        source = table_identifier(query_or_table)
    options: sql.Composable
    if format == "binary":
        options = sql.SQL("(FORMAT binary)")
    elif format == "csv":
        options = sql.SQL("(FORMAT csv, HEADER {})").format(sql.SQL("true" if header else "false"))
    elif format == "text":
        options = sql.SQL("(FORMAT text)")
    else:
        raise ValueError(f"format must be 'csv', 'text' or 'binary', got {format!r}")
    return sql.SQL("COPY {} TO STDOUT {}").format(source, options)


# --- upsert ---------------------------------------------------------------------------------


def upsert_plan(
    info: TableInfo,
    cols: Sequence[str],
    key: Sequence[str] | str,
    update: Sequence[str] | None,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Check ``key`` and ``update`` against the copied columns; return them as tuples."""
    keys = (key,) if isinstance(key, str) else tuple(key)
    if not keys:
        raise ValueError("key must name at least one column (the conflict target)")
    missing = [k for k in keys if k not in cols]
    if missing:
        raise RowError(
            f"key column {', '.join(map(repr, missing))} is not among the copied columns"
            f" {list(cols)!r}"
        )
    if update is None:
        updates = tuple(c for c in cols if c not in keys)
    else:
        updates = (update,) if isinstance(update, str) else tuple(update)
        bad = [u for u in updates if u not in cols or u in keys]
        if bad:
            raise RowError(
                f"update column {', '.join(map(repr, bad))} must be a copied column and not"
                f" a key column; copied: {list(cols)!r}, key: {list(keys)!r}"
            )
    return keys, updates


def stage_name(n: int) -> sql.Identifier:
    return sql.Identifier(f"pgkeel_stage_{n}")


def create_stage_statement(
    info: TableInfo, cols: Sequence[str], stage: sql.Identifier
) -> sql.Composed:
    # CREATE ... AS ... WITH NO DATA copies the column types and nothing else: no index, no
    # constraint, no default to slow the COPY down.
    return sql.SQL(
        "CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA"
    ).format(stage, sql.SQL(", ").join(map(sql.Identifier, cols)), info.identifier)


def merge_statement(
    info: TableInfo,
    cols: Sequence[str],
    keys: Sequence[str],
    updates: Sequence[str],
    stage: sql.Identifier,
    on_duplicate: OnDuplicate,
) -> sql.Composed:
    col_list = sql.SQL(", ").join(map(sql.Identifier, cols))
    key_list = sql.SQL(", ").join(map(sql.Identifier, keys))
    source: sql.Composable
    if on_duplicate == "last":
        # The staging table is fresh and filled by one COPY, so physical order is input order.
        source = sql.SQL("SELECT DISTINCT ON ({k}) {c} FROM {s} ORDER BY {k}, ctid DESC").format(
            k=key_list, c=col_list, s=stage
        )
    elif on_duplicate == "error":
        source = sql.SQL("SELECT {} FROM {}").format(col_list, stage)
    else:
        raise ValueError(f"on_duplicate must be 'error' or 'last', got {on_duplicate!r}")
    action: sql.Composable
    if updates:
        action = sql.SQL("DO UPDATE SET {}").format(
            sql.SQL(", ").join(
                sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(u)) for u in updates
            )
        )
    else:
        action = sql.SQL("DO NOTHING")
    return sql.SQL("INSERT INTO {} ({}) {} ON CONFLICT ({}) {}").format(
        info.identifier, col_list, source, key_list, action
    )


def duplicate_query(keys: Sequence[str], stage: sql.Identifier) -> sql.Composed:
    key_list = sql.SQL(", ").join(map(sql.Identifier, keys))
    return sql.SQL("SELECT {k}, count(*) FROM {s} GROUP BY {k} HAVING count(*) > 1 LIMIT 1").format(
        k=key_list, s=stage
    )


def duplicate_error(
    info: TableInfo, keys: Sequence[str], record: Sequence[Any] | None
) -> DuplicateKeyError:
    if record is None:  # pragma: no cover - the server saw one; we could not find it again
        return DuplicateKeyError(
            f"rows given to upsert() into {info.label!r} repeat a key; pass"
            " on_duplicate='last' to keep the last row of each key",
            key=None,
        )
    *values, count = record
    value: Any = values[0] if len(values) == 1 else tuple(values)
    named = ", ".join(f"{k}={v!r}" for k, v in zip(keys, values, strict=True))
    return DuplicateKeyError(
        f"rows given to upsert() into {info.label!r} repeat a key: {named} appears {count}"
        " times; remove the duplicates or pass on_duplicate='last' to keep the last row of"
        " each key",
        key=value,
    )


# --- streaming --------------------------------------------------------------------------------


def stream_copy_statement(query: object, params: Any, row: object, context: Any) -> Any:
    """``COPY (query) TO STDOUT`` to stream ``query``'s rows, or None where a cursor must do it.

    COPY streams rows while the client parses them (a cursor waits for each FETCH: the two sides
    take turns), and psycopg parses COPY rows in C. COPY takes no bind parameters, and binding
    them client-side is not exactly what the server does (a Python int is sent as int2, int4,
    int8 or numeric by size and changes the type a function resolves to), so a query with
    ``params`` keeps the cursor; so does a ``row=`` other than dict or tuple (psycopg row
    factories need a cursor's description).
    """
    if params is not None or (row is not dict and row is not tuple):
        return None
    if isinstance(query, str):
        text = query
    elif isinstance(query, sql.Composable):
        text = query.as_string(context)
    else:  # a template string: its values are parameters
        return None
    # A trailing ";" is accepted by DECLARE but not inside COPY ( ... ); a trailing comment is
    # closed by the newline before ")".
    text = text.rstrip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return sql.SQL("COPY (\n{}\n) TO STDOUT").format(sql.SQL(text))


# --- time limits ----------------------------------------------------------------------------

STATEMENT_TIMEOUT: LiteralString = "statement_timeout"
IDLE_TIMEOUT: LiteralString = "idle_in_transaction_session_timeout"

# set_config(..., true) is SET LOCAL with a bound value: it ends with the transaction (or with
# the savepoint, if that is rolled back), so it never reaches the next user of the connection.
SET_LOCAL = sql.SQL("SELECT set_config(%s, %s, true)")
# Inside the caller's transaction the value must be put back afterwards (a released savepoint
# keeps it); the old value is read before the new one is set, left to right in one round trip.
SWAP_LOCAL = sql.SQL("SELECT current_setting(%s), set_config(%s, %s, true)")


def owner_config(owner: object) -> tuple[Config | None, bool]:
    """The Config behind a bulk call's owner, and whether the call runs in the caller's
    transaction (a :class:`~pgkeel.Transaction`, which knows its Database) rather than its own.
    """
    db = getattr(owner, "_db", owner)
    config = getattr(db, "config", None)
    return (config if isinstance(config, Config) else None), db is not owner


def local_limits(
    config: Config | None, settings: Sequence[LiteralString]
) -> list[tuple[LiteralString, str]]:
    """The ``(setting, value)`` pairs a bulk call or stream sets for its own transaction."""
    if config is None:
        return []
    out: list[tuple[LiteralString, str]] = []
    for setting in settings:
        if setting == STATEMENT_TIMEOUT:
            out.append((setting, duration(config.bulk_timeout)))
        elif setting == IDLE_TIMEOUT:
            if config.stream_idle_timeout is not None:
                out.append((setting, duration(config.stream_idle_timeout)))
        else:
            raise ValueError(f"no bulk limit for {setting!r}")
    return out


def idle_timeout_error(exc: Exception, configured: float | None) -> StreamIdleTimeoutError:
    """The server ended a stream's session while the caller paused between two batches."""
    limit = (
        "the session's idle_in_transaction_session_timeout (60 s unless set)"
        if configured is None
        else f"stream_idle_timeout={configured:g} s"
    )
    return StreamIdleTimeoutError(
        f"the server closed the connection because the stream's transaction sat idle longer"
        f" than {limit} while the rows of a batch were being processed: open the Database"
        " with a larger stream_idle_timeout (seconds; 0 means no limit), or process rows"
        f" faster or with a smaller batch_size ({exc})"
    )


# --- files ------------------------------------------------------------------------------------


def is_text_file(file: object) -> bool:
    return isinstance(file, io.TextIOBase)


def iter_batches(rows: Iterable[Any], size: int = BATCH_ROWS) -> Iterable[list[Any]]:
    """Slices of ``size`` rows: the unit of writing and of progress reports."""
    it = iter(rows)
    while batch := list(islice(it, size)):
        yield batch
