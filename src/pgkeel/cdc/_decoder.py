"""The pgoutput message decoder: bytes in, plain Python records out, no I/O.

Written from PostgreSQL's "Logical Replication Message Formats" chapter (protocol versions 1
and 2 without streaming: pgkeel does not ask for in-progress transactions, so the v2 stream
messages never arrive and carry no extra xid field). Each message is the payload of one
XLogData record; :func:`decode` turns it into one of the records below. Tuple columns stay
raw bytes (``None`` for NULL, :data:`UNCHANGED` for an unchanged TOAST value): typing them is
``_values``' job, so this module knows nothing about types and is tested byte by byte.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

__all__ = [
    "UNCHANGED",
    "Begin",
    "Column",
    "Commit",
    "DecodeError",
    "Delete",
    "Insert",
    "LogicalMessage",
    "Origin",
    "Relation",
    "Truncate",
    "TypeInfo",
    "Update",
    "decode",
    "format_lsn",
]


class _Unchanged:
    """The marker for a TOASTed value the server did not send because the row change left it
    as it was: it is not NULL, and must never be written as NULL."""

    _instance: _Unchanged | None = None

    def __new__(cls) -> _Unchanged:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "pgkeel.cdc.UNCHANGED"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "UNCHANGED"


#: An unchanged TOAST value (the column kept its old value; the server did not resend it).
UNCHANGED: Final = _Unchanged()

#: PostgreSQL timestamps count microseconds from 2000-01-01 UTC.
PG_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)

Raw = bytes | None | _Unchanged


class DecodeError(ValueError):
    """A pgoutput message is malformed (truncated, unknown tag): never guessed around."""


def format_lsn(lsn: int) -> str:
    """An LSN as PostgreSQL prints it (``16/B374D848``)."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def _time(micros: int) -> datetime:
    return PG_EPOCH + timedelta(microseconds=micros)


@dataclass(frozen=True, slots=True)
class Begin:
    final_lsn: int  # the LSN of the transaction's commit record
    commit_time: datetime
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    flags: int
    commit_lsn: int
    end_lsn: int  # the end of the commit record: what a consumer acknowledges
    commit_time: datetime


@dataclass(frozen=True, slots=True)
class Origin:
    lsn: int
    name: str


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type_oid: int
    type_modifier: int
    key: bool


@dataclass(frozen=True, slots=True)
class Relation:
    oid: int
    namespace: str
    name: str
    replica_identity: str  # "d" default, "n" nothing, "f" full, "i" index
    columns: tuple[Column, ...]


@dataclass(frozen=True, slots=True)
class TypeInfo:
    oid: int
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class Insert:
    relation_oid: int
    new: tuple[Raw, ...]


@dataclass(frozen=True, slots=True)
class Update:
    relation_oid: int
    old: tuple[Raw, ...] | None
    old_kind: str | None  # "K": only the replica identity key; "O": the whole old row
    new: tuple[Raw, ...]


@dataclass(frozen=True, slots=True)
class Delete:
    relation_oid: int
    old: tuple[Raw, ...]
    old_kind: str


@dataclass(frozen=True, slots=True)
class Truncate:
    relation_oids: tuple[int, ...]
    cascade: bool
    restart_identity: bool


@dataclass(frozen=True, slots=True)
class LogicalMessage:
    transactional: bool
    lsn: int
    prefix: str
    content: bytes


Message = (
    Begin
    | Commit
    | Origin
    | Relation
    | TypeInfo
    | Insert
    | Update
    | Delete
    | Truncate
    | LogicalMessage
)

_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_U32 = struct.Struct("!I")
_BEGIN = struct.Struct("!QqI")
_COMMIT = struct.Struct("!BQQq")
_REL_HEAD = struct.Struct("!I")
_TUPLE_HEAD = struct.Struct("!IcH")  # relation oid, 'N'/'K'/'O', number of columns


class _Reader:
    """A cursor over one message; every read checks the bounds."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 1  # past the tag byte

    def need(self, n: int) -> None:
        if self.pos + n > len(self.buf):
            raise DecodeError(
                f"pgoutput message truncated: needs {n} bytes at offset {self.pos}, "
                f"has {len(self.buf) - self.pos}"
            )

    def unpack(self, st: struct.Struct) -> tuple[Any, ...]:
        self.need(st.size)
        values = st.unpack_from(self.buf, self.pos)
        self.pos += st.size
        return values

    def byte(self) -> int:
        self.need(1)
        value = self.buf[self.pos]
        self.pos += 1
        return value

    def int16(self) -> int:
        self.need(2)
        (value,) = _I16.unpack_from(self.buf, self.pos)
        self.pos += 2
        return int(value)

    def int32(self) -> int:
        self.need(4)
        (value,) = _I32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return int(value)

    def uint32(self) -> int:
        self.need(4)
        (value,) = _U32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return int(value)

    def uint64(self) -> int:
        self.need(8)
        value = int.from_bytes(self.buf[self.pos : self.pos + 8], "big")
        self.pos += 8
        return value

    def string(self) -> str:
        end = self.buf.find(b"\0", self.pos)
        if end < 0:
            raise DecodeError(f"pgoutput string at offset {self.pos} has no terminating NUL")
        value = self.buf[self.pos : end].decode("utf-8")
        self.pos = end + 1
        return value

    def done(self) -> None:
        if self.pos != len(self.buf):
            raise DecodeError(
                f"pgoutput message {chr(self.buf[0])!r} has {len(self.buf) - self.pos} "
                "unexpected trailing bytes"
            )


def _tuple(r: _Reader) -> tuple[Raw, ...]:
    buf = r.buf
    n = r.int16()
    values: list[Raw] = []
    append = values.append
    pos = r.pos
    size = len(buf)
    for _ in range(n):
        if pos >= size:
            r.pos = pos
            r.need(1)
        kind = buf[pos]
        pos += 1
        if kind == 0x74 or kind == 0x62:  # 't' text, 'b' binary
            if pos + 4 > size:
                r.pos = pos
                r.need(4)
            length = int.from_bytes(buf[pos : pos + 4], "big")
            pos += 4
            if pos + length > size:
                r.pos = pos
                r.need(length)
            append(buf[pos : pos + length])
            pos += length
        elif kind == 0x6E:  # 'n' NULL
            append(None)
        elif kind == 0x75:  # 'u' unchanged TOAST value
            append(UNCHANGED)
        else:
            raise DecodeError(f"unknown tuple column kind {chr(kind)!r} at offset {pos - 1}")
    r.pos = pos
    return tuple(values)


def _insert(r: _Reader) -> Insert:
    oid = r.uint32()
    kind = r.byte()
    if kind != 0x4E:  # 'N'
        raise DecodeError(f"Insert: expected 'N' before the new tuple, got {chr(kind)!r}")
    return Insert(oid, _tuple(r))


def _update(r: _Reader) -> Update:
    oid = r.uint32()
    kind = r.byte()
    old: tuple[Raw, ...] | None = None
    old_kind: str | None = None
    if kind in (0x4B, 0x4F):  # 'K' key, 'O' old row
        old_kind = chr(kind)
        old = _tuple(r)
        kind = r.byte()
    if kind != 0x4E:
        raise DecodeError(f"Update: expected 'N' before the new tuple, got {chr(kind)!r}")
    return Update(oid, old, old_kind, _tuple(r))


def _delete(r: _Reader) -> Delete:
    oid = r.uint32()
    kind = r.byte()
    if kind not in (0x4B, 0x4F):
        raise DecodeError(f"Delete: expected 'K' or 'O' before the old tuple, got {chr(kind)!r}")
    return Delete(oid, _tuple(r), chr(kind))


def _relation(r: _Reader) -> Relation:
    oid = r.uint32()
    namespace = r.string()
    name = r.string()
    identity = chr(r.byte())
    columns = []
    for _ in range(r.int16()):
        flags = r.byte()
        col = r.string()
        type_oid = r.uint32()
        typmod = r.int32()
        columns.append(Column(col, type_oid, typmod, bool(flags & 1)))
    return Relation(oid, namespace, name, identity, tuple(columns))


def _truncate(r: _Reader) -> Truncate:
    n = r.int32()
    options = r.byte()
    oids = tuple(r.uint32() for _ in range(n))
    return Truncate(oids, bool(options & 1), bool(options & 2))


def _message(r: _Reader) -> LogicalMessage:
    flags = r.byte()
    lsn = r.uint64()
    prefix = r.string()
    length = r.int32()
    r.need(length)
    content = r.buf[r.pos : r.pos + length]
    r.pos += length
    return LogicalMessage(bool(flags & 1), lsn, prefix, content)


def decode(buf: bytes) -> Message:
    """Decode one pgoutput message (the payload of one XLogData record)."""
    if not buf:
        raise DecodeError("empty pgoutput message")
    tag = buf[0]
    r = _Reader(buf)
    msg: Message
    if tag == 0x49:  # 'I'
        msg = _insert(r)
    elif tag == 0x55:  # 'U'
        msg = _update(r)
    elif tag == 0x44:  # 'D'
        msg = _delete(r)
    elif tag == 0x42:  # 'B'
        final_lsn, ts, xid = r.unpack(_BEGIN)
        msg = Begin(int(final_lsn), _time(int(ts)), int(xid))
    elif tag == 0x43:  # 'C'
        flags, commit_lsn, end_lsn, ts = r.unpack(_COMMIT)
        msg = Commit(int(flags), int(commit_lsn), int(end_lsn), _time(int(ts)))
    elif tag == 0x52:  # 'R'
        msg = _relation(r)
    elif tag == 0x59:  # 'Y'
        msg = TypeInfo(r.uint32(), r.string(), r.string())
    elif tag == 0x54:  # 'T'
        msg = _truncate(r)
    elif tag == 0x4F:  # 'O'
        msg = Origin(r.uint64(), r.string())
    elif tag == 0x4D:  # 'M'
        msg = _message(r)
    else:
        raise DecodeError(
            f"unknown pgoutput message tag {chr(tag)!r}: pgkeel asks for protocol 1 or 2 "
            "without streaming and decodes every message those send"
        )
    r.done()
    return msg
