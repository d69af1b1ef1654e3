"""Type adaptation: JSON via orjson, dicts as JSONB, strict timestamps, clear errors for values
PostgreSQL would reject or silently alter.

:func:`configure` is applied to every new pooled connection. psycopg already maps arrays to
lists, ``uuid`` to :class:`uuid.UUID`, ``numeric`` to :class:`~decimal.Decimal` and
``timestamptz`` to aware datetimes, and rejects NUL bytes in text with ``psycopg.DataError``;
pgkeel adds what it does not do: dicts sent as ``jsonb`` without a wrapper, orjson for speed, an
error (not a silent ``null``) for NaN/Infinity in JSON, and an error for naive datetimes (which
PostgreSQL would read in the session's ``TimeZone``). Private modules: ``_json`` (the JSON
dumper and loaders) and ``_datetime`` (the strict datetime dumpers).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.adapt import PyFormat
from psycopg.types.json import Jsonb, set_json_dumps, set_json_loads

from pgkeel.types._datetime import _STRICT_DATETIME_BINARY, _STRICT_DATETIME_TEXT
from pgkeel.types._json import _JsonbLoader, _JsonLoader, dumps_json, loads_json, loads_jsonb
from pgkeel.types._json import has_non_finite as has_non_finite  # for the bulk dumpers

__all__ = ["configure", "dumps_json", "loads_json", "loads_jsonb"]


def configure(conn: psycopg.BaseConnection[Any], *, naive_datetime: str = "error") -> None:
    """Install pgkeel's adapters on one connection (sync or async)."""
    adapters = conn.adapters
    set_json_dumps(dumps_json, context=conn)
    set_json_loads(loads_json, context=conn)  # the binary loaders (they strip a version byte)
    adapters.register_loader("json", _JsonLoader)
    adapters.register_loader("jsonb", _JsonbLoader)
    # The dumpers just customised for Jsonb, reused for plain dicts.
    adapters.register_dumper(dict, adapters.get_dumper(Jsonb, PyFormat.TEXT))
    adapters.register_dumper(dict, adapters.get_dumper(Jsonb, PyFormat.BINARY))
    if naive_datetime == "error":
        adapters.register_dumper(datetime, _STRICT_DATETIME_TEXT)
        adapters.register_dumper(datetime, _STRICT_DATETIME_BINARY)
