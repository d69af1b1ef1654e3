"""Row streams: a query's rows with memory bounded by the batch size, whatever the result's size.

:func:`stream_batches` reads through a server-side cursor, or, when the caller lifted the
statement timeout (a query without parameters, the whole stream one statement), with
``COPY (query) TO STDOUT``; :func:`stream` yields its rows one at a time, and
:class:`AsyncRowStream` wraps the batches in an iterator that is also a context manager, closing
the cursor when left. The sync face is generated from the asyncio one.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from itertools import repeat
from types import TracebackType
from typing import Any, TypeVar

import psycopg

from pgkeel import drivers
from pgkeel._query_base import Query
from pgkeel.bulk import _base as base
from pgkeel.rows import RowSpec, row_factory

__all__ = ["AsyncRowStream", "stream", "stream_batches"]

T = TypeVar("T")

_names = itertools.count(1)


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
    if (other := drivers.adapter(conn)) is not None:
        # Another driver (pgkeel.drivers): its own server-side cursor.
        async for batch in other.stream_batches(query, params, row=row, batch_size=batch_size):
            yield batch
        return
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
