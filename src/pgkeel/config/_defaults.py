"""pgkeel's production defaults and the frozen :class:`Config` that :func:`resolve` builds."""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal

from pgkeel.config._secrets import _scrub, _secret_name, _secrets_in, redact

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
    #: Seconds the pool keeps retrying a lost connection in the background (psycopg_pool's
    #: ``reconnect_timeout``); after that the next checkout starts a new attempt at once, so the
    #: pool is back as soon as the server is.
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
    #: Log query-method calls that take at least this many milliseconds at WARNING on
    #: ``pgkeel.query`` (parameterised text, duration, row count; never parameter values).
    slow_query_ms: float | None = None
    #: Whether any Config of this process has ``slow_query_ms``: until one has, the query
    #: methods skip looking for it (``pgkeel.ops._trace``).
    any_slow_query_log: ClassVar[bool] = False
    #: A pooler between pgkeel and the server (``"pgbouncer"``, transaction mode): no prepared
    #: statements unless ``prepare_threshold`` is given, no session state, no DISCARD ALL, the
    #: server settings checked at open and applied per transaction where the server lacks them.
    pooler: Literal["pgbouncer"] | None = None
    #: The server settings (``settings`` before the pooler emptied them) that a Database behind
    #: a pooler checks at open and applies with ``SET LOCAL`` in transactions where missing.
    pooler_settings: tuple[tuple[str, str], ...] = ()
    #: The server's own connection string (``direct_url=``), for what a pooler cannot carry.
    direct_conninfo: str | None = dataclasses.field(default=None, repr=False)
    #: Read replicas' connection strings (``replicas=``); each gets a pool of its own.
    replicas: tuple[str, ...] = dataclasses.field(default=(), repr=False)
    #: Seconds of replay lag past which a replica serves no reads.
    max_replica_lag: float = 1.0
    #: Seconds between two measurements of each replica's state and lag (in the background).
    replica_interval: float = 0.2
    #: The backend: psycopg 3 (both faces), asyncpg (asyncio face), psycopg2 (sync face).
    driver: Literal["psycopg", "asyncpg", "psycopg2"] = "psycopg"
    #: The SSL policy's verdict, for the Database to log (never holds the password).
    ssl_warning: str | None = None

    def __post_init__(self) -> None:
        if self.slow_query_ms is not None:
            Config.any_slow_query_log = True

    @property
    def safe_conninfo(self) -> str:
        """The connection string with every secret masked."""
        return redact(self.conninfo)

    def scrub(self, text: str) -> str:
        """Remove every secret of this configuration from ``text`` (an error message)."""
        secrets = _secrets_in(self.conninfo) + _secrets_in(self.plain_conninfo)
        for other in (self.direct_conninfo, *self.replicas):
            if other:
                secrets += _secrets_in(other)
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
