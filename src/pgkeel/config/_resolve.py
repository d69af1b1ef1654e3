"""Resolving a configuration: ``url`` + keyword options + ``DATABASE_URL`` and ``PGKEEL_*``
variables into a frozen :class:`Config`."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgkeel.config._defaults import LIBPQ_DEFAULTS, SERVER_SETTINGS_DEFAULTS, Config, SessionMode
from pgkeel.config._options import parse_options, render_options
from pgkeel.config._scale import SCALE_OPTIONS, split_scale_options
from pgkeel.config._secrets import _scrub, _secrets_in, _secrets_of
from pgkeel.config._tls import _sslmode, effective_params, ssl_verdict
from pgkeel.config._values import (
    _POOL_OPTIONS,
    _coerce,
    _connect_kwargs,
    _is_libpq_keyword,
    _prepare_threshold,
    _program_name,
    _setting_value,
    _unknown_option,
)
from pgkeel.errors import ConfigError

__all__ = ["resolve"]

logger = logging.getLogger("pgkeel.config")

_SUPPORTED_SCHEMES = ("postgresql", "postgres")
_SCALE_ENV = frozenset("PGKEEL_" + key.upper() for key in SCALE_OPTIONS)


def resolve(
    url: str | None = None,
    options: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build a :class:`Config`; raise :class:`~pgkeel.ConfigError` naming the wrong part.

    Precedence, lowest first: pgkeel's defaults (skipped where a ``PG*`` variable sets the same
    thing), ``PGKEEL_*`` variables, the URL's own parameters (``-c`` settings in its
    ``options``, or in ``PGOPTIONS`` without one), keyword ``options``.
    """
    env = os.environ if environ is None else environ
    options, scale = split_scale_options(options or {}, env)
    source = url if url is not None else env.get("DATABASE_URL", "")
    where = "url" if url is not None else "DATABASE_URL"
    secrets = _secrets_in(source)
    _check_scheme(source, where)
    try:
        params: dict[str, Any] = conninfo_to_dict(source)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(
            f"{where} is not a valid PostgreSQL connection string: "
            f"{_scrub(str(exc).strip(), secrets)}; expected "
            "postgresql://user:password@host:port/dbname?param=value"
        ) from None
    for port in str(params.get("port") or "").split(","):
        if port and not port.strip().isdigit():
            raise ConfigError(
                f"the port in the connection string must be a number, got {port!r}; "
                "expected postgresql://user:password@host:port/dbname"
            )

    pool: dict[str, Any] = {}
    env_settings: dict[str, str] = {}
    for name, raw in env.items():
        if name.startswith("PGKEEL_") and name != "PGKEEL_TEST_URL" and name not in _SCALE_ENV:
            key = name[len("PGKEEL_") :].lower()
            where_env = f"environment variable {name}"
            if key in _POOL_OPTIONS:
                pool[key] = _coerce(key, raw, where_env, from_env=True)
            elif key == "prepare_threshold":
                pool[key] = _prepare_threshold(raw, where_env, from_env=True)
            elif key in SERVER_SETTINGS_DEFAULTS:
                env_settings[key] = _setting_value(raw, where_env)
            # Other PGKEEL_* variables belong to other tools (the test plugin, benchmarks).

    kw_settings: dict[str, str | None] = {}
    libpq: dict[str, Any] = {}
    for key, value in (options or {}).items():
        if key in _POOL_OPTIONS:
            pool[key] = _coerce(key, value, f"option {key}=")
        elif key in SERVER_SETTINGS_DEFAULTS:
            kw_settings[key] = None if value is None else _setting_value(value, f"option {key}=")
        elif key == "prepare_threshold":
            pool[key] = _prepare_threshold(value, "option prepare_threshold=")
        elif key == "configure":
            if value is not None and not callable(value):
                raise ConfigError(
                    f"option configure= takes a function called with each new connection, "
                    f"got {type(value).__name__}"
                )
            pool[key] = value
        elif key == "connect_kwargs":
            pool[key] = _connect_kwargs(value)
        else:
            libpq[key] = value
    if libpq:
        bad = [k for k in libpq if not _is_libpq_keyword(k)]
        if bad:
            raise ConfigError(_unknown_option(bad[0]))
        params.update({k: v for k, v in libpq.items() if v is not None})
        secrets += _secrets_of(params)

    for key, (default, env_var) in LIBPQ_DEFAULTS.items():
        if key not in params and not (env_var and env.get(env_var)):
            params[key] = default
    if "application_name" not in params and not env.get("PGAPPNAME"):
        params["application_name"] = _program_name()

    mode: SessionMode = pool.get("session_settings", "auto")
    had_options = "options" in params
    base = params["options"] if had_options else env.get("PGOPTIONS", "")
    switches, own = parse_options(str(base or ""))
    merged: dict[str, str | None] = {
        **SERVER_SETTINGS_DEFAULTS,
        **env_settings,
        **own,
        **kw_settings,
    }
    # The user's own settings keep their place, pgkeel's follow.
    order = [*own, *(k for k in merged if k not in own)]
    settings = tuple((k, v) for k in order if (v := merged[k]) is not None)

    def with_options(text: str) -> dict[str, Any]:
        # An empty options string stays when it replaces one given (or PGOPTIONS, which libpq
        # would otherwise read and send).
        out = {k: v for k, v in params.items() if k != "options"}
        if text or had_options or env.get("PGOPTIONS"):
            out["options"] = text
        return out

    plain = with_options(render_options(switches))
    pooler = scale.get("pooler")
    if pooler is not None:
        # A transaction pooler hands each transaction to any server connection: nothing may
        # live in the session. The settings are checked at open, and applied per transaction
        # where the server lacks them (see AsyncDatabase._check_pooler_settings).
        pool.setdefault("prepare_threshold", None)
        if pool.get("session_settings", "auto") in ("auto", "server"):
            scale["pooler_settings"] = settings
            mode = pool["session_settings"] = "server"
        else:
            raise ConfigError(
                f"session_settings={pool['session_settings']!r} puts session state on "
                f"server connections that {pooler} shares between clients; leave it out "
                "(pgkeel checks the server's settings at open and applies missing ones per "
                "transaction) or pass session_settings='server'"
            )
    if mode == "server":
        # pgkeel sends nothing of its own: the role or database carries the settings.
        settings = ()
    elif mode == "set":
        params = plain
    else:
        params = with_options(render_options(switches, settings))

    try:
        conninfo = make_conninfo("", **params)
        plain_conninfo = make_conninfo("", **plain)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(
            f"invalid connection parameters: {_scrub(str(exc).strip(), secrets)}"
        ) from None

    if scale.get("direct_url") is not None:
        direct_options = {k: v for k, v in (options or {}).items() if k not in _POOL_OPTIONS}
        direct_options.pop("configure", None)
        direct_options.pop("connect_kwargs", None)
        direct_options.pop("prepare_threshold", None)
        scale["direct_conninfo"] = resolve(scale.pop("direct_url"), direct_options, env).conninfo
    scale.pop("direct_url", None)

    pool.setdefault("min_size", 2)
    pool.setdefault("max_size", max(10, pool["min_size"]))
    if pool["min_size"] > pool["max_size"]:
        raise ConfigError(
            f"min_size={pool['min_size']} is larger than max_size={pool['max_size']}; "
            "lower min_size or raise max_size"
        )
    cfg = Config(
        conninfo=conninfo, plain_conninfo=plain_conninfo, settings=settings, **pool, **scale
    )
    effective = effective_params(params, env)
    if cfg.ssl in ("required", "verify-ca"):
        accept = ("verify-full",) if cfg.ssl == "required" else ("verify-ca", "verify-full")
        problem = ssl_verdict(effective, env, accept=accept)
        if problem:
            hint = "add sslmode=verify-full (with sslrootcert) to the URL"
            if cfg.ssl == "required" and _sslmode(effective, env) == "verify-ca":
                hint += ", or pass ssl='verify-ca' to accept a certificate checked without its host"
            raise ConfigError(f"ssl={cfg.ssl!r}: {problem}; {hint}")
    warning = ssl_verdict(effective, env)
    return dataclasses.replace(cfg, ssl_warning=None if cfg.ssl == "off" else warning)


def _check_scheme(source: str, where: str) -> None:
    scheme, sep, _ = source.strip().partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.:\-]*", scheme):
        return  # a key=value string (or nothing): libpq judges it
    if scheme.lower() in _SUPPORTED_SCHEMES:
        return
    hint = ""
    if "postgres" in scheme.lower():
        hint = " (drop the driver part: SQLAlchemy's postgresql+psycopg:// is postgresql:// here)"
    raise ConfigError(
        f"{where} uses the {scheme}:// scheme, which pgkeel does not support{hint}: it connects "
        "to PostgreSQL only; use postgresql://user:password@host:port/dbname (or postgres://, "
        "or a key=value string such as 'host=... dbname=...')"
    )
