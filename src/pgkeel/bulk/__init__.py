"""Bulk and streaming work: binary COPY in, CSV files in and out, upsert, row streams, pipelines.

Each operation is a function over a plain psycopg connection (the caller owns the transaction)
in :mod:`pgkeel.bulk.copy`, with its hand-written asyncio twin in :mod:`pgkeel.bulk.copy_async`
(``tools/async_to_sync.py`` generates the sync module from it), and a method of
:class:`pgkeel.Database`, :class:`pgkeel.AsyncDatabase` and their transactions through the
:class:`BulkMethods` / :class:`AsyncBulkMethods` mixins, where each call is one transaction (or a
savepoint inside the caller's). Values are stored exactly as an ``INSERT`` would store them, or
refused with :class:`pgkeel.errors.BadValueError` before anything is written.
"""

from __future__ import annotations

from pgkeel.bulk.copy import BulkMethods, Pipeline, RowStream
from pgkeel.bulk.copy_async import AsyncBulkMethods, AsyncPipeline, AsyncRowStream

__all__ = [
    "AsyncBulkMethods",
    "AsyncPipeline",
    "AsyncRowStream",
    "BulkMethods",
    "Pipeline",
    "RowStream",
]
