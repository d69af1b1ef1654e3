"""An embedded PostgreSQL server for tests, demos and first steps: no Docker, no system service.

``start()`` finds server binaries (see :func:`find_bindir`), copies a cached ``initdb``'d
template into a throwaway or persistent data directory, and runs the server on 127.0.0.1 and a
private unix socket with password authentication. As root it runs the server as an unprivileged
user, since PostgreSQL refuses to run as root, with a minimal environment. Servers are stopped
on ``stop()``, context exit and interpreter exit; when the owner dies any other way (a signal,
SIGKILL, the OOM killer), a watchdog process (see :mod:`pgkeel.embedded._postmaster`) stops the
server and removes a throwaway cluster's files. :func:`running` finds a server started by any
process, and :func:`dev_url` / :func:`dev_data_dir` locate the development cluster of
``pgkeel db``.

Private modules, one concern each: ``_binaries`` (finding the server binaries), ``_runas``
(the unprivileged user), ``_template`` (the initdb template cache), ``_server`` (starting,
stopping, the :class:`EmbeddedServer` handle), ``_dev`` (the development cluster), ``_certs``
(throwaway TLS material; needs ``cryptography``) and ``_postmaster`` (process care: the watchdog
and the reaper, also run as a stdlib-only script).
"""

from __future__ import annotations

from pgkeel.embedded._binaries import find_bindir, supports_ssl
from pgkeel.embedded._dev import DEV_DIR, dev_data_dir, dev_url
from pgkeel.embedded._server import DEFAULT_SETTINGS, EmbeddedServer, running, start

__all__ = [
    "DEFAULT_SETTINGS",
    "DEV_DIR",
    "EmbeddedServer",
    "dev_data_dir",
    "dev_url",
    "find_bindir",
    "running",
    "start",
    "supports_ssl",
]
