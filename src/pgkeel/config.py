"""Configuration: where the connection string comes from, the production defaults, SSL policy.

:func:`resolve` turns ``url`` + keyword options (+ ``DATABASE_URL`` and ``PGKEEL_*`` variables)
into a frozen :class:`Config`: the libpq connection string with pgkeel's defaults applied
(timeouts, keepalives, server-side statement/lock/idle-in-transaction timeouts) and the pool
options. libpq keeps doing what it already does (``PG*`` variables, service file, pgpass): a
default is not applied where a ``PG*`` variable already sets it. Everything here is pure (no
I/O), so both faces share it. Passwords never leave this module unredacted except inside
``Config.conninfo``, which is hidden from ``repr()``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgkeel.errors import ConfigError

__all__ = ["Config", "redact", "resolve", "scrub"]

#: libpq connection parameters pgkeel sets unless the URL, an option or a ``PG*`` variable does
#: (the variable that would set it is on the right: libpq reads it, so we leave it alone).
LIBPQ_DEFAULTS: Mapping[str, tuple[str | int, str | None]] = {
    "connect_timeout": (5, "PGCONNECT_TIMEOUT"),
    "keepalives": (1, None),
    "keepalives_idle": (30, None),
    "keepalives_interval": (10, None),
    "keepalives_count": (3, None),
    # Give up on unacknowledged data after idle + interval * count, like the keepalives.
    "tcp_user_timeout": (60_000, None),
}

#: Server settings sent at connection start (in libpq's ``options``). Numbers are seconds.
SERVER_SETTINGS_DEFAULTS: Mapping[str, str] = {
    "statement_timeout": "30s",
    "lock_timeout": "10s",
    "idle_in_transaction_session_timeout": "60s",
}

_LOCAL_HOSTS = frozenset({"", "localhost"})
_SECURE_SSLMODES = frozenset({"require", "verify-ca", "verify-full"})


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    """Everything a :class:`~pgkeel.Database` needs; build it with :func:`resolve`."""

    conninfo: str = dataclasses.field(repr=False)
    min_size: int = 2
    max_size: int = 10
    timeout: float = 5.0
    max_idle: float = 300.0
    max_lifetime: float = 3600.0
    max_waiting: int = 0
    #: What to do when ``max_size`` does not fit in the server's free connection slots.
    size_check: Literal["warn", "error", "off"] = "warn"
    #: What to do with a plaintext connection to a non-local host.
    ssl: Literal["warn", "required", "off"] = "warn"
    #: Warn (with the stack where it was taken) about a connection held longer than this.
    leak_timeout: float = 60.0
    #: A naive datetime parameter raises (``"error"``) or is sent as ``timestamp``.
    naive_datetime: Literal["error", "allow"] = "error"
    #: A pooled connection idle longer than this gets a round-trip check on checkout; a younger
    #: one only a socket poll (which sees a server that closed it).
    check_idle: float = 1.0
    #: Seconds between reconnection attempts, at most, while the server is unreachable.
    reconnect_delay_max: float = 2.0
    #: Seconds one bulk call (copy_in, copy_in_csv, copy_out, upsert, stream) may run: its own
    #: statement_timeout, set for that call's transaction only; 0 means no limit, since one
    #: COPY of a big file (or a stream read by COPY) is a single statement that the 30 s
    #: default would cancel.
    bulk_timeout: float = 0.0
    #: Seconds a stream's transaction may sit idle while the caller works on a batch (its
    #: idle_in_transaction_session_timeout); None keeps the session's (60 s by default).
    stream_idle_timeout: float | None = None
    name: str | None = None
    #: The SSL policy's verdict, for the Database to log (never holds the password).
    ssl_warning: str | None = None

    @property
    def safe_conninfo(self) -> str:
        """The connection string with the password masked."""
        return redact(self.conninfo)

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)
            if f.repr and f.name != "ssl_warning"
        )
        return f"Config(conninfo={self.safe_conninfo!r}, {fields})"


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
    "name": str,
}
_CHOICES: Mapping[str, tuple[str, ...]] = {
    "size_check": ("warn", "error", "off"),
    "ssl": ("warn", "required", "off"),
    "naive_datetime": ("error", "allow"),
}


def resolve(
    url: str | None = None,
    options: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build a :class:`Config`; raise :class:`~pgkeel.ConfigError` naming the wrong part.

    Precedence, lowest first: pgkeel's defaults (skipped where a ``PG*`` variable sets the same
    thing), ``PGKEEL_*`` variables, the URL's own parameters, keyword ``options``.
    """
    env = os.environ if environ is None else environ
    source = url if url is not None else env.get("DATABASE_URL", "")
    password = _password_in(source)
    try:
        params: dict[str, Any] = conninfo_to_dict(source)
    except psycopg.ProgrammingError as exc:
        where = "url" if url is not None else "DATABASE_URL"
        raise ConfigError(
            f"{where} is not a valid PostgreSQL connection string: "
            f"{_scrub(str(exc).strip(), password)}; expected "
            "postgresql://user:password@host:port/dbname?param=value"
        ) from None
    for port in str(params.get("port") or "").split(","):
        if port and not port.strip().isdigit():
            raise ConfigError(
                f"the port in the connection string must be a number, got {port!r}; "
                "expected postgresql://user:password@host:port/dbname"
            )

    pool: dict[str, Any] = {}
    settings: dict[str, str | None] = {}
    for name, raw in env.items():
        if name.startswith("PGKEEL_") and name != "PGKEEL_TEST_URL":
            key = name[len("PGKEEL_") :].lower()
            if key in _POOL_OPTIONS:
                pool[key] = _coerce(key, raw, f"environment variable {name}")
            elif key in SERVER_SETTINGS_DEFAULTS:
                settings[key] = raw
            # Other PGKEEL_* variables belong to other tools (the test plugin, benchmarks).

    libpq: dict[str, Any] = {}
    for key, value in (options or {}).items():
        if key in _POOL_OPTIONS:
            pool[key] = _coerce(key, value, f"option {key}=")
        elif key in SERVER_SETTINGS_DEFAULTS:
            settings[key] = None if value is None else _setting_value(value)
        else:
            libpq[key] = value
    if libpq:
        try:
            make_conninfo("", **libpq)
        except psycopg.ProgrammingError:
            bad = next(k for k in libpq if not _is_libpq_keyword(k))
            raise ConfigError(
                f"unknown option {bad!r}: not a pgkeel option "
                f"({', '.join(sorted([*_POOL_OPTIONS, *SERVER_SETTINGS_DEFAULTS]))}) "
                "nor a libpq connection parameter"
            ) from None
        params.update({k: v for k, v in libpq.items() if v is not None})

    for key, (default, env_var) in LIBPQ_DEFAULTS.items():
        if key not in params and not (env_var and env.get(env_var)):
            params[key] = default
    if "application_name" not in params and not env.get("PGAPPNAME"):
        params["application_name"] = _program_name()
    params["options"] = _server_options(params.get("options") or env.get("PGOPTIONS", ""), settings)
    if not params["options"]:
        del params["options"]

    try:
        conninfo = make_conninfo("", **params)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(
            f"invalid connection parameters: {_scrub(str(exc).strip(), password)}"
        ) from None

    pool.setdefault("min_size", 2)
    pool.setdefault("max_size", max(10, pool["min_size"]))
    if pool["min_size"] > pool["max_size"]:
        raise ConfigError(
            f"min_size={pool['min_size']} is larger than max_size={pool['max_size']}; "
            "lower min_size or raise max_size"
        )
    cfg = Config(conninfo=conninfo, **pool)
    warning = ssl_verdict(params, env)
    if warning and cfg.ssl == "required":
        raise ConfigError(f"{warning}; add sslmode=verify-full (with sslrootcert) to the URL")
    return dataclasses.replace(cfg, ssl_warning=None if cfg.ssl == "off" else warning)


def ssl_verdict(params: Mapping[str, Any], environ: Mapping[str, str]) -> str | None:
    """Return why a connection would go unencrypted to a non-local host, or ``None``."""
    sslmode = str(params.get("sslmode") or environ.get("PGSSLMODE") or "prefer")
    if sslmode in _SECURE_SSLMODES:
        return None
    hosts = str(params.get("hostaddr") or params.get("host") or environ.get("PGHOST") or "")
    remote = [h for h in hosts.split(",") if not _is_local(h.strip())]
    if not remote:
        return None
    return (
        f"sslmode={sslmode} lets the connection to {', '.join(remote)} go without TLS "
        "(passwords and data in clear on the network)"
    )


def redact(conninfo: str) -> str:
    """Return ``conninfo`` (URL or key=value) with any password replaced by ``***``."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return _scrub(conninfo, _password_in(conninfo))
    if "password" in params:
        params["password"] = "***"  # noqa: S105 - the mask, not a password
    return make_conninfo("", **params)


def _is_local(host: str) -> bool:
    if host in _LOCAL_HOSTS or host.startswith(("/", "@")):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _password_in(conninfo: str) -> str | None:
    """Find the password in a possibly malformed connection string, to scrub it from errors."""
    if "://" in conninfo:
        try:
            netloc = urlsplit(conninfo).netloc
        except ValueError:
            netloc = conninfo.split("://", 1)[1].split("/", 1)[0]
        userinfo = netloc.rpartition("@")[0]
        if ":" in userinfo:
            return unquote(userinfo.split(":", 1)[1].split(",")[0]) or None
    match = re.search(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", conninfo)
    if match:
        return match.group(1).strip("'") or None
    return None


def _scrub(text: str, password: str | None) -> str:
    if password:
        from urllib.parse import quote

        for form in {password, quote(password, safe="")}:
            text = text.replace(form, "***")
    return text


def _is_libpq_keyword(key: str) -> bool:
    try:
        make_conninfo("", **{key: "1"})
    except psycopg.ProgrammingError as exc:
        return "invalid connection option" not in str(exc)
    return True


def _coerce(key: str, value: Any, where: str) -> Any:
    typ = _POOL_OPTIONS[key]
    out: Any
    try:
        out = typ(value) if not isinstance(value, typ) else value
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {key} takes a {typ.__name__}, got {value!r}") from None
    if key in _CHOICES and out not in _CHOICES[key]:
        raise ConfigError(f"{where}: {key} takes one of {', '.join(_CHOICES[key])}; got {out!r}")
    if typ in (int, float) and out < 0:
        raise ConfigError(f"{where}: {key} cannot be negative, got {out!r}")
    return out


def _setting_value(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"server settings take seconds or a PostgreSQL duration, got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ConfigError(
                f"server setting value {value!r} cannot be negative; 0 means no limit"
            )
        return duration(value)
    if not re.fullmatch(r"[0-9]+\s*[a-zA-Z]*", value.strip()):
        raise ConfigError(f"server setting value {value!r} is not a duration like '30s' or '500ms'")
    return value.strip().replace(" ", "")


def duration(seconds: float) -> str:
    """A server duration for ``seconds``; 0 is PostgreSQL's "no limit", and a positive value
    never rounds down to it."""
    if seconds <= 0:
        return "0"
    return f"{max(1, round(seconds * 1000))}ms"


def _server_options(base: str, settings: Mapping[str, str | None]) -> str:
    parts = [base.strip()] if base.strip() else []
    for name, default in SERVER_SETTINGS_DEFAULTS.items():
        value = settings.get(name, default)
        # A setting already in the user's own options (URL or PGOPTIONS) wins, unless set here.
        if value is None or (name not in settings and name in base):
            continue
        parts.append(f"-c {name}={value}")
    return " ".join(parts)


def _program_name() -> str:
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    if name in ("", "-c", "__main__.py", "-m"):
        name = "python"
    return name[:63]


def scrub(text: str, conninfo: str) -> str:
    """Remove ``conninfo``'s password from ``text`` (an error message about to be shown)."""
    return _scrub(text, _password_in(conninfo))
