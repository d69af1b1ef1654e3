"""Deprecated: bulk operations live in :mod:`pgkeel.bulk`; old imports keep working.

The old modules of the two faces (``pgkeel.copy`` is generated from its asyncio twin) re-export
the functions and classes they used to define, with a ``DeprecationWarning`` naming their new
homes.
"""

from __future__ import annotations

import warnings

from pgkeel.bulk._methods_async import AsyncBulkMethods
from pgkeel.bulk.copy_async import copy_in, copy_in_csv, copy_out, forget_tables
from pgkeel.bulk.pipeline_async import AsyncPipeline
from pgkeel.bulk.stream_async import AsyncRowStream, stream, stream_batches
from pgkeel.bulk.upsert_async import upsert

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

warnings.warn(
    "pgkeel.copy_async is deprecated: import the classes from pgkeel.bulk, and the functions "
    "from pgkeel.bulk.copy_async (copy_in, copy_in_csv, copy_out, forget_tables), "
    "pgkeel.bulk.upsert_async (upsert) and pgkeel.bulk.stream_async (stream, stream_batches)",
    DeprecationWarning,
    stacklevel=2,
)
