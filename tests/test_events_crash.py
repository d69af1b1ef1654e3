"""The durable-topic crash test: 4 publisher processes x 5,000 events with random commit delays
and ~10 % rollbacks, the consumer process SIGKILLed 10 times and restarted, the server restarted
twice: the consumer handled exactly the committed events (each at least once, no rolled-back
one, per-publisher order kept within each consumer run), soon after the last publish."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgkeel import embedded
from pgkeel.events import SCHEMA_SQL

WORKER = str(Path(__file__).with_name("events_crash_worker.py"))
PUBLISHERS = 4
EVENTS = 5_000
KILLS = 10
RESTARTS = 2
FAST = {"fsync": "off", "full_page_writes": "off"}


def spawn(*args: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with log.open("ab") as err:
        return subprocess.Popen([sys.executable, WORKER, *args], env=env, stderr=err)


def handled(out: Path) -> list[list[str]]:
    return [line.split() for line in out.read_text().splitlines() if line.strip()]


def count_lines(out: Path) -> int:
    return out.read_bytes().count(b"\n") if out.exists() else 0


class Counter:
    """Counts stored events over one connection, reopened after a server restart (a new
    connection per poll would spend the CPU the run needs on authentication)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: psycopg.Connection[Any] | None = None

    def __call__(self) -> int:
        try:
            if self.conn is None or self.conn.closed:
                self.conn = psycopg.connect(self.url, autocommit=True)
            row = self.conn.execute("SELECT count(*) FROM pgkeel_events").fetchone()
        except psycopg.OperationalError:
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            return 0
        return int(row[0]) if row else 0

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def committed(url: str) -> set[tuple[int, int]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT payload->>'p', payload->>'s', payload ? 'rb' FROM pgkeel_events "
            "WHERE topic = 'stress'"
        ).fetchall()
    assert not [r for r in rows if r[2]], "a rolled-back event is stored"
    return {(int(p), int(s)) for p, s, _ in rows}


@pytest.mark.slow
@pytest.mark.fault
def test_kills_and_restarts_lose_and_skip_nothing(cluster_dir: Path, tmp_path: Path) -> None:
    """Every committed event is handled at least once, no rolled-back one, in per-publisher
    order within each consumer run, despite 10 consumer SIGKILLs and 2 server restarts."""
    rng = random.Random()  # noqa: S311 - fault timing, not a secret
    data = cluster_dir / "data"
    # Clean stops only (no power loss to survive): fsync costs time and proves nothing here.
    server = embedded.start(data, settings=FAST)
    port, url = server.port, server.url
    out = tmp_path / "handled.txt"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SCHEMA_SQL)
        consumer = spawn("consume", url, str(out), log=tmp_path / "consumer.log")
        publishers = [
            spawn(
                "publish",
                url,
                str(p),
                str(EVENTS),
                str(rng.randrange(10**6)),
                log=tmp_path / f"publisher{p}.log",
            )
            for p in range(PUBLISHERS)
        ]
        procs = [consumer, *publishers]
        t0 = time.monotonic()
        stored_count = Counter(url)
        kills = restarts = 0
        # Kill a consumer only once it is handling events: after its "start" line and a random
        # number of events more.
        spawned_at_line = 0
        kill_after = rng.randint(50, 1500)
        restart_at = [EVENTS * PUBLISHERS * 0.9 * f for f in (0.25, 0.6)]
        while kills < KILLS or restarts < RESTARTS or any(p.poll() is None for p in publishers):
            # A hang guard, not a speed check (publishing is CPU-bound: ~20 s on a quiet machine,
            # 75 s with the 2 cores shared): a clearer failure than pytest's own timeout.
            assert time.monotonic() - t0 < 240, "the publishers did not finish in 240 s"
            lines = count_lines(out)
            if kills < KILLS and lines - spawned_at_line >= kill_after:
                consumer.send_signal(signal.SIGKILL)
                consumer.wait(10)
                kills += 1
                consumer = spawn("consume", url, str(out), log=tmp_path / "consumer.log")
                procs.append(consumer)
                spawned_at_line = count_lines(out)
                kill_after = rng.randint(50, 1500)
            if restarts < RESTARTS and stored_count() >= restart_at[restarts]:
                stored_count.close()
                server.stop()
                time.sleep(rng.uniform(0.2, 1.0))
                server = embedded.start(data, port=port, settings=FAST)
                restarts += 1
            time.sleep(0.1)
        stored_count.close()
        published = time.monotonic() - t0
        logs = [(tmp_path / f"publisher{p}.log").read_text()[-2000:] for p in range(PUBLISHERS)]
        assert [p.returncode for p in publishers] == [0] * PUBLISHERS, logs
        last_publish = time.monotonic()
        expected = committed(url)
        assert len(expected) > EVENTS * PUBLISHERS * 0.8
        while True:
            lines = handled(out)
            got = {(int(r[1]), int(r[2])) for r in lines if len(r) >= 4}
            if got >= expected:
                break
            assert time.monotonic() - last_publish < 30, (
                f"{len(expected - got)} committed events not handled 30 s after the last publish"
            )
            time.sleep(0.1)
        caught_up = time.monotonic() - last_publish
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        server.stop()

    lines = handled(out)
    assert not [r for r in lines if r[-1] == "rb"], "a rolled-back event was handled"
    assert got == expected
    # Within one consumer run, each publisher's events come in publication order, once.
    runs: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for r in lines:
        if len(r) >= 4:
            runs[r[0]][int(r[1])].append(int(r[2]))
    for by_publisher in runs.values():
        for seqs in by_publisher.values():
            assert seqs == sorted(set(seqs))
    starts = sum(1 for r in lines if r[1:] == ["start"])
    assert starts == KILLS + 1
    print(
        f"{len(expected)} committed events, {len(lines) - starts} handled "
        f"({len(lines) - starts - len(expected)} again after a kill); caught up "
        f"{caught_up:.2f} s after the last publish; publishing took {published:.1f} s"
    )
