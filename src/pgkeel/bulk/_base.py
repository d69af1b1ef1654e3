"""The I/O-free half of pgkeel's bulk and streaming operations: statements, plans, limits.

Shared by the sync and async faces of :mod:`pgkeel.bulk`: the type aliases of their signatures,
the COPY statements (in, CSV in, out) and the CSV header, the upsert plan, staging table and merge
statement, the COPY that streams a query, the time limits a bulk call sets for its own
transaction, and the batching of a row iterator. Table names and column types are in
:mod:`pgkeel.bulk._catalog`, the values a COPY refuses in :mod:`pgkeel.bulk._values`. Nothing
here talks to the server.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from typing import Any, Literal, LiteralString, TypeAlias

from psycopg import sql

from pgkeel.bulk._catalog import TableInfo, table_identifier
from pgkeel.config import Config, duration
from pgkeel.errors import DuplicateKeyError, RowError, StreamIdleTimeoutError

Progress: TypeAlias = Callable[[int], object]
"""A callback given the number of rows done so far."""

CopyFormat: TypeAlias = Literal["csv", "text", "binary"]
OnDuplicate: TypeAlias = Literal["error", "last"]

# Rows handed to the writer between two progress reports; also the size of the slices the
# row iterator is read in, which bounds memory whatever the iterator yields.
BATCH_ROWS = 10_000
CSV_CHUNK_BYTES = 1 << 20
# Rows a COPY stream hands over at a time (at most batch_size): the round trips do not depend on
# it, and rows used while still in the CPU cache stream ~1.6x faster than 10,000-row lists.
COPY_STREAM_ROWS = 200


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
