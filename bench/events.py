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

Peers (``--only`` picks variants; all four by default), same event count and 4 publisher
processes: ``pgqueuer`` (``SyncQueries.enqueue`` per job; its ``QueueManager`` worker, batch
size 100) and ``procrastinate`` (``task.defer`` per job; its worker, concurrency 10, LISTEN/NOTIFY
on). A job handled stands for an event handled; ``lost`` counts jobs left unhandled.

``--mode``: ``e2e`` (default; publish and handle at once), ``publish`` (the publishers alone, no
consumer: the ceiling the publishing side sets), ``drain`` (publish first, then time the
consumer alone on the backlog).

Two loads: ``max`` (publishers as fast as they can: end-to-end events/s = events handled /
time from the first publish to the last handle) and ``paced`` (1,000 events/s in total:
publish-to-handle latency p50/p99, from a wall-clock stamp in the payload). Each round runs the
variants interleaved, each on a fresh database. Goal: >= 10,000 events/s end to end, p99 < 50 ms
at 1,000 events/s.
Run: ``cd bench && flock /tmp/pgkeel-bench.lock ../.venv/bin/python events.py [--events N]
[--repeat N] [--only pgkeel,naive,pgqueuer,procrastinate] [--mode e2e|publish|drain]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import statistics
import subprocess
import sys
import time
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

import _common as c
import pgkeel

PUBLISHERS = 4
#: --mode: e2e (publish and handle at once), publish (publishers alone, no consumer), drain
#: (publish first, then time the consumer alone on the backlog); "publish_s" set per run.
MODE: dict[str, Any] = {"mode": "e2e"}
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
    elif variant == "pgqueuer":
        from pgqueuer.adapters.drivers.psycopg import SyncPsycopgDriver
        from pgqueuer.queries import SyncQueries

        with psycopg.connect(url, autocommit=True) as conn:
            queries = SyncQueries(SyncPsycopgDriver(conn))
            for i in range(0, n, per_tx):
                if interval:
                    _pace(start + i * interval)
                # One enqueue per job (its own transaction); K jobs: one multi-row enqueue.
                payloads = [orjson.dumps({"t": time.time(), "i": i + j}) for j in range(per_tx)]
                if per_tx == 1:
                    queries.enqueue(TOPIC, payloads[0])
                else:
                    queries.enqueue([TOPIC] * per_tx, list(payloads), [0] * per_tx)
    elif variant == "procrastinate":
        import procrastinate

        logging.getLogger("procrastinate").setLevel(logging.ERROR)

        app = procrastinate.App(connector=procrastinate.SyncPsycopgConnector(conninfo=url))
        task = app.task(name=TOPIC, queue=TOPIC)(_noop)
        with app.open():
            for i in range(0, n, per_tx):
                if interval:
                    _pace(start + i * interval)
                # One defer per job (its own transaction); K jobs: one batch_defer.
                if per_tx == 1:
                    task.defer(t=time.time(), i=i)
                else:
                    task.batch_defer(*({"t": time.time(), "i": i + j} for j in range(per_tx)))
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


def consume_pgqueuer(url: str, n: int, pubs: list[subprocess.Popen[bytes]]) -> dict[str, Any]:
    """pgqueuer's own worker (QueueManager, batch_size 100): each job handled is completed (and
    logged) by pgqueuer, its latency taken from the stamp in its payload."""
    from pgqueuer.adapters.drivers.psycopg import PsycopgDriver
    from pgqueuer.models import Job
    from pgqueuer.qm import QueueManager
    from pgqueuer.queries import Queries

    latencies: list[float] = []
    box: dict[str, float] = {}

    async def main() -> None:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        async with conn:
            qm = QueueManager(Queries(PsycopgDriver(conn)))

            @qm.entrypoint(TOPIC)
            async def handle(job: Job) -> None:
                t = orjson.loads(job.payload or b"null")["t"]
                box.setdefault("first", t)
                latencies.append(time.time() - t)
                if len(latencies) >= n:
                    box["end"] = time.time()
                    qm.shutdown.set()

            async def give_up() -> None:
                # Stop if nothing more comes (the publishers are done and no job is left).
                seen = -1
                while not qm.shutdown.is_set():
                    await asyncio.sleep(10.0)
                    if len(latencies) == seen:
                        qm.shutdown.set()
                    seen = len(latencies)

            box["started"] = _start(pubs)
            watchdog = asyncio.create_task(give_up())
            await qm.run(batch_size=100)
            watchdog.cancel()

    asyncio.run(main())
    end = box.get("end", time.time())
    _reap(pubs)
    with psycopg.connect(url, autocommit=True) as conn:
        left = conn.execute("SELECT count(*) FROM pgqueuer").fetchone()[0]  # type: ignore[index]
    return _result(latencies, box.get("first"), end, box["started"], len(latencies) + left)


def _noop(t: float, i: int) -> None:
    """procrastinate's publishers need the task by name only; the worker registers its own."""


def consume_procrastinate(url: str, n: int, pubs: list[subprocess.Popen[bytes]]) -> dict[str, Any]:
    """procrastinate's own worker (concurrency 10, LISTEN/NOTIFY on; jobs kept, its default),
    its latency taken from the stamp in each job's arguments."""
    import procrastinate

    logging.getLogger("procrastinate").setLevel(logging.ERROR)  # "App in __main__" notes

    latencies: list[float] = []
    box: dict[str, float] = {}
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))
    done = asyncio.Event()

    @app.task(name=TOPIC, queue=TOPIC)
    async def handle(t: float, i: int) -> None:
        box.setdefault("first", t)
        latencies.append(time.time() - t)
        if len(latencies) >= n:
            box["end"] = time.time()
            done.set()

    async def main() -> None:
        async with app.open_async():
            box["started"] = _start(pubs)
            worker = asyncio.create_task(
                app.run_worker_async(queues=[TOPIC], concurrency=10, install_signal_handlers=False)
            )
            seen = -1
            while not done.is_set() and len(latencies) != seen:
                seen = len(latencies)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), 10.0)
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    asyncio.run(main())
    end = box.get("end", time.time())
    _reap(pubs)
    with psycopg.connect(url, autocommit=True) as conn:
        stored = conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()[0]  # type: ignore[index]
    return _result(latencies, box.get("first"), end, box["started"], stored)


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
    if MODE["mode"] == "publish":
        # Publishers alone: events stored / the publishers' wall time (process start included).
        return {
            "handled": stored,
            "lost": 0,
            "events_s": stored / MODE["publish_s"],
            "seconds": MODE["publish_s"],
            "p50_ms": float("nan"),
            "p99_ms": float("nan"),
        }
    if MODE["mode"] == "drain":
        first = None  # the consumer's rate on a backlog: from its start to its last handle
    return {
        "handled": handled,
        "lost": stored - handled,
        "events_s": handled / (end - (first or started)) if handled else 0.0,
        "seconds": end - (first or started),
        "p50_ms": lat[len(lat) // 2] * 1000 if lat else float("nan"),
        "p99_ms": lat[int(len(lat) * 0.99)] * 1000 if lat else float("nan"),
    }


def spawn_and_time(
    variant: str, url: str, n: int, rate: float, per_tx: int
) -> list[subprocess.Popen[bytes]]:
    """The publishers; with ``--mode publish`` or ``drain``, waited for (and timed) first."""
    t0 = time.time()
    pubs = spawn_publishers(variant, url, n, rate, per_tx)
    if MODE["mode"] != "e2e":
        _reap(pubs)
        MODE["publish_s"] = time.time() - t0
    return pubs


def run(variant: str, url: str, n: int, rate: float, per_tx: int) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS naive_events, pgkeel_events, pgkeel_event_consumers")
        conn.execute(NAIVE_DDL)
        conn.execute(pgkeel.events.SCHEMA_SQL)
    if MODE["mode"] == "publish":
        if variant == "pgqueuer":
            asyncio.run(_install_pgqueuer(url))
        elif variant == "procrastinate":
            _install_procrastinate(url)
        elif variant == "pgkeel":
            with pgkeel.Database(url, size_check="off") as db, db.subscribe(TOPIC, "bench"):
                pass
        spawn_and_time(variant, url, n, rate, per_tx)
        return _result([], None, 0.0, 0.0, n)
    if variant == "procrastinate":
        _install_procrastinate(url)
        pubs = spawn_and_time(variant, url, n, rate, per_tx)
        return consume_procrastinate(url, n, pubs)
    if variant == "pgqueuer":
        asyncio.run(_install_pgqueuer(url))
        pubs = spawn_and_time(variant, url, n, rate, per_tx)
        return consume_pgqueuer(url, n, pubs)
    if variant == "pgkeel":
        # Register the consumer before publishing starts (a new one starts after the latest).
        with pgkeel.Database(url, size_check="off") as db, db.subscribe(TOPIC, "bench"):
            pass
        pubs = spawn_and_time(variant, url, n, rate, per_tx)
        return consume_pgkeel(url, n, pubs)
    pubs = spawn_and_time(variant, url, n, rate, per_tx)
    return consume_naive(url, n, pubs)


def _install_procrastinate(url: str) -> None:
    import procrastinate

    logging.getLogger("procrastinate").setLevel(logging.ERROR)  # "App in __main__" notes

    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()[0]:  # type: ignore[index]
            conn.execute("TRUNCATE procrastinate_jobs CASCADE")
            return
    app = procrastinate.App(connector=procrastinate.SyncPsycopgConnector(conninfo=url))
    with app.open():
        app.schema_manager.apply_schema()


async def _install_pgqueuer(url: str) -> None:
    from pgqueuer.queries import Queries

    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    async with conn:
        queries = Queries.from_psycopg_connection(conn)
        if await queries.schema_is_installed():
            await queries.uninstall()
        await queries.install()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--events", type=int, default=100_000, help="events in the max-rate load")
    p.add_argument("--paced", type=int, default=10_000, help="events in the 1,000/s load")
    p.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    p.add_argument("--only", default="pgkeel,naive,pgqueuer,procrastinate")
    p.add_argument("--per-tx", type=int, default=1, help="events per publishing transaction")
    p.add_argument("--mode", choices=["e2e", "publish", "drain"], default="e2e")
    args = p.parse_args()
    MODE["mode"] = args.mode
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
