"""Bulk and streaming work: binary COPY in, CSV files in and out, upsert, row streams, pipelines.

Each operation is a function over a plain psycopg connection (the caller owns the transaction),
one module per operation, each with its hand-written asyncio twin from which
``tools/async_to_sync.py`` generates it: :mod:`~pgkeel.bulk.copy` (``copy_in``, ``copy_in_csv``,
``copy_out``), :mod:`~pgkeel.bulk.upsert` (``upsert``), :mod:`~pgkeel.bulk.stream` (``stream``,
``stream_batches``, :class:`RowStream`) and :mod:`~pgkeel.bulk.pipeline` (:class:`Pipeline`).
:class:`pgkeel.Database`, :class:`pgkeel.AsyncDatabase` and their transactions have them as
methods through the :class:`BulkMethods` / :class:`AsyncBulkMethods` mixins, where each call is
one transaction (or a savepoint inside the caller's). Values are stored exactly as an ``INSERT``
would store them, or refused with :class:`pgkeel.errors.BadValueError` before anything is
written. Private modules: ``_base`` (statements, upsert plan, time limits), ``_catalog`` (names
and column types), ``_values`` (the COPY's dumpers; naming a refused value's row and column) and
``_dumpers`` (the strict dumpers).
"""

from __future__ import annotations

from pgkeel.bulk._methods import BulkMethods
from pgkeel.bulk._methods_async import AsyncBulkMethods
from pgkeel.bulk.pipeline import Pipeline
from pgkeel.bulk.pipeline_async import AsyncPipeline
from pgkeel.bulk.stream import RowStream
from pgkeel.bulk.stream_async import AsyncRowStream

__all__ = [
    "AsyncBulkMethods",
    "AsyncPipeline",
    "AsyncRowStream",
    "BulkMethods",
    "Pipeline",
    "RowStream",
]
