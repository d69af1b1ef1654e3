"""The bulk methods of :class:`pgkeel.AsyncDatabase` and its transactions, as a mixin.

:class:`AsyncBulkMethods` runs each of :mod:`pgkeel.bulk`'s functions in ``self._atomic()`` with
the Database's limits for bulk work set inside it; the faces inherit it. The sync mixin is
generated from the asyncio one.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Generator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, LiteralString, cast

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from pgkeel._query_base import Query
from pgkeel.bulk import _base as base
from pgkeel.bulk._base import CopyFormat, OnDuplicate, Progress
from pgkeel.bulk._catalog import Table
from pgkeel.bulk.copy_async import copy_in, copy_in_csv, copy_out
from pgkeel.bulk.pipeline_async import AsyncPipeline
from pgkeel.bulk.stream_async import AsyncRowStream, stream_batches
from pgkeel.bulk.upsert_async import upsert
from pgkeel.ops._trace import block, detached, detached_async, traced
from pgkeel.pool._reset import changes_session
from pgkeel.rows import RowSpec

__all__ = ["AsyncBulkMethods"]


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

    def _session_changed(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Have ``conn`` reset before the pool hands it out again: a pipeline or a stream ran
        the caller's SQL on it outside the query methods, which watch for session changes."""
        db = getattr(self, "_db", self)  # a transaction's Database, or the Database itself
        dirty = getattr(db, "_dirty", None)
        if dirty is not None:
            dirty.add(id(conn))

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

    @traced("COPY", first="table", rows="affected")
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

    @traced("COPY", first="table", rows="affected")
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

    @traced("COPY", rows="affected")
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

    @traced("upsert", first="table", rows="affected")
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
                async with (
                    block(self, "stream", query, attach=False, rows="returned") as call,
                    detached_async(
                        self._bulk_atomic((base.STATEMENT_TIMEOUT, base.IDLE_TIMEOUT)), call
                    ) as conn,
                ):
                    if changes_session(query):
                        self._session_changed(conn)
                    async for batch in stream_batches(
                        conn,
                        query,
                        params,
                        row=row,
                        batch_size=batch_size,
                        idle_timeout=idle,
                        via_copy=config is not None,
                    ):
                        call.add_rows(len(batch))
                        yield batch

        else:  # closing the stream closes stream_batches() (its cursor) first

            def batches() -> Iterator[list[Any]]:
                with (
                    block(self, "stream", query, attach=False, rows="returned") as call,
                    detached(
                        self._bulk_atomic((base.STATEMENT_TIMEOUT, base.IDLE_TIMEOUT)), call
                    ) as conn,
                ):
                    if changes_session(query):
                        self._session_changed(conn)
                    # A generator (closed below before the transaction ends), typed as an Iterator.
                    inner = cast(
                        Generator[list[Any], None, None],
                        stream_batches(
                            conn,
                            query,
                            params,
                            row=row,
                            batch_size=batch_size,
                            idle_timeout=idle,
                            via_copy=config is not None,
                        ),
                    )
                    try:
                        for batch in inner:
                            call.add_rows(len(batch))
                            yield batch
                    finally:
                        inner.close()

        return AsyncRowStream(batches())

    @contextlib.asynccontextmanager
    async def pipeline(self) -> AsyncIterator[AsyncPipeline]:
        """Batch many statements into few round trips, in one transaction. The connection is
        reset before it goes back to the pool (its statements' tags are not seen one by one)."""
        async with block(self, "BATCH") as call, self._atomic() as conn:
            async with conn.pipeline() as pipeline:
                self._session_changed(conn)
                batch = AsyncPipeline(conn, pipeline)
                yield batch
            call.set("db.operation.batch.size", batch.statements)
