"""Durable topics benchmark: publish-to-handle throughput and latency, pgkeel against the same
pattern written by hand, in one run.

``pgkeel``: 4 publisher processes call ``db.publish(topic, payload)`` (one event per
transaction; ``--per-tx K``: ``tx.publish`` K times per transaction), one consumer iterates
``db.subscribe(topic, ...)`` and acknowledges each event.
``naive``: the hand-written outbox the guides show: ``INSERT ... ; pg_notify`` in one
statement from 4 raw psycopg publishers (K per transaction likewise), a consumer that LISTENs
and on each wake-up (or every 100 ms) polls ``SELECT ... WHERE id > %s ORDER BY id LIMIT
500``. The naive consumer moves past ids whose transaction had not committed yet, so with
concurrent publishers it loses events: the run counts them (the events stored that it never
handled).

Two loads: ``max`` (publishers as fast as they can: end-to-end events/s = events handled /
time from the first publish to the last handle) and ``paced`` (1,000 events/s in total:
publish-to-handle latency p50/p99, from a wall-clock stamp in the payload). Each round runs the
variants interleaved, each on a fresh database. Goal: >= 10,000 events/s end to end, p99 < 50 ms
at 1,000 events/s.
Run: ``cd bench && flock /tmp/pgkeel-bench.lock ../.venv/bin/python events.py [--events N]
[--repeat N] [--only pgkeel,naive]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

import _common as c
import pgkeel

PUBLISHERS = 4
TOPIC = "bench"
NAIVE_DDL = (
    "CREATE TABLE naive_events (id bigserial PRIMARY KEY, topic text NOT NULL, "
    "payload jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT clock_timestamp())"
)


def publisher(variant: str, url: str, n: int, rate: float, per_tx: int = 1) -> None:
    """Runs in a subprocess: publish ``n`` events (``rate`` per second, 0 = as fast as it
    can), ``per_tx`` per transaction, each with the wall-clock time it was published at."""
    interval = 1.0 / rate if rate else 0.0
    start = time.perf_counter()
    if variant == "pgkeel":
        with pgkeel.Database(url, min_size=1, max_size=1, size_check="off") as db:
            for i in range(0, n, per_tx):
                if interval:
                    _pace(start + i * interval)
                if per_tx == 1:
                    db.publish(TOPIC, {"t": time.time(), "i": i})
                    continue
                with db.transaction() as tx:
                    for j in range(per_tx):
                        tx.publish(TOPIC, {"t": time.time(), "i": i + j})
    else:
        with psycopg.connect(url, autocommit=True) as conn:
            for i in range(0, n, per_tx):
                if interval:
                    _pace(start + i * interval)
                with conn.transaction():
                    for j in range(per_tx):
                        # One statement per event on purpose: the pattern measured.
                        conn.execute(  # noqa: PGK005
                            "WITH e AS (INSERT INTO naive_events (topic, payload) "
                            "VALUES (%s, %s) RETURNING id) SELECT pg_notify('naive', %s) FROM e",
                            (TOPIC, Jsonb({"t": time.time(), "i": i + j}), TOPIC),
                        )


def _pace(at: float) -> None:
    delay = at - time.perf_counter()
    if delay > 0:
        time.sleep(delay)


def spawn_publishers(
    variant: str, url: str, n: int, rate: float, per_tx: int
) -> list[subprocess.Popen[bytes]]:
    args = [variant, url, str(n // PUBLISHERS), str(rate / PUBLISHERS), str(per_tx)]
    return [
        subprocess.Popen([sys.executable, __file__, "--publisher", *args])
        for _ in range(PUBLISHERS)
    ]


def consume_pgkeel(url: str, n: int, pubs: list[subprocess.Popen[bytes]]) -> dict[str, Any]:
    latencies: list[float] = []
    first = None
    with pgkeel.Database(url, size_check="off") as db, db.subscribe(TOPIC, "bench") as sub:
        started = _start(pubs)
        while len(latencies) < n:
            event = sub.get(10.0)
            if event is None:
                break
            now = time.time()
            first = first or event.payload["t"]
            latencies.append(now - event.payload["t"])
            sub.ack(event)
        end = time.time()
        stored = db.fetch_val("SELECT count(*) FROM pgkeel_events")
    _reap(pubs)
    return _result(latencies, first, end, started, stored)


def consume_naive(url: str, n: int, pubs: list[subprocess.Popen[bytes]]) -> dict[str, Any]:
    latencies: list[float] = []
    first = None
    last_id = 0
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("LISTEN naive")
        started = _start(pubs)
        idle_since = time.monotonic()
        while len(latencies) < n:
            if time.monotonic() - idle_since > 3.0 and all(p.poll() is not None for p in pubs):
                break  # the rest is lost
            rows = conn.execute(
                "SELECT id, payload FROM naive_events WHERE topic = %s AND id > %s "
                "ORDER BY id LIMIT 500",
                (TOPIC, last_id),
            ).fetchall()
            if not rows:
                for _ in conn.notifies(timeout=0.1, stop_after=1):
                    pass
                continue
            idle_since = time.monotonic()
            now = time.time()
            for _, payload in rows:
                first = first or payload["t"]
                latencies.append(now - payload["t"])
            last_id = rows[-1][0]
        end = time.time()
        stored = conn.execute("SELECT count(*) FROM naive_events").fetchone()[0]  # type: ignore[index]
    _reap(pubs)
    return _result(latencies, first, end, started, stored)


def _start(pubs: list[subprocess.Popen[bytes]]) -> float:
    return time.time()


def _reap(pubs: list[subprocess.Popen[bytes]]) -> None:
    for p in pubs:
        p.wait(120)


def _result(
    latencies: list[float], first: float | None, end: float, started: float, stored: int
) -> dict[str, Any]:
    handled = len(latencies)
    lat = sorted(latencies)
    return {
        "handled": handled,
        "lost": stored - handled,
        "events_s": handled / (end - (first or started)) if handled else 0.0,
        "seconds": end - (first or started),
        "p50_ms": lat[len(lat) // 2] * 1000 if lat else float("nan"),
        "p99_ms": lat[int(len(lat) * 0.99)] * 1000 if lat else float("nan"),
    }


def run(variant: str, url: str, n: int, rate: float, per_tx: int) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS naive_events, pgkeel_events, pgkeel_event_consumers")
        conn.execute(NAIVE_DDL)
        conn.execute(pgkeel.events.SCHEMA_SQL)
    if variant == "pgkeel":
        # Register the consumer before publishing starts (a new one starts after the latest).
        with pgkeel.Database(url, size_check="off") as db, db.subscribe(TOPIC, "bench"):
            pass
        pubs = spawn_publishers(variant, url, n, rate, per_tx)
        return consume_pgkeel(url, n, pubs)
    pubs = spawn_publishers(variant, url, n, rate, per_tx)
    return consume_naive(url, n, pubs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--events", type=int, default=100_000, help="events in the max-rate load")
    p.add_argument("--paced", type=int, default=10_000, help="events in the 1,000/s load")
    p.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    p.add_argument("--only", default="pgkeel,naive")
    p.add_argument("--per-tx", type=int, default=1, help="events per publishing transaction")
    args = p.parse_args()
    variants = [v for v in args.only.split(",") if v]
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with c.server() as url:
        for r in range(args.repeat):
            loads = [("max", args.events, 0.0), ("paced", args.paced, 1000.0)]
            for load, n, rate in [x for x in loads if x[1]]:
                for variant in variants if r % 2 == 0 else reversed(variants):
                    res = run(variant, url, n, rate, args.per_tx)
                    results.setdefault((load, variant), []).append(res)
                    print(
                        f"round {r + 1} {load:<5} {variant:<6} handled {res['handled']:>7,} "
                        f"lost {res['lost']:>5,} {res['events_s']:>9,.0f} events/s "
                        f"p50 {res['p50_ms']:7.1f} ms p99 {res['p99_ms']:7.1f} ms",
                        flush=True,
                    )
    print("\n| load | variant | events/s (median) | p50 ms | p99 ms | lost (per round) |")
    print("|---|---|---:|---:|---:|---|")
    for (load, variant), runs in results.items():
        print(
            f"| {load} | {variant} | {statistics.median(x['events_s'] for x in runs):,.0f} "
            f"| {statistics.median(x['p50_ms'] for x in runs):.1f} "
            f"| {statistics.median(x['p99_ms'] for x in runs):.1f} "
            f"| {', '.join(str(x['lost']) for x in runs)} |"
        )
    for load in ("max", "paced"):
        if (load, "pgkeel") in results and (load, "naive") in results:
            a = statistics.median(x["events_s"] for x in results[(load, "pgkeel")])
            b = statistics.median(x["events_s"] for x in results[(load, "naive")])
            print(f"{load}: pgkeel / naive events/s = {a / b:.2f}x")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--publisher":
        per_tx = int(sys.argv[6]) if len(sys.argv) > 6 else 1
        publisher(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), per_tx)
    else:
        main()
