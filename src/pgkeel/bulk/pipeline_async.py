"""Pipelines: many statements sent without waiting for each result (psycopg pipeline mode).

:class:`AsyncPipeline` is what ``AsyncDatabase.pipeline()`` yields, over a connection in a
transaction; the sync face is generated from the asyncio one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg

from pgkeel._query_base import Query
from pgkeel.rows import RowSpec, row_factory

__all__ = ["AsyncPipeline"]


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
