"""Typing pgoutput values: raw text bytes in, the Python values a query would give out.

pgoutput sends every column in PostgreSQL's text format with the column's type oid. The loader
for that oid comes from psycopg 3's adapters on a connection configured as pgkeel configures
its pools (:func:`pgkeel.types.configure`), so jsonb, numeric, timestamptz, arrays, uuid...
come out exactly as ``db.fetch_one`` gives them. A domain is loaded as its base type (a query
reports a domain column with its base type's oid; pgoutput with the domain's own), and a type
psycopg does not know (an enum) as text, as a query does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg.pq import Format

from pgkeel.cdc._decoder import UNCHANGED, Column, DecodeError, Raw

__all__ = ["RowLoader", "TypeLoaders"]

Load = Callable[[bytes], Any]


class TypeLoaders:
    """The text loader for each type oid, found once per oid.

    ``conn`` answers the catalog question for oids psycopg's adapters do not know (is it a
    domain, and of what). It is used only when a Relation message names such an oid.
    """

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self._cache: dict[int, Load] = {}

    def get(self, oid: int) -> Load:
        load = self._cache.get(oid)
        if load is None:
            load = self._cache[oid] = self._find(oid)
        return load

    def _find(self, oid: int) -> Load:
        adapters = self._conn.adapters
        cls = adapters.get_loader(oid, Format.TEXT)
        if cls is None:
            base = self._domain_base(oid)
            if base is not None:
                return self.get(base)
            oid = 0
            cls = adapters.get_loader(0, Format.TEXT)  # psycopg's fallback: text as str
        if cls is None:  # pragma: no cover - psycopg always has the oid 0 loader
            return lambda data: bytes(data).decode()
        return cls(oid, self._conn).load

    def _domain_base(self, oid: int) -> int | None:
        row = self._conn.execute(
            "SELECT typbasetype FROM pg_type WHERE oid = %s AND typtype = 'd'", (oid,)
        ).fetchone()
        return int(row[0]) if row else None


class RowLoader:
    """Turns one relation's tuples into dicts ``{column: value}``.

    NULL is ``None``; an unchanged TOAST value is :data:`~pgkeel.cdc.UNCHANGED` (filled from
    ``old`` by the caller where the old row has it).
    """

    __slots__ = ("loads", "names", "table")

    def __init__(
        self, columns: Sequence[Column], types: TypeLoaders, table: tuple[str, str] = ("", "")
    ) -> None:
        self.table = table
        self.names = tuple(c.name for c in columns)
        self.loads = tuple(types.get(c.type_oid) for c in columns)

    def row(self, values: Sequence[Raw]) -> dict[str, Any]:
        if len(values) != len(self.names):
            raise psycopg.DataError(
                f"pgoutput row has {len(values)} columns, its Relation message {len(self.names)}"
            )
        return {
            name: load(value) if isinstance(value, bytes) else value
            for name, load, value in zip(self.names, self.loads, values, strict=True)
        }

    def parse(self, buf: bytes, pos: int) -> dict[str, Any]:
        """The fast path for the commonest message: decode the TupleData at ``buf[pos:]`` and
        type it in one pass (the same checks as ``_decoder``; a test compares the two)."""
        try:
            n = int.from_bytes(buf[pos : pos + 2], "big")
            if n != len(self.names):
                raise DecodeError(f"row has {n} columns, its Relation message {len(self.names)}")
            pos += 2
            size = len(buf)
            out: dict[str, Any] = {}
            for name, load in zip(self.names, self.loads, strict=True):
                kind = buf[pos]
                pos += 1
                if kind == 0x74:  # 't'
                    end = pos + 4 + int.from_bytes(buf[pos : pos + 4], "big")
                    if end > size:
                        raise DecodeError("pgoutput message truncated inside a column value")
                    out[name] = load(buf[pos + 4 : end])
                    pos = end
                elif kind == 0x6E:  # 'n'
                    out[name] = None
                elif kind == 0x75:  # 'u'
                    out[name] = UNCHANGED
                else:
                    raise DecodeError(f"unexpected tuple column kind {chr(kind)!r}")
        except IndexError:
            raise DecodeError("pgoutput message truncated inside a tuple") from None
        if pos != size:
            raise DecodeError(f"pgoutput message has {size - pos} unexpected trailing bytes")
        return out
