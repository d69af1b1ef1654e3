"""The pgoutput decoder, byte by byte: hand-built messages of every type, malformed ones, and
messages captured from the real server (``pg_logical_slot_peek_binary_changes``)."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from pgkeel.cdc import UNCHANGED
from pgkeel.cdc._decoder import (
    Begin,
    Column,
    Commit,
    DecodeError,
    Delete,
    Insert,
    LogicalMessage,
    Origin,
    Relation,
    Truncate,
    TypeInfo,
    Update,
    decode,
    format_lsn,
)
from pgkeel.cdc._values import RowLoader

TS = 757_382_400_000_000  # 2024-01-01 00:00:00 UTC in microseconds since 2000-01-01
WHEN = datetime(2024, 1, 1, tzinfo=UTC)


def s(text: str) -> bytes:
    return text.encode() + b"\0"


def tup(*cols: object) -> bytes:
    out = struct.pack("!h", len(cols))
    for c in cols:
        if c is None:
            out += b"n"
        elif c is UNCHANGED:
            out += b"u"
        else:
            assert isinstance(c, bytes)
            out += b"t" + struct.pack("!i", len(c)) + c
    return out


def test_begin() -> None:
    """Begin: final LSN, commit time (µs since 2000) and xid."""
    msg = decode(b"B" + struct.pack("!QqI", 0x16B374D848, TS, 742))
    assert msg == Begin(0x16B374D848, WHEN, 742)


def test_commit() -> None:
    """Commit: flags, commit LSN, end LSN, commit time."""
    msg = decode(b"C" + struct.pack("!BQQq", 0, 100, 148, TS))
    assert msg == Commit(0, 100, 148, WHEN)


def test_origin() -> None:
    """Origin: LSN on the origin and its name."""
    assert decode(b"O" + struct.pack("!Q", 7) + s("up")) == Origin(7, "up")


def test_relation_with_key_flags_and_unicode() -> None:
    """Relation: namespace, name, identity, and each column's key flag, type oid and typmod."""
    body = struct.pack("!I", 16384) + s("public") + s("prödücts") + b"d" + struct.pack("!h", 2)
    body += b"\x01" + s("id") + struct.pack("!Ii", 20, -1)
    body += b"\x00" + s("price") + struct.pack("!Ii", 1700, 655366)
    assert decode(b"R" + body) == Relation(
        16384,
        "public",
        "prödücts",
        "d",
        (Column("id", 20, -1, True), Column("price", 1700, 655366, False)),
    )


def test_type() -> None:
    """Type: oid, namespace, name."""
    assert decode(b"Y" + struct.pack("!I", 99) + s("public") + s("mood")) == TypeInfo(
        99, "public", "mood"
    )


def test_insert_with_null_unchanged_and_binary_safe_text() -> None:
    """Insert: 't' values keep every byte (tabs, NUL-free UTF-8), 'n' is None, 'u' UNCHANGED."""
    text = "a\tb\n'c'\"é".encode()
    msg = decode(b"I" + struct.pack("!I", 5) + b"N" + tup(b"1", None, UNCHANGED, text, b""))
    assert msg == Insert(5, (b"1", None, UNCHANGED, text, b""))


def test_insert_binary_column() -> None:
    """A 'b' (binary format) column is returned as its bytes."""
    body = (
        struct.pack("!I", 5) + b"N" + struct.pack("!h", 1) + b"b" + struct.pack("!i", 2) + b"\0\1"
    )
    assert decode(b"I" + body) == Insert(5, (b"\0\1",))


@pytest.mark.parametrize("kind", ["K", "O"])
def test_update_with_old(kind: str) -> None:
    """Update with a key ('K') or old row ('O') before the new tuple."""
    body = struct.pack("!I", 5) + kind.encode() + tup(b"1") + b"N" + tup(b"1", b"x")
    assert decode(b"U" + body) == Update(5, (b"1",), kind, (b"1", b"x"))


def test_update_without_old() -> None:
    """Update with only the new tuple (the key did not change)."""
    assert decode(b"U" + struct.pack("!I", 5) + b"N" + tup(b"1")) == Update(5, None, None, (b"1",))


def test_delete() -> None:
    """Delete carries the key or the old row."""
    assert decode(b"D" + struct.pack("!I", 5) + b"K" + tup(b"9", None)) == Delete(
        5, (b"9", None), "K"
    )


def test_truncate_options() -> None:
    """Truncate: relations, CASCADE (1) and RESTART IDENTITY (2) flags."""
    msg = decode(b"T" + struct.pack("!iBII", 2, 3, 10, 11))
    assert msg == Truncate((10, 11), True, True)
    assert decode(b"T" + struct.pack("!iBI", 1, 0, 10)) == Truncate((10,), False, False)


def test_logical_message() -> None:
    """Message: transactional flag, LSN, prefix and content."""
    body = struct.pack("!BQ", 1, 42) + s("pfx") + struct.pack("!i", 3) + b"a\0b"
    assert decode(b"M" + body) == LogicalMessage(True, 42, "pfx", b"a\0b")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"Z",
        b"B" + b"\0" * 19,
        b"I" + struct.pack("!I", 5) + b"X" + tup(b"1"),
        b"I"
        + struct.pack("!I", 5)
        + b"N"
        + struct.pack("!h", 1)
        + b"t"
        + struct.pack("!i", 9)
        + b"ab",
        b"I" + struct.pack("!I", 5) + b"N" + struct.pack("!h", 2) + b"n",
        b"I" + struct.pack("!I", 5) + b"N" + struct.pack("!h", 1) + b"q",
        b"Y" + struct.pack("!I", 1) + b"no-nul",
        b"D" + struct.pack("!I", 5) + b"N" + tup(b"1"),
        b"C" + struct.pack("!BQQq", 0, 1, 2, 3) + b"extra",
    ],
)
def test_malformed_messages_raise(data: bytes) -> None:
    """Truncated, unknown or trailing bytes raise DecodeError, never a guess."""
    with pytest.raises(DecodeError):
        decode(data)


def test_format_lsn() -> None:
    """LSNs print as PostgreSQL prints them."""
    assert format_lsn(0x16B374D848) == "16/B374D848"
    assert format_lsn(0) == "0/0"


def test_captured_from_the_server(pg_url: str) -> None:
    """Messages the server really sends for insert/update/delete/truncate decode as expected."""
    slot = "pgkeel_decoder_capture"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        conn.execute("CREATE PUBLICATION p FOR TABLE t")
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        try:
            with conn.transaction():
                conn.execute("INSERT INTO t VALUES (1, 'a'), (2, NULL)")
                conn.execute("UPDATE t SET v = 'b' WHERE id = 1")
                conn.execute("UPDATE t SET id = 3 WHERE id = 2")
                conn.execute("DELETE FROM t WHERE id = 1")
            conn.execute("TRUNCATE t")
            rows = conn.execute(
                "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, NULL, NULL, "
                "'proto_version', '1', 'publication_names', 'p')",
                (slot,),
            ).fetchall()
        finally:
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    msgs = [decode(bytes(r[0])) for r in rows]
    kinds = [type(m).__name__ for m in msgs]
    assert kinds == [
        "Begin", "Relation", "Insert", "Insert", "Update", "Update", "Delete", "Commit",
        "Begin", "Relation", "Truncate", "Commit",
    ]  # fmt: skip
    rel = msgs[1]
    assert isinstance(rel, Relation)
    assert (rel.namespace, rel.name, [c.name for c in rel.columns]) == ("public", "t", ["id", "v"])
    assert [c.key for c in rel.columns] == [True, False]
    assert msgs[2] == Insert(rel.oid, (b"1", b"a"))
    assert msgs[3] == Insert(rel.oid, (b"2", None))
    assert msgs[4] == Update(rel.oid, None, None, (b"1", b"b"))
    assert msgs[5] == Update(rel.oid, (b"2", None), "K", (b"3", None))
    assert msgs[6] == Delete(rel.oid, (b"1", None), "K")
    begin, commit = msgs[0], msgs[7]
    assert isinstance(begin, Begin)
    assert isinstance(commit, Commit)
    assert begin.final_lsn == commit.commit_lsn < commit.end_lsn
    assert msgs[10] == Truncate((rel.oid,), False, False)


class _TextTypes:
    """Loaders that return text: enough to compare the two decoding paths."""

    def get(self, oid: int) -> Any:
        return lambda data: bytes(data).decode()


@pytest.mark.parametrize(
    "cols",
    [
        (b"1", None, UNCHANGED),
        (b"", b"\t\n\\", "é🐘".encode()),
        (None, None, None),
    ],
)
def test_insert_fast_path_equals_decoder(cols: tuple[object, ...]) -> None:
    """RowLoader.parse (the Insert fast path) gives what decode() + RowLoader.row give."""
    loader = RowLoader([Column(n, 25, -1, False) for n in "abc"], _TextTypes())  # type: ignore[arg-type]
    buf = b"I" + struct.pack("!I", 5) + b"N" + tup(*cols)
    msg = decode(buf)
    assert isinstance(msg, Insert)
    assert loader.parse(buf, 6) == loader.row(msg.new)


@pytest.mark.parametrize(
    "tail",
    [
        struct.pack("!h", 3) + b"n" + b"n",  # one column short
        struct.pack("!h", 3) + b"nnn" + b"x",  # trailing byte
        struct.pack("!h", 3) + b"nn" + b"t" + struct.pack("!i", 5) + b"ab",  # truncated value
        struct.pack("!h", 3) + b"nnq",  # unknown kind
        struct.pack("!h", 2) + b"nn",  # wrong column count
    ],
)
def test_insert_fast_path_rejects_what_the_decoder_rejects(tail: bytes) -> None:
    """Malformed tuples raise DecodeError on the fast path as in the decoder."""
    loader = RowLoader([Column(n, 25, -1, False) for n in "abc"], _TextTypes())  # type: ignore[arg-type]
    buf = b"I" + struct.pack("!I", 5) + b"N" + tail
    with pytest.raises(DecodeError):
        loader.parse(buf, 6)
    with pytest.raises((DecodeError, psycopg.DataError)):
        loader.row(decode(buf).new)  # type: ignore[union-attr]
