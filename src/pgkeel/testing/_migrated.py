"""pytest fixtures for applications with migrations (registered by :mod:`pgkeel.testing.plugin`,
whose ``pg_server`` they use):

- ``pg_migrated_url``: the URL of a fresh database migrated to head from the project's
  migrations directory (``--pg-migrations``, the ``pgkeel_migrations`` ini option, else
  ``migrations`` under the rootdir), for one test only.
- ``pg_migrated``: the same as a factory, ``pg_migrated("path/to/migrations")``.

Each directory is migrated once per session into a template database (rebuilt when a file
changes); each test gets a clone of it, so hundreds of migrations cost one run, not one per test.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pgkeel.testing.plugin import PgServer

__all__ = ["add_options", "pg_migrated", "pg_migrated_url"]


def add_options(parser: pytest.Parser) -> None:
    """The options of these fixtures, added by the plugin's ``pytest_addoption``."""
    parser.getgroup("pgkeel").addoption(
        "--pg-migrations",
        default=None,
        help="migrations directory for pg_migrated_url (default: the pgkeel_migrations ini "
        "option, else ./migrations)",
    )
    parser.addini("pgkeel_migrations", "migrations directory for pg_migrated_url", default="")


@pytest.fixture(scope="session")
def _pgkeel_migrated_templates(pg_server: PgServer) -> Iterator[dict[str, str]]:
    templates: dict[str, str] = {}
    try:
        yield templates
    finally:
        for name in templates.values():
            pg_server.drop_database(name)


def _default_directory(config: pytest.Config) -> Path:
    chosen = config.getoption("--pg-migrations") or config.getini("pgkeel_migrations")
    path = Path(str(chosen or "migrations"))
    return path if path.is_absolute() else Path(config.rootpath) / path


@pytest.fixture
def pg_migrated(
    pg_server: PgServer,
    _pgkeel_migrated_templates: dict[str, str],
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., str]]:
    """``pg_migrated(directory=None)``: URL of a fresh database migrated to head (see above)."""
    made: list[str] = []

    def make(directory: str | Path | None = None) -> str:
        # Only now: a session that never migrates never loads the runner.
        from pgkeel.migrate._files import discover
        from pgkeel.migrate._runner import up

        root = Path(directory) if directory is not None else _default_directory(request.config)
        files = discover(root)
        fingerprint = hashlib.sha256(
            "\n".join(f"{m.version}:{m.checksum}" for m in files).encode()
        ).hexdigest()
        key = f"{root.resolve()}:{fingerprint}"
        template = _pgkeel_migrated_templates.get(key)
        if template is None:
            template = f"pgkeel_mtpl_{secrets.token_hex(6)}"
            up(pg_server.create_database(template), root, lint=False)
            _pgkeel_migrated_templates[key] = template
        name = f"pgkeel_test_{secrets.token_hex(6)}"
        url = pg_server.create_database(name, template=template)
        made.append(name)
        return url

    try:
        yield make
    finally:
        for name in made:
            pg_server.drop_database(name)


@pytest.fixture
def pg_migrated_url(pg_migrated: Callable[..., str]) -> str:
    """URL of a fresh database, migrated to head, for this test only."""
    return pg_migrated()
