"""Bulk and streaming on asyncpg: ``copy_in`` / ``upsert`` through asyncpg's binary COPY
(``copy_records_to_table``), ``stream`` through a server-side cursor, ``copy_out`` through
``copy_from_query``, ``copy_in_csv`` through ``copy_to_table``.

:mod:`pgkeel.bulk` hands these the adapter connection where it would use psycopg's COPY; the
catalog query, the transaction, the limits and the staging table of ``upsert`` stay pgkeel's.
Values get the same checks before anything is written: the batch-wise type and range checks of
``bulk._dumpers``, the naive-datetime policy, and, when asyncpg's encoder refuses a value, the
same per-value search that names the row and the column in a :class:`~pgkeel.BadValueError`.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from operator import itemgetter
from typing import IO, TYPE_CHECKING, Any

import asyncpg
import psycopg
from psycopg import sql

from pgkeel.bulk import _catalog as catalog
from pgkeel.bulk import _values as values
from pgkeel.bulk._base import Progress
from pgkeel.bulk._catalog import TableInfo
from pgkeel.bulk._dumpers import batch_checks, column_ok
from pgkeel.drivers._placeholders import render_literals, to_dollar
from pgkeel.errors import BadValueError
from pgkeel.rows import RowSpec, row_factory
from pgkeel.types._datetime import _naive

if TYPE_CHECKING:
    from pgkeel.drivers._asyncpg import Connection

_TIMESTAMPTZ = 1184
_TIMESTAMPTZ_ARRAY = 1185
_names = itertools.count(1)


def _parts(ident: sql.Identifier) -> tuple[str | None, str]:
    """(schema, name) of a table identifier. psycopg keeps an Identifier's strings in ``_obj``
    and offers no public accessor; asyncpg's COPY takes the parts, not quoted text."""
    obj: Sequence[str] = ident._obj
    return (obj[0], obj[1]) if len(obj) == 2 else (None, obj[0])


async def copy_into(
    conn: Connection,
    target: TableInfo,
    types_of: TableInfo,
    cols: Sequence[str],
    rows: AsyncIterator[Any],
    first: object,
    progress: Progress | None,
    what: str,
) -> int:
    """Binary COPY of ``rows`` into ``target``'s ``cols``, one ``copy_records_to_table`` per
    batch of ``BATCH_ROWS`` (inside the caller's transaction: all or nothing)."""
    from pgkeel.bulk.copy_async import _batches

    adapters = psycopg.adapters
    oids = catalog.column_oids(types_of, cols, adapters)
    checks = {} if oids is None else batch_checks(oids)
    getter: Callable[[Any], Sequence[Any]] | None = values.row_getter(first, cols)
    dict_rows = getter is not None
    column_checks = [(itemgetter(cols[i] if dict_rows else i), spec) for i, spec in checks.items()]
    strict = conn._strict
    aware = [
        itemgetter(cols[i] if dict_rows else i)
        for i, oid in enumerate(oids or [])
        if strict and oid in (_TIMESTAMPTZ, _TIMESTAMPTZ_ARRAY)
    ]
    schema, name = _parts(target.identifier)
    raw = conn.raw

    def locate(batch: list[Any], start: int) -> BadValueError | None:
        if oids is None:
            return None
        return values.locate_bad_value(
            types_of, what, cols, oids, adapters, None, batch, getter, start
        )

    done = 0
    async for batch in _batches(rows):
        if not all(column_ok(map(get, batch), spec) for get, spec in column_checks):
            error = locate(batch, done)
            if error is not None:
                raise error
        for get in aware:
            for value in map(get, batch):
                _check_aware(value)
        try:
            records = batch if getter is None else list(map(getter, batch))
        except KeyError as exc:
            for i, record in enumerate(batch):
                if values.is_missing_key(exc, record, cols):
                    raise values.missing_key_error(exc, record, cols, done + i + 1) from None
            raise
        conn._active = True
        try:
            await raw.copy_records_to_table(
                name, schema_name=schema, records=records, columns=list(cols)
            )
        except (asyncpg.DataError, TypeError, ValueError, OverflowError) as exc:
            conn._active = False
            error = locate(batch, done)
            if error is None:
                from pgkeel.drivers._asyncpg import _fail

                _fail(exc)
            raise error from exc
        except Exception as exc:
            conn._active = False
            from pgkeel.drivers._asyncpg import _fail

            conn._lost(exc)
            _fail(exc)
        conn._active = False
        done += len(batch)
        if progress is not None:
            progress(done)
    return done


def _check_aware(value: Any) -> None:
    if type(value) is datetime and value.tzinfo is None:
        raise _naive(value)
    if isinstance(value, list):
        for item in value:
            _check_aware(item)


async def stream_batches(
    conn: Connection,
    query: Any,
    params: Any,
    *,
    row: RowSpec,
    batch_size: int,
) -> AsyncIterator[list[Any]]:
    """A query's rows in lists of ``batch_size``, through a server-side cursor (asyncpg's
    ``Connection.cursor``); must run inside a transaction."""
    from pgkeel.drivers._asyncpg import Cursor, _fail
    from pgkeel.drivers._placeholders import sql_text

    text, args = to_dollar(sql_text(query), params)
    if args:
        conn._check_args(args)
    shaper = Cursor(conn, row_factory(row))
    try:
        cursor = await conn.raw.cursor(text, *args)
        while True:
            conn._active = True
            records = await cursor.fetch(batch_size)
            conn._active = False
            if not records:
                return
            shaper._rows, shaper._i, shaper._make = records, 0, None
            yield await shaper.fetchall()
    except psycopg.Error:
        raise
    except Exception as exc:
        conn._active = False
        conn._lost(exc)
        _fail(exc)


async def copy_out(
    conn: Connection, statement: sql.Composable, params: Any, f: IO[Any], text: bool
) -> int:
    """A ``COPY ... TO STDOUT`` statement's data written to ``f``; return the rows copied.
    COPY takes no bound parameters: like psycopg, ``params`` are merged in as literals."""
    from pgkeel.drivers._asyncpg import _fail
    from pgkeel.drivers._placeholders import sql_text

    copy_sql = render_literals(sql_text(statement), params)

    async def sink(data: bytes) -> None:
        f.write(data.decode() if text else data)

    conn._active = True
    try:
        # asyncpg's public copy_from_query() wraps a query in its own COPY (...) TO STDOUT;
        # pgkeel's statement is already one (a table, or its format and header options), which
        # the method under it runs as it is.
        status = await conn.raw._copy_out(copy_sql, sink, None)
    except Exception as exc:
        conn._active = False
        conn._lost(exc)
        _fail(exc)
    conn._active = False
    last = str(status).rpartition(" ")[2]
    return int(last) if last.isdigit() else 0
