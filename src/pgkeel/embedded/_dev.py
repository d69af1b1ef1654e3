"""The development cluster of ``pgkeel db``: where it lives, and the URL commands use by default."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pgkeel.embedded._server import running

__all__ = ["DEV_DIR", "dev_data_dir", "dev_url"]

DEV_DIR = ".pgkeel"
#: Libpq variables that name a server: when one is set, a command without ``--url`` follows
#: libpq rather than the development cluster.
_LIBPQ_TARGET_VARS = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")


def dev_data_dir(cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The development cluster's data directory, found the way git finds ``.git``.

    ``$PGKEEL_DATA_DIR`` if set; else ``.pgkeel/data`` in the current directory or the nearest
    parent that has one; else ``./.pgkeel/data`` (where ``pgkeel db start`` makes it).
    """
    env = os.environ if environ is None else environ
    if explicit := env.get("PGKEEL_DATA_DIR"):
        return Path(explicit).absolute()
    here = (cwd or Path.cwd()).absolute()
    for directory in (here, *here.parents):
        if (directory / DEV_DIR / "data").is_dir():
            return directory / DEV_DIR / "data"
    return here / DEV_DIR / "data"


def dev_url(cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """The URL a command should use when given none, or None to let libpq decide.

    None when ``DATABASE_URL`` or a libpq variable naming a server (``PGHOST``...) is set, or
    when no development cluster (:func:`dev_data_dir`) is running; else that cluster's URL.
    """
    env = os.environ if environ is None else environ
    if env.get("DATABASE_URL") or any(env.get(name) for name in _LIBPQ_TARGET_VARS):
        return None
    server = running(dev_data_dir(cwd, env))
    return server.url if server else None
