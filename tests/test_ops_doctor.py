"""Each doctor check on a real server: its ok case, and its problem provoked for real (a failed
CREATE INDEX CONCURRENTLY, a session idle in a transaction, a blocked lock, an inactive slot...)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgkeel.ops import DoctorOptions, Finding, doctor
from pgkeel.testing.plugin import PgServer

pytest_plugins = ["fix_cdc", "fix_pgbouncer", "fix_standby"]


def run(url: str, name: str, **options: Any) -> Finding:
    """Run one check."""
    [finding] = doctor(url, select=[name], options=DoctorOptions(**options))
    assert finding.check == name
    return finding


@pytest.fixture
def db(pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit superuser connection to the test database."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        yield conn


def flush_stats(conn: psycopg.Connection[Any]) -> None:
    """Make this session's table and index statistics visible to other sessions now."""
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.execute("SELECT 1")


def dbname(url: str) -> str:
    return str(conninfo_to_dict(url)["dbname"])


# --- schema ---------------------------------------------------------------------------------


def test_invalid_index_from_failed_concurrent_build(
    pg_url: str, db: psycopg.Connection[Any]
) -> None:
    """A CREATE UNIQUE INDEX CONCURRENTLY that fails on a duplicate leaves an invalid index."""
    db.execute("CREATE TABLE t (x int)")
    db.execute("INSERT INTO t VALUES (1), (1)")
    assert run(pg_url, "invalid_indexes").status == "ok"
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("CREATE UNIQUE INDEX CONCURRENTLY t_x ON t (x)")
    finding = run(pg_url, "invalid_indexes")
    assert finding.status == "warn"
    assert [d["index"] for d in finding.details] == ["t_x"]
    assert "REINDEX INDEX CONCURRENTLY" in (finding.fix or "")


def test_duplicate_index(pg_url: str, db: psycopg.Connection[Any]) -> None:
    """An index on (a) beside one on (a, b) is reported as covered; (b, a) is not."""
    db.execute("CREATE TABLE t (a int, b int)")
    db.execute("CREATE INDEX t_ab ON t (a, b)")
    db.execute("CREATE INDEX t_ba ON t (b, a)")
    assert run(pg_url, "duplicate_indexes").status == "ok"
    db.execute("CREATE INDEX t_a ON t (a)")
    finding = run(pg_url, "duplicate_indexes")
    assert finding.status == "warn"
    assert [(d["index"], d["covered_by"]) for d in finding.details] == [("t_a", "t_ab")]


@pytest.mark.pg(">=15")
def test_unused_index_on_large_table(pg_url: str, db: psycopg.Connection[Any]) -> None:
    """A never-scanned index on a table of 20,000 rows warns; once a query uses it, ok."""
    db.execute("CREATE TABLE t (id int PRIMARY KEY, x int)")
    db.execute("INSERT INTO t SELECT g, g % 100 FROM generate_series(1, 20000) g")
    db.execute("CREATE INDEX t_x ON t (x)")
    db.execute("ANALYZE t")
    flush_stats(db)
    finding = run(pg_url, "unused_indexes")
    assert finding.status == "warn"
    assert [d["index"] for d in finding.details] == ["t_x"]  # the primary key is not reported
    db.execute("SET enable_seqscan = off")
    db.execute("SELECT count(*) FROM t WHERE x = 5")
    flush_stats(db)
    assert run(pg_url, "unused_indexes").status == "ok"
    # The threshold is the table's size: below it, nothing is reported.
    db.execute("DROP INDEX t_x")
    db.execute("CREATE INDEX t_x2 ON t (x)")
    flush_stats(db)
    assert run(pg_url, "unused_indexes", large_rows=30000).status == "ok"


def test_fk_without_index(pg_url: str, db: psycopg.Connection[Any]) -> None:
    """A foreign key whose columns no index starts with warns; adding the index fixes it."""
    db.execute("CREATE TABLE parent (id int PRIMARY KEY)")
    db.execute(
        "CREATE TABLE child (id int PRIMARY KEY, note text, parent_id int REFERENCES parent)"
    )
    finding = run(pg_url, "fk_without_index")
    assert finding.status == "warn"
    assert finding.details[0]["table"] == "child"
    assert finding.details[0]["column_names"] == ["parent_id"]
    assert "child(parent_id)" in finding.summary
    db.execute("CREATE INDEX ON child (parent_id, note)")
    assert run(pg_url, "fk_without_index").status == "ok"


def test_table_without_primary_key(pg_url: str, db: psycopg.Connection[Any]) -> None:
    """A table without a primary key warns; partitions of a keyed table are not reported."""
    db.execute("CREATE TABLE p (id int PRIMARY KEY) PARTITION BY RANGE (id)")
    db.execute("CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10)")
    assert run(pg_url, "no_primary_key").status == "ok"
    db.execute("CREATE TABLE log (line text)")
    finding = run(pg_url, "no_primary_key")
    assert finding.status == "warn"
    assert [d["table"] for d in finding.details] == ["log"]


@pytest.mark.pg(">=15")
def test_dead_tuples(pg_url: str, db: psycopg.Connection[Any]) -> None:
    """A table with half its rows deleted and no vacuum warns; VACUUM makes it ok."""
    db.execute("CREATE TABLE t (id int PRIMARY KEY) WITH (autovacuum_enabled = false)")
    db.execute("INSERT INTO t SELECT generate_series(1, 5000)")
    flush_stats(db)
    assert run(pg_url, "dead_tuples").status == "ok"
    db.execute("DELETE FROM t WHERE id <= 3000")
    flush_stats(db)
    finding = run(pg_url, "dead_tuples")
    assert finding.status == "warn"
    assert finding.details[0]["table"] == "t"
    assert finding.details[0]["dead"] == 3000
    db.execute("VACUUM t")
    flush_stats(db)
    assert run(pg_url, "dead_tuples").status == "ok"


@pytest.mark.pg(">=15")
def test_never_vacuumed_or_analyzed(pg_url: str, db: psycopg.Connection[Any]) -> None:
    """A large table autovacuum never reached warns; VACUUM (ANALYZE) makes it ok."""
    db.execute("CREATE TABLE t (id int PRIMARY KEY) WITH (autovacuum_enabled = false)")
    db.execute("INSERT INTO t SELECT generate_series(1, 20000)")
    flush_stats(db)
    finding = run(pg_url, "vacuum_analyze")
    assert finding.status == "warn"
    assert finding.details[0]["never_analyzed"]
    assert finding.details[0]["never_vacuumed"]
    db.execute("VACUUM (ANALYZE) t")
    flush_stats(db)
    assert run(pg_url, "vacuum_analyze").status == "ok"


def test_constraint_added_not_valid(pg_url: str, db: psycopg.Connection[Any]) -> None:
    """A CHECK added NOT VALID warns until it is validated."""
    db.execute("CREATE TABLE t (id int PRIMARY KEY, x int)")
    db.execute("ALTER TABLE t ADD CONSTRAINT t_x_positive CHECK (x > 0)")
    assert run(pg_url, "invalid_constraints").status == "ok"
    db.execute("ALTER TABLE t ADD CONSTRAINT t_x_small CHECK (x < 100) NOT VALID")
    finding = run(pg_url, "invalid_constraints")
    assert finding.status == "warn"
    assert [(d["constraint"], d["kind"]) for d in finding.details] == [("t_x_small", "check")]
    db.execute("ALTER TABLE t VALIDATE CONSTRAINT t_x_small")
    assert run(pg_url, "invalid_constraints").status == "ok"


def test_wraparound_age(pg_url: str) -> None:
    """Every database's xid and multixact ages are read; a young cluster is far from the limit.
    (The warn/fail cases would need a billion transactions: see test_ops_verdicts.)"""
    finding = run(pg_url, "wraparound")
    assert finding.status == "ok"
    kinds = {(d["name"], d["kind"]) for d in finding.details}
    assert (dbname(pg_url), "xid") in kinds
    assert (dbname(pg_url), "multixact") in kinds
    assert any(d["kind"] == "table" for d in finding.details)


def test_sequence_near_max(pg_url: str, db: psycopg.Connection[Any]) -> None:
    """A serial set near 2^31 fails; an int column on a bigint sequence is judged by the int."""
    db.execute("CREATE TABLE a (id serial PRIMARY KEY)")
    db.execute("INSERT INTO a DEFAULT VALUES")
    assert run(pg_url, "sequences").status == "ok"
    db.execute("SELECT setval('a_id_seq', 2147480000)")
    finding = run(pg_url, "sequences")
    assert finding.status == "fail"
    assert finding.details[0]["name"] == "a_id_seq"
    assert finding.details[0]["column"] == "a.id"

    db.execute("SELECT setval('a_id_seq', 1)")
    db.execute("CREATE SEQUENCE b_seq AS bigint")
    db.execute("CREATE TABLE b (id int DEFAULT nextval('b_seq'))")
    db.execute("ALTER SEQUENCE b_seq OWNED BY b.id")
    db.execute("SELECT setval('b_seq', 2000000000)")  # 93% of int, nothing of bigint
    finding = run(pg_url, "sequences")
    assert finding.status == "warn"
    assert [(d["name"], d["max"]) for d in finding.details] == [("b_seq", 2147483647)]
    assert run(pg_url, "sequences", sequence_ratio=0.95).status == "ok"


# --- capacity -------------------------------------------------------------------------------


def test_idle_in_transaction(pg_url: str) -> None:
    """A session left idle in a transaction past the threshold is reported with its pid."""
    with psycopg.connect(pg_url, application_name="leaky") as conn:
        conn.execute("SELECT 1")  # opens a transaction and leaves it open
        time.sleep(1.2)
        finding = run(pg_url, "idle_in_transaction", idle_threshold=1)
        assert finding.status == "warn"
        assert conn.info.backend_pid in [d["pid"] for d in finding.details]
        assert "leaky" in finding.summary
        assert run(pg_url, "idle_in_transaction", idle_threshold=60).status == "ok"


def _wait_for(conn: psycopg.Connection[Any], query: Any, params: Any) -> None:
    for _ in range(200):
        if conn.execute(query, params).fetchone():
            return
        time.sleep(0.05)
    raise AssertionError(f"never true: {query}")


def test_long_query(pg_url: str, db: psycopg.Connection[Any]) -> None:
    """A query running past the threshold is reported; a short threshold alone is not enough."""
    with psycopg.connect(pg_url, autocommit=True) as slow:
        pid = slow.info.backend_pid
        worker = threading.Thread(target=lambda: slow.execute("SELECT pg_sleep(2.5)"), daemon=True)
        worker.start()
        try:
            _wait_for(
                db,
                "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND state = 'active' "
                "AND now() - query_start > interval '1 s'",
                [pid],
            )
            finding = run(pg_url, "long_queries", long_query=1)
            assert finding.status == "warn"
            assert pid in [d["pid"] for d in finding.details]
            assert run(pg_url, "long_queries", long_query=120).status == "ok"
        finally:
            worker.join()


def test_blocked_lock_and_who_blocks(pg_url: str, db: psycopg.Connection[Any]) -> None:
    """A session waiting on a table lock is reported with the pid that blocks it, and every
    other check still completes while that lock is held (none waits behind the DDL lock)."""
    db.execute("CREATE TABLE t (id int PRIMARY KEY)")
    db.execute("CREATE SEQUENCE s")
    assert run(pg_url, "blocked").status == "ok"
    with (
        psycopg.connect(pg_url, application_name="holder") as holder,
        psycopg.connect(pg_url, autocommit=True) as waiter,
    ):
        holder.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        worker = threading.Thread(target=lambda: waiter.execute("SELECT * FROM t"), daemon=True)
        worker.start()
        try:
            _wait_for(
                db,
                "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'",
                [waiter.info.backend_pid],
            )
            finding = run(pg_url, "blocked")
            assert finding.status == "warn"
            [blocked] = finding.details
            assert blocked["pid"] == waiter.info.backend_pid
            assert blocked["blocked_by"] == [holder.info.backend_pid]
            assert blocked["blockers"][0]["application"] == "holder"
            assert f"pid {holder.info.backend_pid} (idle in transaction, holder)" in finding.summary

            started = time.monotonic()
            everything = doctor(pg_url)
            assert time.monotonic() - started < 10
            waited = ("locked by DDL", "timed out", "the check failed")
            assert not [f for f in everything if any(w in f.summary for w in waited)]
        finally:
            holder.rollback()
            worker.join()


def test_pool_plan(pg_url: str) -> None:
    """The plan fits by default, leaves no headroom (warn) or does not fit (fail)."""
    ok = run(pg_url, "pool_plan", pool_size=2)
    assert ok.status == "ok"
    free = ok.details[0]["free"]
    assert run(pg_url, "pool_plan", pool_size=free - 2).status == "warn"
    fail = run(pg_url, "pool_plan", pool_size=free, instances=2)
    assert fail.status == "fail"
    assert "does not fit" in fail.summary
    assert fail.details[0]["instances"] == 2


def test_connections(pg_url: str) -> None:
    """Connections are counted by state and application against max_connections."""
    with psycopg.connect(pg_url, application_name="counted"):
        finding = run(pg_url, "connections")
    assert finding.status == "ok"
    assert any(d["application"] == "counted" for d in finding.details)
    assert "usable connections in use" in finding.summary


# --- settings and connection ----------------------------------------------------------------


def test_timeouts_at_zero_then_set(pg_url: str, db: psycopg.Connection[Any]) -> None:
    """statement_timeout 0 as the database default warns even though pgkeel sets its own;
    setting all three on the database makes it ok, naming where they come from."""
    name = sql.Identifier(dbname(pg_url))
    db.execute(sql.SQL("ALTER DATABASE {} SET statement_timeout = 0").format(name))
    finding = run(pg_url, "timeouts")
    assert finding.status == "warn"
    assert "statement_timeout" in finding.summary
    assert "SET statement_timeout = '30s'" in (finding.fix or "")
    for setting, value in (
        ("statement_timeout", "30s"),
        ("idle_in_transaction_session_timeout", "1min"),
        ("lock_timeout", "10s"),
    ):
        db.execute(
            sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                name, sql.Identifier(setting), sql.Literal(value)
            )
        )
    finding = run(pg_url, "timeouts")
    assert finding.status == "ok", finding
    assert {d["source"] for d in finding.details} == {"database"}


def test_logging_and_io_timing(pg_url: str, db: psycopg.Connection[Any]) -> None:
    """log_min_duration_statement -1 and track_io_timing off warn; set, they are ok."""
    name = sql.Identifier(dbname(pg_url))
    db.execute(sql.SQL("ALTER DATABASE {} SET log_min_duration_statement = -1").format(name))
    db.execute(sql.SQL("ALTER DATABASE {} SET track_io_timing = off").format(name))
    assert run(pg_url, "log_min_duration").status == "warn"
    assert run(pg_url, "track_io_timing").status == "warn"
    db.execute(sql.SQL("ALTER DATABASE {} SET log_min_duration_statement = '2s'").format(name))
    db.execute(sql.SQL("ALTER DATABASE {} SET track_io_timing = on").format(name))
    finding = run(pg_url, "log_min_duration")
    assert finding.status == "ok"
    assert "over 2 s" in finding.summary
    assert run(pg_url, "track_io_timing").status == "ok"


def test_memory_reads_the_settings(pg_url: str, db: psycopg.Connection[Any]) -> None:
    """shared_buffers and work_mem are read in bytes; the local server's RAM is known."""
    finding = run(pg_url, "memory")
    shared = db.execute(
        "SELECT setting::bigint * 8192 FROM pg_settings WHERE name = 'shared_buffers'"
    ).fetchone()
    assert shared is not None
    assert finding.details[0]["shared_buffers"] == shared[0]
    assert finding.details[0]["ram"]
    assert finding.details[0]["ram"] > shared[0]


def test_client_defaults(pg_url: str) -> None:
    """The client's resolved defaults are shown; options that turn them off warn."""
    finding = run(pg_url, "client")
    assert finding.status == "ok"
    assert finding.details[0]["statement_timeout"] == "30s"
    assert finding.details[0]["connect_timeout"] == "5"
    [off] = doctor(pg_url, select=["client"], connect_timeout=0, statement_timeout=None)
    assert off.status == "warn"
    assert "connect_timeout is unset" in off.summary
    assert "statement_timeout is off" in off.summary


def test_auth_reports_md5_roles(pg_server: PgServer, pg_url: str) -> None:
    """A role with an md5 password hash warns (read by a superuser); scram ones do not."""
    admin = pg_server.admin()
    ok = run(pg_url, "auth")
    assert ok.status == "ok"
    if pg_server.version_num >= 160000:  # SYSTEM_USER names the method this session used
        assert ok.summary.startswith("method scram-sha-256")
    admin.execute("SET password_encryption = 'md5'")
    admin.execute("CREATE ROLE doctor_md5 PASSWORD 'not-a-real-secret'")
    admin.execute("RESET password_encryption")
    try:
        finding = run(pg_url, "auth")
        assert finding.status == "warn"
        assert "doctor_md5" in finding.summary
        assert "not-a-real-secret" not in str(finding)
    finally:
        admin.execute("DROP ROLE doctor_md5")


def test_server_line(pg_server: PgServer, pg_url: str) -> None:
    """The server line names the version, role, database and that it is a primary."""
    finding = run(pg_url, "server")
    assert finding.details[0]["version_num"] == pg_server.version_num
    assert f"postgres on {dbname(pg_url)}, a primary, up " in finding.summary
    assert finding.status == "ok"  # 15 and 16 are supported until 2027 and 2028


def test_role_superuser_warns(pg_url: str) -> None:
    """The test server's superuser is reported as such."""
    finding = run(pg_url, "role")
    assert finding.status == "warn"
    assert "superuser" in finding.summary


@pytest.mark.usefixtures("require_tls")
def test_tls_sslmode_and_certificate() -> None:
    """Over verify-full TLS: the version is shown, sslmode is ok, the 30-day certificate is
    ok; forced sslmode=disable on the same server says no TLS and skips the certificate."""
    from pgkeel import embedded

    with embedded.start(ssl=True) as server:
        found = {f.check: f for f in doctor(server.url, select=["connection"])}
        assert found["tls"].status == "ok"
        assert "TLSv1." in found["tls"].summary
        assert found["sslmode"].status == "ok"
        assert found["certificate"].status == "ok"
        assert "CN=localhost" in found["certificate"].summary
        assert re.search(r"expires in (29|30) days", found["certificate"].summary)
        plain = make_conninfo(server.url, sslmode="disable")
        found = {f.check: f for f in doctor(plain, select=["tls", "certificate"])}
        assert found["tls"].summary.startswith("no TLS (a local connection")
        assert found["certificate"].status == "skipped"


# --- replication ----------------------------------------------------------------------------


def test_inactive_slot_retaining_wal(cdc_url: str, admin: psycopg.Connection[Any]) -> None:
    """An inactive logical slot warns with the WAL it retains, and fails past the threshold."""
    assert run(cdc_url, "slots").status == "ok"
    admin.execute("SELECT pg_create_logical_replication_slot('doctor_idle', 'pgoutput')")
    admin.execute("CREATE TABLE t (id int PRIMARY KEY, pad text)")
    admin.execute("INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 2000) g")
    finding = run(cdc_url, "slots")
    assert finding.status == "warn"
    [slot] = [d for d in finding.details if d["slot"] == "doctor_idle"]
    assert slot["active"] is False
    assert slot["retained"] > 100_000
    assert "doctor_idle is inactive" in finding.summary
    assert "max_slot_wal_keep_size = -1" in finding.summary
    failed = run(cdc_url, "slots", slot_wal_bytes=50_000)
    assert failed.status == "fail"
    assert "retains" in failed.summary
    assert "pg_drop_replication_slot" in (failed.fix or "")


@pytest.mark.slow
def test_failing_wal_archive() -> None:
    """A server whose archive_command fails is a failure naming the WAL file; archive_mode
    off (the test server) is ok."""
    from pgkeel import embedded

    settings = {"archive_mode": "on", "archive_command": "false", "archive_timeout": "0"}
    with embedded.start(settings=settings) as server:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE t AS SELECT 1 AS x")
            conn.execute("SELECT pg_switch_wal()")
            _wait_for(conn, "SELECT 1 FROM pg_stat_archiver WHERE failed_count > 0", None)
        finding = run(server.url, "archiving")
        assert finding.status == "fail"
        assert "the last attempt failed" in finding.summary
        assert finding.details[0]["last_failed_wal"] in finding.summary


def test_archive_mode_off(pg_url: str) -> None:
    """Without archiving there is nothing to fail."""
    finding = run(pg_url, "archiving")
    assert (finding.status, finding.summary) == (
        "ok",
        "archive_mode = off (no WAL archive to check)",
    )


def test_replication_lag_without_standby(pg_url: str) -> None:
    """A primary with no standby says so (a standby pair is not built in the suite)."""
    finding = run(pg_url, "replication_lag")
    assert (finding.status, finding.summary) == ("ok", "no standby streams from this server")


# --- pg_stat_statements and top queries ----------------------------------------------------


def _preloaded(db: psycopg.Connection[Any]) -> bool:
    row = db.execute("SHOW shared_preload_libraries").fetchone()
    return row is not None and "pg_stat_statements" in str(row[0])


def test_pg_stat_statements_and_top_queries(pg_url: str, db: psycopg.Connection[Any]) -> None:
    """Not installed warns with how to enable it; installed, --top lists normalised queries of
    this database only, never a utility statement's constants."""
    finding = run(pg_url, "pg_stat_statements")
    assert finding.status == "warn"
    assert run(pg_url, "top_queries", top=3).status == "skipped"
    if not _preloaded(db):
        assert "shared_preload_libraries" in (finding.fix or "")
        pytest.skip("pg_stat_statements is not preloaded on this server: only the skip is tested")
    assert "CREATE EXTENSION pg_stat_statements" in (finding.fix or "")
    db.execute("CREATE EXTENSION pg_stat_statements")
    db.execute("SELECT pg_stat_statements_reset()")
    db.execute("CREATE TABLE t (id int PRIMARY KEY)")
    db.execute("SET application_name = 'canary-7f3a'")
    for i in range(20):
        db.execute("SELECT pg_sleep(0.01), count(*) FROM t WHERE id > %s", [i])
    assert run(pg_url, "pg_stat_statements").status == "ok"
    finding = run(pg_url, "top_queries", top=3)
    assert finding.status == "ok"
    assert 1 <= len(finding.details) <= 3
    first = finding.details[0]
    assert first["query"] == "SELECT pg_sleep($2), count(*) FROM t WHERE id > $1"
    assert first["calls"] == 20
    assert first["total_ms"] >= 200
    assert "canary" not in str(finding)


# --- privileges and read-only ---------------------------------------------------------------


@pytest.fixture
def limited_role(pg_server: PgServer, pg_url: str) -> Iterator[tuple[str, str]]:
    """A login role with CONNECT on the test database and nothing else: (name, url)."""
    name = "doctor_ro"
    admin = pg_server.admin()
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'ro-pass'").format(sql.Identifier(name)))
    db_ident = sql.Identifier(dbname(pg_url))
    admin.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(db_ident))
    admin.execute(
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(db_ident, sql.Identifier(name))
    )
    try:
        yield name, make_conninfo(pg_url, user=name, password="ro-pass")
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def _provoke(db: psycopg.Connection[Any]) -> None:
    db.execute("CREATE TABLE t (id serial PRIMARY KEY, parent int REFERENCES t)")
    db.execute("INSERT INTO t DEFAULT VALUES")


def test_role_without_privileges_gets_skipped_with_the_grant(
    pg_url: str, db: psycopg.Connection[Any], limited_role: tuple[str, str]
) -> None:
    """With only CONNECT, checks of other roles' sessions say skipped with GRANT pg_monitor,
    unreadable sequences are counted, and no check crashes."""
    name, url = limited_role
    _provoke(db)
    with psycopg.connect(pg_url) as other:
        other.execute("SELECT 1")
        findings = {f.check: f for f in doctor(url, options=DoctorOptions(idle_threshold=0.1))}
    for check in ("idle_in_transaction", "long_queries", "blocked"):
        assert findings[check].status == "skipped", findings[check]
        assert f"GRANT pg_monitor TO {name}" in findings[check].summary
    assert "1 not readable" in findings["sequences"].summary
    assert findings["fk_without_index"].status == "warn"  # the catalogs are readable by all
    assert not [f for f in findings.values() if "the check failed" in f.summary], findings


def test_pg_monitor_role_sees_everything(
    pg_server: PgServer, pg_url: str, db: psycopg.Connection[Any], limited_role: tuple[str, str]
) -> None:
    """With pg_monitor + CONNECT, another role's idle transaction is visible, and only the
    checks that need TLS, pg_stat_statements or a sequence privilege are skipped."""
    name, url = limited_role
    pg_server.admin().execute(sql.SQL("GRANT pg_monitor TO {}").format(sql.Identifier(name)))
    _provoke(db)
    with psycopg.connect(pg_url, application_name="other-role") as other:
        other.execute("SELECT 1")
        time.sleep(0.3)
        findings = doctor(url, options=DoctorOptions(idle_threshold=0.1))
    by = {f.check: f for f in findings}
    assert by["idle_in_transaction"].status == "warn"
    assert "other-role" in by["idle_in_transaction"].summary
    assert by["role"].status == "ok"
    skipped = {f.check for f in findings if f.status == "skipped"}
    # pg_monitor reads no sequence: those need SELECT or USAGE on each.
    assert "1 not readable" in by["sequences"].summary
    assert skipped <= {"certificate", "top_queries", "sequences"}, [by[c] for c in skipped]


def test_runs_inside_a_read_only_transaction(pg_url: str, db: psycopg.Connection[Any]) -> None:
    """Every check runs inside the caller's READ ONLY transaction without an error (so none
    writes), and leaves that transaction as it was: open, read-only, its timeout unchanged."""
    _provoke(db)
    with psycopg.connect(pg_url) as conn:
        conn.execute("SET TRANSACTION READ ONLY")
        before = conn.execute("SHOW statement_timeout").fetchone()
        findings = doctor(pg_url, connection=conn)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        assert conn.execute("SHOW transaction_read_only").fetchone() == ("on",)
        assert conn.execute("SHOW statement_timeout").fetchone() == before
    assert len(findings) > 20
    assert not [f for f in findings if "the check failed" in f.summary], findings


def test_unreachable_server_raises_without_the_password() -> None:
    """A server that does not answer raises psycopg's OperationalError, password scrubbed."""
    url = "postgresql://app:s3cret-pw@127.0.0.1:1/db?connect_timeout=2"
    with pytest.raises(psycopg.OperationalError) as info:
        doctor(url)
    assert "s3cret-pw" not in str(info.value)


# --- a primary with a hot standby -----------------------------------------------------------


def _replayed(standby: psycopg.Connection[Any], lsn: str) -> None:
    _wait_for(standby, "SELECT 1 WHERE pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn])


@pytest.mark.slow
def test_hot_standby_runs_every_check_read_only(shared_pair: Any) -> None:
    """On a hot standby, which refuses any write, every check runs; each side sees the other
    (the standby says it is one, the primary lists it as streaming)."""
    findings = {f.check: f for f in doctor(shared_pair[1].url)}
    assert not [f for f in findings.values() if "the check failed" in f.summary], findings
    assert findings["replication_lag"].status == "ok"
    assert findings["replication_lag"].summary.startswith("a standby")
    assert "a standby: the primary's scans are not counted" in findings["unused_indexes"].summary
    [primary] = doctor(shared_pair[0].url, select=["replication_lag"])
    assert primary.status == "ok"
    assert primary.summary.startswith("1 standbys:")
    assert primary.details[0]["state"] == "streaming"


@pytest.mark.slow
def test_standby_with_paused_replay_lags(shared_pair: Any) -> None:
    """With replay paused on the standby while the primary writes, the standby reports its
    replay lag and the primary reports the standby behind."""
    with (
        psycopg.connect(shared_pair[0].url, autocommit=True) as primary,
        psycopg.connect(shared_pair[1].url, autocommit=True) as standby,
    ):
        primary.execute("CREATE TABLE IF NOT EXISTS lagging (pad text)")
        row = primary.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert row is not None
        _replayed(standby, row[0])
        standby.execute("SELECT pg_wal_replay_pause()")
        try:
            time.sleep(1.5)
            primary.execute(
                "INSERT INTO lagging SELECT repeat('x', 1000) FROM generate_series(1, 2000)"
            )
            row = primary.execute("SELECT pg_current_wal_lsn()::text").fetchone()
            assert row is not None
            _wait_for(standby, "SELECT 1 WHERE pg_last_wal_receive_lsn() >= %s::pg_lsn", [row[0]])
            lag = run(shared_pair[1].url, "replication_lag", lag_seconds=1)
            assert lag.status == "warn"
            assert "received but not replayed" in lag.summary
            assert run(shared_pair[1].url, "replication_lag").status == "ok"  # under 60 s
            behind = run(shared_pair[0].url, "replication_lag", slot_wal_bytes=100_000)
            assert behind.status == "warn"
            assert behind.details[0]["behind"] > 100_000
        finally:
            standby.execute("SELECT pg_wal_replay_resume()")


def test_through_pgbouncer_in_transaction_mode(
    pg_url: str, db: psycopg.Connection[Any], pgbouncer_factory: Any
) -> None:
    """Through PgBouncer in transaction mode (which refuses the startup options) every check
    runs: doctor sends no options at connect, prepares nothing and keeps each check in one
    transaction."""
    _provoke(db)
    url = pgbouncer_factory()(pg_url)
    findings = {f.check: f for f in doctor(url)}
    assert not [f for f in findings.values() if "the check failed" in f.summary], findings
    assert findings["fk_without_index"].status == "warn"
    assert findings["server"].details[0]["database"] == dbname(pg_url)
