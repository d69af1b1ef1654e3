"""Strict binary dumpers for COPY: a value is stored exactly as ``INSERT ... VALUES (%s)`` would
store it, or refused.

Binary COPY gives psycopg the column types up front (``Copy.set_types``), so every value of a
column goes through that type's dumper whatever its Python type, and several of psycopg's
binary dumpers then store a different value instead of failing: integers wrap around (2**31 into
``int4`` is stored as -2147483648), ``bool`` takes the truth of anything, ``bytea`` turns an int
into that many zero bytes, ``float4`` turns 1e300 into Infinity, and ``True`` is 1 for every
numeric type (an INSERT refuses a boolean for them). The dumpers here, registered on the COPY's
cursor for the column types that need them, accept the Python types that map exactly to the
column type and raise for anything else; types whose psycopg dumper already refuses every wrong
Python type (``text``, ``timestamp``, ``timestamptz``...) keep psycopg's C dumper. What only the
server can decide (``numeric`` precision, ``varchar(n)``, a domain's CHECK, an enum label) is
left to the server, which refuses it exactly as an INSERT would.

The bulk paths do not convert between types the way the server's assignment casts do for an
INSERT (a float rounded into an integer column, a str parsed as a date): such a value is refused
with an error naming the type to pass, never stored differently. Exceptions, each exact: an int
for a float or numeric column, a Decimal for ``float8``, a str for ``uuid`` (in the forms the
server accepts) and for ``json``/``jsonb`` (the JSON text itself, parsed by the server, as an
INSERT does).
"""

from __future__ import annotations

import datetime as dt
import math
import operator
import re
import struct
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from decimal import Decimal
from functools import partial
from typing import Any

import orjson
import psycopg
from psycopg import pq
from psycopg.adapt import AdaptersMap, Dumper
from psycopg.types.json import Json, Jsonb

from pgkeel.errors import NotStorableError
from pgkeel.types import dumps_json, has_non_finite

__all__ = [
    "batch_checks",
    "column_ok",
    "describe_refusal",
    "register_strict_dumpers",
    "strict_dumper",
]

_BINARY = pq.Format.BINARY
_JSONB_PREFIX = b"\x01"  # jsonb's binary format version


class _Refused(NotStorableError):
    """A value a strict dumper will not store; the message is the reason, without the value."""


def _wrong_type(obj: object, expected: str) -> _Refused:
    return _Refused(f"a {type(obj).__name__} cannot be stored here: pass {expected}")


def _int_dumper(oid: int, fmt: str, low: int, high: int, label: str) -> type[Dumper]:
    pack = struct.Struct(fmt).pack

    class StrictIntBinaryDumper(Dumper):
        format = _BINARY

        def dump(self, obj: Any, exact: type = int) -> bytes:
            # type() is int (not isinstance): bool is an int, and INSERT refuses a boolean.
            if type(obj) is exact or (isinstance(obj, int) and not isinstance(obj, bool)):
                try:
                    return pack(obj)  # struct checks the range, where psycopg's dumper wraps
                except struct.error:
                    raise _Refused(
                        f"the int is out of range for {label} ({low} to {high})"
                    ) from None
            raise _wrong_type(obj, "an int")

    StrictIntBinaryDumper.oid = oid
    return StrictIntBinaryDumper


_UINT4 = struct.Struct("!I")
_INT4 = struct.Struct("!i")


class StrictOidBinaryDumper(Dumper):
    format = _BINARY
    oid = 26

    def dump(self, obj: Any, pack: Callable[..., bytes] = _UINT4.pack) -> bytes:
        if isinstance(obj, int) and not isinstance(obj, bool):
            # An INSERT sends a negative int as int2/int4, which the server reinterprets as an
            # unsigned oid (-1 is 4294967295); below -2**31 it is an int8, which it refuses.
            if 0 <= obj <= 0xFFFFFFFF:
                return pack(obj)
            if -(2**31) <= obj < 0:
                return pack(obj + 2**32)
            raise _Refused("the int is out of range for oid (-2147483648 to 4294967295)")
        raise _wrong_type(obj, "an int")


_FLOAT4 = struct.Struct("!f")
_FLOAT8 = struct.Struct("!d")
_EXACT_FLOAT_INT = 2**53  # an int up to this converts to float with no rounding


class StrictFloat8BinaryDumper(Dumper):
    format = _BINARY
    oid = 701

    def dump(self, obj: Any, pack: Callable[..., bytes] = _FLOAT8.pack) -> bytes:
        if type(obj) is float:
            return pack(obj)
        if isinstance(obj, int | float | Decimal) and not isinstance(obj, bool):
            # The server rounds an int or numeric to the nearest double, as float() does.
            try:
                value = float(obj)
            except OverflowError:
                value = math.inf
            if math.isinf(value) and not (isinstance(obj, Decimal) and obj.is_infinite()):
                raise _Refused("the value is out of range for double precision")
            return pack(value)
        raise _wrong_type(obj, "a float, an int or a Decimal")


class StrictFloat4BinaryDumper(Dumper):
    format = _BINARY
    oid = 700

    def dump(self, obj: Any, pack: Callable[..., bytes] = _FLOAT4.pack) -> bytes:
        if isinstance(obj, int) and not isinstance(obj, bool):
            if -_EXACT_FLOAT_INT <= obj <= _EXACT_FLOAT_INT:
                obj = float(obj)
            else:  # int -> double -> float4 could round twice where the server rounds once
                raise _Refused("an int this large cannot be stored in real exactly: pass a float")
        if isinstance(obj, float):
            # The server refuses a double that overflows or underflows a real (INSERT: "value
            # out of range"); psycopg's dumper would store Infinity or 0.
            try:
                data = pack(obj)
            except OverflowError:
                raise _Refused("the float is out of range for real (overflow)") from None
            if obj != 0.0 and _FLOAT4.unpack(data)[0] == 0.0:
                raise _Refused("the float is out of range for real (underflow)")
            return data
        raise _wrong_type(obj, "a float or an int")


def _numeric_dumper(general: type[Any]) -> type[Dumper]:
    class StrictNumericBinaryDumper(Dumper):
        format = _BINARY
        oid = 1700

        def __init__(self, cls: type, context: Any = None) -> None:
            super().__init__(cls, context)
            self._dump = general(cls, context).dump

        def dump(self, obj: Any, decimal: type = Decimal) -> Any:
            # psycopg's dumper takes True for 1, where an INSERT refuses a boolean.
            if type(obj) is decimal or (
                isinstance(obj, Decimal | int) and not isinstance(obj, bool)
            ):
                return self._dump(obj)
            raise _wrong_type(obj, "a Decimal or an int")

    return StrictNumericBinaryDumper


class StrictBoolBinaryDumper(Dumper):
    format = _BINARY
    oid = 16

    def dump(self, obj: Any) -> bytes:
        if obj is True:
            return b"\x01"
        if obj is False:
            return b"\x00"
        raise _wrong_type(obj, "a bool")


_EPOCH_ORDINAL = dt.date(2000, 1, 1).toordinal()


class StrictDateBinaryDumper(Dumper):
    format = _BINARY
    oid = 1082

    def dump(self, obj: Any, pack: Callable[..., bytes] = _INT4.pack) -> bytes:
        # A datetime is a date; psycopg's dumper would drop its time, where an INSERT converts
        # it in the session's TimeZone (an aware one) or refuses it (a naive one).
        if type(obj) is dt.date or (isinstance(obj, dt.date) and not isinstance(obj, dt.datetime)):
            return pack(obj.toordinal() - _EPOCH_ORDINAL)
        raise _wrong_type(obj, "a datetime.date (not a datetime)")


# The forms uuid_in accepts: optional braces, 32 hex digits, a hyphen allowed after any group
# of four. (uuid.UUID() also takes "urn:uuid:" and hyphens anywhere, which the server refuses.)
_UUID_HEX = r"(?:[0-9a-fA-F]{4}-?){7}[0-9a-fA-F]{4}"
_UUID_TEXT = re.compile(rf"{_UUID_HEX}|\{{{_UUID_HEX}\}}")


class StrictUuidBinaryDumper(Dumper):
    format = _BINARY
    oid = 2950

    def dump(self, obj: Any, uuid_type: type[uuid.UUID] = uuid.UUID) -> bytes:
        if type(obj) is uuid_type:
            return obj.int.to_bytes(16)
        if isinstance(obj, str):
            if _UUID_TEXT.fullmatch(obj):
                return uuid.UUID(obj.strip("{}")).int.to_bytes(16)
            raise _Refused("the str is not a valid UUID")
        if isinstance(obj, uuid.UUID):
            return obj.int.to_bytes(16)
        raise _wrong_type(obj, "a uuid.UUID or its str")


class StrictByteaBinaryDumper(Dumper):
    format = _BINARY
    oid = 17

    def dump(self, obj: Any) -> Any:
        if type(obj) is bytes:
            return obj
        if isinstance(obj, bytes | bytearray | memoryview):
            return bytes(obj)
        raise _wrong_type(obj, "bytes, bytearray or memoryview")


def _json_dumper(oid: int, general: type[Any]) -> type[Dumper]:
    prefix = _JSONB_PREFIX if oid == 3802 else b""

    class StrictJsonBinaryDumper(Dumper):
        format = _BINARY

        def __init__(self, cls: type, context: Any = None) -> None:
            super().__init__(cls, context)
            self._general = general(cls, context).dump

        def dump(self, obj: Any) -> Any:
            # A dict or list is written in one Python call (psycopg's dumper costs three).
            if type(obj) is dict or type(obj) is list:
                try:
                    out = orjson.dumps(obj)
                except orjson.JSONEncodeError:
                    return prefix + dumps_json(obj)  # what orjson cannot write, written exactly
                if b"null" in out and has_non_finite(obj):
                    dumps_json(obj)  # raises the error naming NaN/Infinity
                return prefix + out
            if isinstance(obj, str):
                # An INSERT sends a str as text the server parses as JSON: do the same.
                return prefix + obj.encode()
            if isinstance(obj, Json | Jsonb):
                return self._general(obj)
            if isinstance(obj, dict | list):
                return prefix + dumps_json(obj)
            raise _wrong_type(obj, "a dict, a list, JSON text as a str, or Jsonb(value)")

    StrictJsonBinaryDumper.oid = oid
    return StrictJsonBinaryDumper


_STRICT: dict[int, type[Dumper]] = {
    21: _int_dumper(21, "!h", -(2**15), 2**15 - 1, "smallint"),
    23: _int_dumper(23, "!i", -(2**31), 2**31 - 1, "integer"),
    20: _int_dumper(20, "!q", -(2**63), 2**63 - 1, "bigint"),
    26: StrictOidBinaryDumper,
    700: StrictFloat4BinaryDumper,
    701: StrictFloat8BinaryDumper,
    16: StrictBoolBinaryDumper,
    1082: StrictDateBinaryDumper,
    2950: StrictUuidBinaryDumper,
    17: StrictByteaBinaryDumper,
}
_WRAPPING = (1700, 114, 3802)  # strict dumpers built around the cursor's own dumper


def register_strict_dumpers(adapters: AdaptersMap, batch_checked: Collection[int] = ()) -> None:
    """Register the strict dumpers on a COPY cursor's ``adapters`` (all types, since an array
    column's dumper looks its element's dumper up by oid on the same map).

    The types in ``batch_checked`` keep psycopg's (C) dumpers: the COPY checks their values a
    batch at a time with :func:`column_ok` before formatting them.
    """
    kept = {oid: adapters.get_dumper_by_oid(oid, _BINARY) for oid in batch_checked}
    for oid, dumper in _STRICT.items():
        if oid not in kept:
            adapters.register_dumper(None, dumper)
    if 1700 not in kept:
        adapters.register_dumper(None, _numeric_dumper(adapters.get_dumper_by_oid(1700, _BINARY)))
    for oid in (114, 3802):
        adapters.register_dumper(None, _json_dumper(oid, adapters.get_dumper_by_oid(oid, _BINARY)))


def strict_dumper(oid: int, adapters: AdaptersMap) -> type[Dumper] | None:
    """The strict dumper class for ``oid`` (None if psycopg's own is strict enough)."""
    if oid == 1700:
        return _numeric_dumper(adapters.get_dumper_by_oid(1700, _BINARY))
    return _STRICT.get(oid)


# Column types whose values are checked a batch at a time with C builtins (set(map(type, ...)),
# min(), max()): ~50 ns a value against ~150-200 ns for a Python dumper called per value by
# psycopg's C row formatter. Each: the exact Python types accepted, and the range (ints).
_BATCH_SPECS: dict[int, tuple[frozenset[type], int | None, int | None]] = {
    21: (frozenset({int}), -(2**15), 2**15 - 1),
    23: (frozenset({int}), -(2**31), 2**31 - 1),
    20: (frozenset({int}), -(2**63), 2**63 - 1),
    1700: (frozenset({Decimal, int}), None, None),
}
# An array of one of those gets its element dumper by oid from the same map, so it must stay
# strict: the element type is then checked per value.
_ARRAY_ELEMENT = {1005: 21, 1007: 23, 1016: 20, 1231: 1700}
_NOT_NONE = partial(operator.is_not, None)


def batch_checks(oids: Sequence[int]) -> dict[int, tuple[frozenset[type], int | None, int | None]]:
    """Column positions to check a batch at a time, with their accepted types and range."""
    elements = {_ARRAY_ELEMENT[o] for o in oids if o in _ARRAY_ELEMENT}
    return {
        i: _BATCH_SPECS[oid]
        for i, oid in enumerate(oids)
        if oid in _BATCH_SPECS and oid not in elements
    }


def column_ok(values: Iterable[Any], spec: tuple[frozenset[type], int | None, int | None]) -> bool:
    """Whether a batch's values for one column are all of the exact types and in range.

    False sends the batch to the per-value check, which also accepts subclasses (an IntEnum)
    and names the first value refused; ``bool`` is never in the accepted types.
    """
    types, low, high = spec
    present = list(filter(_NOT_NONE, values))
    if not present:
        return True
    if not types.issuperset(map(type, present)):
        return False
    if low is None or high is None:
        return True
    return bool(low <= min(present) and max(present) <= high)


_EXPECTED = {
    25: "a str",
    1043: "a str",
    1042: "a str",
    19: "a str",
    1114: "a naive datetime",
    1184: "an aware datetime (with tzinfo)",
    1083: "a datetime.time",
    1266: "an aware datetime.time",
    1186: "a datetime.timedelta",
}


def describe_refusal(oid: int, value: object, exc: BaseException) -> str:
    """Why ``value`` was refused for a column sent as ``oid``, without showing the value."""
    if isinstance(exc, NotStorableError):
        return str(exc)
    if oid == 1184 and isinstance(value, dt.datetime) and value.tzinfo is None:
        return (
            "a naive datetime has no time zone, so PostgreSQL would read it in the session's"
            " TimeZone: pass an aware datetime (datetime.now(timezone.utc))"
        )
    if oid == 1114 and isinstance(value, dt.datetime) and value.tzinfo is not None:
        return (
            "an aware datetime cannot be stored in a timestamp without time zone column as it"
            " is: pass a naive datetime (value.astimezone(zone).replace(tzinfo=None))"
        )
    if isinstance(exc, psycopg.DataError):
        return str(exc)
    expected = _EXPECTED.get(oid)
    if expected is None:
        return f"a {type(value).__name__} cannot be stored here ({type(exc).__name__}: {exc})"
    return f"a {type(value).__name__} cannot be stored here: pass {expected}"
