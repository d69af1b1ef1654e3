"""Scale-out: point reads and small transactions through PgBouncer (transaction mode) and
direct, pgkeel vs raw psycopg_pool configured as psycopg documents for PgBouncer
(``prepare_threshold=None``), 64 async clients; and the cost of read routing per query.

Starts an embedded primary, a streaming standby of it and a real PgBouncer (``/usr/sbin/
pgbouncer``, transaction mode, scram) in front of the primary. Variants run in interleaved rounds
(order reversed every round); the median q/s of each is kept and the ratios are medians of the
per-round ratios. Routing overhead: the same reads on the standby, once through a Database whose
URL is the standby (no routing) and once through a Database on the primary with
``replicas=[standby]`` (every read routed to the standby): the difference per query is what
routing costs.

    flock /tmp/pgkeel-bench.lock .venv/bin/python bench/scale.py [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg_pool import AsyncConnectionPool

import pgkeel
import pgkeel.config
from pgkeel import embedded

QUERY = "SELECT id, name, price FROM bench_item WHERE id = %s"
UPDATE = "UPDATE bench_item SET price = price + 1 WHERE id = %s"


def setup(url: str, rows: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_item")
        conn.execute("CREATE TABLE bench_item (id int PRIMARY KEY, name text, price numeric)")
        conn.execute(
            "INSERT INTO bench_item SELECT g, 'item ' || g, g / 100.0 "
            "FROM generate_series(1, %s) g",
            (rows,),
        )
        conn.execute("VACUUM ANALYZE bench_item")
        # The recipe behind a transaction pooler: the timeouts as role settings, so that pgkeel
        # sends nothing per transaction (the "SET LOCAL" variant measures the fallback).
        for name, value in pgkeel.config.SERVER_SETTINGS_DEFAULTS.items():
            conn.execute(f"ALTER ROLE postgres SET {name} = '{value}'")  # type: ignore[arg-type]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def pgbouncer(server: embedded.EmbeddedServer, pool_size: int) -> Iterator[str]:
    """A PgBouncer in transaction mode in front of ``server``; yields its URL."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    work = Path(tempfile.mkdtemp(prefix="pgkeel-bench-pgbouncer-"))
    work.chmod(0o755)
    port = _free_port()
    conf = {
        "listen_addr": "127.0.0.1", "listen_port": port, "unix_socket_dir": "",
        "auth_type": "scram-sha-256", "auth_file": str(work / "userlist.txt"),
        "pool_mode": "transaction", "default_pool_size": pool_size, "max_client_conn": 1000,
        "logfile": "", "pidfile": "",
    }  # fmt: skip
    lines = ["[databases]", f"* = host=127.0.0.1 port={server.port}", "[pgbouncer]"]
    lines += [f"{k} = {v}" for k, v in conf.items()]
    (work / "pgbouncer.ini").write_text("\n".join(lines) + "\n")
    (work / "userlist.txt").write_text(f'"postgres" "{server.password}"\n')
    for name in ("pgbouncer.ini", "userlist.txt"):
        (work / name).chmod(0o644)
    extra: dict[str, Any] = {"user": "nobody", "group": "nogroup"} if os.geteuid() == 0 else {}
    proc = subprocess.Popen(
        [binary, str(work / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **extra,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("pgbouncer did not start") from None
                time.sleep(0.05)
        password = quote(server.password, safe="")
        yield f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres?sslmode=disable"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


async def run_tasks(fn: Callable[[int], Awaitable[Any]], a: argparse.Namespace) -> float:
    counts = [0] * a.clients
    deadline = time.monotonic() + a.seconds

    async def worker(n: int) -> None:
        rnd = random.Random(n)
        ids = [rnd.randint(1, a.rows) for _ in range(4096)]
        i = 0
        while time.monotonic() < deadline:
            await fn(ids[i & 4095])
            i += 1
        counts[n] = i

    t0 = time.monotonic()
    await asyncio.gather(*(worker(n) for n in range(a.clients)))
    return sum(counts) / (time.monotonic() - t0)


async def raw_pool(url: str, a: argparse.Namespace, kind: str) -> float:
    """psycopg_pool as psycopg documents it for PgBouncer: prepare_threshold=None."""
    async with AsyncConnectionPool(
        url,
        min_size=a.pool,
        max_size=a.pool,
        kwargs={"prepare_threshold": None, "autocommit": True},
        open=False,
    ) as pool:
        await pool.wait()

        async def read(i: int) -> Any:
            async with pool.connection() as conn:
                cur = await conn.execute(QUERY, (i,))
                return await cur.fetchone()

        async def tx(i: int) -> Any:
            async with pool.connection() as conn, conn.transaction():
                await conn.execute(UPDATE, (i,))
                cur = await conn.execute(QUERY, (i,))
                return await cur.fetchone()

        return await run_tasks(read if kind == "read" else tx, a)


async def pgkeel_db(url: str, a: argparse.Namespace, kind: str, **options: Any) -> float:
    async with pgkeel.AsyncDatabase(
        url, min_size=a.pool, max_size=a.pool, size_check="off", **options
    ) as db:

        async def read(i: int) -> Any:
            return await db.fetch_one(QUERY, (i,))

        async def tx(i: int) -> Any:
            async with db.transaction() as t:
                await t.execute(UPDATE, (i,))
                return await t.fetch_one(QUERY, (i,))

        await db.fetch_one(QUERY, (1,))
        return await run_tasks(read if kind == "read" else tx, a)


async def latency(url: str, a: argparse.Namespace, **options: Any) -> float:
    """Mean seconds of one point read, one client, sequential (no queueing)."""
    async with pgkeel.AsyncDatabase(url, min_size=1, max_size=1, size_check="off", **options) as db:
        ids = [random.Random(7).randint(1, a.rows) for _ in range(a.sequential)]
        for i in ids[:100]:
            await db.fetch_one(QUERY, (i,))
        t0 = time.perf_counter()
        for i in ids:
            await db.fetch_one(QUERY, (i,))
        return (time.perf_counter() - t0) / len(ids)


def routing_cost(n: int = 200_000) -> float:
    """Mean seconds the router adds to a read: pick() and the bookkeeping after it."""
    from pgkeel.scale._router import Node, Router

    router = Router([Node(0, "r0", None), Node(1, "r1", None)], 1.0)
    now = time.monotonic()
    router.primary_sample(now, 100, 1)
    for node in router.nodes:
        router.replica_sample(
            node, t=now, in_recovery=True, replay_lsn=100, own_lag=None, timeline=None
        )
    pick, served = router.pick, router.served_by_replica
    t0 = time.perf_counter()
    for _ in range(n):
        pick(QUERY)
        served(QUERY)
    return (time.perf_counter() - t0) / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--pool", type=int, default=16, help="pool size (and PgBouncer's)")
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--sequential", type=int, default=5000, help="reads for the latency test")
    a = p.parse_args()
    with (
        embedded.start(settings={"max_connections": 200}) as primary,
        embedded.start(standby_of=primary) as standby,
    ):
        setup(primary.url, a.rows)
        time.sleep(1)  # the standby replays the table
        with pgbouncer(primary, a.pool) as bouncer:
            variants: dict[str, Callable[[], Awaitable[float]]] = {
                "pgbouncer read: psycopg_pool": lambda: raw_pool(bouncer, a, "read"),
                "pgbouncer read: pgkeel": lambda: pgkeel_db(bouncer, a, "read", pooler="pgbouncer"),
                "pgbouncer tx: psycopg_pool": lambda: raw_pool(bouncer, a, "tx"),
                "pgbouncer tx: pgkeel": lambda: pgkeel_db(bouncer, a, "tx", pooler="pgbouncer"),
                "pgbouncer tx: pgkeel, SET LOCAL": lambda: pgkeel_db(
                    bouncer, a, "tx", pooler="pgbouncer", statement_timeout=29
                ),
                "direct read: psycopg_pool": lambda: raw_pool(primary.url, a, "read"),
                "direct read: pgkeel": lambda: pgkeel_db(primary.url, a, "read"),
                "standby read: pgkeel, no routing": lambda: pgkeel_db(standby.url, a, "read"),
                "standby read: pgkeel, routed": lambda: pgkeel_db(
                    primary.url, a, "read", replicas=[standby.url], max_replica_lag=30
                ),
            }
            lat: dict[str, list[float]] = {"no routing": [], "routed": []}
            for _ in range(a.rounds):
                lat["no routing"].append(asyncio.run(latency(standby.url, a)))
                lat["routed"].append(
                    asyncio.run(latency(primary.url, a, replicas=[standby.url], max_replica_lag=30))
                )
            router_s = statistics.median(routing_cost() for _ in range(3))
            results: dict[str, list[float]] = {name: [] for name in variants}
            names = list(variants)
            for r in range(a.rounds):
                for name in names if r % 2 == 0 else reversed(names):
                    qps = asyncio.run(variants[name]())
                    results[name].append(qps)
                    print(f"round {r + 1} {name}: {qps:,.0f} q/s", flush=True)

    print(
        f"\n{a.clients} async clients, pool {a.pool}, PgBouncer default_pool_size {a.pool}, "
        f"{a.rows:,} rows, {a.seconds:g} s x {a.rounds} rounds; Python "
        f"{platform.python_version()}, psycopg {psycopg.__version__}, PostgreSQL "
        f"{primary.version}\n"
    )
    print("| variant | median q/s | per-round q/s |")
    print("|---|---:|---|")
    for name, values in results.items():
        rounds = ", ".join(f"{v:,.0f}" for v in values)
        print(f"| {name} | {statistics.median(values):,.0f} | {rounds} |")

    def ratio(x: str, y: str) -> float:
        return statistics.median(a_ / b_ for a_, b_ in zip(results[x], results[y], strict=True))

    print()
    for kind in ("read", "tx"):
        r = ratio(f"pgbouncer {kind}: pgkeel", f"pgbouncer {kind}: psycopg_pool")
        verdict = "met" if r >= 1.0 else "missed"
        print(f"pgbouncer {kind}: pgkeel / psycopg_pool = {r:.2f}x (goal >= 1.0x: {verdict})")
    direct = ratio("direct read: pgkeel", "direct read: psycopg_pool")
    print(f"direct read: pgkeel / psycopg_pool = {direct:.2f}x")
    plain_lat = statistics.median(lat["no routing"])
    routed_lat = statistics.median(lat["routed"])
    print(
        f"point read on the standby, 1 client: {plain_lat * 1e6:.0f} us without routing, "
        f"{routed_lat * 1e6:.0f} us routed ({(routed_lat / plain_lat - 1) * 100:+.1f} %); "
        f"the router itself: {router_s * 1e6:.2f} us per read = "
        f"{router_s / plain_lat * 100:.2f} % of a point read (goal < 5 %: "
        f"{'met' if router_s / plain_lat < 0.05 else 'missed'})"
    )
    overhead = 1 - ratio("standby read: pgkeel, routed", "standby read: pgkeel, no routing")
    print(
        f"64 clients: routed / not routed throughput = {1 - overhead:.2f}x "
        "(on 2 shared cores the routed run also carries the monitor and a second pool)"
    )


if __name__ == "__main__":
    main()
