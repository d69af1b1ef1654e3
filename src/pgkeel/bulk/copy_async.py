"""COPY in and out: rows into a table (binary COPY), a CSV file into a table, a query to a file.

The functions here take a plain :class:`psycopg.AsyncConnection` and run on it as it is (the
caller owns the transaction); :class:`pgkeel.bulk.AsyncBulkMethods` gives them to
:class:`pgkeel.AsyncDatabase` and its transactions as methods, each call one transaction (or a
savepoint inside the caller's). The sync face is generated from the asyncio one by
``tools/async_to_sync.py``; the logic without I/O they share is in :mod:`pgkeel.bulk._base`,
``_catalog`` and ``_values``. On the asyncio face local files are opened, read and written in a
worker thread (``asyncio.to_thread``), ~1 MiB per call, so the event loop never waits on the
disk. The column types (:func:`table_info`) and the binary COPY of rows (``_copy_into``) serve
:mod:`pgkeel.bulk.upsert_async` too.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Sequence
from operator import itemgetter
from pathlib import Path
from typing import IO, Any, LiteralString, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from pgkeel import drivers
from pgkeel.bulk import _base as base
from pgkeel.bulk import _catalog as catalog
from pgkeel.bulk import _values as values
from pgkeel.bulk._base import CopyFormat, Progress
from pgkeel.bulk._catalog import Table, TableInfo
from pgkeel.bulk._dumpers import batch_checks, column_ok
from pgkeel.errors import BadValueError

__all__ = ["copy_in", "copy_in_csv", "copy_out", "forget_tables"]

T = TypeVar("T")


def forget_tables(conn: psycopg.AsyncConnection[Any] | None = None) -> None:
    """Kept for compatibility: column types are now read for every call, so there is no cache.

    (A per-connection cache could not see another session's ``ALTER COLUMN ... TYPE``, and a
    binary COPY would then send values in the old type's format.)
    """


async def table_info(conn: psycopg.AsyncConnection[Any], table: Table) -> TableInfo:
    """The table's columns and their types, from the catalog (one round trip, every call)."""
    ident = catalog.table_identifier(table)
    # Another driver's connection (pgkeel.drivers) is no psycopg context: quote without one.
    context = None if drivers.adapter(conn) is not None else conn
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(catalog.CATALOG_QUERY, (ident.as_string(context),))
        records = await cur.fetchall()
    return catalog.parse_catalog(table, ident, records)


if True:  # ASYNC

    async def _first(rows: Iterable[Any] | AsyncIterable[Any]) -> tuple[Any, AsyncIterator[Any]]:
        """The first row (None if none) and an async iterator over all the rows."""
        if isinstance(rows, AsyncIterable):
            it = aiter(rows)
            first = await anext(it, None)

            async def chained() -> AsyncIterator[Any]:
                yield first
                async for r in it:
                    yield r

            return first, chained()
        sync_it = iter(rows)
        first = next(sync_it, None)

        async def from_sync() -> AsyncIterator[Any]:
            yield first
            for r in sync_it:
                yield r

        return first, from_sync()

    async def _batches(rows: AsyncIterator[Any]) -> AsyncIterator[list[Any]]:
        batch: list[Any] = []
        async for r in rows:
            batch.append(r)
            if len(batch) >= base.BATCH_ROWS:
                yield batch
                batch = []
        if batch:
            yield batch

else:

    def _first(rows: Iterable[Any]) -> tuple[Any, Iterator[Any]]:
        """The first row (None if none) and an iterator over all the rows."""
        rows_it = iter(rows)
        first = next(rows_it, None)
        return first, itertools.chain((first,), rows_it)

    _batches = base.iter_batches


class _Progress:
    """Where a COPY is: rows sent before the current batch, and that batch (for error notes)."""

    __slots__ = ("batch", "getter", "start")

    def __init__(self) -> None:
        self.start = 0
        self.batch: list[Any] = []
        self.getter: Callable[[Any], Sequence[Any]] | None = None


async def _copy_rows(
    copy: psycopg.AsyncCopy,
    rows: AsyncIterator[Any],
    first: object,
    cols: Sequence[str],
    progress: Progress | None,
    where: _Progress,
    locate: Callable[[list[Any], Callable[[Any], Sequence[Any]] | None, int], Exception | None],
    checks: dict[int, tuple[frozenset[type], int | None, int | None]],
) -> int:
    done = 0
    getter: Callable[[Any], Sequence[Any]] | None = values.row_getter(first, cols)
    where.getter = getter
    # Columns whose values are checked a batch at a time (then dumped by psycopg's C dumpers).
    dict_rows = getter is not None
    column_checks = [(itemgetter(cols[i] if dict_rows else i), spec) for i, spec in checks.items()]
    # write_row() costs a Python frame per row (a coroutine on the asyncio face): format rows
    # without I/O and write only when the formatter's buffer is full.
    format_row = copy.formatter.write_row
    write = copy.write
    async for batch in _batches(rows):
        where.start, where.batch = done, batch
        try:
            try:
                checked = all(column_ok(map(get, batch), spec) for get, spec in column_checks)
            except IndexError:
                # A tuple shorter than the columns: psycopg's formatter refuses it below, which
                # aborts the COPY whatever the rows before it held.
                checked = True
            if not checked:
                error = locate(batch, getter, done)
                if error is not None:
                    raise error
            for record in batch if getter is None else map(getter, batch):
                if data := format_row(record):
                    await write(data)
        except BadValueError:
            raise
        except KeyError as exc:
            for i, record in enumerate(batch):
                if values.is_missing_key(exc, record, cols):
                    raise values.missing_key_error(exc, record, cols, done + i + 1) from None
            raise
        except (TypeError, ValueError, OverflowError, AttributeError, psycopg.DataError) as exc:
            # A dumper refused a value (or raised on one): name its row and column.
            error = locate(batch, getter, done)
            if error is None:
                raise
            raise error from exc
        done += len(batch)
        if progress is not None:
            progress(done)
    return done


async def copy_in(
    conn: psycopg.AsyncConnection[Any],
    table: Table,
    rows: Iterable[Any] | AsyncIterable[Any],
    *,
    columns: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> int:
    """Binary COPY of ``rows`` (tuples or dicts; on the asyncio face an async iterable too) into
    ``table``; return the number of rows."""
    info = await table_info(conn, table)
    first, rows_it = await _first(rows)
    if first is None:
        if columns is not None:
            catalog.select_columns(info, columns, ())
        return 0
    cols = catalog.select_columns(info, columns, first)
    return await _copy_into(conn, info, info, cols, rows_it, first, progress, "copy_in()")


async def _copy_into(
    conn: psycopg.AsyncConnection[Any],
    target: TableInfo,
    types_of: TableInfo,
    cols: Sequence[str],
    rows: AsyncIterator[Any],
    first: object,
    progress: Progress | None,
    what: str,
) -> int:
    """Binary COPY (text if a type has no binary dumper) of ``rows`` into ``target``'s ``cols``,
    typed by ``types_of`` (the target itself, or the table a staging table copies).

    A value refused on the client raises :class:`pgkeel.errors.BadValueError` (the COPY is
    aborted: nothing is written); a server error gets a note naming the row and column.
    """
    if (other := drivers.adapter(conn)) is not None:
        # Another driver (pgkeel.drivers): its own COPY, the same checks.
        done: int = await other.copy_into(target, types_of, cols, rows, first, progress, what)
        return done
    where = _Progress()
    async with conn.cursor() as cur:
        oids = catalog.column_oids(types_of, cols, cur.adapters)
        checks = {} if oids is None else batch_checks(oids)
        if oids is not None:
            checked_oids = {oids[i] for i in checks}
            values.speed_up_dumpers(cur.adapters, oids, conn.info.encoding, checked_oids)
        stmt = base.copy_in_statement(target, cols, oids is not None)

        def locate(
            batch: list[Any], getter: Callable[[Any], Sequence[Any]] | None, start: int
        ) -> Exception | None:
            if oids is None:
                return None
            return values.locate_bad_value(
                types_of, what, cols, oids, cur.adapters, cur, batch, getter, start
            )

        try:
            async with cur.copy(stmt) as copy:
                if oids is not None:
                    copy.set_types(oids)
                return await _copy_rows(copy, rows, first, cols, progress, where, locate, checks)
        except psycopg.Error as exc:
            values.note_server_refusal(
                exc, types_of, what, cols, where.batch, where.getter, where.start
            )
            raise


if True:  # ASYNC

    async def _io(fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking file call in a worker thread, so the event loop keeps running."""
        return await asyncio.to_thread(fn, *args)

else:

    def _io(fn: Callable[..., T], *args: Any) -> T:
        return fn(*args)


async def _open(file: str | Path | IO[Any], mode: str, stack: contextlib.ExitStack) -> IO[Any]:
    if isinstance(file, str | Path):
        f: IO[Any] = await _io(open, file, mode)
        return stack.enter_context(f)
    return file


async def copy_in_csv(
    conn: psycopg.AsyncConnection[Any],
    table: Table,
    file: str | Path | IO[Any],
    *,
    columns: Sequence[str] | None = None,
    header: bool = True,
    delimiter: str = ",",
    progress: Progress | None = None,
) -> int:
    """COPY a CSV file (path, binary or text file object) into ``table``; return rows loaded.

    With ``header=True`` and no ``columns``, the header line names the columns, in any order.
    ``progress`` gets an estimate (lines read) as data goes and the exact count at the end.
    """
    info = await table_info(conn, table)
    with contextlib.ExitStack() as stack:
        f = await _open(file, "rb", stack)
        server_header = header
        if columns is None and header:
            line = await _io(f.readline)
            text = line.decode() if isinstance(line, bytes) else line
            columns = base.parse_header(text.rstrip("\r\n"), delimiter)
            server_header = False
        cols = catalog.select_columns(info, columns, ())
        stmt = base.copy_in_csv_statement(info, cols, header=server_header, delimiter=delimiter)
        lines = 0
        async with conn.cursor() as cur:
            async with cur.copy(stmt) as copy:
                while chunk := await _io(f.read, base.CSV_CHUNK_BYTES):
                    await copy.write(chunk)
                    if progress is not None:
                        lines += chunk.count(b"\n" if isinstance(chunk, bytes) else "\n")
                        progress(lines)
            done = max(cur.rowcount, 0)
    if progress is not None:
        progress(done)
    return done


async def copy_out(
    conn: psycopg.AsyncConnection[Any],
    query_or_table: LiteralString | sql.Composable | tuple[str, str],
    file: str | Path | IO[Any],
    *,
    params: Any = None,
    format: CopyFormat = "csv",
    header: bool = True,
    progress: Progress | None = None,
) -> int:
    """COPY a query's result or a table to a file (path or file object), streaming; return rows.

    A text file object gets text (the csv and text formats only); anything else gets bytes.
    """
    stmt = base.copy_out_statement(query_or_table, format=format, header=header)
    with contextlib.ExitStack() as stack:
        f = await _open(file, "wb", stack)
        text = base.is_text_file(f)
        if text and format == "binary":
            raise ValueError("binary COPY output needs a binary file, not a text one")
        if (other := drivers.adapter(conn)) is not None:
            # Another driver (pgkeel.drivers) writes the COPY data to the file itself.
            done: int = await other.copy_out(stmt, params, f, text)
            if progress is not None:
                progress(done)
            return done
        async with conn.cursor() as cur:
            async with cur.copy(stmt, params) as copy:
                n = 0
                # Chunks (one row each in the text and csv formats) are written to the file
                # ~1 MiB at a time: one call per chunk would be one thread hop per row.
                pending: list[Any] = []
                size = 0
                async for data in copy:
                    pending.append(data)
                    size += len(data)
                    if size >= base.CSV_CHUNK_BYTES:
                        await _io(_write_out, f, pending, text)
                        pending, size = [], 0
                    if progress is not None:
                        n += 1
                        if n % base.BATCH_ROWS == 0:
                            progress(n)
                if pending:
                    await _io(_write_out, f, pending, text)
            done = max(cur.rowcount, 0)
    if progress is not None:
        progress(done)
    return done


def _write_out(f: IO[Any], chunks: list[Any], text: bool) -> None:
    data = b"".join(chunks)
    f.write(data.decode() if text else data)
