"""Point reads: N concurrent clients doing ``SELECT ... WHERE id = %s`` on a 1M-row table.

pgkeel (sync threads, async tasks; on each driver) side by side with the raw drivers, in one run:
psycopg_pool (sync threads, async tasks), psycopg2 ``ThreadedConnectionPool`` (threads),
asyncpg's pool (tasks) and asyncpg on dedicated connections (its ceiling), and ``pgbench`` with
the same query as the server's limit. Each raw variant is written the way its documentation
shows. With ``--rounds N`` the whole list runs N times, in reversed order every other round,
and the median is reported. Prints queries/s and the ratios the goals are stated in. Uses
``PGKEEL_BENCH_URL`` if set, else starts an embedded server.

    flock /tmp/pgkeel-bench.lock .venv/bin/python bench/point_reads.py [--seconds 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import psycopg

import pgkeel
from pgkeel import embedded

QUERY = "SELECT id, name, price FROM bench_item WHERE id = %s"
QUERY_PG = "SELECT id, name, price FROM bench_item WHERE id = $1"


def setup(url: str, rows: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        have = conn.execute("SELECT to_regclass('bench_item') IS NOT NULL").fetchone()
        if have and have[0]:
            n = conn.execute("SELECT count(*) FROM bench_item").fetchone()
            if n and n[0] == rows:
                return
            conn.execute("DROP TABLE bench_item")
        conn.execute("CREATE TABLE bench_item (id int PRIMARY KEY, name text, price numeric)")
        conn.execute(
            "INSERT INTO bench_item SELECT g, 'item ' || g, g / 100.0 "
            "FROM generate_series(1, %s) g",
            (rows,),
        )
        conn.execute("VACUUM ANALYZE bench_item")


def run_threads(fn: Callable[[int], Any], clients: int, seconds: float, rows: int) -> int:
    counts = [0] * clients
    stop = threading.Event()
    start = threading.Barrier(clients + 1)

    def worker(n: int) -> None:
        rnd = random.Random(n)
        ids = [rnd.randint(1, rows) for _ in range(4096)]
        start.wait()
        i = 0
        while not stop.is_set():
            fn(ids[i & 4095])
            i += 1
        counts[n] = i

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return sum(counts)


async def run_tasks(
    fn: Callable[[int], Awaitable[Any]], clients: int, seconds: float, rows: int
) -> int:
    counts = [0] * clients
    deadline = time.monotonic() + seconds

    async def worker(n: int) -> None:
        rnd = random.Random(n)
        ids = [rnd.randint(1, rows) for _ in range(4096)]
        i = 0
        while time.monotonic() < deadline:
            await fn(ids[i & 4095])
            i += 1
        counts[n] = i

    await asyncio.gather(*(worker(n) for n in range(clients)))
    return sum(counts)


def bench_pgkeel_sync(
    url: str, a: argparse.Namespace, row: type = dict, driver: str = "psycopg"
) -> int:
    with pgkeel.Database(
        url, min_size=a.pool, max_size=a.pool, size_check="off", driver=driver
    ) as db:
        db.fetch_one(QUERY, (1,))
        return run_threads(
            lambda i: db.fetch_one(QUERY, (i,), row=row), a.clients, a.seconds, a.rows
        )


def bench_pgkeel_async(
    url: str, a: argparse.Namespace, row: type = dict, driver: str = "psycopg"
) -> int:
    async def main() -> int:
        async with pgkeel.AsyncDatabase(
            url, min_size=a.pool, max_size=a.pool, size_check="off", driver=driver
        ) as db:
            await db.fetch_one(QUERY, (1,))
            return await run_tasks(
                lambda i: db.fetch_one(QUERY, (i,), row=row), a.clients, a.seconds, a.rows
            )

    return asyncio.run(main())


def bench_psycopg_pool_sync(url: str, a: argparse.Namespace, autocommit: bool = False) -> int:
    from psycopg_pool import ConnectionPool

    kw = {"autocommit": True} if autocommit else None
    with ConnectionPool(url, min_size=a.pool, max_size=a.pool, kwargs=kw, open=True) as pool:
        pool.wait()

        def one(i: int) -> Any:
            with pool.connection() as conn:
                return conn.execute(QUERY, (i,)).fetchone()

        return run_threads(one, a.clients, a.seconds, a.rows)


def bench_psycopg_pool_async(url: str, a: argparse.Namespace, autocommit: bool = False) -> int:
    from psycopg_pool import AsyncConnectionPool

    kw = {"autocommit": True} if autocommit else None

    async def main() -> int:
        async with AsyncConnectionPool(
            url, min_size=a.pool, max_size=a.pool, kwargs=kw, open=False
        ) as pool:
            await pool.wait()

            async def one(i: int) -> Any:
                async with pool.connection() as conn:
                    cur = await conn.execute(QUERY, (i,))
                    return await cur.fetchone()

            return await run_tasks(one, a.clients, a.seconds, a.rows)

    return asyncio.run(main())


def bench_psycopg2_threads(
    url: str, a: argparse.Namespace, autocommit: bool = False, dict_rows: bool = False
) -> int:
    import psycopg2.extras
    import psycopg2.pool

    factory = psycopg2.extras.RealDictCursor if dict_rows else None

    pool = psycopg2.pool.ThreadedConnectionPool(a.pool, a.pool, url)
    if autocommit:
        conns = [pool.getconn() for _ in range(a.pool)]
        for conn in conns:
            conn.autocommit = True
        for conn in conns:
            pool.putconn(conn)
    # ThreadedConnectionPool raises (does not wait) when empty: one connection per client.
    assert a.pool >= a.clients, "psycopg2's pool cannot wait: use --pool >= --clients"

    def one(i: int) -> Any:
        conn = pool.getconn()
        try:
            with conn.cursor(cursor_factory=factory) as cur:
                cur.execute(QUERY, (i,))
                return cur.fetchone()
        finally:
            pool.putconn(conn)

    try:
        return run_threads(one, a.clients, a.seconds, a.rows)
    finally:
        pool.closeall()


def bench_asyncpg_pool(url: str, a: argparse.Namespace) -> int:
    import asyncpg

    async def main() -> int:
        async with asyncpg.create_pool(url, min_size=a.pool, max_size=a.pool) as pool:

            async def one(i: int) -> Any:
                async with pool.acquire() as conn:
                    return await conn.fetchrow(QUERY_PG, i)

            return await run_tasks(one, a.clients, a.seconds, a.rows)

    return asyncio.run(main())


def bench_asyncpg_dedicated(url: str, a: argparse.Namespace) -> int:
    """asyncpg's ceiling: each task owns one connection (no pool at all)."""
    import asyncpg

    async def main() -> int:
        conns = [await asyncpg.connect(url) for _ in range(a.clients)]
        free = list(conns)
        mine: dict[Any, Any] = {}

        async def one(i: int) -> Any:
            task = asyncio.current_task()
            conn = mine.get(task)
            if conn is None:
                conn = mine[task] = free.pop()
            return await conn.fetchrow(QUERY_PG, i)

        try:
            return await run_tasks(one, a.clients, a.seconds, a.rows)
        finally:
            for conn in conns:
                await conn.close()

    return asyncio.run(main())


def bench_pgbench(url: str, a: argparse.Namespace) -> int:
    """The server's limit for this query: pgbench (C, libpq), prepared statements, 2 threads."""
    pgbench = shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench"
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(f"\\set id random(1, {a.rows})\n")
        f.write("SELECT id, name, price FROM bench_item WHERE id = :id;\n")
    try:
        out = subprocess.run(
            [
                pgbench,
                "-n",
                "-M",
                "prepared",
                "-c",
                str(a.clients),
                "-j",
                "2",
                "-T",
                str(max(1, round(a.seconds))),
                "-f",
                f.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(f.name)
    tps = re.search(r"tps = ([0-9.]+)", out)
    assert tps is not None, out
    return round(float(tps.group(1)) * a.seconds)


VARIANTS: dict[str, Callable[[str, argparse.Namespace], int]] = {
    "pgkeel async, asyncpg (tasks)": partial(bench_pgkeel_async, driver="asyncpg"),
    "asyncpg 16 dedicated conns": bench_asyncpg_dedicated,
    "pgbench (server limit)": bench_pgbench,
    "pgkeel sync (threads)": bench_pgkeel_sync,
    "pgkeel async (tasks)": bench_pgkeel_async,
    "psycopg_pool sync (threads)": bench_psycopg_pool_sync,
    "psycopg_pool async (tasks)": bench_psycopg_pool_async,
    "psycopg2 ThreadedConnectionPool": bench_psycopg2_threads,
    "asyncpg pool": bench_asyncpg_pool,
    # pgkeel's sync face on psycopg2, next to psycopg2's pool with dict rows (RealDictCursor,
    # as the catalogue lesson writes it), in its default mode and in autocommit.
    "pgkeel sync on psycopg2 (threads)": partial(bench_pgkeel_sync, driver="psycopg2"),
    "psycopg2 pool + RealDictCursor": partial(bench_psycopg2_threads, dict_rows=True),
    "psycopg2 RealDictCursor, autocommit": partial(
        bench_psycopg2_threads, autocommit=True, dict_rows=True
    ),
    # The raw drivers as documented run BEGIN + SELECT + ROLLBACK per checkout; pgkeel runs
    # single statements in autocommit. These show the raw drivers with the same advantage.
    "psycopg_pool sync, autocommit": partial(bench_psycopg_pool_sync, autocommit=True),
    "psycopg_pool async, autocommit": partial(bench_psycopg_pool_async, autocommit=True),
    "psycopg2 pool, autocommit": partial(bench_psycopg2_threads, autocommit=True),
    # pgkeel returns dicts by default; the raw variants above return tuples.
    "pgkeel sync, row=tuple": partial(bench_pgkeel_sync, row=tuple),
    "pgkeel async, row=tuple": partial(bench_pgkeel_async, row=tuple),
    "pgkeel sync on psycopg2, row=tuple": partial(bench_pgkeel_sync, row=tuple, driver="psycopg2"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per variant (default 10)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--pool", type=int, default=16, help="pool size for every variant")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--only", action="append", help="run variants containing this text")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the list (median)")
    a = parser.parse_args()

    server = None
    url = os.environ.get("PGKEEL_BENCH_URL")
    if not url:
        server = embedded.start(settings={"max_connections": 100})
        url = server.url
    try:
        setup(url, a.rows)
        with psycopg.connect(url) as conn:
            version = conn.info.server_version
        print(
            f"point reads: {a.clients} clients, pool {a.pool}, {a.rows:,} rows, "
            f"{a.seconds:g} s per variant; PostgreSQL {version}, "
            f"Python {platform.python_version()}, psycopg {psycopg.__version__}, "
            f"{os.cpu_count()} CPUs"
        )
        chosen = [n for n in VARIANTS if not a.only or any(o in n for o in a.only)]
        runs: dict[str, list[float]] = {n: [] for n in chosen}
        for r in range(a.rounds):
            for name in chosen if r % 2 == 0 else reversed(chosen):
                qps = VARIANTS[name](url, a) / a.seconds
                runs[name].append(qps)
                print(f"  [{r + 1}] {name:34s} {qps:10,.0f} q/s", flush=True)
        results = {n: statistics.median(v) for n, v in runs.items()}
        if a.rounds > 1:
            print("medians:")
            for name in chosen:
                print(f"  {name:34s} {results[name]:10,.0f} q/s")
        pairs = [
            ("pgkeel async (tasks)", "psycopg_pool async (tasks)"),
            ("pgkeel sync (threads)", "psycopg_pool sync (threads)"),
            ("pgkeel sync (threads)", "psycopg2 ThreadedConnectionPool"),
            ("pgkeel async (tasks)", "asyncpg pool"),
            ("pgkeel async (tasks)", "psycopg_pool async, autocommit"),
            ("pgkeel sync (threads)", "psycopg_pool sync, autocommit"),
            ("pgkeel sync (threads)", "psycopg2 pool, autocommit"),
            ("pgkeel sync, row=tuple", "psycopg_pool sync, autocommit"),
            ("pgkeel async, row=tuple", "psycopg_pool async, autocommit"),
            ("pgkeel async, asyncpg (tasks)", "asyncpg pool"),
            ("pgkeel async, asyncpg (tasks)", "asyncpg 16 dedicated conns"),
            ("pgkeel async, asyncpg (tasks)", "psycopg2 ThreadedConnectionPool"),
            ("pgkeel async, asyncpg (tasks)", "pgbench (server limit)"),
            ("pgkeel sync on psycopg2 (threads)", "psycopg2 pool + RealDictCursor"),
            ("pgkeel sync on psycopg2 (threads)", "psycopg2 RealDictCursor, autocommit"),
            ("pgkeel sync on psycopg2 (threads)", "psycopg2 ThreadedConnectionPool"),
            ("pgkeel sync on psycopg2 (threads)", "psycopg2 pool, autocommit"),
            ("pgkeel sync on psycopg2, row=tuple", "psycopg2 pool, autocommit"),
            ("pgkeel sync on psycopg2 (threads)", "pgkeel sync (threads)"),
        ]
        # pgkeel's fastest face against the fastest raw Python client measured in this run.
        raw = {k: v for k, v in results.items() if not k.startswith("pgkeel")}
        ours = {k: v for k, v in results.items() if k.startswith("pgkeel")}
        if raw and ours:
            best_raw = max(raw, key=raw.__getitem__)
            best_ours = max(ours, key=ours.__getitem__)
            print(
                f"  fastest pgkeel ({best_ours}) / fastest raw ({best_raw}): "
                f"{ours[best_ours] / raw[best_raw]:.2f}x"
            )
        for ours, theirs in pairs:
            if ours in results and theirs in results:
                print(f"  {ours} / {theirs}: {results[ours] / results[theirs]:.2f}x")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
