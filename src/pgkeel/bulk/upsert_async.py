"""Upsert: insert rows, updating those whose key exists, through a staging table.

The rows are copied (binary COPY, the same checks as :func:`pgkeel.bulk.copy_async.copy_in`)
into a temporary table dropped at commit, then merged into the target with one
``INSERT ... ON CONFLICT`` statement; a key repeated within the rows is named in a
:class:`pgkeel.DuplicateKeyError` (or the last row wins, with ``on_duplicate="last"``). Like the
other modules of :mod:`pgkeel.bulk`, the function takes a plain connection, and the sync face is
generated from the asyncio one.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterable, Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from pgkeel.bulk import _base as base
from pgkeel.bulk import _catalog as catalog
from pgkeel.bulk._base import OnDuplicate
from pgkeel.bulk._catalog import Table, TableInfo
from pgkeel.bulk.copy_async import _copy_into, _first, table_info

__all__ = ["upsert"]

_names = itertools.count(1)


async def upsert(
    conn: psycopg.AsyncConnection[Any],
    table: Table,
    rows: Iterable[Any] | AsyncIterable[Any],
    *,
    key: Sequence[str] | str,
    update: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    on_duplicate: OnDuplicate = "error",
) -> int:
    """Insert or update ``rows`` by ``key`` via a staging table; return rows inserted + updated.

    Must run inside a transaction (the staging table is dropped at commit).
    """
    if on_duplicate not in ("error", "last"):
        raise ValueError(f"on_duplicate must be 'error' or 'last', got {on_duplicate!r}")
    info = await table_info(conn, table)
    first, rows_it = await _first(rows)
    if first is None:
        return 0
    cols = catalog.select_columns(info, columns, first)
    keys, updates = base.upsert_plan(info, cols, key, update)
    stage = base.stage_name(next(_names))
    await conn.execute(base.create_stage_statement(info, cols, stage))
    # The staging table has the target's column types, so the catalog answer serves both.
    stage_info = TableInfo(stage, f"staging table for {info.label}", info.columns)
    await _copy_into(conn, stage_info, info, cols, rows_it, first, None, "upsert()")
    merge = base.merge_statement(info, cols, keys, updates, stage, on_duplicate)
    if on_duplicate == "last":
        return max((await conn.execute(merge)).rowcount, 0)
    if not updates:
        # DO NOTHING lets a repeated key through silently, so look for one first.
        record = await _repeated_key(conn, keys, stage)
        if record is not None:
            raise base.duplicate_error(info, keys, record)
        return max((await conn.execute(merge)).rowcount, 0)
    # The server spots a key repeated in one INSERT for free (cardinality violation); a
    # savepoint lets us look for the culprit afterwards, to name it.
    try:
        async with conn.transaction():
            return max((await conn.execute(merge)).rowcount, 0)
    except psycopg.errors.CardinalityViolation as exc:
        record = await _repeated_key(conn, keys, stage)
        raise base.duplicate_error(info, keys, record) from exc


async def _repeated_key(
    conn: psycopg.AsyncConnection[Any], keys: Sequence[str], stage: sql.Identifier
) -> tuple[Any, ...] | None:
    """A key value that appears more than once in the staging table, or None."""
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute(base.duplicate_query(keys, stage))
    return await cur.fetchone()
