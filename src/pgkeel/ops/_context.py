"""What every check may look at: the open connection (read-only queries only), the resolved client
configuration, the options, and the facts read once at the start (version, role, privileges,
settings)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, LiteralString

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from pgkeel.config import Config
from pgkeel.ops._model import MONITOR_GRANT, DoctorOptions

__all__ = ["FACTS_QUERY", "Context", "NeedsPrivilege"]

FACTS_QUERY = """\
SELECT current_setting('server_version_num')::int AS version,
       current_user AS role,
       current_database() AS database,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
       pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS read_all_stats,
       pg_has_role(current_user, 'pg_read_all_settings', 'USAGE') AS read_all_settings,
       pg_is_in_recovery() AS standby,
       inet_server_addr()::text AS server_addr"""

SETTINGS_QUERY = "SELECT name, setting, unit, source FROM pg_settings"


class NeedsPrivilege(Exception):
    """A check cannot see what it needs; its message names what is missing."""


@dataclasses.dataclass
class Context:
    conn: psycopg.Connection[Any]
    config: Config
    options: DoctorOptions
    #: The parameters libpq used (host, port, sslmode...), secrets left out.
    params: Mapping[str, str]
    version: int = 0
    role: str = ""
    database: str = ""
    superuser: bool = False
    read_all_stats: bool = False
    read_all_settings: bool = False
    standby: bool = False
    server_addr: str | None = None
    #: name -> (setting, unit, source) for every setting this role may see.
    settings: dict[str, tuple[str, str | None, str]] = dataclasses.field(default_factory=dict)

    def load(self) -> None:
        row = self.one(FACTS_QUERY)
        for key, value in row.items():
            setattr(self, key, value)
        self.settings = {
            r["name"]: (r["setting"], r["unit"], r["source"]) for r in self.rows(SETTINGS_QUERY)
        }

    def rows(self, query: LiteralString | sql.Composed, params: Any = None) -> list[dict[str, Any]]:
        cur = self.conn.cursor(row_factory=dict_row)
        # Never prepared: behind PgBouncer in transaction mode a prepared statement may not find
        # its server, and each query runs once anyway.
        cur.execute(query, params, prepare=False)
        return cur.fetchall()

    def one(self, query: LiteralString | sql.Composed, params: Any = None) -> dict[str, Any]:
        rows = self.rows(query, params)
        if not rows:
            raise AssertionError(f"no row from {query!r}")
        return rows[0]

    def setting(self, name: str) -> str:
        """A setting's value; :class:`NeedsPrivilege` when the role may not read it."""
        if name not in self.settings:
            raise NeedsPrivilege(f"the setting {name} is not visible to {self.role}")
        return self.settings[name][0]

    def setting_bytes(self, name: str) -> int:
        value, unit, _ = self.settings.get(name) or (None, None, "")
        if value is None:
            raise NeedsPrivilege(f"the setting {name} is not visible to {self.role}")
        return int(value) * _unit_bytes(unit)

    def need_stats(self, what: str) -> None:
        """Raise :class:`NeedsPrivilege` unless the role sees every session's statistics."""
        if not self.read_all_stats:
            raise NeedsPrivilege(
                f"{what} of other roles are hidden from {self.role}; "
                + MONITOR_GRANT.format(role=self.role)
            )

    @property
    def local(self) -> bool:
        """Whether the server is on this host (a Unix socket or a loopback address)."""
        host = self.params.get("host", "")
        return (
            self.server_addr is None
            or host.startswith("/")
            or host in ("", "localhost")
            or self.server_addr.split("/")[0] in ("127.0.0.1", "::1")
        )


def _unit_bytes(unit: str | None) -> int:
    return {"B": 1, "kB": 1024, "8kB": 8192, "MB": 1 << 20, "16MB": 16 << 20}.get(unit or "", 1)
