"""The scale-out options: ``pooler=`` (PgBouncer in transaction mode in front of the server),
``direct_url=`` (the server itself, for what a transaction pooler cannot carry), ``replicas=``,
``max_replica_lag=`` and ``replica_interval=``; and :func:`direct_conninfo`, the one place that
gives a feature needing a real session (LISTEN, session advisory locks, the replication
protocol) its connection string, or the error that names ``direct_url=``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pgkeel.config._defaults import Config
from pgkeel.errors import ConfigError, PoolerError

#: Options (and ``PGKEEL_*`` variables) read here rather than in ``_values``.
SCALE_OPTIONS = ("pooler", "direct_url", "replicas", "max_replica_lag", "replica_interval")

_POOLERS = ("pgbouncer",)


def scale_option(key: str, value: Any, where: str, *, from_env: bool = False) -> Any:
    """Check one scale-out option; return its value as :class:`Config` keeps it."""
    if key == "pooler":
        if from_env and isinstance(value, str) and value.strip().lower() in ("", "none", "off"):
            return None
        if value is None or value in _POOLERS:
            return value
        raise ConfigError(
            f"{where}: pooler takes 'pgbouncer' (a transaction-mode pooler in front of the "
            f"server) or None, got {value!r}"
        )
    if key == "direct_url":
        if value is None or (isinstance(value, str) and value.strip()):
            return value
        raise ConfigError(
            f"{where}: direct_url takes the server's own connection string (not the pooler's), "
            f"got {type(value).__name__}"
        )
    if key == "replicas":
        if from_env:
            # Whitespace separates the URLs: a multi-host URL has commas of its own.
            return tuple(str(value).split())
        if value is None:
            return ()
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise ConfigError(
                f"{where}: replicas takes a list of connection strings, e.g. "
                "replicas=['postgresql://...replica1/db'], got "
                f"{type(value).__name__}"
            )
        for url in value:
            if not isinstance(url, str) or not url.strip():
                raise ConfigError(f"{where}: each replica is a connection string, got {url!r}")
        return tuple(value)
    # max_replica_lag, replica_interval: seconds above zero.
    number = value
    if from_env:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: {key} takes a number of seconds, got {value!r}") from None
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise ConfigError(f"{where}: {key} takes a number of seconds, got {value!r}")
    if not math.isfinite(number) or number <= 0:
        hint = (
            " (a replica is never exactly up to date: 0 would route every read to the primary; "
            "leave replicas out for that)"
            if key == "max_replica_lag"
            else ""
        )
        raise ConfigError(
            f"{where}: {key} must be a number of seconds above 0, got {value!r}{hint}"
        )
    return float(number)


def split_scale_options(
    options: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``options`` without the scale-out ones, and the scale-out ones checked (environment
    variables first, keywords over them)."""
    scale: dict[str, Any] = {}
    for key in SCALE_OPTIONS:
        raw = environ.get("PGKEEL_" + key.upper())
        if raw is not None:
            scale[key] = scale_option(key, raw, f"environment variable PGKEEL_{key.upper()}",
                                      from_env=True)  # fmt: skip
    rest: dict[str, Any] = {}
    for key, value in options.items():
        if key in SCALE_OPTIONS:
            scale[key] = scale_option(key, value, f"option {key}=")
        else:
            rest[key] = value
    return rest, scale


def direct_conninfo(config: Config, feature: str) -> str:
    """The connection string for ``feature``, which needs a session of its own on the server
    (LISTEN, a session advisory lock, the replication protocol): ``direct_url=`` when given,
    the Database's own connection string when no pooler is in between, else
    :class:`~pgkeel.errors.PoolerError` naming ``direct_url=``."""
    if config.direct_conninfo is not None:
        return config.direct_conninfo
    if config.pooler is None:
        return config.conninfo
    raise PoolerError(
        f"{feature} needs a session of its own on the server, which {config.pooler} in "
        "transaction mode does not give (each transaction may run on another server "
        "connection); pass direct_url='postgresql://...' (the server's own address, not the "
        "pooler's) to the Database, or set PGKEEL_DIRECT_URL"
    )
