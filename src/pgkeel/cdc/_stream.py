"""The change consumer: psycopg2's replication connection in a reader thread, pgoutput decoded
and typed in the caller's thread, acknowledgements that never run ahead of the application.

The reader thread owns the replication connection: it reads raw messages into small batches
on a bounded queue (so memory stays flat however large a transaction is) and sends the
standby status updates on time even while the application is slow to take the next batch
(the server would otherwise end the connection after ``wal_sender_timeout``). The position it
reports as flushed is only ever one the application acknowledged with :meth:`Changes.ack`.
A lost connection raises :class:`psycopg2.OperationalError` from the iteration; nothing is
skipped: a new ``changes()`` resumes after the last acknowledged transaction.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import select
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg

from pgkeel import types as _types
from pgkeel.cdc._decoder import (
    UNCHANGED,
    Begin,
    Commit,
    Delete,
    Insert,
    LogicalMessage,
    Origin,
    Relation,
    Truncate,
    TypeInfo,
    Update,
    decode,
)
from pgkeel.cdc._slots import prepare
from pgkeel.cdc._values import RowLoader, TypeLoaders
from pgkeel.config import Config, direct_conninfo, resolve
from pgkeel.errors import CdcError

__all__ = ["Change", "Changes", "Transaction", "changes"]

logger = logging.getLogger("pgkeel.cdc")

Op = Literal["insert", "update", "delete", "truncate"]

#: Raw messages per queue item, and queue items in flight: bounds memory (with the socket
#: buffers) whatever the size of a transaction.
BATCH = 512
DEPTH = 16


@dataclass(slots=True)
class Change:
    """One row change (or one truncated table) of a committed transaction.

    Not frozen (a frozen dataclass costs four times as much to build, per change); treat it as
    read-only.
    """

    op: Op
    table: tuple[str, str]
    new: dict[str, Any] | None
    old: dict[str, Any] | None
    lsn: int
    xid: int
    commit_lsn: int
    commit_time: datetime


class _End:
    pass


_STOP = _End()


class _Reader(threading.Thread):
    """Owns the replication connection: reads, batches, and sends status updates."""

    def __init__(self, conninfo: str, slot: str, publication: str, status_interval: float) -> None:
        super().__init__(name=f"pgkeel-cdc-{slot}", daemon=True)
        self.conninfo = conninfo
        self.slot = slot
        self.publication = publication
        self.status_interval = status_interval
        self.queue: queue.Queue[list[tuple[int, bytes]] | _End] = queue.Queue(maxsize=DEPTH)
        #: Written by the application thread (an int: one atomic store), read here.
        self.acked = 0
        self.error: BaseException | None = None
        self.stopping = threading.Event()
        self.started_ok = threading.Event()
        self._sent = 0
        self._last_status = 0.0

    def run(self) -> None:
        import psycopg2
        from psycopg2.extras import LogicalReplicationConnection

        conn = None
        try:
            conn = psycopg2.connect(self.conninfo, connection_factory=LogicalReplicationConnection)
            cur = conn.cursor()
            # Protocol 1: every supported server speaks it; 2+ only add the streaming of
            # in-progress transactions, which would hand out rows of transactions that may
            # still abort.
            cur.start_replication(
                slot_name=self.slot,
                decode=False,
                start_lsn=0,
                options={"proto_version": "1", "publication_names": self.publication},
                # psycopg2 refuses less than 1 s; the reader sends its own updates more often.
                status_interval=max(1.0, self.status_interval),
            )
            self.started_ok.set()
            with contextlib.suppress(_Stopped):
                self._loop(cur)
            self._feedback(cur, force=True)
        except BaseException as exc:
            if not self.stopping.is_set():
                self.error = exc
        finally:
            self.started_ok.set()
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # closing a broken connection: nothing else to do
                    logger.debug("closing the replication connection failed", exc_info=True)
            self._put(_STOP, cur=None)

    def _loop(self, cur: Any) -> None:
        batch: list[tuple[int, bytes]] = []
        read = cur.read_message
        while not self.stopping.is_set():
            msg = read()
            if msg is not None:
                batch.append((msg.data_start, msg.payload))
                if len(batch) >= BATCH:
                    self._put(batch, cur)
                    batch = []
                continue
            if batch:
                self._put(batch, cur)
                batch = []
            self._feedback(cur)
            select.select([cur], [], [], min(1.0, self.status_interval))

    def _put(self, item: list[tuple[int, bytes]] | _End, cur: Any) -> None:
        while True:
            try:
                self.queue.put(item, timeout=0.5)
            except queue.Full:
                if self.stopping.is_set() and cur is not None:
                    raise _Stopped from None
                if cur is not None:
                    self._feedback(cur)
                elif self.stopping.is_set():
                    return
            else:
                return

    def _feedback(self, cur: Any, force: bool = False) -> None:
        acked = self.acked
        now = time.monotonic()
        if acked > self._sent or force or now - self._last_status >= self.status_interval:
            # write/flush: only what the application acknowledged, never what was read.
            cur.send_feedback(write_lsn=acked, flush_lsn=acked, force=True)
            self._sent = acked
            self._last_status = now


class _Stopped(Exception):
    pass


class Transaction:
    """One committed transaction, read change by change (never held whole in memory).

    ``commit_lsn``/``xid``/``commit_time`` are known from the start; ``end_lsn`` (what
    :meth:`Changes.ack` confirms) once the transaction was read to its end.
    """

    __slots__ = ("_changes", "commit_lsn", "commit_time", "end_lsn", "xid")

    def __init__(self, changes: Changes, begin: Begin) -> None:
        self._changes = changes
        self.commit_lsn = begin.final_lsn
        self.commit_time = begin.commit_time
        self.xid = begin.xid
        self.end_lsn: int | None = None

    def __iter__(self) -> Iterator[Change]:
        if self.end_lsn is None:
            yield from self._changes._read_body(self)

    def __repr__(self) -> str:
        from pgkeel.cdc._decoder import format_lsn

        return f"<Transaction xid={self.xid} commit_lsn={format_lsn(self.commit_lsn)}>"


class Changes:
    """The stream of committed changes of one slot (see :func:`changes`)."""

    def __init__(
        self,
        config: Config,
        *,
        slot: str,
        publication: str,
        create: bool = False,
        tables: Sequence[str] | None = None,
        status_interval: float = 10.0,
    ) -> None:
        self._config = config
        # The replication protocol needs the server itself: behind a pooler, direct_url=.
        self._conninfo = direct_conninfo(config, "pgkeel.cdc (the replication protocol)")
        self.slot = slot
        self.publication = publication
        self._create = create
        self._tables = tables
        self._status_interval = status_interval
        self._meta: psycopg.Connection[Any] | None = None
        self._reader: _Reader | None = None
        self._relations: dict[int, tuple[Relation, RowLoader]] = {}
        self._types: TypeLoaders | None = None
        self._messages: Iterator[tuple[int, bytes]] | None = None
        self._last_end = 0  # end LSN of the last transaction read to its end
        self._acked = 0
        self._current: Transaction | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self) -> Changes:
        try:
            meta = psycopg.connect(self._conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise type(exc)(self._config.scrub(str(exc))) from None
        self._meta = meta
        try:
            _types.configure(meta)
            prepare(
                meta,
                slot=self.slot,
                publication=self.publication,
                create=self._create,
                tables=self._tables,
            )
            self._types = TypeLoaders(meta)
            self._start_reader()
        except BaseException:
            self.close()
            raise
        return self

    def _start_reader(self) -> None:
        reader = _Reader(self._conninfo, self.slot, self.publication, self._status_interval)
        self._reader = reader
        reader.start()
        reader.started_ok.wait()
        if reader.error is not None:
            self._raise_reader_error()
        self._messages = self._read_messages()

    def close(self) -> None:
        """Send the last acknowledged position and close both connections."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.stopping.set()
            # Unblock a reader waiting on a full queue.
            while reader.is_alive():
                try:
                    reader.queue.get_nowait()
                except queue.Empty:
                    reader.join(0.05)
        meta, self._meta = self._meta, None
        if meta is not None:
            meta.close()

    def __enter__(self) -> Changes:
        return self if self._reader is not None else self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- acknowledgement ---------------------------------------------------------------------

    def ack(self, tx: Transaction | None = None) -> None:
        """Confirm ``tx`` (default: every transaction read to its end so far): it will never be
        delivered again, and the server may free the WAL before it.

        Only acknowledge once the sink has the changes; the position sent to the server is
        never past what was acknowledged.
        """
        if tx is None:
            lsn = self._last_end
        else:
            if not isinstance(tx, Transaction):
                raise TypeError(f"ack() takes a Transaction, not {type(tx).__name__}")
            if tx.end_lsn is None:
                raise CdcError(
                    f"ack({tx!r}) before the transaction was read to its end: iterate over all "
                    "its changes first"
                )
            lsn = tx.end_lsn
        if lsn > self._acked:
            self._acked = lsn
            if self._reader is not None:
                self._reader.acked = lsn

    @property
    def acked_lsn(self) -> int:
        """The last acknowledged position (0 before the first :meth:`ack`)."""
        return self._acked

    # -- reading -----------------------------------------------------------------------------

    def _raise_reader_error(self) -> None:
        reader = self._reader
        error = reader.error if reader is not None else None
        if error is None:
            raise CdcError("the change stream is closed")
        import psycopg2

        if isinstance(error, psycopg2.Error):
            msg = self._config.scrub(str(error).strip())
            if isinstance(error, psycopg2.errors.UndefinedObject) or "does not exist" in msg:
                from pgkeel.errors import SlotLostError

                raise SlotLostError(
                    f"{msg}: the replication slot or publication was dropped while streaming; "
                    "changes may have been lost (see `pgkeel cdc slots`)"
                ) from None
            raise type(error)(msg) from None
        raise error

    def _read_messages(self) -> Iterator[tuple[int, bytes]]:
        reader = self._reader
        assert reader is not None
        get = reader.queue.get
        while True:
            batch = get()
            if isinstance(batch, _End):
                self._raise_reader_error()
                return
            yield from batch

    def transactions(self) -> Iterator[Transaction]:
        """Each committed transaction in commit order; iterate over one for its changes."""
        if self._messages is None:
            raise CdcError("open the stream first: use `with changes(...) as stream:`")
        messages = self._messages
        for _lsn, payload in messages:
            msg = decode(payload)
            if isinstance(msg, Begin):
                tx = Transaction(self, msg)
                self._current = tx
                yield tx
                if tx.end_lsn is None:  # the application did not read it all
                    for _ in self._read_body(tx):
                        pass
            elif isinstance(msg, Relation | TypeInfo | LogicalMessage | Origin):
                self._meta_message(msg)
            else:
                raise CdcError(f"unexpected pgoutput message outside a transaction: {msg!r}")

    def __iter__(self) -> Iterator[Change]:
        for tx in self.transactions():
            yield from tx

    def _meta_message(self, msg: Any) -> None:
        if isinstance(msg, Relation):
            assert self._types is not None
            self._relations[msg.oid] = (
                msg,
                RowLoader(msg.columns, self._types, (msg.namespace, msg.name)),
            )

    def _read_body(self, tx: Transaction) -> Iterator[Change]:
        assert self._messages is not None
        relations = self._relations
        xid, commit_lsn, commit_time = tx.xid, tx.commit_lsn, tx.commit_time
        for lsn, payload in self._messages:
            if payload[0] == 0x49 and len(payload) > 6 and payload[5] == 0x4E:  # Insert: fast path
                rows = relations[int.from_bytes(payload[1:5], "big")][1]
                yield Change(
                    "insert",
                    rows.table,
                    rows.parse(payload, 6),
                    None,
                    lsn,
                    xid,
                    commit_lsn,
                    commit_time,
                )
                continue
            msg = decode(payload)
            if isinstance(msg, Insert):
                rel, rows = relations[msg.relation_oid]
                yield Change(
                    "insert",
                    (rel.namespace, rel.name),
                    rows.row(msg.new),
                    None,
                    lsn,
                    xid,
                    commit_lsn,
                    commit_time,
                )
            elif isinstance(msg, Update):
                rel, rows = relations[msg.relation_oid]
                new = rows.row(msg.new)
                old = rows.row(msg.old) if msg.old is not None else None
                if UNCHANGED in new.values():
                    _fill_unchanged(new, old)
                yield Change(
                    "update", (rel.namespace, rel.name), new, old, lsn, xid, commit_lsn, commit_time
                )
            elif isinstance(msg, Delete):
                rel, rows = relations[msg.relation_oid]
                yield Change(
                    "delete",
                    (rel.namespace, rel.name),
                    None,
                    rows.row(msg.old),
                    lsn,
                    xid,
                    commit_lsn,
                    commit_time,
                )
            elif isinstance(msg, Commit):
                tx.end_lsn = msg.end_lsn
                self._last_end = msg.end_lsn
                return
            elif isinstance(msg, Truncate):
                for oid in msg.relation_oids:
                    rel, _ = relations[oid]
                    yield Change(
                        "truncate",
                        (rel.namespace, rel.name),
                        None,
                        None,
                        lsn,
                        xid,
                        commit_lsn,
                        commit_time,
                    )
            else:
                self._meta_message(msg)
        raise CdcError("the change stream ended inside a transaction")


def _fill_unchanged(new: dict[str, Any], old: dict[str, Any] | None) -> None:
    # REPLICA IDENTITY FULL sends the old row: an unchanged TOAST value it holds is the value.
    if old is None:
        return
    for name, value in new.items():
        if value is UNCHANGED:
            previous = old.get(name, UNCHANGED)
            if previous is not UNCHANGED:
                new[name] = previous


def changes(
    db_or_url: Any = None,
    *,
    slot: str,
    publication: str,
    create: bool = False,
    tables: Sequence[str] | None = None,
    status_interval: float = 10.0,
) -> Changes:
    """The committed changes of ``publication`` through replication slot ``slot``.

    ``db_or_url`` is a :class:`~pgkeel.Database` (its connection settings are used), a URL, or
    None for ``$DATABASE_URL``. Use it as a context manager; iterate over
    :meth:`Changes.transactions` (or over the stream for the changes alone) and call
    :meth:`Changes.ack` once the sink has a transaction. See the README's CDC section.
    """
    config = getattr(db_or_url, "config", None)
    if not isinstance(config, Config):
        if db_or_url is not None and not isinstance(db_or_url, str):
            raise TypeError(f"changes() takes a Database or a URL, not {type(db_or_url).__name__}")
        config = resolve(db_or_url)
    if isinstance(status_interval, bool) or not 0 < status_interval <= 3600:
        raise ValueError(f"status_interval must be in (0, 3600] seconds, not {status_interval!r}")
    return Changes(
        config,
        slot=slot,
        publication=publication,
        create=create,
        tables=tables,
        status_interval=status_interval,
    )
