"""Configuration: where the connection string comes from, the production defaults, SSL policy.

:func:`resolve` turns ``url`` + keyword options (+ ``DATABASE_URL`` and ``PGKEEL_*`` variables)
into a frozen :class:`Config`: the libpq connection string with pgkeel's defaults applied
(timeouts, keepalives, server-side statement/lock/idle-in-transaction timeouts) and the pool
options. libpq keeps doing what it already does (``PG*`` variables, service file, pgpass): a
default is not applied where a ``PG*`` variable already sets it. Nothing here touches the network;
the only I/O is reading the libpq service file, so that hosts named there get the same SSL policy
as hosts in the URL. Secrets (``password``, ``sslpassword``, ``-c`` settings named like a secret)
never leave this module unredacted except inside ``Config.conninfo``, which is hidden from
``repr()``. :class:`SessionSettings` holds how one Database applies its server settings: in the
startup packet, or with ``SET`` where a pooler such as PgBouncer refuses the startup ``options``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import inspect
import ipaddress
import logging
import math
import os
import re
import sys
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import psycopg
from psycopg import pq, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgkeel.errors import ConfigError

__all__ = ["Config", "SessionSettings", "parse_options", "redact", "resolve", "scrub"]

logger = logging.getLogger("pgkeel.config")

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

#: Server settings pgkeel applies to every session (see ``session_settings``).
SERVER_SETTINGS_DEFAULTS: Mapping[str, str] = {
    "statement_timeout": "30s",
    "lock_timeout": "10s",
    "idle_in_transaction_session_timeout": "60s",
}

SessionMode = Literal["auto", "startup", "set", "server"]

_LOCAL_HOSTS = frozenset({"", "localhost"})
_PLAINTEXT_SSLMODES = frozenset({"disable", "allow", "prefer"})
_SUPPORTED_SCHEMES = ("postgresql", "postgres")


def _secret_params() -> frozenset[str]:
    # libpq marks the parameters it would hide in a dialog with "*"; the SCRAM keys (debug
    # options, "D") are credentials too.
    names = {"password", "sslpassword", "oauth_client_secret"}
    names |= {"scram_client_key", "scram_server_key"}
    names.update(o.keyword.decode() for o in pq.Conninfo.get_defaults() if o.dispchar == b"*")
    return frozenset(names)


#: libpq connection parameters whose value is a secret: masked in every repr, log and error.
SECRET_PARAMS = _secret_params()

#: Words that make a ``-c name=value`` setting's value count as a secret.
_SECRET_WORDS = ("password", "passwd", "passphrase", "secret", "token", "credential", "key")


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
    #: What to do with a connection to a non-local host that is plaintext (``"warn"``), or that
    #: does not verify the server's certificate and host name (``"required"``: only
    #: ``sslmode=verify-full`` passes; ``"verify-ca"``: ``verify-ca`` passes too).
    ssl: Literal["warn", "required", "verify-ca", "off"] = "warn"
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
    #: How the server settings reach each session: ``"startup"`` (in the startup packet's
    #: ``options``: free, but refused by PgBouncer), ``"set"`` (a ``SET`` round trip when a
    #: connection opens and after each reset), ``"server"`` (not sent: the role or database
    #: has them, ``ALTER ROLE ... SET``), or ``"auto"``: startup, switching to set if the server
    #: refuses or ignores the startup options.
    session_settings: SessionMode = "auto"
    #: psycopg's ``prepare_threshold``: executions of one query before it is prepared on the
    #: server; ``None`` never prepares (PgBouncer in transaction mode before 1.21 needs it).
    prepare_threshold: int | None = 5
    #: Called with every new pooled connection after pgkeel's own setup (so its adapters win);
    #: may be ``async`` on AsyncDatabase.
    configure: Callable[[Any], Any] | None = None
    #: Extra keyword arguments for psycopg's ``connect()`` (``context``, ``cursor_factory``).
    connect_kwargs: Mapping[str, Any] = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({}), repr=False
    )
    #: The server settings applied to every session (pgkeel's and the ``options`` ``-c`` ones).
    settings: tuple[tuple[str, str], ...] = ()
    #: ``conninfo`` without the settings in ``options``, for when they are sent with ``SET``.
    plain_conninfo: str = dataclasses.field(default="", repr=False)
    name: str | None = None
    #: The SSL policy's verdict, for the Database to log (never holds the password).
    ssl_warning: str | None = None

    @property
    def safe_conninfo(self) -> str:
        """The connection string with every secret masked."""
        return redact(self.conninfo)

    def scrub(self, text: str) -> str:
        """Remove every secret of this configuration from ``text`` (an error message)."""
        secrets = _secrets_in(self.conninfo) + _secrets_in(self.plain_conninfo)
        secrets += [v for k, v in self.settings if _secret_name(k) and len(v) > 3]
        return _scrub(text, secrets)

    def __repr__(self) -> str:
        fields = []
        for f in dataclasses.fields(self):
            if not f.repr or f.name in ("ssl_warning", "settings"):
                continue
            fields.append(f"{f.name}={getattr(self, f.name)!r}")
        settings = tuple((k, "***" if _secret_name(k) else v) for k, v in self.settings)
        fields.append(f"settings={settings!r}")
        fields.append(f"connect_kwargs={sorted(self.connect_kwargs)!r}")
        return f"Config(conninfo={self.safe_conninfo!r}, {', '.join(fields)})"


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
}
_CHOICES: Mapping[str, tuple[str, ...]] = {
    "size_check": ("warn", "error", "off"),
    "ssl": ("warn", "required", "verify-ca", "off"),
    "naive_datetime": ("error", "allow"),
    "session_settings": ("auto", "startup", "set", "server"),
}
#: Options that must be above zero, not just non-negative.
_POSITIVE = frozenset({"max_size", "timeout", "max_lifetime", "reconnect_delay_max"})
#: Options that take ``None``.
_NULLABLE = frozenset({"stream_idle_timeout", "name"})
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
        if name.startswith("PGKEEL_") and name != "PGKEEL_TEST_URL":
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

    pool.setdefault("min_size", 2)
    pool.setdefault("max_size", max(10, pool["min_size"]))
    if pool["min_size"] > pool["max_size"]:
        raise ConfigError(
            f"min_size={pool['min_size']} is larger than max_size={pool['max_size']}; "
            "lower min_size or raise max_size"
        )
    cfg = Config(conninfo=conninfo, plain_conninfo=plain_conninfo, settings=settings, **pool)
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


# --- the options string: libpq hands it to the server, which splits it like a command line ---

#: The server's switches that take an argument (``process_postgres_switches``'s getopt string).
_SWITCH_ARGS = frozenset("BcCDdfhkNprStvW-")
_SWITCH_FLAGS = frozenset("bEeFijlnOPsT")


def _split_options(options: str) -> list[str]:
    """Split like the server's ``pg_split_opts``: on whitespace; a backslash keeps the next
    character (a space included) as it is."""
    words: list[str] = []
    word: list[str] = []
    in_word = escaped = False
    for ch in options:
        if escaped:
            word.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = in_word = True
        elif ch.isspace():
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
        else:
            word.append(ch)
            in_word = True
    if in_word:
        words.append("".join(word))
    return words


def parse_options(options: str) -> tuple[list[str], dict[str, str]]:
    """Parse libpq's ``options`` string: return the switches other than settings (as words)
    and the settings (``-c name=value``, ``-cname=value``, ``--name=value``), names in lower
    case with ``-`` read as ``_``, as the server does. Raise ConfigError for a setting without
    a value."""
    words = _split_options(options)
    switches: list[str] = []
    settings: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if not word.startswith("-") or word == "-":
            # Not quoted back: the stray word may be a value, and a value may be a secret.
            raise ConfigError(
                f"options: word {i} is not a switch; settings are written -c name=value "
                "(a space inside a value is written \\ followed by the space)"
            )
        j = 1
        while j < len(word):
            flag = word[j]
            if flag in _SWITCH_ARGS:
                arg = word[j + 1 :]
                if not arg:
                    if i >= len(words):
                        raise ConfigError(f"options: -{flag} needs a value, e.g. -c name=value")
                    arg = words[i]
                    i += 1
                if flag in "c-":
                    name, eq, value = arg.partition("=")
                    if not eq or not name:
                        raise ConfigError(
                            f"options: setting {name or arg!r} has no value; write -c name=value"
                        )
                    settings[name.replace("-", "_").lower()] = value
                else:
                    switches += [f"-{flag}", arg]
                break
            if flag not in _SWITCH_FLAGS:
                raise ConfigError(
                    f"options: unknown switch -{flag}; settings are written -c name=value"
                )
            switches.append(f"-{flag}")
            j += 1
    return switches, settings


def _escape_option(word: str) -> str:
    return "".join("\\" + ch if ch == "\\" or ch.isspace() else ch for ch in word)


def render_options(switches: list[str], settings: tuple[tuple[str, str], ...] = ()) -> str:
    """The ``options`` string for ``switches`` and ``settings``, escaped for the server."""
    words = [_escape_option(w) for w in switches]
    for name, value in settings:
        words += ["-c", _escape_option(f"{name}={value}")]
    return " ".join(words)


def _secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


# --- SSL policy --------------------------------------------------------------------------------


def effective_params(params: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """The parameters libpq will use for host and sslmode: the connection string's, then the
    service file's (``service=`` or ``PGSERVICE``), then the ``PG*`` variables'."""
    out: dict[str, Any] = {}
    for key, var in (("host", "PGHOST"), ("hostaddr", "PGHOSTADDR"), ("sslmode", "PGSSLMODE")):
        if environ.get(var):
            out[key] = environ[var]
    service = params.get("service") or environ.get("PGSERVICE")
    if service:
        out.update(read_service(str(service), environ) or {})
    out.update({k: v for k, v in params.items() if v not in (None, "")})
    return out


def service_files(environ: Mapping[str, str]) -> list[Path]:
    """Where libpq looks for a service, in order: ``PGSERVICEFILE`` or ``~/.pg_service.conf``,
    then ``PGSYSCONFDIR/pg_service.conf`` (libpq's built-in directory when unset:
    ``/etc/postgresql-common`` for psycopg-binary's libpq and Debian's)."""
    if environ.get("PGSERVICEFILE"):
        user = Path(environ["PGSERVICEFILE"])
    else:
        home = environ.get("HOME") or os.path.expanduser("~")
        user = Path(home) / ".pg_service.conf"
    system = Path(environ.get("PGSYSCONFDIR") or "/etc/postgresql-common") / "pg_service.conf"
    return [user, system]


def read_service(name: str, environ: Mapping[str, str]) -> dict[str, str] | None:
    """The parameters of service ``name`` as libpq reads them (the first file that defines
    it), or ``None``. Only host, hostaddr, port and sslmode are kept: the SSL policy needs
    nothing else, and a password in the file must not travel further."""
    for path in service_files(environ):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        found: dict[str, str] | None = None
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                if found is not None:
                    break
                if line.startswith(f"[{name}]"):
                    found = {}
            elif found is not None:
                key, eq, value = line.partition("=")
                if eq and key in ("host", "hostaddr", "port", "sslmode"):
                    found.setdefault(key, value)
        if found is not None:
            return found
    return None


def _sslmode(params: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    return str(params.get("sslmode") or environ.get("PGSSLMODE") or "prefer")


def ssl_verdict(
    params: Mapping[str, Any],
    environ: Mapping[str, str],
    accept: tuple[str, ...] = ("require", "verify-ca", "verify-full"),
) -> str | None:
    """Return why the connection to a non-local host does not meet ``accept`` (the sslmodes
    that pass), or ``None``. The default passes any encrypted connection."""
    sslmode = _sslmode(params, environ)
    if sslmode in accept:
        return None
    hosts = str(params.get("hostaddr") or params.get("host") or environ.get("PGHOST") or "")
    remote = [h for h in hosts.split(",") if not _is_local(h.strip())]
    if not remote:
        return None
    if sslmode in _PLAINTEXT_SSLMODES:
        return (
            f"sslmode={sslmode} lets the connection to {', '.join(remote)} go without TLS "
            "(passwords and data in clear on the network)"
        )
    if sslmode == "require":
        return (
            f"sslmode=require encrypts the connection to {', '.join(remote)} but checks no "
            "certificate (a man in the middle can read and change everything)"
        )
    return (
        f"sslmode={sslmode} checks that the certificate of {', '.join(remote)} is signed by "
        "the CA, not that it names the host"
    )


def _is_local(host: str) -> bool:
    if host in _LOCAL_HOSTS or host.startswith(("/", "@")):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- secrets ---------------------------------------------------------------------------------


def redact(conninfo: str) -> str:
    """Return ``conninfo`` (URL or key=value) with every secret replaced by ``***``: the
    password, ``sslpassword`` and the like, and ``-c`` settings named like a secret."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return _scrub(conninfo, _secrets_in(conninfo))
    for key in SECRET_PARAMS & params.keys():
        params[key] = "***"
    if params.get("options"):
        try:
            switches, settings = parse_options(str(params["options"]))
        except ConfigError:
            params["options"] = _scrub(str(params["options"]), _secrets_in(conninfo))
        else:
            params["options"] = render_options(
                switches, tuple((k, "***" if _secret_name(k) else v) for k, v in settings.items())
            )
    return make_conninfo("", **params)


def _secrets_of(params: Mapping[str, Any]) -> list[str]:
    out = [str(params[k]) for k in SECRET_PARAMS & params.keys() if params[k]]
    if params.get("options"):
        try:
            _, settings = parse_options(str(params["options"]))
        except ConfigError:
            return out
        # A value of 3 characters or fewer is no secret, and masking it would mangle messages.
        out += [v for k, v in settings.items() if _secret_name(k) and len(v) > 3]
    return out


def _secrets_in(conninfo: str) -> list[str]:
    """The secrets in a possibly malformed connection string, to scrub them from errors."""
    try:
        return _secrets_of(conninfo_to_dict(conninfo))
    except psycopg.ProgrammingError:
        pass
    found: list[str] = []
    if "://" in conninfo:
        try:
            parts = urlsplit(conninfo)
            netloc, query = parts.netloc, parts.query
        except ValueError:
            netloc = conninfo.split("://", 1)[1].split("/", 1)[0]
            query = conninfo.partition("?")[2]
        userinfo = netloc.rpartition("@")[0]
        if ":" in userinfo:
            found.append(unquote(userinfo.split(":", 1)[1].split(",")[0]))
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key in SECRET_PARAMS:
                found.append(value)
    names = "|".join(sorted(SECRET_PARAMS, key=len, reverse=True))
    for match in re.finditer(rf"\b(?:{names})\s*=\s*('(?:[^'\\]|\\.)*'|[^\s&]+)", conninfo):
        found.append(match.group(1).strip("'"))
    return [s for s in found if s]


def _scrub(text: str, secrets: list[str] | str | None) -> str:
    if isinstance(secrets, str):
        secrets = [secrets]
    forms: set[str] = set()
    for secret in secrets or ():
        forms |= {secret, quote(secret, safe=""), quote(secret), _escape_option(secret)}
        forms.add(secret.replace("\\", "\\\\").replace("'", "\\'"))
    # Longest first, so a secret inside another is not half-replaced.
    for form in sorted((f for f in forms if f), key=len, reverse=True):
        text = text.replace(form, "***")
    return text


def scrub(text: str, conninfo: str) -> str:
    """Remove ``conninfo``'s secrets from ``text`` (an error message about to be shown)."""
    return _scrub(text, _secrets_in(conninfo))


# --- option values ---------------------------------------------------------------------------


def _is_libpq_keyword(key: str) -> bool:
    try:
        make_conninfo("", **{key: "1"})
    except psycopg.ProgrammingError as exc:
        return "invalid connection option" not in str(exc)
    return True


def _all_options() -> list[str]:
    return sorted([*_POOL_OPTIONS, *SERVER_SETTINGS_DEFAULTS, *_OBJECT_OPTIONS])


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
    kind = _KINDS[typ]
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


# --- how a Database applies the settings -----------------------------------------------------


class SessionSettings:
    """How one Database applies its server settings (``Config.session_settings``).

    ``"auto"`` is decided by the first connection: the startup packet if the server takes it,
    else ``SET`` (PgBouncer refuses the ``options`` startup parameter unless told to ignore
    it, and then the settings would silently not apply: both are caught). The decision is
    logged at INFO. No I/O here: the Database connects and reports.
    """

    #: After a startup with ``options``: which of the settings did not come from the client.
    IGNORED_QUERY = (
        "SELECT name FROM pg_settings WHERE name = ANY(%s) AND source IS DISTINCT FROM 'client'"
    )

    def __init__(self, config: Config) -> None:
        self.config = config
        mode = config.session_settings
        self.mode: SessionMode | None = mode
        if mode == "auto":
            self.mode = None if config.settings else "startup"
        self._statement: tuple[sql.Composed, list[str]] | None = None
        if config.settings:
            calls = sql.SQL(", ").join(
                sql.SQL("set_config({}, {}, false)").format(sql.Placeholder(), sql.Placeholder())
                for _ in config.settings
            )
            args = [part for pair in config.settings for part in pair]
            self._statement = (sql.SQL("SELECT ") + calls, args)

    @property
    def decided(self) -> bool:
        return self.mode is not None

    def conninfo(self) -> str:
        """The connection string for the next connection."""
        return self.config.plain_conninfo if self.mode == "set" else self.config.conninfo

    def statement(self) -> tuple[sql.Composed, list[str]] | None:
        """The ``SELECT set_config(...)`` to run on a new or reset connection, if any."""
        return self._statement if self.mode == "set" else None

    def names(self) -> list[str]:
        return [name for name, _ in self.config.settings]

    @staticmethod
    def startup_refused(exc: BaseException) -> bool:
        """Whether a connection failed because the server (a pooler) refused startup
        parameters: PgBouncer says "unsupported startup parameter"."""
        return isinstance(exc, psycopg.OperationalError) and "startup parameter" in str(exc)

    def started(self, ignored: list[str]) -> None:
        """Record the outcome of a first connection made with the settings in its startup
        packet: ``ignored`` lists the ones the session does not have."""
        if ignored:
            self.use_set(
                f"the server ignored {', '.join(ignored)} sent in the startup packet (PgBouncer "
                "with ignore_startup_parameters=options?)"
            )
        else:
            self.mode = "startup"

    def use_set(self, why: str) -> None:
        self.mode = "set"
        logger.info(
            "%s: applying %s with SET on each new connection and after each reset "
            "(session_settings='set'). Behind PgBouncer in transaction mode a SET stays on "
            "the server connection that ran it: make them role or database settings (ALTER "
            "ROLE ... SET), pass session_settings='server', and prepare_threshold=None before "
            "PgBouncer 1.21",
            why,
            ", ".join(self.names()),
        )
