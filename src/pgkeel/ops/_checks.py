"""The doctor's checks: each a small function with its SQL, reading the catalogs and statistics
views and handing the numbers to :mod:`pgkeel.ops._verdicts`. Read-only by construction (the
runner wraps each in a READ ONLY transaction with a short statement_timeout and lock_timeout); no
query takes a lock stronger than ACCESS SHARE, and sizes come from ``relpages`` rather than
``pg_relation_size()`` so that no check waits behind a DDL lock."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import socket
import ssl
import struct
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from pgkeel.config import SERVER_SETTINGS_DEFAULTS, ssl_verdict
from pgkeel.ops._context import Context, NeedsPrivilege
from pgkeel.ops._model import MONITOR_GRANT, Check, Finding, Status
from pgkeel.ops._verdicts import (
    IndexDef,
    certificate_verdict,
    covered_fks,
    duplicate_indexes,
    human_bytes,
    human_seconds,
    memory_verdict,
    names,
    pool_plan,
    sequence_verdict,
    server_verdict,
    timeout_verdict,
    worst,
    wraparound_verdict,
)

__all__ = ["CHECKS"]

CHECKS: dict[str, Check] = {}

#: Schemas that belong to the server, not the application.
_SYSTEM = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'"


def check(group: str, title: str) -> Callable[[Callable[[Context], Finding]], Callable[..., Any]]:
    def register(fn: Callable[[Context], Finding]) -> Callable[[Context], Finding]:
        name = fn.__name__.removeprefix("check_")
        CHECKS[name] = Check(name=name, group=group, title=title, run=fn)
        return fn

    return register


# --- connection and client ------------------------------------------------------------------


@check("connection", "server version, role, database, primary or standby")
def check_server(ctx: Context) -> Finding:
    row = ctx.one(
        """SELECT current_setting('server_version') AS version,
                  extract(epoch FROM now() - pg_postmaster_start_time())::float8 AS up_s,
                  current_date AS today"""
    )
    version = str(row["version"]).split()[0]
    finding = server_verdict("server", ctx.version, version, row["today"])
    where = (
        f"; {ctx.role} on {ctx.database}, a {'standby' if ctx.standby else 'primary'}, "
        f"up {human_seconds(row['up_s'])}"
    )
    return dataclasses.replace(
        finding,
        summary=finding.summary + where,
        details=[{"version": version, "version_num": ctx.version, "role": ctx.role,
                  "database": ctx.database, "standby": ctx.standby, "uptime_s": row["up_s"]}],
    )  # fmt: skip


@check("connection", "TLS in use and its version")
def check_tls(ctx: Context) -> Finding:
    pgconn = ctx.conn.pgconn
    if not pgconn.ssl_in_use:
        if ctx.local:
            return Finding("tls", "ok", "no TLS (a local connection: nothing crosses a network)")
        return Finding(
            "tls",
            "fail",
            f"no TLS to {ctx.params.get('host')}: passwords and data cross the network in clear",
            "enable ssl on the server and connect with sslmode=verify-full and sslrootcert",
        )
    # What the server negotiated with this session (libpq's own view is not exposed by psycopg).
    row = ctx.rows("SELECT version, cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    version, cipher = (row[0]["version"], row[0]["cipher"]) if row else ("TLS", "?")
    if version in ("TLSv1", "TLSv1.1", "SSLv3"):
        return Finding(
            "tls",
            "warn",
            f"{version} in use ({cipher}): deprecated and weak",
            "set ssl_min_protocol_version = 'TLSv1.2' on the server",
        )
    return Finding("tls", "ok", f"{version} in use ({cipher})")


@check("connection", "sslmode verifies the server's certificate and host name")
def check_sslmode(ctx: Context) -> Finding:
    sslmode = ctx.params.get("sslmode", "prefer")
    problem = ssl_verdict(ctx.params, {}, accept=("verify-full",))
    if problem is None:
        return Finding("sslmode", "ok", f"sslmode={sslmode}" + (" (local)" if ctx.local else ""))
    return Finding(
        "sslmode",
        "warn",
        problem,
        "connect with sslmode=verify-full and sslrootcert=<the CA that signed the server's "
        "certificate>, and pass ssl='required' to pgkeel so that a weaker URL is refused",
    )


@check("connection", "server certificate expiry")
def check_certificate(ctx: Context) -> Finding:
    if not ctx.conn.pgconn.ssl_in_use:
        return Finding("certificate", "skipped", "no TLS on this connection")
    host, port = ctx.conn.info.host, ctx.conn.info.port
    try:
        from cryptography import x509
    except ImportError:
        return Finding(
            "certificate",
            "skipped",
            "reading the certificate needs the cryptography package: "
            "pip install 'pgkeel[embedded]'",
        )
    try:
        der = _server_certificate(ctx.conn.info.hostaddr or host, port, ctx.options.query_timeout)
    except (OSError, ssl.SSLError, ValueError) as exc:
        return Finding("certificate", "skipped", f"could not read the certificate: {exc}")
    cert = x509.load_der_x509_certificate(der)
    left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    return certificate_verdict(
        "certificate", left.total_seconds() / 86400, cert.subject.rfc4514_string()
    )


def _server_certificate(host: str, port: int, timeout: float) -> bytes:
    """The server's certificate (DER), from a TLS handshake of our own: libpq does not expose it.
    Not verified here: the connection itself was verified as its sslmode says."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack("!ii", 8, 80877103))  # SSLRequest
        if sock.recv(1) != b"S":
            raise ValueError("the server refused TLS on a second connection")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with context.wrap_socket(sock, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    if not der:
        raise ValueError("the server sent no certificate")
    return der


@check("connection", "password authentication method (scram-sha-256, not md5)")
def check_auth(ctx: Context) -> Finding:
    encryption = ctx.settings.get("password_encryption", ("?", None, ""))[0]
    method = None
    if ctx.version >= 160000:
        row = ctx.one("SELECT system_user AS who")
        method = (row["who"] or "trust:").split(":", 1)[0]
    md5_roles: list[str] | None = None
    if ctx.superuser:
        md5_roles = [
            r["rolname"]
            for r in ctx.rows(
                "SELECT rolname FROM pg_authid WHERE rolpassword LIKE 'md5%' ORDER BY 1"
            )
        ]
    problems = []
    if method in ("md5", "password"):
        problems.append(f"this connection authenticated with {method}")
    if encryption == "md5":
        problems.append("password_encryption = md5 stores new passwords as md5 hashes")
    if md5_roles:
        problems.append(f"{len(md5_roles)} roles have md5 password hashes ({names(md5_roles)})")
    seen = f"method {method}" if method else "method not visible before PostgreSQL 16"
    text = f"{seen}; password_encryption = {encryption}"
    if not problems:
        if md5_roles is None:
            text += "; md5 hashes of roles not checked (needs a superuser)"
        return Finding("auth", "ok", text)
    return Finding(
        "auth",
        "warn",
        "; ".join(problems),
        "set password_encryption = 'scram-sha-256', reset each md5 role's password "
        "(\\password in psql), then change md5 to scram-sha-256 in pg_hba.conf",
        [{"method": method, "password_encryption": encryption, "md5_roles": md5_roles}],
    )


@check("connection", "the client's resolved production defaults")
def check_client(ctx: Context) -> Finding:
    from psycopg.conninfo import conninfo_to_dict

    cfg = ctx.config
    params = conninfo_to_dict(cfg.conninfo)
    keys = ("connect_timeout", "keepalives", "keepalives_idle", "tcp_user_timeout")
    shown: dict[str, Any] = {k: params.get(k) for k in (*keys, "application_name")}
    settings = dict(cfg.settings)
    shown.update({k: settings.get(k) for k in SERVER_SETTINGS_DEFAULTS})
    shown.update(
        {"session_settings": cfg.session_settings, "max_size": cfg.max_size, "timeout": cfg.timeout}
    )
    off = []
    if str(params.get("connect_timeout") or "0") == "0":
        off.append("connect_timeout is unset (a dead host hangs connects)")
    if str(params.get("keepalives", "1")) == "0":
        off.append("keepalives=0 (a dead peer is noticed only by tcp_user_timeout, if at all)")
    if not params.get("application_name"):
        off.append("no application_name (sessions cannot be told apart in pg_stat_activity)")
    if cfg.session_settings != "server":
        for name in SERVER_SETTINGS_DEFAULTS:
            if settings.get(name) in (None, "0"):
                off.append(f"{name} is off")
    text = ", ".join(f"{k}={v}" for k, v in shown.items())
    if not off:
        return Finding("client", "ok", text, None, [shown])
    return Finding(
        "client",
        "warn",
        f"{'; '.join(off)} ({text})",
        "drop the options that turn pgkeel's defaults off, or set them explicitly",
        [shown],
    )


@check("connection", "the app's role is not a superuser and does not own everything")
def check_role(ctx: Context) -> Finding:
    row = ctx.one(
        f"""SELECT r.rolsuper AS superuser, r.rolbypassrls AS bypassrls,
                  count(c.oid) AS tables,
                  count(c.oid) FILTER (WHERE c.relowner = r.oid) AS owned
           FROM pg_roles r
           LEFT JOIN (pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace)
             ON c.relkind IN ('r', 'p') AND {_SYSTEM}
           WHERE r.rolname = current_user
           GROUP BY r.rolsuper, r.rolbypassrls"""  # noqa: S608 - constant SQL only
    )
    tables, owned = row["tables"], row["owned"]
    text = f"role {ctx.role}: owns {owned} of {tables} tables"
    if row["superuser"]:
        return Finding(
            "role",
            "warn",
            f"role {ctx.role} is a superuser: a bug or an injection can do anything",
            f"run the app as a role with only the grants it needs (CREATE ROLE app LOGIN; "
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ... TO app), and "
            f"keep {ctx.role} for migrations",
        )
    if tables and owned == tables:
        return Finding(
            "role",
            "warn",
            f"{text}: it can ALTER or DROP every one of them",
            "own the schema with a migration role and grant the app role only DML",
        )
    return Finding("role", "ok", text + (", bypasses row security" if row["bypassrls"] else ""))


# --- capacity -------------------------------------------------------------------------------

_ACTIVITY = """\
SELECT coalesce(state, '(hidden)') AS state,
       coalesce(nullif(application_name, ''), '(none)') AS application,
       count(*)::int AS connections
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2"""


def _slots(ctx: Context) -> tuple[int, int]:
    max_connections = int(ctx.setting("max_connections"))
    reserved = int(ctx.setting("superuser_reserved_connections"))
    if "reserved_connections" in ctx.settings:  # PostgreSQL 16+
        reserved += int(ctx.setting("reserved_connections"))
    return max_connections, reserved


@check("capacity", "connections in use against max_connections")
def check_connections(ctx: Context) -> Finding:
    max_connections, reserved = _slots(ctx)
    rows = ctx.rows(_ACTIVITY)
    used = sum(r["connections"] for r in rows) + 1
    usable = max_connections - reserved
    by_state: dict[str, int] = {}
    for r in rows:
        by_state[r["state"]] = by_state.get(r["state"], 0) + r["connections"]
    states = ", ".join(f"{k} {v}" for k, v in sorted(by_state.items(), key=lambda kv: -kv[1]))
    text = (
        f"{used} of {usable} usable connections in use (max_connections={max_connections}, "
        f"{reserved} reserved; {states or 'only this one'})"
    )
    if used >= usable * 0.9:
        status: Status = "fail"
    elif used >= usable * 0.75:
        status = "warn"
    else:
        return Finding("connections", "ok", text, None, rows)
    return Finding(
        "connections",
        status,
        text,
        "find who holds them (details: by state and application), shrink idle pools, or put "
        "PgBouncer in front",
        rows,
    )


@check("capacity", "the pool plan (pool size x instances + headroom) fits")
def check_pool_plan(ctx: Context) -> Finding:
    max_connections, reserved = _slots(ctx)
    app = dict(ctx.config.settings).get("application_name") or _app_name(ctx)
    row = ctx.one(
        """SELECT count(*) FILTER (WHERE application_name IS DISTINCT FROM %s)::int AS others
           FROM pg_stat_activity
           WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()""",
        [app],
    )
    return pool_plan(
        check="pool_plan",
        max_connections=max_connections,
        reserved=reserved,
        others=row["others"],
        pool_size=ctx.options.pool_size or ctx.config.max_size,
        instances=ctx.options.instances,
        headroom=ctx.options.headroom,
    )


def _app_name(ctx: Context) -> str:
    from psycopg.conninfo import conninfo_to_dict

    return str(conninfo_to_dict(ctx.config.conninfo).get("application_name") or "")


_SESSION_COLUMNS = """pid, usename AS role, application_name AS application,
       client_addr::text AS client, backend_xid IS NOT NULL AS wrote"""


@check("capacity", "sessions idle in a transaction")
def check_idle_in_transaction(ctx: Context) -> Finding:
    ctx.need_stats("sessions")
    limit = ctx.options.idle_threshold
    rows = ctx.rows(
        f"""SELECT {_SESSION_COLUMNS}, state,
                  extract(epoch FROM now() - state_change)::float8 AS idle_s,
                  extract(epoch FROM now() - xact_start)::float8 AS transaction_s
           FROM pg_stat_activity
           WHERE state LIKE 'idle in transaction%%' AND pid <> pg_backend_pid()
             AND now() - state_change > make_interval(secs => %s)
           ORDER BY state_change""",  # noqa: S608 - constant SQL only
        [limit],
    )
    if not rows:
        return Finding(
            "idle_in_transaction",
            "ok",
            f"no session idle in a transaction over {human_seconds(limit)}",
        )
    listed = names(
        f"pid {r['pid']} ({r['application'] or r['role']}, {human_seconds(r['idle_s'])})"
        for r in rows
    )
    return Finding(
        "idle_in_transaction",
        "warn",
        f"{len(rows)} sessions idle in a transaction over {human_seconds(limit)}: {listed}; "
        "they hold locks and keep vacuum from cleaning up",
        "fix the code that leaves the transaction open (commit or roll back before slow work), "
        "set idle_in_transaction_session_timeout, and end them now with "
        "SELECT pg_terminate_backend(pid)",
        rows,
    )


@check("capacity", "long-running queries")
def check_long_queries(ctx: Context) -> Finding:
    ctx.need_stats("queries")
    limit = ctx.options.long_query
    rows = ctx.rows(
        f"""SELECT {_SESSION_COLUMNS},
                  extract(epoch FROM now() - query_start)::float8 AS running_s
           FROM pg_stat_activity
           WHERE state = 'active' AND backend_type = 'client backend'
             AND pid <> pg_backend_pid()
             AND now() - query_start > make_interval(secs => %s)
           ORDER BY query_start""",  # noqa: S608 - constant SQL only
        [limit],
    )
    if not rows:
        return Finding("long_queries", "ok", f"no query running over {human_seconds(limit)}")
    listed = names(
        f"pid {r['pid']} ({r['application'] or r['role']}, {human_seconds(r['running_s'])})"
        for r in rows
    )
    return Finding(
        "long_queries",
        "warn",
        f"{len(rows)} queries running over {human_seconds(limit)}: {listed}",
        "EXPLAIN them (pg_stat_activity.query), set statement_timeout, and cancel with "
        "SELECT pg_cancel_backend(pid)",
        rows,
    )


@check("capacity", "sessions waiting on locks, and who blocks them")
def check_blocked(ctx: Context) -> Finding:
    ctx.need_stats("lock waits")
    rows = ctx.rows(
        f"""SELECT {_SESSION_COLUMNS}, pg_blocking_pids(pid) AS blocked_by,
                  extract(epoch FROM now() - coalesce(state_change, query_start))::float8
                    AS waiting_s
           FROM pg_stat_activity
           WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()
           ORDER BY waiting_s DESC"""  # noqa: S608 - constant SQL only
    )
    if not rows:
        return Finding("blocked", "ok", "no session waits on a lock")
    blockers = sorted({p for r in rows for p in r["blocked_by"]})
    info = {
        r["pid"]: r
        for r in ctx.rows(
            f"""SELECT {_SESSION_COLUMNS}, state,
                      extract(epoch FROM now() - xact_start)::float8 AS transaction_s
               FROM pg_stat_activity WHERE pid = ANY(%s)""",  # noqa: S608 - constant SQL only
            [blockers],
        )
    }
    for r in rows:
        r["blockers"] = [info.get(p, {"pid": p}) for p in r["blocked_by"]]
    roots = [p for p in blockers if not any(p == r["pid"] for r in rows)]
    listed = names(
        f"pid {r['pid']} ({r['application'] or r['role']}, {human_seconds(r['waiting_s'])}) "
        f"blocked by {', '.join(map(str, r['blocked_by']))}"
        for r in rows
    )
    root_text = names(
        f"pid {p} ({info[p]['state']}, {info[p]['application'] or info[p]['role']})"
        if p in info
        else f"pid {p}"
        for p in roots
    )
    return Finding(
        "blocked",
        "warn",
        f"{len(rows)} sessions wait on locks: {listed}; at the head: {root_text or 'a cycle'}",
        "end the blocker's transaction (SELECT pg_terminate_backend(pid) if it is idle in a "
        "transaction) and set lock_timeout so that waiters give up",
        rows,
    )


# --- server settings ------------------------------------------------------------------------


@check("settings", "statement/idle/lock timeouts are not 0 by default")
def check_timeouts(ctx: Context) -> Finding:
    values = [
        (name, *ctx.settings.get(name, ("", None, "not visible"))[::2])
        for name in ("statement_timeout", "idle_in_transaction_session_timeout", "lock_timeout")
    ]
    return timeout_verdict("timeouts", values, ctx.role, ctx.database)


@check("settings", "slow statements are logged")
def check_log_min_duration(ctx: Context) -> Finding:
    value = int(ctx.setting("log_min_duration_statement"))
    if value < 0:
        return Finding(
            "log_min_duration",
            "warn",
            "log_min_duration_statement = -1: slow statements are not logged",
            "ALTER SYSTEM SET log_min_duration_statement = '1s'; SELECT pg_reload_conf()",
        )
    return Finding(
        "log_min_duration", "ok", f"statements over {human_seconds(value / 1000)} are logged"
    )


def _pg_stat_statements(ctx: Context) -> str | None:
    """The schema pg_stat_statements is installed in, or None."""
    row = ctx.rows(
        """SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
           WHERE e.extname = 'pg_stat_statements'"""
    )
    return row[0]["nspname"] if row else None


_HOW_PSS = (
    "add pg_stat_statements to shared_preload_libraries (ALTER SYSTEM SET "
    "shared_preload_libraries = 'pg_stat_statements'), restart the server, then "
    "CREATE EXTENSION pg_stat_statements in this database"
)


@check("settings", "pg_stat_statements is enabled")
def check_pg_stat_statements(ctx: Context) -> Finding:
    schema = _pg_stat_statements(ctx)
    preload = ctx.settings.get("shared_preload_libraries", (None, None, ""))[0]
    if schema is None:
        if preload is not None and "pg_stat_statements" in preload:
            return Finding(
                "pg_stat_statements",
                "warn",
                f"pg_stat_statements is preloaded but not installed in {ctx.database}",
                "CREATE EXTENSION pg_stat_statements",
            )
        return Finding(
            "pg_stat_statements",
            "warn",
            "pg_stat_statements is not installed: no per-query statistics to find slow queries",
            _HOW_PSS,
        )
    try:
        with ctx.conn.transaction():
            ctx.rows(
                sql.SQL("SELECT 1 FROM {}.pg_stat_statements LIMIT 1").format(
                    sql.Identifier(schema)
                )
            )
    except psycopg.errors.ObjectNotInPrerequisiteState:
        return Finding(
            "pg_stat_statements",
            "warn",
            "pg_stat_statements is installed but not preloaded",
            _HOW_PSS,
        )
    return Finding("pg_stat_statements", "ok", f"pg_stat_statements is enabled (in {schema})")


@check("settings", "shared_buffers and work_mem against RAM")
def check_memory(ctx: Context) -> Finding:
    ram = None
    if ctx.local:
        try:
            ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            ram = None
    return memory_verdict(
        "memory",
        shared_buffers=ctx.setting_bytes("shared_buffers"),
        work_mem=ctx.setting_bytes("work_mem"),
        max_connections=int(ctx.setting("max_connections")),
        ram=ram,
    )


@check("settings", "I/O timing is tracked")
def check_track_io_timing(ctx: Context) -> Finding:
    if ctx.setting("track_io_timing") == "on":
        return Finding("track_io_timing", "ok", "track_io_timing = on")
    return Finding(
        "track_io_timing",
        "warn",
        "track_io_timing = off: EXPLAIN (ANALYZE, BUFFERS) and "
        "pg_stat_statements cannot tell time spent reading from disk",
        "check the clock is cheap (pg_test_timing), then ALTER SYSTEM SET track_io_timing = on; "
        "SELECT pg_reload_conf()",
    )


# --- schema health (this database) ----------------------------------------------------------

_SIZE = "c.relpages::bigint * current_setting('block_size')::bigint"


@check("schema", "invalid indexes (a failed CREATE INDEX CONCURRENTLY)")
def check_invalid_indexes(ctx: Context) -> Finding:
    rows = ctx.rows(
        f"""SELECT c.oid::regclass::text AS index, i.indrelid::regclass::text AS "table",
                  {_SIZE} AS size
           FROM pg_index i
           JOIN pg_class c ON c.oid = i.indexrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE NOT i.indisvalid AND n.nspname <> 'pg_catalog'
             AND i.indexrelid NOT IN (SELECT index_relid FROM pg_stat_progress_create_index)
           ORDER BY 1"""  # noqa: S608 - constant SQL only
    )
    if not rows:
        return Finding("invalid_indexes", "ok", "no invalid index")
    return Finding(
        "invalid_indexes",
        "warn",
        f"{len(rows)} invalid indexes, never used by queries but updated on every write: "
        + names(f"{r['index']} on {r['table']}" for r in rows),
        "REINDEX INDEX CONCURRENTLY <index> (or DROP INDEX CONCURRENTLY it and create it "
        "again), after fixing why it failed (a duplicate key, a deadlock, a cancelled build)",
        rows,
    )


@check("schema", "duplicate indexes (same columns, or a prefix of another)")
def check_duplicate_indexes(ctx: Context) -> Finding:
    rows = ctx.rows(
        f"""SELECT c.oid::regclass::text AS name, i.indrelid::regclass::text AS "table",
                  (i.indkey::int2[])[0:i.indnkeyatts - 1] AS columns,
                  i.indclass::oid[] AS opclasses, i.indcollation::oid[] AS collations,
                  am.amname AS method, i.indisunique AS unique, i.indisprimary AS primary,
                  pg_get_expr(i.indexprs, i.indrelid) AS expressions,
                  pg_get_expr(i.indpred, i.indrelid) AS predicate, {_SIZE} AS size
           FROM pg_index i
           JOIN pg_class c ON c.oid = i.indexrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_am am ON am.oid = c.relam
           WHERE i.indisvalid AND {_SYSTEM}"""  # noqa: S608 - constant SQL only
    )
    indexes = [
        IndexDef(
            name=r["name"],
            table=r["table"],
            columns=tuple(r["columns"]),
            opclasses=tuple(r["opclasses"][: len(r["columns"])]),
            collations=tuple(r["collations"][: len(r["columns"])]),
            method=r["method"],
            unique=r["unique"],
            primary=r["primary"],
            expressions=r["expressions"],
            predicate=r["predicate"],
            size=r["size"],
        )
        for r in rows
    ]
    pairs = duplicate_indexes(indexes)
    if not pairs:
        return Finding("duplicate_indexes", "ok", f"no duplicate among {len(indexes)} indexes")
    details = [
        {"index": a.name, "table": a.table, "covered_by": b.name, "size": a.size} for a, b in pairs
    ]
    wasted = sum(a.size for a, _ in pairs)
    return Finding(
        "duplicate_indexes",
        "warn",
        f"{len(pairs)} redundant indexes ({human_bytes(wasted)}): "
        + names(f"{a.name} (covered by {b.name})" for a, b in pairs),
        "DROP INDEX CONCURRENTLY the redundant one: the covering index serves the same queries",
        details,
    )


@check("schema", "unused indexes on large tables")
def check_unused_indexes(ctx: Context) -> Finding:
    rows = ctx.rows(
        f"""SELECT s.indexrelid::regclass::text AS index, s.relid::regclass::text AS "table",
                  {_SIZE} AS size, t.reltuples::bigint AS table_rows
           FROM pg_stat_user_indexes s
           JOIN pg_index i ON i.indexrelid = s.indexrelid
           JOIN pg_class c ON c.oid = s.indexrelid
           JOIN pg_class t ON t.oid = s.relid
           WHERE s.idx_scan = 0 AND NOT i.indisunique AND i.indisvalid
             AND t.reltuples >= %s
             AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = s.indexrelid)
           ORDER BY 3 DESC, 1""",  # noqa: S608 - constant SQL only
        [ctx.options.large_rows],
    )
    since = ctx.one(
        "SELECT stats_reset::text AS since FROM pg_stat_database WHERE datname = current_database()"
    )["since"]
    where = f"scans counted on this server since {since or 'the statistics began'}" + (
        " (a standby: the primary's scans are not counted here)" if ctx.standby else ""
    )
    if not rows:
        return Finding("unused_indexes", "ok", f"no unused index on a large table ({where})")
    return Finding(
        "unused_indexes",
        "warn",
        f"{len(rows)} indexes never scanned on tables of {ctx.options.large_rows}+ rows "
        f"({human_bytes(sum(r['size'] for r in rows))}; {where}): "
        + names(f"{r['index']} ({human_bytes(r['size'])})" for r in rows),
        "check they are unused on every server (standbys too), then DROP INDEX CONCURRENTLY "
        "them: each slows every write",
        rows,
    )


@check("schema", "foreign keys without a supporting index")
def check_fk_without_index(ctx: Context) -> Finding:
    fks = ctx.rows(
        f"""SELECT k.conname AS constraint, k.conrelid::regclass::text AS "table",
                  k.confrelid::regclass::text AS referenced, k.conrelid AS relid,
                  k.conkey::int2[] AS columns,
                  ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(n, o)
                        JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n
                        ORDER BY u.o) AS column_names
           FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace
           WHERE k.contype = 'f' AND {_SYSTEM}
           ORDER BY 2, 1"""  # noqa: S608 - constant SQL only
    )
    indexes: dict[int, list[list[int]]] = {}
    if fks:
        for r in ctx.rows(
            """SELECT indrelid, (indkey::int2[])[0:indnkeyatts - 1] AS columns FROM pg_index
               WHERE indisvalid AND indpred IS NULL AND indrelid = ANY(%s)""",
            [list({f["relid"] for f in fks})],
        ):
            indexes.setdefault(r["indrelid"], []).append(r["columns"])
    missing = [
        {k: f[k] for k in ("constraint", "table", "referenced", "column_names")}
        for f in fks
        if not covered_fks(f["columns"], indexes.get(f["relid"], []))
    ]
    if not missing:
        return Finding("fk_without_index", "ok", f"all {len(fks)} foreign keys have an index")
    return Finding(
        "fk_without_index",
        "warn",
        f"{len(missing)} of {len(fks)} foreign keys have no index starting with their columns: "
        + names(f"{m['table']}({', '.join(m['column_names'])})" for m in missing)
        + "; a delete or key update on the referenced table scans the whole referencing one",
        "CREATE INDEX CONCURRENTLY ON <table> (<columns>) for each",
        missing,
    )


@check("schema", "tables with many dead rows")
def check_dead_tuples(ctx: Context) -> Finding:
    rows = ctx.rows(
        """SELECT relid::regclass::text AS "table", n_live_tup AS live, n_dead_tup AS dead,
                  greatest(last_vacuum, last_autovacuum)::text AS last_vacuum
           FROM pg_stat_user_tables
           WHERE n_dead_tup >= %s AND n_dead_tup > %s * (n_live_tup + n_dead_tup)
           ORDER BY n_dead_tup DESC""",
        [ctx.options.dead_min, ctx.options.dead_ratio],
    )
    if not rows:
        return Finding(
            "dead_tuples",
            "ok",
            f"no table over {ctx.options.dead_ratio:.0%} dead rows ({ctx.options.dead_min}+)",
        )
    return Finding(
        "dead_tuples",
        "warn",
        f"{len(rows)} tables over {ctx.options.dead_ratio:.0%} dead rows: "
        + names(f"{r['table']} ({r['dead']:,} dead of {r['live'] + r['dead']:,})" for r in rows),
        "VACUUM (VERBOSE) them; if autovacuum falls behind, lower the table's "
        "autovacuum_vacuum_scale_factor and look for long transactions holding it back",
        rows,
    )


@check("schema", "large tables never vacuumed or analyzed")
def check_vacuum_analyze(ctx: Context) -> Finding:
    rows = ctx.rows(
        """SELECT relid::regclass::text AS "table", n_live_tup AS live,
                  coalesce(last_analyze, last_autoanalyze) IS NULL AS never_analyzed,
                  coalesce(last_vacuum, last_autovacuum) IS NULL AS never_vacuumed
           FROM pg_stat_user_tables
           WHERE n_live_tup >= %s
             AND (coalesce(last_analyze, last_autoanalyze) IS NULL
                  OR coalesce(last_vacuum, last_autovacuum) IS NULL)
           ORDER BY n_live_tup DESC""",
        [ctx.options.large_rows],
    )
    if not rows:
        return Finding(
            "vacuum_analyze",
            "ok",
            f"every table of {ctx.options.large_rows}+ rows was vacuumed and analyzed",
        )
    never = [r for r in rows if r["never_analyzed"]]
    text = names(f"{r['table']} ({r['live']:,} rows, never {_never(r)})" for r in rows)
    return Finding(
        "vacuum_analyze",
        "warn",
        f"{len(rows)} large tables never vacuumed or analyzed ({len(never)} never analyzed: "
        f"the planner guesses their size): {text}",
        "VACUUM (ANALYZE) them, and check autovacuum is on (autovacuum, the table's "
        "autovacuum_enabled)",
        rows,
    )


def _never(row: dict[str, Any]) -> str:
    return " or ".join(
        what
        for what, flag in (("analyzed", row["never_analyzed"]), ("vacuumed", row["never_vacuumed"]))
        if flag
    )


@check("schema", "transaction-ID wraparound age per database and table")
def check_wraparound(ctx: Context) -> Finding:
    ages = ctx.rows(
        """SELECT datname AS name, 'xid' AS kind, age(datfrozenxid)::bigint AS age
           FROM pg_database WHERE datallowconn
           UNION ALL
           SELECT datname, 'multixact', mxid_age(datminmxid)::bigint
           FROM pg_database WHERE datallowconn
           ORDER BY 3 DESC"""
    )
    finding = wraparound_verdict("wraparound", ages)
    tables = ctx.rows(
        """SELECT c.oid::regclass::text AS "table", age(c.relfrozenxid)::bigint AS age
           FROM pg_class c WHERE c.relkind IN ('r', 'm', 't') AND c.relfrozenxid <> '0'
           ORDER BY 2 DESC LIMIT 5"""
    )
    return Finding(
        finding.check,
        finding.status,
        finding.summary,
        finding.fix,
        [
            *finding.details,
            *({"name": t["table"], "kind": "table", "age": t["age"]} for t in tables),
        ],
    )


_TYPE_MAX = {"smallint": 32767, "integer": 2147483647, "bigint": 9223372036854775807}


@check("schema", "sequences (serial/identity columns) near their maximum")
def check_sequences(ctx: Context) -> Finding:
    rows = ctx.rows(
        f"""SELECT c.oid::regclass::text AS name, s.seqmax AS seq_max,
                  s.seqincrement AS increment,
                  has_sequence_privilege(c.oid, 'SELECT,USAGE') AS readable,
                  CASE WHEN has_sequence_privilege(c.oid, 'SELECT,USAGE')
                       THEN pg_sequence_last_value(c.oid) END AS last_value,
                  format_type(a.atttypid, NULL) AS column_type,
                  d.refobjid::regclass::text || '.' || a.attname AS "column"
           FROM pg_sequence s
           JOIN pg_class c ON c.oid = s.seqrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
                AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
                AND d.refobjsubid > 0
           LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
           WHERE {_SYSTEM}
           ORDER BY 1"""  # noqa: S608 - constant SQL only
    )
    seqs = []
    for r in rows:
        if not r["readable"] or r["increment"] < 0:
            continue
        top = min(r["seq_max"], _TYPE_MAX.get(r["column_type"] or "", r["seq_max"]))
        seqs.append(
            {"name": r["name"], "column": r["column"], "last_value": r["last_value"], "max": top}
        )
    hidden = sum(1 for r in rows if not r["readable"])
    return sequence_verdict("sequences", seqs, ctx.options.sequence_ratio, hidden)


@check("schema", "constraints added NOT VALID and never validated")
def check_invalid_constraints(ctx: Context) -> Finding:
    rows = ctx.rows(
        f"""SELECT k.conname AS constraint, k.conrelid::regclass::text AS "table",
                  CASE k.contype WHEN 'f' THEN 'foreign key' WHEN 'c' THEN 'check'
                       ELSE k.contype::text END AS kind
           FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace
           WHERE NOT k.convalidated AND k.conrelid <> 0 AND {_SYSTEM}
           ORDER BY 2, 1"""  # noqa: S608 - constant SQL only
    )
    if not rows:
        return Finding("invalid_constraints", "ok", "every constraint is validated")
    return Finding(
        "invalid_constraints",
        "warn",
        f"{len(rows)} constraints were added NOT VALID and never validated: "
        + names(f"{r['table']}.{r['constraint']} ({r['kind']})" for r in rows)
        + "; rows older than the constraint may break it",
        "ALTER TABLE <table> VALIDATE CONSTRAINT <constraint> (takes only a SHARE UPDATE "
        "EXCLUSIVE lock: reads and writes go on)",
        rows,
    )


@check("schema", "tables without a primary key")
def check_no_primary_key(ctx: Context) -> Finding:
    rows = ctx.rows(
        f"""SELECT c.oid::regclass::text AS "table", c.reltuples::bigint AS rows
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND {_SYSTEM}
             AND NOT EXISTS (SELECT 1 FROM pg_constraint k
                             WHERE k.conrelid = c.oid AND k.contype = 'p')
             AND NOT EXISTS (SELECT 1 FROM pg_depend d
                             WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                               AND d.deptype = 'e')
           ORDER BY 1"""  # noqa: S608 - constant SQL only
    )
    if not rows:
        return Finding("no_primary_key", "ok", "every table has a primary key")
    return Finding(
        "no_primary_key",
        "warn",
        f"{len(rows)} tables without a primary key: "
        + names(r["table"] for r in rows)
        + "; rows cannot be told apart, and logical replication cannot update or delete them",
        "ALTER TABLE <table> ADD PRIMARY KEY (...) (or an identity column)",
        rows,
    )


# --- replication ----------------------------------------------------------------------------


@check("replication", "replication slots: inactive, or retaining too much WAL")
def check_slots(ctx: Context) -> Finding:
    rows = ctx.rows(
        """SELECT slot_name AS slot, slot_type AS type, database, active, wal_status,
                  pg_wal_lsn_diff(
                    CASE WHEN pg_is_in_recovery()
                         THEN coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())
                         ELSE pg_current_wal_lsn() END,
                    restart_lsn)::bigint AS retained
           FROM pg_replication_slots ORDER BY 1"""
    )
    if not rows:
        return Finding("slots", "ok", "no replication slots")
    keep = ctx.settings.get("max_slot_wal_keep_size", ("-1", None, ""))[0]
    limit = ctx.options.slot_wal_bytes
    status: Status = "ok"
    problems = []
    for r in rows:
        retained = r["retained"] or 0
        if r["wal_status"] == "lost":
            status = worst(status, "fail")
            problems.append(f"{r['slot']} lost its WAL (its consumer must start over)")
        elif retained > limit:
            status = worst(status, "fail")
            problems.append(f"{r['slot']} retains {human_bytes(retained)} of WAL")
        elif not r["active"]:
            status = worst(status, "warn")
            problems.append(f"{r['slot']} is inactive, retaining {human_bytes(retained)}")
    bound = (
        "max_slot_wal_keep_size = -1: a slot may fill the disk"
        if keep == "-1"
        else f"max_slot_wal_keep_size = {keep} MB"
    )
    if status == "ok" and keep != "-1":
        return Finding("slots", "ok", f"{len(rows)} slots, all active; {bound}", None, rows)
    if status == "ok":
        # All active now, but nothing bounds what one will keep once its consumer stops.
        return Finding(
            "slots",
            "warn",
            f"{len(rows)} slots, all active; {bound}",
            "ALTER SYSTEM SET max_slot_wal_keep_size = '<a share of the WAL disk>'; "
            "SELECT pg_reload_conf()",
            rows,
        )
    return Finding(
        "slots",
        status,
        f"{'; '.join(problems)} ({bound})",
        "start the slot's consumer, or SELECT pg_drop_replication_slot('<slot>') if it is "
        "abandoned; and set max_slot_wal_keep_size so that no slot can fill the disk",
        rows,
    )


@check("replication", "WAL archiving is not failing")
def check_archiving(ctx: Context) -> Finding:
    mode = ctx.setting("archive_mode")
    if mode == "off":
        return Finding("archiving", "ok", "archive_mode = off (no WAL archive to check)")
    row = ctx.one(
        """SELECT archived_count, failed_count, last_archived_wal,
                  last_archived_time::text AS last_archived, last_failed_wal,
                  last_failed_time::text AS last_failed,
                  coalesce(last_failed_time > last_archived_time
                           OR (last_failed_time IS NOT NULL AND last_archived_time IS NULL),
                           false) AS failing
           FROM pg_stat_archiver"""
    )
    text = (
        f"archive_mode = {mode}: {row['archived_count']} WAL files archived, "
        f"{row['failed_count']} failures"
    )
    if row["failing"]:
        return Finding(
            "archiving",
            "fail",
            f"{text}; the last attempt failed ({row['last_failed_wal']} at "
            f"{row['last_failed']}): WAL piles up in pg_wal until the disk is full",
            "read the server log for archive_command's error, fix it (or the archive's "
            "storage); the server retries by itself",
            [row],
        )
    return Finding("archiving", "ok", text, None, [row])


@check("replication", "standby lag")
def check_replication_lag(ctx: Context) -> Finding:
    if ctx.standby:
        row = ctx.one(
            """SELECT extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS lag_s,
                      pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint
                        AS replay_behind"""
        )
        lag, behind = row["lag_s"], row["replay_behind"] or 0
        if lag is None:
            return Finding("replication_lag", "ok", "a standby that has replayed nothing yet")
        if behind > 0 and lag > ctx.options.lag_seconds:
            return Finding(
                "replication_lag",
                "warn",
                f"this standby replays {human_seconds(lag)} behind ({human_bytes(behind)} received "
                "but not replayed)",
                "look for long queries on the standby that conflict with replay "
                "(max_standby_streaming_delay) and for I/O saturation",
            )
        return Finding(
            "replication_lag", "ok", f"a standby, {human_bytes(behind)} waiting to be replayed"
        )
    rows = ctx.rows(
        """SELECT application_name AS standby, client_addr::text AS client, state, sync_state,
                  pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS behind,
                  extract(epoch FROM replay_lag)::float8 AS lag_s
           FROM pg_stat_replication ORDER BY 1"""
    )
    if not rows:
        return Finding("replication_lag", "ok", "no standby streams from this server")
    if any(r["state"] is None for r in rows):
        raise NeedsPrivilege(
            f"the standbys' progress is hidden from {ctx.role}; "
            + MONITOR_GRANT.format(role=ctx.role)
        )
    late = [
        r
        for r in rows
        if (r["lag_s"] or 0) > ctx.options.lag_seconds
        or (r["behind"] or 0) > ctx.options.slot_wal_bytes
    ]
    text = names(
        f"{r['standby'] or r['client']} ({r['state']}, {human_bytes(r['behind'] or 0)} behind, "
        f"{human_seconds(r['lag_s'] or 0)})"
        for r in rows
    )
    if not late:
        return Finding("replication_lag", "ok", f"{len(rows)} standbys: {text}", None, rows)
    return Finding(
        "replication_lag",
        "warn",
        f"{len(late)} of {len(rows)} standbys lag: {text}",
        "check the standby's I/O and network, and queries on it that delay replay",
        rows,
    )


# --- top queries ----------------------------------------------------------------------------

#: Statements whose text pg_stat_statements normalises (constants become $1). Utility statements
#: (CREATE ROLE ... PASSWORD, ALTER SYSTEM...) keep their constants, so they are never shown.
_NORMALISED = frozenset(
    {"select", "insert", "update", "delete", "with", "merge", "values", "table"}
)


@check("queries", "top queries by total time (pg_stat_statements)")
def check_top_queries(ctx: Context) -> Finding:
    schema = _pg_stat_statements(ctx)
    if schema is None:
        return Finding("top_queries", "skipped", "pg_stat_statements is not installed", _HOW_PSS)
    ctx.need_stats("statements")
    columns = {
        r["attname"]
        for r in ctx.rows(
            "SELECT attname::text FROM pg_attribute WHERE attrelid = %s::regclass",
            [f"{schema}.pg_stat_statements"],
        )
    }
    # pg_stat_statements 1.8 (PostgreSQL 13) renamed total_time to total_exec_time.
    total, mean = (
        ("total_exec_time", "mean_exec_time")
        if "total_exec_time" in columns
        else ("total_time", "mean_time")
    )
    toplevel = sql.SQL("AND toplevel") if "toplevel" in columns else sql.SQL("")
    limit = max(ctx.options.top, 1) * 4
    query = sql.SQL(
        """SELECT queryid, calls, {total} AS total_ms, {mean} AS mean_ms, rows, query
           FROM {schema}.pg_stat_statements
           WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
             AND userid IS NOT NULL {toplevel}
           ORDER BY {total} DESC LIMIT {limit}"""
    ).format(
        total=sql.Identifier(total),
        mean=sql.Identifier(mean),
        schema=sql.Identifier(schema),
        toplevel=toplevel,
        limit=sql.Literal(limit),
    )
    statements = ctx.rows(query)
    top = []
    for r in statements:
        words = (r["query"] or "").split()
        if not words or words[0].lower() not in _NORMALISED:
            continue
        text = " ".join(words)
        top.append(
            {
                "queryid": r["queryid"],
                "calls": r["calls"],
                "total_ms": round(r["total_ms"], 3),
                "mean_ms": round(r["mean_ms"], 3),
                "rows": r["rows"],
                "query": text if len(text) <= 500 else text[:497] + "...",
            }
        )
        if len(top) >= ctx.options.top:
            break
    if not ctx.options.top:
        return Finding(
            "top_queries",
            "ok",
            "pg_stat_statements is readable; --top N lists the N queries with the most total time",
        )
    return Finding(
        "top_queries",
        "ok",
        f"the {len(top)} queries with the most total time in {ctx.database}",
        None,
        top,
    )
