"""Backend drivers: the same pgkeel over psycopg 3 (the default, on both faces), asyncpg (the
asyncio face, ``pgkeel[asyncpg]``) and psycopg2 (the sync face, ``pgkeel[psycopg2]``).

A Database resolves its ``driver=`` once, when it is built (:func:`load`); psycopg needs nothing
(``None``: the faces use psycopg directly), another driver gives an object of the small protocol
in ``_protocol`` whose connections speak the part of psycopg's connection API the faces use.
Each driver module is imported only when chosen, so ``import pgkeel`` imports no extra. The pure
parts (``_placeholders``: ``%s`` to ``$n``; ``_errors``: a driver's exceptions to psycopg's
SQLSTATE classes) are tested without a server.

Which to choose: psycopg (default) for everything, including PgBouncer, COPY, pipelines and
CDC; asyncpg for asyncio services whose point reads dominate (fastest asyncio client);
psycopg2 to keep an existing psycopg2 deployment's driver.
"""

from __future__ import annotations

import importlib
from typing import Any

import psycopg

from pgkeel.errors import ConfigError, NotSupportedError

__all__ = ["DRIVERS", "adapter", "load"]

#: Each driver name: (the face it serves, its module, the package it needs, the extra).
DRIVERS: dict[str, tuple[str, str | None, str | None]] = {
    "psycopg": ("both", None, None),
    "asyncpg": ("async", "pgkeel.drivers._asyncpg", "asyncpg"),
    "psycopg2": ("sync", "pgkeel.drivers._psycopg2", "psycopg2"),
}


def load(name: str, *, face: str, config: Any) -> Any:
    """The driver object for ``name`` on ``face`` ("async" or "sync"), or None for psycopg.
    Raise ConfigError for a driver of the other face, NotSupportedError when its extra is
    missing."""
    if name not in DRIVERS:
        raise ConfigError(f"unknown driver {name!r}; choose one of {', '.join(DRIVERS)}")
    serves, module, package = DRIVERS[name]
    if module is None:
        return None
    if serves != face:
        other = "AsyncDatabase" if serves == "async" else "Database"
        here = "Database" if face == "sync" else "AsyncDatabase"
        raise ConfigError(
            f"driver={name!r} serves the {serves} face: use pgkeel.{other}(url, driver={name!r}), "
            f"or driver='psycopg' with {here}"
        )
    try:
        importlib.import_module(package or name)
    except ImportError:
        raise NotSupportedError(
            f"driver={name!r} needs the {package} package: pip install 'pgkeel[{name}]'"
        ) from None
    return importlib.import_module(module).Driver(config)


def adapter(conn: object) -> Any:
    """``conn`` if it is another driver's connection adapter (not psycopg's), else None: where
    :mod:`pgkeel.bulk` hands the work to the driver (typed ``Any``: the adapters are duck-typed).
    An adapter with ``copy_like_psycopg`` (psycopg2's) offers psycopg's own ``cursor.copy()``
    and named cursors, so bulk runs its psycopg code on it unchanged."""
    if isinstance(conn, psycopg.BaseConnection) or getattr(conn, "copy_like_psycopg", False):
        return None
    return conn
