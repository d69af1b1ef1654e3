"""The crash test: a consumer applying changes to a sink database is SIGKILLed at 10 random
points while a writer makes random changes; at the end the sink equals the source, and the
slot's confirmed position was never ahead of what the sink had applied."""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgkeel import cdc
from pgkeel.testing.plugin import PgServer

pytest_plugins = ["fix_cdc"]

WORKER = str(Path(__file__).with_name("cdc_crash_worker.py"))
TXS = 800  # about 20,000 row operations (1 to 49 per transaction)
KILLS = 10


@pytest.fixture
def sink_url(pg_server: PgServer) -> Iterator[str]:
    name = f"pgkeel_sink_{secrets.token_hex(6)}"
    url = pg_server.create_database(name)
    try:
        yield url
    finally:
        pg_server.drop_database(name)


def spawn(*args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, WORKER, *args], env=env, stderr=subprocess.PIPE)


def reap(proc: subprocess.Popen[bytes], timeout: float | None = None) -> int:
    code = proc.wait(timeout)
    assert proc.stderr is not None
    proc.stderr.close()
    return code


def exited(proc: subprocess.Popen[bytes]) -> str:
    assert proc.stderr is not None
    text = "" if proc.stderr.closed else proc.stderr.read().decode()[-2000:]
    return f"exited with {proc.returncode}: {text}"


def lsn(conn: psycopg.Connection[Any], query: str) -> int:
    row = conn.execute(query).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def wait_inactive(src: psycopg.Connection[Any]) -> None:
    """Wait until the server released the slot (its walsender exits after its client)."""
    query = "SELECT active FROM pg_replication_slots WHERE slot_name = 'crash'"
    while src.execute(query).fetchone() == (True,):
        time.sleep(0.02)


SCHEMA = """
CREATE TABLE a (id int PRIMARY KEY, v text, n bigint);
CREATE TABLE b (id int PRIMARY KEY, doc jsonb, at timestamptz);
"""


@pytest.mark.slow
@pytest.mark.fault
def test_sigkilled_consumer_loses_nothing(cdc_url: str, sink_url: str) -> None:
    """10 SIGKILLs of the consumer: the sink ends equal to the source, confirmed never ahead."""
    rng = random.Random()  # noqa: S311 - a workload, not a secret
    seed = rng.randrange(2**31)
    with (
        psycopg.connect(cdc_url, autocommit=True) as src,
        psycopg.connect(sink_url, autocommit=True) as sink,
    ):
        src.execute(SCHEMA)
        sink.execute(
            SCHEMA + "CREATE TABLE applied (commit_lsn pg_lsn PRIMARY KEY, end_lsn pg_lsn)"
        )
        src.execute("CREATE PUBLICATION crash FOR TABLE a, b")
        with cdc.changes(cdc_url, slot="crash", publication="crash", create=True):
            pass
        wait_inactive(src)
        writer = spawn("writer", cdc_url, str(seed), str(TXS))
        # Kill points before the end (empty transactions are not sent: fewer than TXS arrive).
        targets = sorted(rng.sample(range(1, TXS - 50), KILLS))
        applied = "SELECT count(*) FROM applied"
        checks: list[tuple[int, int]] = []
        try:
            for target in targets:
                consumer = spawn("consumer", cdc_url, sink_url)
                while lsn(sink, applied) < target:
                    assert consumer.poll() is None, (seed, exited(consumer))
                    time.sleep(0.01)
                consumer.send_signal(signal.SIGKILL)
                reap(consumer)
                wait_inactive(src)
                confirmed = lsn(
                    src,
                    "SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots "
                    "WHERE slot_name = 'crash'",
                )
                have = lsn(sink, "SELECT max(end_lsn) - '0/0' FROM applied")
                checks.append((confirmed, have))
            assert writer.wait(timeout=600) == 0
            consumer = spawn("consumer", cdc_url, sink_url)
            # A skipped transaction (the end marker never arrives) fails here, not silently.
            assert reap(consumer, timeout=180) == 0, exited(consumer)
        finally:
            writer.kill()
            reap(writer)

        ends = sorted(
            int(r[0]) for r in sink.execute("SELECT end_lsn - '0/0' FROM applied").fetchall()
        )
        for confirmed, have in checks:
            # No transaction the sink lacked at the kill lies at or before the confirmed position.
            assert not [e for e in ends if have < e <= confirmed], (seed, confirmed, have)
        for table in ("a", "b"):
            query = f"SELECT * FROM {table} ORDER BY id"
            assert src.execute(query).fetchall() == sink.execute(query).fetchall(), seed  # type: ignore[call-overload]
        print(f"crash test: seed {seed}, {len(ends)} transactions applied, kills after {targets}")
