"""JSON for pgkeel's connections: orjson for speed, exact numbers, NaN and Infinity refused.

:func:`dumps_json` writes what orjson cannot (an int beyond 64 bits, a Decimal, a non-str dict
key) exactly, and refuses non-finite floats instead of writing ``null``; :func:`loads_json` and
:func:`loads_jsonb` hand a document whose numbers orjson could round to the stdlib ``json``. The
loaders are registered by :func:`pgkeel.types.configure`.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any

import orjson
from psycopg.adapt import Loader

from pgkeel.errors import NotStorableError


def dumps_json(obj: Any) -> bytes:
    """Serialize ``obj`` to JSON with orjson; NaN and Infinity raise instead of becoming null.

    What orjson cannot write (an int beyond 64 bits, a Decimal, a dict key that is an int, float,
    bool or None, as the stdlib ``json`` writes it) is written exactly, digit for digit.
    """
    try:
        out = orjson.dumps(obj)
    except orjson.JSONEncodeError:
        out = orjson.dumps(_exact(obj))
    # orjson writes non-finite floats as null; look for them only when a null is there at all.
    if b"null" in out and has_non_finite(obj):
        raise NotStorableError(
            "NaN and Infinity cannot be stored in JSON (orjson would write null); "
            "replace them with None or a string before sending"
        )
    return out


_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


def _exact(obj: Any) -> Any:
    """``obj`` with what orjson cannot write replaced by its exact JSON text (orjson.Fragment)."""
    if isinstance(obj, dict):
        return {_json_key(k): _exact(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_exact(v) for v in obj]
    if isinstance(obj, int) and not isinstance(obj, bool):
        if _INT64_MIN <= obj <= _UINT64_MAX:
            return obj
        return orjson.Fragment(int.__repr__(obj))
    if isinstance(obj, Decimal):
        if not obj.is_finite():
            raise NotStorableError(
                f"Decimal {obj} cannot be stored in JSON: replace it with None or a string"
            )
        return orjson.Fragment(str(obj))  # str() of a finite Decimal is a valid JSON number
    return obj


def _json_key(key: Any) -> str:
    # The stdlib json's (and so psycopg's default) conversions of a non-str key.
    if isinstance(key, str):
        return key
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    if isinstance(key, int):
        return int.__repr__(key)
    if isinstance(key, float):
        if not math.isfinite(key):
            raise NotStorableError(f"dict key {key} cannot be stored in JSON: use a finite key")
        return float.__repr__(key)
    raise NotStorableError(
        f"a dict key of type {type(key).__name__} cannot be stored in JSON: keys must be str,"
        " int, float, bool or None"
    )


# A number orjson might not read exactly: 16 or more digits in a row (a float has 15 safe
# ones; an integer of 16+ digits may exceed 64 bits) or an exponent of three digits. jsonb
# prints its numbers without an exponent (as numeric does), so for jsonb the first test is
# enough, and it costs a third of both (~0.2 us against ~0.6 us on a short document).
_LONG_NUMBER = re.compile(rb"[0-9][0-9.]{15}")
_RISKY_NUMBER = re.compile(rb"[0-9][0-9.]{15}|[eE][-+]?[0-9]{3}")


def loads_json(data: Any) -> Any:
    """Parse JSON with orjson, or with the stdlib json where orjson could change a number.

    orjson reads an integer beyond 64 bits or a number with more digits than a double holds as
    a float (123456789012345678901234567890 becomes 1.2345678901234568e+29). Such documents are
    read by the stdlib json instead: integers stay exact ints, and a fraction is a float where
    the float is the same number as written, else a Decimal.
    """
    if _RISKY_NUMBER.search(data) is None:
        return orjson.loads(data)
    return json.loads(bytes(data), parse_float=_exact_float)


def loads_jsonb(data: Any) -> Any:
    """:func:`loads_json` for jsonb's text output, whose numbers never have an exponent."""
    if _LONG_NUMBER.search(data) is None:
        return orjson.loads(data)
    return json.loads(bytes(data), parse_float=_exact_float)


def _exact_float(text: str) -> float | Decimal:
    value = float(text)
    if math.isfinite(value) and Decimal(repr(value)) == Decimal(text):
        return value
    return Decimal(text)


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


class _JsonLoader(Loader):
    # psycopg calls a Python loader's ``load`` with a memoryview of the value; orjson and the
    # regex read a memoryview directly, so ``load`` *is* loads_json: one Python frame and no
    # bytes copy per value, where psycopg's JSON loader costs two frames and a copy.
    load = staticmethod(loads_json)


class _JsonbLoader(Loader):
    load = staticmethod(loads_jsonb)
