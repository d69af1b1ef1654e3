"""``pgkeel cdc tail|slots|drop`` end to end: JSON lines with acknowledgement, resume after a
stop, Ctrl-C, slot listing and the confirmation before a drop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import psycopg
from click.testing import CliRunner

from pgkeel import cdc
from pgkeel.cli import main

pytest_plugins = ["fix_cdc"]


def run(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def wait_inactive(admin: psycopg.Connection[Any]) -> None:
    """Wait until the server released the slots (a walsender exits after its client)."""
    query = "SELECT count(*) FROM pg_replication_slots WHERE active"
    while admin.execute(query).fetchone() != (0,):
        time.sleep(0.05)


def test_tail_json_lines_ack_and_resume(cdc_url: str, admin: psycopg.Connection[Any]) -> None:
    """tail --json prints one object per change, acknowledges it, and a second tail resumes."""
    admin.execute("CREATE TABLE t (id int PRIMARY KEY, v text, big text, price numeric)")
    admin.execute("ALTER TABLE t ALTER COLUMN big SET STORAGE EXTERNAL")
    base = ["cdc", "tail", "--url", cdc_url, "--slot", "s", "--publication", "p", "--json"]
    with cdc.changes(cdc_url, slot="s", publication="p", create=True, tables=["t"]):
        pass  # the slot exists from here on
    wait_inactive(admin)
    admin.execute("INSERT INTO t VALUES (1, 'a\tb', %s, 1.50)", ("x" * 50_000,))
    admin.execute("UPDATE t SET v = 'c' WHERE id = 1")
    admin.execute("DELETE FROM t")
    result = run(*base, "--max-transactions", "2")
    wait_inactive(admin)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [(r["op"], r["table"]) for r in lines] == [
        ("insert", "public.t"),
        ("update", "public.t"),
    ]
    assert lines[0]["new"] == {"id": 1, "v": "a\tb", "big": "x" * 50_000, "price": "1.50"}
    assert lines[1]["new"] == {"id": 1, "v": "c", "price": "1.50"}
    assert lines[1]["unchanged"] == ["big"]
    assert lines[0]["commit_lsn"] != lines[1]["commit_lsn"]
    rest = run(*base, "--max-transactions", "1")
    assert [json.loads(line)["op"] for line in rest.output.splitlines()] == ["delete"]


def test_tail_errors_are_one_clear_line(cdc_url: str) -> None:
    """A missing publication is a clean error (exit 1), not a traceback."""
    result = run("cdc", "tail", "--url", cdc_url, "--slot", "s", "--publication", "nope")
    assert result.exit_code == 1
    assert "publication 'nope' does not exist" in result.output


def test_slots_and_drop(cdc_url: str, admin: psycopg.Connection[Any]) -> None:
    """slots --json lists the slot; drop asks first, and refuses a hostile name."""
    admin.execute("CREATE TABLE t (id int PRIMARY KEY)")
    with cdc.changes(cdc_url, slot="s1", publication="p", create=True, tables=["t"]):
        pass
    admin.execute("INSERT INTO t VALUES (1)")
    wait_inactive(admin)
    listed = run("cdc", "slots", "--url", cdc_url, "--json")
    [slot] = [s for s in json.loads(listed.output) if s["name"] == "s1"]
    assert slot["recorded"] is True
    assert slot["lag_bytes"] > 0
    assert "s1" in run("cdc", "slots", "--url", cdc_url).output
    refused = run("cdc", "drop", "--url", cdc_url, "s1", input="n\n")
    assert refused.exit_code == 1
    assert admin.execute("SELECT count(*) FROM pg_replication_slots").fetchone() == (1,)
    hostile = run("cdc", "drop", "--url", cdc_url, "--yes", "s1; DROP TABLE t")
    assert hostile.exit_code == 1
    assert "not valid" in hostile.output
    dropped = run("cdc", "drop", "--url", cdc_url, "s1", input="y\n")
    assert dropped.exit_code == 0, dropped.output
    assert admin.execute("SELECT count(*) FROM pg_replication_slots").fetchone() == (0,)


def test_tail_ctrl_c_stops_cleanly(cdc_url: str, admin: psycopg.Connection[Any]) -> None:
    """SIGINT while tail waits: exit 130, and every transaction printed before it stays
    acknowledged (one interrupted half way is printed again next time: at-least-once)."""
    admin.execute("CREATE TABLE t (id int PRIMARY KEY)")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgkeel", "cdc", "tail", "--url", cdc_url, "--slot", "s",
         "--publication", "p", "--tables", "t", "--create", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ},
    )  # fmt: skip
    assert proc.stdout is not None
    while admin.execute("SELECT count(*) FROM pg_replication_slots WHERE active").fetchone() != (
        1,
    ):
        time.sleep(0.05)
    admin.execute("INSERT INTO t VALUES (1)")
    admin.execute("INSERT INTO t VALUES (2)")
    first = json.loads(proc.stdout.readline())
    # The second transaction's line shows the first was read to its end (and acknowledged);
    # the second's own commit may not have been read yet when the signal lands.
    assert json.loads(proc.stdout.readline())["new"] == {"id": 2}
    assert first["new"] == {"id": 1}
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err
    wait_inactive(admin)  # the walsender applies the last feedback before it exits
    lsn = "SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots"
    assert admin.execute(lsn, (first["commit_lsn"],)).fetchone() == (True,)
