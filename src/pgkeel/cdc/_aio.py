"""The async face of :mod:`pgkeel.cdc`: the same stream, with its blocking reads in a worker
thread (psycopg 3 does not speak the replication protocol, psycopg2 is blocking).

Changes are fetched from the sync stream in chunks (up to a transaction's end) per worker
call, so the event loop pays one thread hop per chunk, not per change.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import Any

from pgkeel.cdc._stream import Change, Changes, Transaction

__all__ = ["AsyncChanges", "AsyncTransaction"]

CHUNK = 512


class _Done:
    __slots__ = ("tx",)

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx


Event = Transaction | Change | _Done


class AsyncTransaction:
    """One committed transaction; ``async for change in tx``. Same attributes as
    :class:`~pgkeel.cdc.Transaction`."""

    def __init__(self, stream: AsyncChanges, tx: Transaction) -> None:
        self._stream = stream
        self.tx = tx
        self.done = False  # the application (or the stream) read it to its end

    @property
    def commit_lsn(self) -> int:
        return self.tx.commit_lsn

    @property
    def end_lsn(self) -> int | None:
        # The worker thread reads ahead: the end is only known here once read to it.
        return self.tx.end_lsn if self.done else None

    @property
    def xid(self) -> int:
        return self.tx.xid

    async def __aiter__(self) -> AsyncIterator[Change]:
        while not self.done:
            event = await self._stream._next()
            if isinstance(event, _Done):
                self.done = True
            elif isinstance(event, Change):
                yield event


class AsyncChanges:
    """``async with AsyncChanges(db_or_url, slot=..., publication=...) as stream`` — the
    arguments of :func:`pgkeel.cdc.changes`; ``async for tx in stream.transactions()``."""

    def __init__(self, db_or_url: Any = None, **kwargs: Any) -> None:
        from pgkeel.cdc._stream import changes

        self._sync: Changes = changes(db_or_url, **kwargs)
        self._events: Iterator[Event] | None = None
        self._buffer: deque[Event] = deque()
        self._last_done: Transaction | None = None

    async def open(self) -> AsyncChanges:
        await asyncio.to_thread(self._sync.open)
        self._events = self._generate()
        return self

    async def close(self) -> None:
        await asyncio.to_thread(self._sync.close)

    async def __aenter__(self) -> AsyncChanges:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def ack(self, tx: AsyncTransaction | Transaction | None = None) -> None:
        """As :meth:`pgkeel.cdc.Changes.ack` (it does no I/O: the reader thread sends it)."""
        if isinstance(tx, AsyncTransaction):
            if not tx.done:
                from pgkeel.errors import CdcError

                raise CdcError(
                    "ack(tx) before the transaction was read to its end: iterate over all its "
                    "changes first"
                )
            tx = tx.tx
        elif tx is None:
            tx = self._last_done
            if tx is None:
                return
        self._sync.ack(tx)

    @property
    def acked_lsn(self) -> int:
        return self._sync.acked_lsn

    def _generate(self) -> Iterator[Event]:
        for tx in self._sync.transactions():
            yield tx
            yield from tx
            yield _Done(tx)

    def _chunk(self) -> list[Event]:
        assert self._events is not None
        out: list[Event] = []
        for event in self._events:
            out.append(event)
            if len(out) >= CHUNK or isinstance(event, _Done):
                break
        return out

    async def _next(self) -> Event:
        if not self._buffer:
            chunk = await asyncio.to_thread(self._chunk)
            if not chunk:
                raise StopAsyncIteration
            self._buffer.extend(chunk)
        return self._buffer.popleft()

    async def transactions(self) -> AsyncIterator[AsyncTransaction]:
        """Each committed transaction in commit order."""
        while True:
            try:
                event = await self._next()
            except StopAsyncIteration:
                return
            if isinstance(event, Transaction):
                atx = AsyncTransaction(self, event)
                yield atx
                async for _ in atx:  # the rest of a transaction the application left
                    pass
                self._last_done = event

    async def __aiter__(self) -> AsyncIterator[Change]:
        async for tx in self.transactions():
            async for change in tx:
                yield change
