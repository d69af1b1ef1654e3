"""The pgkeel options: their types, choices and bounds, and the checks that turn a keyword or a
``PGKEEL_*`` value into a valid one (or a :class:`~pgkeel.errors.ConfigError` naming the fix)."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import inspect
import math
import re
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from pgkeel.config._defaults import SERVER_SETTINGS_DEFAULTS, Config
from pgkeel.config._scale import SCALE_OPTIONS
from pgkeel.errors import ConfigError

_POOL_OPTIONS: Mapping[str, type] = {
    "min_size": int,
    "max_size": int,
    "timeout": float,
    "max_idle": float,
    "max_lifetime": float,
    "max_waiting": int,
    "size_check": str,
    "ssl": str,
    "leak_timeout": float,
    "naive_datetime": str,
    "check_idle": float,
    "reconnect_delay_max": float,
    "bulk_timeout": float,
    "stream_idle_timeout": float,
    "session_settings": str,
    "name": str,
    "slow_query_ms": float,
    "driver": str,
}
_CHOICES: Mapping[str, tuple[str, ...]] = {
    "size_check": ("warn", "error", "off"),
    "ssl": ("warn", "required", "verify-ca", "off"),
    "naive_datetime": ("error", "allow"),
    "session_settings": ("auto", "startup", "set", "server"),
    "driver": ("psycopg", "asyncpg", "psycopg2"),
}
#: Options that must be above zero, not just non-negative.
_POSITIVE = frozenset({"max_size", "timeout", "max_lifetime", "reconnect_delay_max"})
#: Options that take ``None``.
_NULLABLE = frozenset({"stream_idle_timeout", "name", "slow_query_ms"})
#: Options only a keyword can give (not a ``PGKEEL_*`` variable).
_OBJECT_OPTIONS = ("configure", "connect_kwargs", "prepare_threshold")

#: psycopg ``connect()`` arguments that pgkeel sets itself, and why.
RESERVED_CONNECT_KWARGS: Mapping[str, str] = {
    "conninfo": "pass the connection string as url",
    "autocommit": "pgkeel runs single statements in autocommit; transaction() begins its own",
    "row_factory": "pgkeel's methods rely on dict rows; pass row_factory to conn.cursor()",
    "prepare_threshold": "use the prepare_threshold= option",
}


def _connect_arguments() -> frozenset[str]:
    sig = inspect.signature(psycopg.Connection.connect)
    return frozenset(
        name for name, p in sig.parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY
    )


def _is_libpq_keyword(key: str) -> bool:
    try:
        make_conninfo("", **{key: "1"})
    except psycopg.ProgrammingError as exc:
        return "invalid connection option" not in str(exc)
    return True


def _all_options() -> list[str]:
    return sorted([*_POOL_OPTIONS, *SERVER_SETTINGS_DEFAULTS, *_OBJECT_OPTIONS, *SCALE_OPTIONS])


def _unknown_option(name: str) -> str:
    close = difflib.get_close_matches(name, _all_options(), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return (
        f"unknown option {name!r}: not a pgkeel option ({', '.join(_all_options())}) "
        f"nor a libpq connection parameter{hint}"
    )


_KINDS = {int: "a whole number", float: "a number of seconds", str: "a string"}


def _coerce(key: str, value: Any, where: str, *, from_env: bool = False) -> Any:
    typ = _POOL_OPTIONS[key]
    kind = "a number of milliseconds" if key.endswith("_ms") else _KINDS[typ]
    if key in _CHOICES:
        kind = "one of " + ", ".join(repr(c) for c in _CHOICES[key])
    if value is None and key in _NULLABLE:
        return None
    out: Any = value
    if from_env:
        try:
            out = typ(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: {key} takes {kind}, got {value!r}") from None
    elif isinstance(value, bool) or not isinstance(value, (int, float) if typ is float else typ):
        raise ConfigError(
            f"{where}: {key} takes {kind}, got {value!r} ({type(value).__name__}); "
            f"e.g. {key}={_example(key)}"
        )
    if key in _CHOICES and out not in _CHOICES[key]:
        raise ConfigError(f"{where}: {key} takes {kind}; got {out!r}")
    if typ in (int, float):
        if typ is float:
            out = float(out)
            if not math.isfinite(out):
                raise ConfigError(f"{where}: {key} must be a finite number, got {value!r}")
        if out < 0:
            raise ConfigError(f"{where}: {key} cannot be negative, got {value!r}")
        if out == 0 and key in _POSITIVE:
            raise ConfigError(f"{where}: {key} must be above 0, got {value!r}")
    return out


def _example(key: str) -> str:
    if key in _CHOICES:
        return repr(_CHOICES[key][0])
    default = {f.name: f.default for f in dataclasses.fields(Config)}.get(key)
    return repr(default) if isinstance(default, int | float) else "..."


def _prepare_threshold(value: Any, where: str, *, from_env: bool = False) -> int | None:
    if from_env and isinstance(value, str):
        if value.strip().lower() in ("", "none", "off"):
            return None
        with contextlib.suppress(ValueError):
            value = int(value)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(
            f"{where}: prepare_threshold takes a whole number >= 0 or None (never prepare, "
            f"as PgBouncer in transaction mode before 1.21 needs), got {value!r}"
        )
    return value


def _connect_kwargs(value: Any) -> Mapping[str, Any]:
    if value is None:
        return types.MappingProxyType({})
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"option connect_kwargs= takes a dict of psycopg connect() arguments, "
            f"got {type(value).__name__}"
        )
    allowed = _connect_arguments() - RESERVED_CONNECT_KWARGS.keys()
    for key in value:
        if key in RESERVED_CONNECT_KWARGS:
            raise ConfigError(
                f"connect_kwargs: {key!r} is set by pgkeel ({RESERVED_CONNECT_KWARGS[key]})"
            )
        if key not in allowed:
            if isinstance(key, str) and _is_libpq_keyword(key):
                raise ConfigError(
                    f"connect_kwargs: {key!r} is a libpq connection parameter; pass it as an "
                    f"option ({key}=...) or in the URL, where pgkeel's SSL policy sees it"
                )
            raise ConfigError(
                f"connect_kwargs: {key!r} is not a psycopg connect() argument; "
                f"accepted: {', '.join(sorted(allowed))}"
            )
    return types.MappingProxyType(dict(value))


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?")


def _setting_value(value: Any, where: str = "server setting") -> str:
    """A duration for a server timeout: seconds (a number) or a PostgreSQL duration string."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(
            f"{where}: takes seconds or a PostgreSQL duration like '30s', got {value!r}"
        )
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ConfigError(f"{where}: {value!r} is not a number of seconds")
        if value < 0:
            raise ConfigError(f"{where}: {value!r} cannot be negative; 0 means no limit")
        return duration(value)
    match = _DURATION.fullmatch(value.strip())
    if not match:
        raise ConfigError(
            f"{where}: {value!r} is not a duration like '30s', '500ms' or '2min' "
            "(units: us, ms, s, min, h, d; 0 means no limit)"
        )
    return match.group(1) + (match.group(2) or "")


def duration(seconds: float) -> str:
    """A server duration for ``seconds``; 0 is PostgreSQL's "no limit", and a positive value
    never rounds down to it."""
    if seconds <= 0:
        return "0"
    return f"{max(1, round(seconds * 1000))}ms"


def _program_name() -> str:
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    if name in ("", "-c", "__main__.py", "-m"):
        name = "python"
    return name[:63]
