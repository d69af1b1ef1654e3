"""Deprecated: the pytest plugin is now :mod:`pgkeel.testing.plugin`; old imports keep working.

pytest loads the plugin by itself (entry point ``pgkeel``), so ``pytest_plugins`` need not name
it; this module re-exports the public helpers and fixtures, not the hooks, so that naming it
there as well does not add the plugin's command-line options twice.
"""

from __future__ import annotations

import warnings

from pgkeel.testing.plugin import (
    PgServer,
    describe,
    pg_migrated,
    pg_migrated_url,
    pg_server,
    pg_url,
    version_matches,
    with_dbname,
)

__all__ = [
    "PgServer",
    "describe",
    "pg_migrated",
    "pg_migrated_url",
    "pg_server",
    "pg_url",
    "version_matches",
    "with_dbname",
]

warnings.warn(
    "pgkeel.pytest_plugin is deprecated: import from pgkeel.testing.plugin (the plugin itself "
    "is loaded by pytest through its entry point; pytest_plugins need not name it)",
    DeprecationWarning,
    stacklevel=2,
)
