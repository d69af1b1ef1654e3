"""Type adaptation: JSON via orjson, dicts as JSONB, strict timestamps, clear errors for values
PostgreSQL would reject or silently alter.

:func:`configure` is applied to every new pooled connection. psycopg already maps arrays to
lists, ``uuid`` to :class:`uuid.UUID`, ``numeric`` to :class:`~decimal.Decimal` and
``timestamptz`` to aware datetimes, and rejects NUL bytes in text with ``psycopg.DataError``;
pgkeel adds what it does not do: dicts sent as ``jsonb`` without a wrapper, orjson for speed, an
error (not a silent ``null``) for NaN/Infinity in JSON, and an error for naive datetimes (which
PostgreSQL would read in the session's ``TimeZone``).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import orjson
import psycopg
from psycopg.adapt import Dumper, Loader, PyFormat
from psycopg.types.datetime import DatetimeBinaryDumper, DatetimeDumper
from psycopg.types.json import Jsonb, set_json_dumps, set_json_loads

from pgkeel.errors import NotStorableError

__all__ = ["configure", "dumps_json"]


def dumps_json(obj: Any) -> bytes:
    """Serialize ``obj`` to JSON with orjson; NaN and Infinity raise instead of becoming null."""
    out = orjson.dumps(obj)
    # orjson writes non-finite floats as null; look for them only when a null is there at all.
    if b"null" in out and has_non_finite(obj):
        raise NotStorableError(
            "NaN and Infinity cannot be stored in JSON (orjson would write null); "
            "replace them with None or a string before sending"
        )
    return out


def has_non_finite(obj: Any) -> bool:
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def _naive(obj: datetime) -> NotStorableError:
    return NotStorableError(
        f"naive datetime {obj.isoformat()} has no time zone, so PostgreSQL would read it in the "
        "session's TimeZone; pass an aware datetime (datetime.now(timezone.utc)), or open the "
        "Database with naive_datetime='allow' to send naive values as timestamp"
    )


class _StrictDatetimeDumper(DatetimeDumper):
    def upgrade(self, obj: datetime, format: PyFormat) -> Dumper:
        if obj.tzinfo is None:
            raise _naive(obj)
        return self


class StrictDatetimeBinaryDumper(DatetimeBinaryDumper):
    def upgrade(self, obj: datetime, format: PyFormat) -> Dumper:
        if obj.tzinfo is None:
            raise _naive(obj)
        return self


class _JsonLoader(Loader):
    # psycopg calls a Python loader's ``load`` with a memoryview of the value; orjson reads a
    # memoryview directly, so ``load`` *is* orjson.loads: no Python frame and no bytes copy
    # per value, where psycopg's JSON loader costs both (~1 us a value).
    load = staticmethod(orjson.loads)  # type: ignore[assignment]


def configure(conn: psycopg.BaseConnection[Any], *, naive_datetime: str = "error") -> None:
    """Install pgkeel's adapters on one connection (sync or async)."""
    adapters = conn.adapters
    set_json_dumps(dumps_json, context=conn)
    set_json_loads(orjson.loads, context=conn)  # the binary loaders (they strip a version byte)
    adapters.register_loader("json", _JsonLoader)
    adapters.register_loader("jsonb", _JsonLoader)
    # The dumpers just customised for Jsonb, reused for plain dicts.
    adapters.register_dumper(dict, adapters.get_dumper(Jsonb, PyFormat.TEXT))
    adapters.register_dumper(dict, adapters.get_dumper(Jsonb, PyFormat.BINARY))
    if naive_datetime == "error":
        adapters.register_dumper(datetime, _StrictDatetimeDumper)
        adapters.register_dumper(datetime, StrictDatetimeBinaryDumper)
