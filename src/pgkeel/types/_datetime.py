"""Strict datetimes: a naive ``datetime`` is refused rather than read in the session's TimeZone.

The dumpers here are registered by :func:`pgkeel.types.configure` (unless the Database is opened
with ``naive_datetime='allow'``); aware datetimes go to psycopg's own dumper.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.adapt import Dumper, PyFormat

from pgkeel.errors import NotStorableError


def _naive(obj: datetime) -> NotStorableError:
    return NotStorableError(
        f"naive datetime {obj.isoformat()} has no time zone, so PostgreSQL would read it in the "
        "session's TimeZone; pass an aware datetime (datetime.now(timezone.utc)), or open the "
        "Database with naive_datetime='allow' to send naive values as timestamp"
    )


def _strict_datetime_dumper(format: PyFormat) -> type[Dumper]:
    """A datetime dumper refusing naive values, then handing aware ones to psycopg's own.

    Built on psycopg's public dumper protocol: ``get_key`` tells naive from aware datetimes and
    ``upgrade`` returns, for an aware one, psycopg's default dumper (in C when available), which
    the connection then caches and calls directly. It registers no oid, so a COPY that sets the
    column types by oid gets psycopg's dumper (a naive value fails there, named by the COPY).
    """
    default = psycopg.adapters.get_dumper(datetime, format)
    aware_key = (datetime, "aware", format)
    naive_key = (datetime, "naive", format)

    class StrictDatetimeDumper(Dumper):
        def __init__(self, cls: type, context: Any = None) -> None:
            super().__init__(cls, context)
            self._context = context

        def get_key(self, obj: datetime, format: PyFormat) -> Any:
            return naive_key if obj.tzinfo is None else aware_key

        def upgrade(self, obj: datetime, format: PyFormat) -> Dumper:
            if obj.tzinfo is None:
                raise _naive(obj)
            return default(self.cls, self._context)  # type: ignore[return-value]

        def dump(self, obj: datetime) -> Any:  # pragma: no cover - upgrade() always replaces it
            raise NotImplementedError

    StrictDatetimeDumper.format = default.format
    return StrictDatetimeDumper


_STRICT_DATETIME_TEXT = _strict_datetime_dumper(PyFormat.TEXT)
_STRICT_DATETIME_BINARY = _strict_datetime_dumper(PyFormat.BINARY)
