"""pytest fixtures for code that talks to PostgreSQL, shipped so that pgkeel's users get them too.

- ``pg_server`` (session): the server under test — ``--pg-url`` / ``PGKEEL_TEST_URL`` if given,
  else an embedded server started for the session. Unreachable: the session stops once, clearly.
- ``pg_url`` (function): the URL of a fresh, empty database for one test, cloned from a
  per-session template and dropped afterwards, so tests never see each other's tables.
- ``@pytest.mark.pg(">=16")``: run a test only on matching server versions.
- ``pg_migrated_url`` / ``pg_migrated``: the same, migrated to head (see
  :mod:`pgkeel.testing._migrated`).

Installed for every project that installs pgkeel (the one ``pytest11`` entry point, ``pgkeel``),
so nothing here runs for a test that uses none of it: no autouse fixture, no server, and the
embedded server's module (and the migration runner) are imported only when first needed.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgkeel.errors import EmbeddedServerError
from pgkeel.testing import _migrated

# pytest finds a plugin's fixtures among its attributes: importing them here registers them.
from pgkeel.testing._migrated import _pgkeel_migrated_templates as _pgkeel_migrated_templates
from pgkeel.testing._migrated import pg_migrated, pg_migrated_url

if TYPE_CHECKING:
    from pgkeel import embedded

__all__ = [
    "PgServer",
    "pg_migrated",
    "pg_migrated_url",
    "pg_server",
    "pg_url",
    "version_matches",
]

_ENV_URL = "PGKEEL_TEST_URL"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pgkeel")
    group.addoption(
        "--pg-url",
        default=None,
        help=f"PostgreSQL server to test against (default: ${_ENV_URL}, else an embedded server)",
    )
    _migrated.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "pg(spec): run only on server versions matching spec, e.g. '>=16' or '>=15,<17'"
    )


def with_dbname(url: str, dbname: str) -> str:
    """``url`` pointing at another database; works for URLs and key=value strings."""
    if re.match(r"postgres(ql)?://", url):
        parts = urlsplit(url)
        return urlunsplit(parts._replace(path="/" + dbname))
    return make_conninfo(url, dbname=dbname)


def describe(url: str) -> str:
    """Where ``url`` points, without its password."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<malformed connection string>"
    return " ".join(f"{k}={params[k]}" for k in ("host", "port", "user", "dbname") if k in params)


_SPEC = re.compile(r"^\s*(>=|<=|==|!=|>|<)?\s*(\d+)(?:\.(\d+))?\s*$")


def version_matches(server_version_num: int, spec: str) -> bool:
    """Whether ``server_version_num`` (e.g. 150018) satisfies ``spec`` (e.g. ``">=15,<17"``)."""
    version = (server_version_num // 10000, server_version_num % 10000)
    for clause in spec.split(","):
        match = _SPEC.match(clause)
        if not match:
            raise ValueError(f"bad pg version spec {spec!r}: use e.g. '>=16' or '>=15,<17'")
        op, major, minor = match.group(1) or "==", int(match.group(2)), match.group(3)
        have = version if minor is not None else version[:1]
        want = (major, int(minor)) if minor is not None else (major,)
        ok = {
            ">=": have >= want, "<=": have <= want, "==": have == want,
            "!=": have != want, ">": have > want, "<": have < want,
        }[op]  # fmt: skip
        if not ok:
            return False
    return True


@dataclass
class PgServer:
    """The server under test: its URL, version and (when pgkeel started it) the embedded server."""

    url: str
    version_num: int
    embedded: embedded.EmbeddedServer | None = None
    template: str = field(default_factory=lambda: f"pgkeel_tpl_{secrets.token_hex(4)}")
    _admin: psycopg.Connection[tuple[object, ...]] | None = field(default=None, repr=False)

    def url_for(self, dbname: str) -> str:
        return with_dbname(self.url, dbname)

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        """An autocommit connection for CREATE/DROP DATABASE, reopened if it broke."""
        if self._admin is None or self._admin.closed or self._admin.broken:
            self._admin = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        return self._admin

    def create_database(self, name: str, template: str | None = None) -> str:
        self.admin().execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template or self.template)
            )
        )
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        self.admin().execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def pg_server(request: pytest.FixtureRequest) -> Iterator[PgServer]:
    """The PostgreSQL server under test (see the module docstring)."""
    url = request.config.getoption("--pg-url") or os.environ.get(_ENV_URL)
    started: embedded.EmbeddedServer | None = None
    if not url:
        from pgkeel import embedded  # only now: a session that never asks for it never loads it

        try:
            started = embedded.start()
        except EmbeddedServerError as exc:
            pytest.exit(f"pgkeel: cannot start an embedded PostgreSQL server:\n{exc}", returncode=3)
        url = started.url
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            version_num = conn.info.server_version
    except psycopg.Error as exc:
        if started is not None:
            started.stop()
        pytest.exit(
            f"pgkeel: the PostgreSQL server under test ({describe(url)}) is unreachable: "
            f"{str(exc).strip()}\nFix: start it, or pass another with --pg-url / ${_ENV_URL}, "
            "or unset both to let pgkeel start an embedded server.",
            returncode=3,
        )
    server = PgServer(url=url, version_num=version_num, embedded=started)
    server.admin().execute(
        sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(server.template))
    )
    try:
        yield server
    finally:
        try:
            server.drop_database(server.template)
            server.admin().close()
        finally:
            if started is not None:
                started.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """URL of a fresh, empty database for this test only; dropped afterwards."""
    name = f"pgkeel_test_{secrets.token_hex(6)}"
    url = pg_server.create_database(name)
    try:
        yield url
    finally:
        pg_server.drop_database(name)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give the version check to the tests marked ``pg``, and to no other test."""
    for item in items:
        if item.get_closest_marker("pg") is not None and isinstance(item, pytest.Function):
            item.fixturenames.insert(0, "_pgkeel_version_marker")


@pytest.fixture
def _pgkeel_version_marker(request: pytest.FixtureRequest) -> None:
    marker = request.node.get_closest_marker("pg")
    if marker is None:
        return
    server: PgServer = request.getfixturevalue("pg_server")
    spec = str(marker.args[0])
    if not version_matches(server.version_num, spec):
        pytest.skip(f"needs PostgreSQL {spec}; the server is {server.version_num}")
