"""COPY on driver="psycopg2": psycopg's ``Copy`` surface (``formatter``, ``write``,
``set_types``, iteration, ``rows()``) over psycopg2's ``copy_expert``, so that pgkeel's bulk
functions (``copy_in``, ``copy_in_csv``, ``upsert``, ``copy_out``, ``stream``) run unchanged.

Rows are formatted and parsed by psycopg's own formatter (its C dumpers and loaders, with the
cursor's adapters: the same checks and values as on psycopg); psycopg2 only moves the bytes.
psycopg2's COPY is pull-based (it reads a file object) while the bulk functions push: COPY FROM
collects the data in a spooled temporary file (memory up to ``SPOOL_MEMORY``, then disk) and
sends it when the block ends, so a value refused half way sends nothing at all; COPY TO runs
``copy_expert`` in a helper thread that hands chunks of whole rows over a small queue (bounded
memory), and a block left early cancels the statement.
"""

from __future__ import annotations

import contextlib
import queue
import tempfile
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import adapt
from psycopg._copy_base import BinaryFormatter, TextFormatter, _parse_row_text

from pgkeel.drivers._placeholders import sql_text
from pgkeel.drivers._psycopg2 import _fail

if TYPE_CHECKING:
    from pgkeel.drivers._psycopg2 import Cursor

__all__ = ["Copy"]

#: COPY FROM data kept in memory before the spool moves to a temporary file.
SPOOL_MEMORY = 16 << 20
#: COPY TO: bytes of whole rows per chunk handed from the reader thread, and chunks in flight.
CHUNK = 64 << 10
IN_FLIGHT = 8


class _Reader:
    """The file object ``copy_expert`` writes COPY TO data into, from the helper thread."""

    def __init__(self, chunks: queue.Queue[Any]) -> None:
        self._chunks = chunks
        self._buffer = bytearray()
        self.aborted = False

    def write(self, data: Any) -> None:
        if self.aborted:
            return
        buffer = self._buffer
        buffer += data
        if len(buffer) >= CHUNK:
            self._chunks.put(bytes(buffer))
            buffer.clear()

    def flush(self) -> None:
        if self._buffer and not self.aborted:
            self._chunks.put(bytes(self._buffer))
        self._buffer.clear()


class Copy:
    """One COPY statement on a psycopg2 cursor, with psycopg's ``Copy`` surface."""

    def __init__(self, cursor: Cursor, statement: Any, params: Any) -> None:
        self._cursor = cursor
        text = sql_text(statement)
        if params is not None:
            # COPY takes no bind parameters: psycopg binds them client-side here too.
            text = cursor._cur.mogrify(text, cursor._conn._params(params)).decode()
        self._text = text
        # The statements come from pgkeel.bulk._base, which writes the binary option so.
        self._binary = "FORMAT BINARY" in text.upper()
        tx = adapt.Transformer(cursor)  # an AdaptContext: adapters, connection
        self.formatter: Any = BinaryFormatter(tx) if self._binary else TextFormatter(tx)
        self._spool: Any = None
        self._thread: threading.Thread | None = None
        self._reader: _Reader | None = None
        self._error: BaseException | None = None
        self._done = False

    def __enter__(self) -> Copy:
        return self

    def __exit__(self, typ: type[BaseException] | None, exc: object, tb: object) -> None:
        if self._thread is not None:
            self._finish_out(aborted=not self._done)
            if typ is None and self._error is not None:
                _fail(self._error)
            return
        spool = self._spool
        if typ is not None:
            # Nothing was sent: the COPY never started, and the table is untouched.
            if spool is not None:
                spool.close()
            return
        self.write(self.formatter.end())
        spool = self._spool
        spool.seek(0)
        try:
            self._cursor._cur.copy_expert(self._text, spool, size=1 << 20)
        except BaseException as error:
            self._cursor._conn._lost(error)
            _fail(error)
        finally:
            spool.close()

    def set_types(self, types: Any) -> None:
        registry = self._cursor.adapters.types
        oids = [t if isinstance(t, int) else registry.get_oid(t) for t in types]
        # The direction is not known before data moves: set both. A type without a dumper (an
        # enum) can only be a COPY TO's here: pgkeel's COPY FROM sets types only when every
        # column has a binary dumper (``catalog.column_oids``).
        tx = self.formatter.transformer
        with contextlib.suppress(psycopg.ProgrammingError):
            tx.set_dumper_types(oids, self.formatter.format)
        tx.set_loader_types(oids, self.formatter.format)

    # --- COPY FROM -----------------------------------------------------------------------

    def write(self, data: Any) -> None:
        if not data:
            return
        if self._spool is None:
            # Closed in __exit__, whichever way the block ends.
            self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # noqa: SIM115
        self._spool.write(data.encode() if isinstance(data, str) else data)

    def write_row(self, row: Any) -> None:
        self.write(self.formatter.write_row(row))

    # --- COPY TO -------------------------------------------------------------------------

    def __iter__(self) -> Iterator[bytes]:
        chunks: queue.Queue[Any] = queue.Queue(IN_FLIGHT)
        reader = _Reader(chunks)
        self._reader = reader
        raw_cursor = self._cursor._cur
        end = object()

        def run() -> None:
            try:
                raw_cursor.copy_expert(self._text, reader, size=CHUNK)
                reader.flush()
            except BaseException as error:
                self._error = error
            finally:
                chunks.put(end)

        self._reading = True
        self._thread = threading.Thread(target=run, name="pgkeel-psycopg2-copy", daemon=True)
        self._thread.start()
        while (chunk := chunks.get()) is not end:
            yield chunk
        self._done = True
        self._thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            self._cursor._conn._lost(error)
            _fail(error)

    def rows(self) -> Iterator[tuple[Any, ...]]:
        """The rows of a text-format COPY TO, parsed by psycopg's loaders (``set_types``)."""
        if self._binary:
            raise psycopg.NotSupportedError(
                "rows() of a binary COPY TO is not available on driver='psycopg2'"
            )
        # psycopg's C parser takes the column count from a libpq result, which psycopg2's COPY
        # does not expose; its Python twin takes it from the row.
        tx = self.formatter.transformer
        for chunk in self:
            # Text COPY escapes newlines inside values: each line is one row, and the reader
            # hands over whole rows only.
            for line in chunk.splitlines(True):
                yield _parse_row_text(line, tx)

    def _finish_out(self, aborted: bool) -> None:
        """Wait for the reader thread; a COPY TO left early is cancelled first."""
        thread, reader = self._thread, self._reader
        assert thread is not None
        assert reader is not None
        if aborted and thread.is_alive():
            reader.aborted = True
            raw = self._cursor._conn.raw
            if not raw.closed:
                raw.cancel()
            # Let the thread put what it holds and its end marker.
            chunks = reader._chunks
            while thread.is_alive():
                with contextlib.suppress(queue.Empty):
                    chunks.get(timeout=0.1)
            self._error = None
        thread.join()
