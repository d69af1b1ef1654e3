"""``pgkeel doctor`` end to end: exit codes 0/1/2 and --fail-on, --json, --select/--ignore,
--pool-size/--instances, --top, usage errors and an unreachable server."""

from __future__ import annotations

import json
from typing import Any

import psycopg
from click.testing import CliRunner, Result
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from pgkeel.cli import main
from pgkeel.ops import CHECKS, JSON_KEYS


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["doctor", *args], catch_exceptions=False)


def _set_timeouts(url: str) -> None:
    name = sql.Identifier(str(conninfo_to_dict(url)["dbname"]))
    with psycopg.connect(url, autocommit=True) as conn:
        for setting in ("statement_timeout", "idle_in_transaction_session_timeout", "lock_timeout"):
            conn.execute(
                sql.SQL("ALTER DATABASE {} SET {} = '30s'").format(name, sql.Identifier(setting))
            )


def test_exit_codes_and_fail_on(pg_url: str) -> None:
    """0 when the selected checks are ok, 1 on a warning (0 with --fail-on fail), 2 on a
    failure whatever --fail-on says."""
    assert run("--url", pg_url, "--select", "timeouts").exit_code == 1
    assert run("--url", pg_url, "--select", "timeouts", "--fail-on", "fail").exit_code == 0
    _set_timeouts(pg_url)
    result = run("--url", pg_url, "--select", "timeouts", "--select", "schema")
    assert result.exit_code == 0, result.output
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE a (id serial PRIMARY KEY)")
        conn.execute("SELECT setval('a_id_seq', 2147483600)")
    for fail_on in ("warn", "fail"):
        result = run("--url", pg_url, "--select", "sequences", "--fail-on", fail_on)
        assert result.exit_code == 2
        assert "fail" in result.output
        assert "a_id_seq" in result.output


def test_text_report(pg_url: str) -> None:
    """One line per check under its group with the fix below a problem, and the counts; the
    password is not printed."""
    result = run("--url", pg_url)
    assert result.exit_code in (1, 2)
    lines = result.output.splitlines()
    for check in CHECKS:
        assert any(line.split()[1:2] == [check] for line in lines if line.startswith("  ")), check
    assert "connection" in lines
    assert "schema" in lines
    assert any(line.strip().startswith("fix: ALTER DATABASE") for line in lines)
    assert lines[-1].endswith("skipped")
    password = str(conninfo_to_dict(pg_url)["password"])
    assert password not in result.output


def test_json_schema(pg_url: str) -> None:
    """--json prints a list with one object per check, each with exactly the documented keys
    and types."""
    result = run("--url", pg_url, "--json")
    data: list[dict[str, Any]] = json.loads(result.output)
    assert [o["check"] for o in data] == list(CHECKS)
    for obj in data:
        assert list(obj) == list(JSON_KEYS)
        assert obj["status"] in ("ok", "warn", "fail", "skipped")
        assert obj["group"] == CHECKS[obj["check"]].group
        assert isinstance(obj["summary"], str)
        assert obj["summary"]
        assert obj["fix"] is None or isinstance(obj["fix"], str)
        assert isinstance(obj["details"], list)
        assert all(isinstance(d, dict) for d in obj["details"])
        assert isinstance(obj["elapsed_ms"], float)
    statuses = {o["status"] for o in data}
    assert result.exit_code == (2 if "fail" in statuses else 1 if "warn" in statuses else 0)


def test_select_and_ignore(pg_url: str) -> None:
    """--select takes checks and groups, --ignore removes them; unknown names are usage errors."""
    data = json.loads(run("--url", pg_url, "--json", "--select", "replication").output)
    assert [o["check"] for o in data] == ["slots", "archiving", "replication_lag"]
    data = json.loads(
        run("--url", pg_url, "--json", "--select", "schema", "--ignore", "wraparound").output
    )
    assert "wraparound" not in [o["check"] for o in data]
    assert {o["group"] for o in data} == {"schema"}
    bad = run("--url", pg_url, "--select", "nope")
    assert bad.exit_code == 2
    assert "unknown check 'nope'" in bad.output
    none = run("--url", pg_url, "--select", "tls", "--ignore", "tls")
    assert none.exit_code == 2
    assert "no check to run" in none.output


def test_pool_size_and_instances(pg_url: str) -> None:
    """--pool-size x --instances beyond the free slots fails (exit 2); a small plan is ok."""
    ok = run("--url", pg_url, "--select", "pool_plan", "--pool-size", "5", "--instances", "2")
    assert ok.exit_code == 0, ok.output
    assert "2 x 5 connections + 5 headroom" in ok.output
    big = run("--url", pg_url, "--select", "pool_plan", "--pool-size", "40", "--instances", "3")
    assert big.exit_code == 2
    assert "does not fit" in big.output
    assert run("--url", pg_url, "--pool-size", "0").exit_code == 2


def test_top_lists_queries(pg_url: str) -> None:
    """--top N prints the N queries with the most total time when pg_stat_statements is there,
    and says skipped with how to enable it when not."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        preload = conn.execute("SHOW shared_preload_libraries").fetchone()
        if preload is None or "pg_stat_statements" not in str(preload[0]):
            result = run("--url", pg_url, "--select", "top_queries", "--top", "2")
            assert "skipped" in result.output
            assert "shared_preload_libraries" in result.output
            return
        conn.execute("CREATE EXTENSION pg_stat_statements")
        for i in range(5):
            conn.execute("SELECT pg_sleep(0.02), %s::int AS n", [i])
    result = run("--url", pg_url, "--select", "top_queries", "--top", "2")
    assert result.exit_code == 0, result.output
    assert "1. " in result.output
    assert "SELECT pg_sleep($2), $1::int AS n" in result.output
    assert "5 calls" in result.output


def test_unreachable_server_exits_2() -> None:
    """A server that does not answer exits 2 with the reason, never the password."""
    result = run("--url", "postgresql://app:s3cret-pw@127.0.0.1:1/db?connect_timeout=2")
    assert result.exit_code == 2
    assert "cannot connect" in result.output
    assert "s3cret-pw" not in result.output


def test_list() -> None:
    """--list prints every check with its group and what it looks at."""
    result = run("--list")
    assert result.exit_code == 0
    assert len(result.output.splitlines()) == len(CHECKS)
    assert "invalid_indexes" in result.output


def test_bad_input_is_a_usage_error() -> None:
    """A URL of another scheme and out-of-range options exit 2 with what to do, before any
    connection is tried."""
    result = run("--url", "mysql://app:pw@db/x")
    assert result.exit_code == 2
    assert "postgresql://" in result.output
    assert run("--url", "postgresql://x/y", "--idle-threshold", "0").exit_code == 2
    assert run("--url", "postgresql://x/y", "--instances", "-1").exit_code == 2
    assert run("--url", "postgresql://x/y", "--fail-on", "ok").exit_code == 2
