"""Bulk and streaming operations: COPY in and out, upsert, streaming, pipelining.

The functions here take a plain :class:`psycopg.AsyncConnection` and run on it as it is (the
caller owns the transaction); :class:`AsyncBulkMethods` gives them to
:class:`pgkeel.AsyncDatabase` and its transactions as methods, each call one transaction (or a
savepoint inside the caller's). The sync face is generated from the asyncio one by
``tools/async_to_sync.py``; the logic without I/O they share is in :mod:`pgkeel.bulk._base`. On
the asyncio face local files are opened, read and written in a worker thread
(``asyncio.to_thread``), ~1 MiB per call, so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Sequence
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, LiteralString, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from pgkeel._query_base import Query
from pgkeel.bulk import _base as base
from pgkeel.bulk._base import CopyFormat, OnDuplicate, Progress, Table, TableInfo
from pgkeel.bulk._dumpers import batch_checks, column_ok
from pgkeel.errors import BadValueError
from pgkeel.rows import RowSpec, row_factory

__all__ = [
    "AsyncBulkMethods",
    "AsyncPipeline",
    "AsyncRowStream",
    "copy_in",
    "copy_in_csv",
    "copy_out",
    "forget_tables",
    "stream",
    "stream_batches",
    "upsert",
]

T = TypeVar("T")

_names = itertools.count(1)


def forget_tables(conn: psycopg.AsyncConnection[Any] | None = None) -> None:
    """Kept for compatibility: column types are now read for every call, so there is no cache.

    (A per-connection cache could not see another session's ``ALTER COLUMN ... TYPE``, and a
    binary COPY would then send values in the old type's format.)
    """


async def table_info(conn: psycopg.AsyncConnection[Any], table: Table) -> TableInfo:
    """The table's columns and their types, from the catalog (one round trip, every call)."""
    ident = base.table_identifier(table)
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(base.CATALOG_QUERY, (ident.as_string(conn),))
        records = await cur.fetchall()
    return base.parse_catalog(table, ident, records)


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
    getter: Callable[[Any], Sequence[Any]] | None = base.row_getter(first, cols)
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
                if base.is_missing_key(exc, record, cols):
                    raise base.missing_key_error(exc, record, cols, done + i + 1) from None
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
            base.select_columns(info, columns, ())
        return 0
    cols = base.select_columns(info, columns, first)
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
    where = _Progress()
    async with conn.cursor() as cur:
        oids = base.column_oids(types_of, cols, cur.adapters)
        checks = {} if oids is None else batch_checks(oids)
        if oids is not None:
            checked_oids = {oids[i] for i in checks}
            base.speed_up_dumpers(cur.adapters, oids, conn.info.encoding, checked_oids)
        stmt = base.copy_in_statement(target, cols, oids is not None)

        def locate(
            batch: list[Any], getter: Callable[[Any], Sequence[Any]] | None, start: int
        ) -> Exception | None:
            if oids is None:
                return None
            return base.locate_bad_value(
                types_of, what, cols, oids, cur.adapters, cur, batch, getter, start
            )

        try:
            async with cur.copy(stmt) as copy:
                if oids is not None:
                    copy.set_types(oids)
                return await _copy_rows(copy, rows, first, cols, progress, where, locate, checks)
        except psycopg.Error as exc:
            base.note_server_refusal(
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
        cols = base.select_columns(info, columns, ())
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
    cols = base.select_columns(info, columns, first)
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


if True:  # ASYNC

    async def stream(
        conn: psycopg.AsyncConnection[Any],
        query: Query,
        params: Any = None,
        *,
        row: RowSpec = dict,
        batch_size: int = 10_000,
    ) -> AsyncIterator[Any]:
        """Rows of ``query`` through a server-side cursor, ``batch_size`` at a time.

        Must run inside a transaction; closing the generator closes the cursor.
        """
        async for batch in stream_batches(conn, query, params, row=row, batch_size=batch_size):
            for r in batch:
                yield r

else:  # `yield from` is not allowed in an async def

    def stream(
        conn: psycopg.Connection[Any],
        query: Query,
        params: Any = None,
        *,
        row: RowSpec = dict,
        batch_size: int = 10_000,
    ) -> Iterator[Any]:
        """Rows of ``query`` through a server-side cursor, ``batch_size`` at a time.

        Must run inside a transaction; closing the generator closes the cursor.
        """
        for batch in stream_batches(conn, query, params, row=row, batch_size=batch_size):
            yield from batch


async def stream_batches(
    conn: psycopg.AsyncConnection[Any],
    query: Query,
    params: Any = None,
    *,
    row: RowSpec = dict,
    batch_size: int = 10_000,
    idle_timeout: float | None = None,
    via_copy: bool = False,
) -> AsyncIterator[list[Any]]:
    """:func:`stream`'s rows as lists of at most ``batch_size``.

    With ``via_copy`` (the caller lifted ``statement_timeout``: the whole stream is then one
    statement) a query without parameters is read with ``COPY (query) TO STDOUT``, its column
    names and types taken from the cursor declared for it. ``idle_timeout`` is what the session
    allows between two fetches, for the error when a paused caller outlived it.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    copy_stmt = base.stream_copy_statement(query, params, row, conn) if via_copy else None
    name = f"pgkeel_stream_{next(_names)}"
    async with conn.cursor(name, row_factory=row_factory(row), scrollable=False) as cur:
        cur.itersize = batch_size
        # DECLARE checks the query as it always did (one SELECT or VALUES) and describes it.
        await cur.execute(query, params)
        description = cur.description or []
        while copy_stmt is None:
            try:
                batch = await cur.fetchmany(batch_size)
            except psycopg.errors.IdleInTransactionSessionTimeout as exc:
                raise base.idle_timeout_error(exc, idle_timeout) from exc
            if not batch:
                return
            yield batch
    async with conn.cursor() as ccur, ccur.copy(copy_stmt) as copy:
        # The result's own types: the same loaders a cursor would use, unknown types as str.
        copy.set_types([c.type_code for c in description])
        size = min(batch_size, base.COPY_STREAM_ROWS)
        if True:  # ASYNC
            names = [c.name for c in description] if row is dict else None

            def shaped(records: list[Any]) -> list[Any]:
                return (
                    records if names is None else list(map(dict, map(zip, repeat(names), records)))
                )

            records: list[Any] = []
            async for record in copy.rows():
                records.append(record)
                if len(records) >= size:
                    yield shaped(records)
                    records = []
            if records:
                yield shaped(records)
        else:
            rows: Iterator[Any] = copy.rows()
            if row is dict:
                names = [c.name for c in description]
                rows = map(dict, map(zip, itertools.repeat(names), rows))
            while batch := list(itertools.islice(rows, size)):
                yield batch


class AsyncRowStream(AsyncIterator[T]):
    """An iterator of rows that is also a context manager: leaving it closes the cursor."""

    def __init__(self, batches: AsyncIterator[list[T]]) -> None:
        self._batches = batches
        if True:  # ASYNC
            self._batch: Iterator[T] = iter(())
        else:
            # A for loop gets the chain itself, so moving from one row to the next runs in C
            # (no Python frame per row); next() on the stream shares the same position.
            self._rows = itertools.chain.from_iterable(batches)

    if True:  # ASYNC

        def __aiter__(self) -> AsyncRowStream[T]:
            return self

        async def __anext__(self) -> T:
            # Rows come from the current list without awaiting anything; only the end of a list
            # goes back to the cursor (an async generator per row cost ~1 us each).
            for r in self._batch:
                return r
            while True:
                self._batch = iter(await anext(self._batches))
                for r in self._batch:
                    return r

    else:

        def __iter__(self) -> Iterator[T]:
            return self._rows

        def __next__(self) -> T:
            return next(self._rows)

    async def close(self) -> None:
        """Close the cursor and end the stream's transaction, even half way through."""
        aclose = getattr(self._batches, "aclose", None)
        if aclose is not None:
            await aclose()

    async def __aenter__(self) -> AsyncRowStream[T]:
        return self

    async def __aexit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class AsyncPipeline:
    """Statements sent without waiting for each result (psycopg pipeline mode).

    ``execute`` and ``execute_many`` queue; a ``fetch_*`` call waits for everything queued so far.
    Errors surface at the latest when the ``pipeline()`` block ends, which then rolls back.
    """

    def __init__(
        self, conn: psycopg.AsyncConnection[Any], pipeline: psycopg.AsyncPipeline | None = None
    ) -> None:
        self._conn = conn
        self._pipeline = pipeline
        self.statements = 0

    async def execute(self, query: Query, params: Any = None) -> None:
        await self._conn.execute(query, params)
        self.statements += 1

    async def execute_many(self, query: Query, params_seq: Iterable[Any]) -> None:
        async with self._conn.cursor() as cur:
            await cur.executemany(query, params_seq)
        self.statements += 1

    async def fetch_all(
        self, query: Query, params: Any = None, *, row: RowSpec = dict
    ) -> list[Any]:
        self.statements += 1
        async with self._conn.cursor(row_factory=row_factory(row)) as cur:
            await cur.execute(query, params)
            return await cur.fetchall()

    async def fetch_one(self, query: Query, params: Any = None, *, row: RowSpec = dict) -> Any:
        self.statements += 1
        async with self._conn.cursor(row_factory=row_factory(row)) as cur:
            await cur.execute(query, params)
            return await cur.fetchone()

    async def fetch_val(self, query: Query, params: Any = None) -> Any:
        record = await self.fetch_one(query, params, row=tuple)
        return None if record is None else record[0]

    async def sync(self) -> None:
        """Wait for every queued statement; raise the first error among them."""
        if self._pipeline is not None:
            await self._pipeline.sync()


class AsyncBulkMethods:
    """The bulk and streaming methods of :class:`pgkeel.AsyncDatabase` and its transactions.

    Each call runs in ``self._atomic()``: its own transaction on a pooled connection, or a
    savepoint inside the transaction it is called on, so an error anywhere (a bad value, an
    exception from the row iterator) leaves nothing behind.
    """

    __slots__ = ()

    if TYPE_CHECKING:
        # Provided by the class this is mixed into (AsyncDatabase, its transactions).
        def _atomic(
            self,
        ) -> contextlib.AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]: ...

    @contextlib.asynccontextmanager
    async def _bulk_atomic(
        self, settings: Sequence[LiteralString] = (base.STATEMENT_TIMEOUT,)
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """``_atomic()`` with the Database's limits for bulk work (or streams) set inside it."""
        config, nested = base.owner_config(self)
        limits = base.local_limits(config, settings)
        async with self._atomic() as conn:
            if not limits:
                yield conn
                return
            async with conn.cursor(row_factory=tuple_row) as cur:
                restore: list[tuple[str, str]] = []
                for setting, value in limits:
                    if nested:
                        await cur.execute(base.SWAP_LOCAL, (setting, setting, value))
                        old = await cur.fetchone()
                        assert old is not None
                        restore.append((setting, old[0]))
                    else:
                        await cur.execute(base.SET_LOCAL, (setting, value))
                yield conn
                for setting, old_value in restore:
                    await cur.execute(base.SET_LOCAL, (setting, old_value))

    async def copy_in(
        self,
        table: Table,
        rows: Iterable[Any] | AsyncIterable[Any],
        *,
        columns: Sequence[str] | None = None,
        progress: Progress | None = None,
    ) -> int:
        """Binary COPY of ``rows`` (tuples, or dicts mapped by column name) into ``table``.

        Column types come from the catalog (read on every call); returns the number of rows
        written. Each value is stored exactly as ``INSERT ... VALUES (%s)`` would store it, or
        refused: a value of the wrong Python type or out of the column's range raises
        :class:`pgkeel.errors.BadValueError` naming the row, the column and both types, and
        nothing is written (see :mod:`pgkeel.bulk._dumpers` for the accepted types).
        """
        async with self._bulk_atomic() as conn:
            return await copy_in(conn, table, rows, columns=columns, progress=progress)

    async def copy_in_csv(
        self,
        table: Table,
        file: str | Path | IO[Any],
        *,
        columns: Sequence[str] | None = None,
        header: bool = True,
        delimiter: str = ",",
        progress: Progress | None = None,
    ) -> int:
        """COPY a CSV file (a path or a file object) into ``table``; return rows loaded."""
        async with self._bulk_atomic() as conn:
            return await copy_in_csv(
                conn,
                table,
                file,
                columns=columns,
                header=header,
                delimiter=delimiter,
                progress=progress,
            )

    async def copy_out(
        self,
        query_or_table: LiteralString | sql.Composable | tuple[str, str],
        file: str | Path | IO[Any],
        *,
        params: Any = None,
        format: CopyFormat = "csv",
        header: bool = True,
        progress: Progress | None = None,
    ) -> int:
        """Stream a query's result or a table to a file (a path or a file object); return rows."""
        async with self._bulk_atomic() as conn:
            return await copy_out(
                conn,
                query_or_table,
                file,
                params=params,
                format=format,
                header=header,
                progress=progress,
            )

    async def upsert(
        self,
        table: Table,
        rows: Iterable[Any] | AsyncIterable[Any],
        *,
        key: Sequence[str] | str,
        update: Sequence[str] | None = None,
        columns: Sequence[str] | None = None,
        on_duplicate: OnDuplicate = "error",
    ) -> int:
        """Insert ``rows``, updating those whose ``key`` exists; return rows inserted + updated.

        ``update`` names the columns to overwrite (default: every copied non-key column; an empty
        list means do nothing on conflict). A key repeated within ``rows`` raises
        :class:`pgkeel.DuplicateKeyError`, or keeps the last row with ``on_duplicate="last"``.
        """
        async with self._bulk_atomic() as conn:
            return await upsert(
                conn,
                table,
                rows,
                key=key,
                update=update,
                columns=columns,
                on_duplicate=on_duplicate,
            )

    def stream(
        self,
        query: Query,
        params: Any = None,
        *,
        row: RowSpec = dict,
        batch_size: int = 10_000,
    ) -> AsyncRowStream[Any]:
        """Iterate over a query's rows with memory bounded by ``batch_size``, whatever the size.

        A query without ``params`` (and ``row=dict`` or ``tuple``) is read with ``COPY (query)
        TO STDOUT``, one statement limited by ``bulk_timeout``; otherwise a server-side cursor
        fetches ``batch_size`` rows at a time, and ``stream_idle_timeout`` is how long the caller
        may spend between two fetches. Use it as a context manager (or ``close()`` it) to stop
        early and free the connection.
        """

        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        config, _ = base.owner_config(self)
        idle = None if config is None else config.stream_idle_timeout

        if True:  # ASYNC

            async def batches() -> AsyncIterator[list[Any]]:
                async with self._bulk_atomic((base.STATEMENT_TIMEOUT, base.IDLE_TIMEOUT)) as conn:
                    async for batch in stream_batches(
                        conn,
                        query,
                        params,
                        row=row,
                        batch_size=batch_size,
                        idle_timeout=idle,
                        via_copy=config is not None,
                    ):
                        yield batch

        else:  # `yield from`: closing the stream closes stream_batches() (its cursor) first

            def batches() -> Iterator[list[Any]]:
                with self._bulk_atomic((base.STATEMENT_TIMEOUT, base.IDLE_TIMEOUT)) as conn:
                    yield from stream_batches(
                        conn,
                        query,
                        params,
                        row=row,
                        batch_size=batch_size,
                        idle_timeout=idle,
                        via_copy=config is not None,
                    )

        return AsyncRowStream(batches())

    @contextlib.asynccontextmanager
    async def pipeline(self) -> AsyncIterator[AsyncPipeline]:
        """Batch many statements into few round trips, in one transaction."""
        async with self._atomic() as conn, conn.pipeline() as pipeline:
            yield AsyncPipeline(conn, pipeline)
