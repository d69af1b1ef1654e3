"""Many runners at once, and runners killed mid-migration: real processes (``python -m pgkeel
migrate up``), a real server, conditions provoked by locks the test holds, never by timing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

pytest_plugins = ["fix_migrate"]

Write = Callable[..., Path]
Rows = Callable[..., list[Any]]

pytestmark = pytest.mark.fault


def _runner(url: str, root: Path, name: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "pgkeel", "migrate", *args,
            "--url", make_conninfo(url, application_name=name), "--dir", str(root),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _cli(url: str, root: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    where = ["--dir", str(root)] if root else []
    return subprocess.run(
        [sys.executable, "-m", "pgkeel", "migrate", *args, "--url", url, *where],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _wait_for(conn: psycopg.Connection[Any], query: str, what: str, limit: float = 60) -> Any:
    """Poll ``query`` until it returns a true first column (bounded, never a timing assert)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        row = conn.execute(query.encode()).fetchone()
        if row and row[0]:
            return row[0]
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def test_six_concurrent_runners_apply_each_migration_once(
    pg_url: str, migrations: Write, fetch: Rows, history: Rows
) -> None:
    """Six runner processes started together on an empty database: every migration applied
    exactly once, all six exit 0, the ones that waited said who held the lock."""
    root = migrations(
        **{
            "0001_gate": "CREATE TABLE runs (n int);\nSELECT pg_advisory_lock_shared(4242);",
            "0002_count": "INSERT INTO runs VALUES (2);",
            **{f"{v:04d}_t{v}": f"CREATE TABLE t{v} (a int);" for v in range(3, 11)},
        }
    )
    with psycopg.connect(pg_url, autocommit=True) as gate:
        gate.execute("SELECT pg_advisory_lock(4242)")  # the winner stops inside 0001
        procs = [
            _runner(pg_url, root, f"runner-{i}", "up", "--lock-timeout", "300") for i in range(6)
        ]
        try:
            _wait_for(
                gate,
                "SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                "one runner inside migration 1",
            )
            # The five others have tried the migration lock (their last query is the lookup
            # of its holder) before the winner may go on.
            _wait_for(
                gate,
                "SELECT count(*) = 5 FROM pg_stat_activity WHERE application_name LIKE 'runner-%'"
                " AND query LIKE '%pg_locks l JOIN pg_stat_activity%'",
                "five runners waiting for the migration lock",
            )
        finally:
            gate.execute("SELECT pg_advisory_unlock(4242)")
        outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, outputs
    assert fetch(pg_url, "SELECT count(*) FROM runs") == [(1,)]
    assert [r["version"] for r in history(pg_url)] == list(range(1, 11))
    waited = [err for _, err in outputs if "waiting for the migration lock held by pid" in err]
    assert len(waited) == 5
    assert all("runner-" in err for err in waited)
    assert sum("nothing to apply" in err for _, err in outputs) == 5


def _kill_while_sleeping(gate: psycopg.Connection[Any], proc: subprocess.Popen[str]) -> None:
    """SIGKILL ``proc`` once its backend sleeps inside a migration; wait until the server has
    noticed (the orphaned backend is gone)."""
    pid = _wait_for(
        gate,
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'victim'"
        " AND query LIKE '%pg_sleep%' AND state = 'active'",
        "the runner inside its long migration",
    )
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    _wait_for(
        gate,
        f"SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = {int(pid)})",
        "the killed runner's backend to end",
    )


@pytest.mark.pg(">=14")  # client_connection_check_interval ends the orphaned backend
def test_runner_killed_mid_migration_leaves_no_trace(
    pg_url: str, migrations: Write, fetch: Rows, history: Rows
) -> None:
    """A runner SIGKILLed inside a long migration: its transaction rolled back, no advisory lock
    left, and the next runner completes the work."""
    root = migrations(
        **{
            "0001_control": "CREATE TABLE sleep_for (s float8);\nINSERT INTO sleep_for VALUES (0);",
            "0002_long": "CREATE TABLE made_by_2 (a int);\nSELECT pg_sleep(s) FROM sleep_for;",
            "0003_after": "CREATE TABLE made_by_3 (a int);",
        }
    )
    assert _cli(pg_url, root, "up", "--to", "1").returncode == 0
    with psycopg.connect(pg_url, autocommit=True) as gate:
        gate.execute("UPDATE sleep_for SET s = 3600")
        victim = _runner(pg_url, root, "victim", "up")
        _kill_while_sleeping(gate, victim)
        gate.execute("UPDATE sleep_for SET s = 0")
        assert fetch(pg_url, "SELECT to_regclass('made_by_2')") == [(None,)]
        assert fetch(pg_url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == [(0,)]
    assert [r["version"] for r in history(pg_url)] == [1]
    done = _cli(pg_url, root, "up")
    assert done.returncode == 0, done.stderr
    assert [r["version"] for r in history(pg_url)] == [1, 2, 3]
    assert fetch(pg_url, "SELECT to_regclass('made_by_2') IS NOT NULL") == [(True,)]


@pytest.mark.pg(">=14")
def test_non_transactional_migration_killed_half_way(
    pg_url: str, migrations: Write, fetch: Rows
) -> None:
    """A no-transaction migration killed half way: recorded failed, later runs refuse with
    what ran and how to resolve; resolve --rolled-back (after a person undid it) unblocks."""
    root = migrations(
        **{
            "0001_control": "CREATE TABLE sleep_for (s float8);\nINSERT INTO sleep_for VALUES (0);",
            "0002_steps": (
                "-- pgkeel: no-transaction\n"
                "CREATE TABLE nt1 (a int);\n"
                "SELECT pg_sleep(s) FROM sleep_for;\n"
                "CREATE TABLE nt2 (a int);\n"
            ),
            "0003_after": "CREATE TABLE nt3 (a int);",
        }
    )
    assert _cli(pg_url, root, "up", "--to", "1").returncode == 0
    with psycopg.connect(pg_url, autocommit=True) as gate:
        gate.execute("UPDATE sleep_for SET s = 3600")
        _kill_while_sleeping(gate, _runner(pg_url, root, "victim", "up"))
        gate.execute("UPDATE sleep_for SET s = 0")
    refused = _cli(pg_url, root, "up")
    assert refused.returncode == 1
    assert "migration 2 (steps) failed half way" in refused.stderr
    assert "stopped after 1 of 3 statements" in refused.stderr
    assert "pgkeel migrate resolve 2 --applied" in refused.stderr
    status = _cli(pg_url, root, "status", "--json")
    assert status.returncode == 1
    assert [e["state"] for e in json.loads(status.stdout)] == ["applied", "failed", "pending"]
    assert fetch(pg_url, "SELECT to_regclass('nt1') IS NOT NULL, to_regclass('nt2')") == [
        (True, None)
    ]
    with psycopg.connect(pg_url, autocommit=True) as person:
        person.execute("DROP TABLE nt1")  # the person undoes the half-applied step
    resolved = _cli(pg_url, None, "resolve", "2", "--rolled-back")
    assert resolved.returncode == 0, resolved.stderr
    done = _cli(pg_url, root, "up")
    assert done.returncode == 0, done.stderr
    assert fetch(
        pg_url, "SELECT to_regclass('nt2') IS NOT NULL, to_regclass('nt3') IS NOT NULL"
    ) == [(True, True)]
