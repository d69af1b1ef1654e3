"""Slot hygiene and the checks made before streaming, over a plain psycopg 3 connection.

A slot pgkeel creates is recorded in the table ``pgkeel_cdc_slots`` of the source database.
The record is what tells "never existed" (``create=True`` may create it) from "existed and was
lost" (an error: changes may have been lost; never silently re-created). ``pgkeel cdc drop``
removes both. Every name that reaches SQL or the replication protocol is validated first.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from pgkeel.errors import CdcSetupError, SlotLostError

__all__ = [
    "RECORD_TABLE",
    "SlotInfo",
    "check_name",
    "drop_slot",
    "list_slots",
    "prepare",
]

logger = logging.getLogger("pgkeel.cdc")

RECORD_TABLE = "pgkeel_cdc_slots"
#: PostgreSQL's own rule for slot names; for publications the stricter rule keeps the name
#: the same once the server splits ``publication_names`` as a list of (down-cased) identifiers.
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
#: Retained WAL above which ``prepare``/``list_slots`` warn (1 GiB).
DEFAULT_WARN_BYTES = 1 << 30


def check_name(kind: str, name: object) -> str:
    """``name`` if it is a safe slot/publication name, else a clear error."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise CdcSetupError(
            f"{kind} name {name!r} is not valid: use 1 to 63 lower-case letters, digits and "
            "underscores, not starting with a digit"
        )
    return name


@dataclass(frozen=True)
class SlotInfo:
    """One replication slot as ``pgkeel cdc slots`` reports it."""

    name: str
    plugin: str | None
    database: str | None
    active: bool
    active_pid: int | None
    retained_bytes: int | None
    lag_bytes: int | None
    lag_seconds: float | None
    confirmed_flush_lsn: str | None
    wal_status: str | None
    recorded: bool


def _ensure_record_table(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (slot_name text PRIMARY KEY, created_at timestamptz "
            "NOT NULL DEFAULT now(), created_lsn pg_lsn)"
        ).format(sql.Identifier(RECORD_TABLE))
    )


def _recorded(conn: psycopg.Connection[Any], slot: str) -> tuple[Any, ...] | None:
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (RECORD_TABLE,)).fetchone()
    if not exists or not exists[0]:
        return None
    return conn.execute(
        sql.SQL("SELECT created_at, created_lsn FROM {} WHERE slot_name = %s").format(
            sql.Identifier(RECORD_TABLE)
        ),
        (slot,),
    ).fetchone()


def prepare(
    conn: psycopg.Connection[Any],
    *,
    slot: str,
    publication: str,
    create: bool,
    tables: Sequence[str] | None,
    warn_bytes: int = DEFAULT_WARN_BYTES,
) -> None:
    """Check everything streaming needs, creating the slot/publication where asked.

    ``conn`` is in autocommit mode (creating a logical slot waits for running transactions).
    """
    check_name("slot", slot)
    check_name("publication", publication)
    wal_level = conn.execute("SHOW wal_level").fetchone()
    if not wal_level or wal_level[0] != "logical":
        raise CdcSetupError(
            f"the server runs with wal_level={wal_level[0] if wal_level else '?'}: change data "
            "capture needs wal_level=logical (ALTER SYSTEM SET wal_level = logical; then restart "
            "the server)"
        )
    role = conn.execute(
        "SELECT rolname, rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if not role or not role[1]:
        name = role[0] if role else "?"
        raise CdcSetupError(
            f"role {name!r} lacks the REPLICATION attribute: run ALTER ROLE {name} REPLICATION "
            "as a superuser (or connect as a role that has it)"
        )
    _publication(conn, publication, tables)
    _slot(conn, slot, create)
    _retained_warning(conn, slot, warn_bytes)


def _publication(
    conn: psycopg.Connection[Any], publication: str, tables: Sequence[str] | None
) -> None:
    row = conn.execute(
        "SELECT pubupdate OR pubdelete FROM pg_publication WHERE pubname = %s", (publication,)
    ).fetchone()
    if row is None:
        if not tables:
            raise CdcSetupError(
                f"publication {publication!r} does not exist: create it (CREATE PUBLICATION "
                f"{publication} FOR TABLE ...) or pass tables=[...] to create it"
            )
        names = [sql.Identifier(*t.split(".", 1)) for t in tables]
        for t in tables:
            if conn.execute("SELECT to_regclass(%s)", (t,)).fetchone() in (None, (None,)):
                raise CdcSetupError(f"table {t!r} (given in tables=) does not exist")
        conn.execute(
            sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
                sql.Identifier(publication), sql.SQL(", ").join(names)
            )
        )
        logger.info("created publication %s for %s", publication, ", ".join(tables))
        row = (True,)
    if row[0]:
        bad = conn.execute(
            """
            SELECT format('%%I.%%I', c.relnamespace::regnamespace::text, c.relname), c.relreplident
            FROM pg_publication_tables p
            JOIN pg_class c ON c.oid = format('%%I.%%I', p.schemaname, p.tablename)::regclass
            WHERE p.pubname = %s
              AND (c.relreplident = 'n'
                   OR (c.relreplident = 'd' AND NOT EXISTS (
                       SELECT FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)))
            ORDER BY 1
            """,
            (publication,),
        ).fetchall()
        if bad:
            names_text = ", ".join(str(b[0]) for b in bad)
            raise CdcSetupError(
                f"publication {publication!r} publishes updates/deletes of {names_text}, which "
                "have no primary key nor replica identity, so the server cannot say which row "
                "changed: add a primary key, or ALTER TABLE ... REPLICA IDENTITY FULL (or USING "
                "INDEX)"
            )


def _slot(conn: psycopg.Connection[Any], slot: str, create: bool) -> None:
    row = conn.execute(
        "SELECT plugin, database FROM pg_replication_slots WHERE slot_name = %s", (slot,)
    ).fetchone()
    dbname = conn.info.dbname
    if row is not None:
        if row[0] != "pgoutput" or row[1] != dbname:
            raise CdcSetupError(
                f"slot {slot!r} exists but is not a pgoutput slot of database {dbname!r} "
                f"(plugin {row[0]!r}, database {row[1]!r}): choose another slot name"
            )
        return
    record = _recorded(conn, slot)
    if record is not None:
        raise SlotLostError(
            f"replication slot {slot!r}, created by pgkeel on {record[0]:%Y-%m-%d %H:%M:%S%z} at "
            f"LSN {record[1]}, no longer exists: changes made since its last acknowledged "
            "position may have been lost. Resynchronise the sink, then run `pgkeel cdc drop "
            f"{slot}` to forget it and start again with create=True"
        )
    if not create:
        raise CdcSetupError(
            f"replication slot {slot!r} does not exist: pass create=True (or `--create`) to "
            "create it on first use"
        )
    created = conn.execute(
        "SELECT lsn FROM pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,)
    ).fetchone()
    try:
        _ensure_record_table(conn)
        conn.execute(
            sql.SQL("INSERT INTO {} (slot_name, created_lsn) VALUES (%s, %s)").format(
                sql.Identifier(RECORD_TABLE)
            ),
            (slot, created[0] if created else None),
        )
    except BaseException:
        conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
        raise
    logger.info("created replication slot %s at %s", slot, created[0] if created else "?")


_SLOTS_QUERY = """
SELECT s.slot_name AS name, s.plugin, s.database, s.active, s.active_pid,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::bigint END
         AS retained_bytes,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint END
         AS lag_bytes,
       s.confirmed_flush_lsn::text AS confirmed_flush_lsn, s.wal_status,
       extract(epoch FROM r.flush_lag)::float8 AS lag_seconds
FROM pg_replication_slots s
LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
WHERE s.slot_type = 'logical' AND (%(slot)s::text IS NULL OR s.slot_name = %(slot)s)
ORDER BY s.slot_name
"""


def list_slots(conn: psycopg.Connection[Any], slot: str | None = None) -> list[SlotInfo]:
    """Every logical slot of the server, with retained WAL and lag.

    ``lag_bytes`` is the WAL written since the slot's confirmed position; ``lag_seconds`` the
    server's own measure for a connected consumer (``flush_lag`` of ``pg_stat_replication``:
    0 when caught up), ``None`` while no consumer is connected.
    """
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_SLOTS_QUERY, {"slot": slot}).fetchall()
    recorded: set[str] = set()
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (RECORD_TABLE,)).fetchone()
    if exists and exists[0]:
        query = sql.SQL("SELECT slot_name FROM {}").format(sql.Identifier(RECORD_TABLE))
        recorded = {r[0] for r in conn.execute(query)}
    return [
        SlotInfo(
            name=r["name"],
            plugin=r["plugin"],
            database=r["database"],
            active=bool(r["active"]),
            active_pid=r["active_pid"],
            retained_bytes=r["retained_bytes"],
            lag_bytes=r["lag_bytes"],
            lag_seconds=(r["lag_seconds"] or 0.0) if r["active"] else None,
            confirmed_flush_lsn=r["confirmed_flush_lsn"],
            wal_status=r["wal_status"],
            recorded=r["name"] in recorded,
        )
        for r in rows
    ]


def _retained_warning(conn: psycopg.Connection[Any], slot: str, warn_bytes: int) -> None:
    for info in list_slots(conn, slot):
        if info.retained_bytes is not None and info.retained_bytes > warn_bytes:
            logger.warning(
                "replication slot %s retains %d bytes of WAL (over %d): a consumer is behind "
                "or stopped; see max_slot_wal_keep_size",
                info.name,
                info.retained_bytes,
                warn_bytes,
            )


def drop_slot(conn: psycopg.Connection[Any], slot: str) -> bool:
    """Drop ``slot`` and its pgkeel record; whether a slot existed."""
    check_name("slot", slot)
    row = conn.execute(
        "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,)
    ).fetchone()
    if row is not None and row[0] is not None:
        raise CdcSetupError(
            f"slot {slot!r} is in use by the server process {row[0]}: stop its consumer first"
        )
    if row is not None:
        conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    if _recorded(conn, slot) is not None:
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE slot_name = %s").format(sql.Identifier(RECORD_TABLE)),
            (slot,),
        )
    return row is not None
