"""The catalogue service under wrk: GET a product by id and search by tag, pgkeel's service
side by side with the same endpoints over raw psycopg_pool and raw asyncpg (bench/_service_apps.py).

Each variant runs under uvicorn with one worker (a subprocess), pools of 10 connections; wrk
drives 32 connections for ``--seconds`` per variant and endpoint (default 20, split into
``--rounds`` interleaved rounds, default 4 of 5 s; the median round is reported), on the same
10,000-product catalogue. Prints requests/s, p99 latency, and pgkeel's ratio to the best raw
variant. Needs the ``wrk`` binary (Debian package). Uses ``PGKEEL_BENCH_URL`` if set, else starts
an embedded server.

    flock /tmp/pgkeel-bench.lock .venv/bin/python bench/service.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from examples.catalogue.app import MIGRATIONS  # noqa: E402
from examples.catalogue.sample import COLUMNS, products  # noqa: E402

import pgkeel  # noqa: E402
import pgkeel.migrate  # noqa: E402
from pgkeel import embedded  # noqa: E402

VARIANTS = ("pgkeel", "psycopg_pool", "asyncpg")
LUA = """
local ids = {}
for line in io.lines("%s") do ids[#ids + 1] = line end
math.randomseed(42)
request = function()
  return wrk.format("GET", "/api/products/" .. ids[math.random(#ids)])
end
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _prepare(url: str) -> list[str]:
    await asyncio.to_thread(pgkeel.migrate.up, url, MIGRATIONS)
    async with pgkeel.AsyncDatabase(url, min_size=1, max_size=2) as db:
        if await db.fetch_val("SELECT count(*) FROM product") != 10_000:
            await db.execute("TRUNCATE product")
            await db.copy_in("product", products(10_000), columns=COLUMNS)
            await db.execute("ANALYZE product")
        rows = await db.fetch_all("SELECT id::text AS id FROM product ORDER BY sku")
    return [r["id"] for r in rows]


def _serve(variant: str, url: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BENCH_VARIANT": variant, "DATABASE_URL": url}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "_service_apps:make",
            "--app-dir",
            str(ROOT / "bench"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/products?tag=eco") as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"{variant}: uvicorn did not start")
        time.sleep(0.1)


def _wrk(url: str, seconds: int, script: str | None) -> tuple[float, float]:
    cmd = ["wrk", "-t1", "-c32", f"-d{seconds}s", "--latency"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    ms = float(p99) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"wrk saw {errors.group(1)} error responses:\n{out}")
    return rps, ms


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=int, default=20, help="wrk duration per variant (20)")
    p.add_argument("--rounds", type=int, default=4, help="interleaved rounds (4)")
    p.add_argument("--only", default="", help="comma-separated variants")
    args = p.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    variants = [v for v in VARIANTS if not args.only or v in args.only.split(",")]
    url = os.environ.get("PGKEEL_BENCH_URL")
    server = None
    if not url:
        server = embedded.start(settings={"max_connections": 100})
        url = server.url
    try:
        ids = asyncio.run(_prepare(url))
        with tempfile.TemporaryDirectory() as tmp:
            id_file = Path(tmp) / "ids.txt"
            id_file.write_text("\n".join(ids) + "\n")
            script = Path(tmp) / "by_id.lua"
            script.write_text(LUA % id_file)
            samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
            ports = {v: _free_port() for v in variants}
            procs = {v: _serve(v, url, ports[v]) for v in variants}
            try:
                bases = {v: f"http://127.0.0.1:{ports[v]}" for v in variants}
                for v in variants:
                    _wrk(bases[v] + "/api/products?tag=eco", 2, None)  # warm-up
                # Interleaved rounds: load from other work on the machine hits every variant
                # alike; the median of the rounds is reported.
                for _ in range(args.rounds):
                    for v in variants:
                        samples.setdefault(("by id", v), []).append(
                            _wrk(bases[v], args.seconds // args.rounds, str(script))
                        )
                        samples.setdefault(("by tag", v), []).append(
                            _wrk(
                                bases[v] + "/api/products?tag=gift&limit=20",
                                args.seconds // args.rounds,
                                None,
                            )
                        )
            finally:
                for proc in procs.values():
                    proc.terminate()
                    proc.wait(30)
    finally:
        if server is not None:
            server.stop()
    each = args.seconds // args.rounds
    print(
        f"\nwrk -t1 -c32, {args.rounds} interleaved rounds of {each} s per variant and endpoint"
        f" ({each * args.rounds} s in all), uvicorn 1 worker, pool 10, 10,000 products;"
        " medians of the rounds\n"
    )
    print("| endpoint | variant | requests/s | p99 ms | rounds (req/s) | pgkeel / best raw |")
    print("|---|---|---:|---:|---|---:|")
    for endpoint in ("by id", "by tag"):
        med = {
            v: (
                statistics.median(r for r, _ in samples[endpoint, v]),
                statistics.median(p for _, p in samples[endpoint, v]),
            )
            for v in variants
        }
        raw = [med[v][0] for v in variants if v != "pgkeel"]
        for v in variants:
            rps, p99 = med[v]
            ratio = f"{rps / max(raw):.2f}x" if v == "pgkeel" and raw else ""
            runs = ", ".join(f"{r:,.0f}" for r, _ in samples[endpoint, v])
            print(f"| {endpoint} | {v} | {rps:,.0f} | {p99:.1f} | {runs} | {ratio} |")


if __name__ == "__main__":
    main()
