"""Configuration: where the connection string comes from, the production defaults, SSL policy.

:func:`resolve` turns ``url`` + keyword options (+ ``DATABASE_URL`` and ``PGKEEL_*`` variables)
into a frozen :class:`Config`: the libpq connection string with pgkeel's defaults applied
(timeouts, keepalives, server-side statement/lock/idle-in-transaction timeouts) and the pool
options. libpq keeps doing what it already does (``PG*`` variables, service file, pgpass): a
default is not applied where a ``PG*`` variable already sets it. Nothing here touches the network;
the only I/O is reading the libpq service file, so that hosts named there get the same SSL policy
as hosts in the URL. Secrets (``password``, ``sslpassword``, ``-c`` settings named like a secret)
never leave this package unredacted except inside ``Config.conninfo``, which is hidden from
``repr()``. :class:`SessionSettings` holds how one Database applies its server settings: in the
startup packet, or with ``SET`` where a pooler such as PgBouncer refuses the startup ``options``.
Private modules: ``_resolve`` (resolve), ``_defaults`` (the defaults and Config), ``_values``
(option checks), ``_options`` (the ``options`` string), ``_tls`` (SSL policy), ``_secrets``
(redaction), ``_session`` (SessionSettings) and ``_scale`` (pooler, direct_url, replicas, and
:func:`direct_conninfo`: the connection string for a feature that needs a session of its own).
"""

from __future__ import annotations

from pgkeel.config._defaults import LIBPQ_DEFAULTS, SERVER_SETTINGS_DEFAULTS, Config, SessionMode
from pgkeel.config._options import parse_options, render_options
from pgkeel.config._resolve import resolve
from pgkeel.config._scale import direct_conninfo
from pgkeel.config._secrets import SECRET_PARAMS, redact, scrub
from pgkeel.config._session import SessionSettings
from pgkeel.config._tls import ssl_verdict
from pgkeel.config._values import RESERVED_CONNECT_KWARGS, duration

__all__ = [
    "LIBPQ_DEFAULTS",
    "RESERVED_CONNECT_KWARGS",
    "SECRET_PARAMS",
    "SERVER_SETTINGS_DEFAULTS",
    "Config",
    "SessionMode",
    "SessionSettings",
    "direct_conninfo",
    "duration",
    "parse_options",
    "redact",
    "render_options",
    "resolve",
    "scrub",
    "ssl_verdict",
]
