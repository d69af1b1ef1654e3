"""Stream benchmark: reading a big result with bounded memory, pgkeel against the raw drivers.

Every variant reads all the rows of a 1M-row ``products`` table (batches of 10,000 for
everyone) and touches each row; each runs in its own process, so its peak RSS is its own. The
peers use server-side cursors; pgkeel's ``stream`` reads a query without parameters with
``COPY (query) TO STDOUT`` and one with parameters with a cursor (both measured). Limit: raw
``COPY TO STDOUT`` (bytes, no row parsing). Run:
``python bench/stream.py [--rows N] [--repeat N] [--only a,b]``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import psycopg2

import _common as c
import pgkeel

QUERY = "SELECT * FROM products"
QUERY_PARAM = "SELECT * FROM products WHERE stock >= %s"  # every row: stock is 0..999
BATCH = 10_000


def pgkeel_sync(url: str) -> int:
    with pgkeel.Database(url, min_size=1, max_size=1, statement_timeout=0) as db:
        n = 0
        for row in db.stream(QUERY, batch_size=BATCH):
            n += row["stock"] >= 0
        return n


def pgkeel_params(url: str) -> int:
    # A bound parameter keeps the stream on a server-side cursor (COPY takes no parameters).
    with pgkeel.Database(url, min_size=1, max_size=1, statement_timeout=0) as db:
        n = 0
        for row in db.stream(QUERY_PARAM, (0,), batch_size=BATCH):
            n += row["stock"] >= 0
        return n


def pgkeel_async(url: str, driver: str = "psycopg") -> int:
    async def run() -> int:
        async with pgkeel.AsyncDatabase(
            url, min_size=1, max_size=1, statement_timeout=0, driver=driver
        ) as adb:
            n = 0
            async for row in adb.stream(QUERY, batch_size=BATCH):
                n += row["stock"] >= 0
            return n

    return asyncio.run(run())


def asyncpg_cursor(url: str) -> int:
    async def run() -> int:
        conn = await asyncpg.connect(url)
        await conn.set_type_codec(
            "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )
        n = 0
        async with conn.transaction():
            async for row in conn.cursor(QUERY, prefetch=BATCH):
                n += row["stock"] >= 0
        await conn.close()
        return n

    return asyncio.run(run())


def psycopg2_named(url: str) -> int:
    conn = psycopg2.connect(url)
    with conn, conn.cursor("bench") as cur:
        cur.itersize = BATCH
        cur.execute(QUERY)
        n = 0
        for row in cur:
            n += row[6] >= 0
    conn.close()
    return n


def psycopg_named(url: str) -> int:
    with psycopg.connect(url) as conn, conn.cursor("bench") as cur:
        cur.itersize = BATCH
        cur.execute(QUERY)
        n = 0
        for row in cur:
            n += row[6] >= 0
        return n


def copy_to_stdout(url: str) -> int:
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        n = 0
        with cur.copy("COPY products TO STDOUT") as copy:
            for data in copy:
                n += len(data) > 0
        return n


VARIANTS: dict[str, tuple[str, Any]] = {
    "pgkeel stream (dict rows)": ("pgkeel", pgkeel_sync),
    "pgkeel AsyncDatabase.stream (dict rows)": ("pgkeel", pgkeel_async),
    "pgkeel stream with a parameter (cursor, dict rows)": ("pgkeel", pgkeel_params),
    "pgkeel AsyncDatabase(driver='asyncpg').stream (dict rows)": (
        "pgkeel",
        partial(pgkeel_async, driver="asyncpg"),
    ),
    "asyncpg cursor (Record)": ("peer", asyncpg_cursor),
    "psycopg2 named cursor (tuples)": ("peer", psycopg2_named),
    "psycopg 3 named cursor (tuples)": ("peer", psycopg_named),
    "raw COPY TO STDOUT (bytes)": ("limit", copy_to_stdout),
}


def child(name: str, url: str, rows: int) -> None:
    """Run one variant in this process and print its rate and peak RSS as JSON."""
    start = time.perf_counter()
    n = VARIANTS[name][1](url)
    seconds = time.perf_counter() - start
    assert n == rows, f"{name} read {n} rows, expected {rows}"
    # Not ru_maxrss: it survives exec, so it would report the parent's peak.
    peak_mb = peak_rss_mb()
    print(json.dumps({"rate": rows / seconds, "peak_mb": peak_mb}))


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM, reset at exec), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    p = c.parser(__doc__ or "", rows=1_000_000, repeat=3)
    p.add_argument("--child", help=argparse_hidden())
    p.add_argument("--url", help=argparse_hidden())
    args = p.parse_args()
    if args.child:
        child(args.child, args.url, args.rows)
        return
    res = c.Results(f"Stream, {args.rows:,} rows, median of {args.repeat}")
    with c.server() as url:
        c.reset(url, "products")
        print(f"loading {args.rows:,} rows...", flush=True)
        with pgkeel.Database(url, min_size=1, max_size=1, statement_timeout=0) as db:
            for start in range(0, args.rows, 250_000):
                chunk = c.make_rows(min(250_000, args.rows - start), seed=start, start=start)
                db.copy_in("products", chunk)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE products")
        for run in range(args.repeat):
            print(f"run {run + 1}/{args.repeat}", flush=True)
            for name, (kind, _) in VARIANTS.items():
                if not c.selected(args, name):
                    continue
                cmd = [sys.executable, __file__, "--child", name, "--url", url]
                out = subprocess.run(
                    [*cmd, "--rows", str(args.rows)], check=True, capture_output=True, text=True
                ).stdout
                figures = json.loads(out.strip().splitlines()[-1])
                res.add(name, kind, figures["rate"], f"peak RSS {figures['peak_mb']:.0f} MB")
    res.report()


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
