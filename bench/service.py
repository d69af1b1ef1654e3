"""The catalogue service under wrk: GET a product by id and search by tag, pgkeel's service
side by side with the same endpoints over raw psycopg_pool and raw asyncpg (bench/_service_apps.py).

Each variant runs under uvicorn with one worker (a subprocess), pools of 10 connections; wrk
drives 32 connections for ``--seconds`` per variant and endpoint (default 20), on the same
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
            results: dict[tuple[str, str], tuple[float, float]] = {}
            for variant in variants:
                port = _free_port()
                proc = _serve(variant, url, port)
                try:
                    base = f"http://127.0.0.1:{port}"
                    _wrk(base + "/api/products?tag=eco", 2, None)  # warm-up
                    results["by id", variant] = _wrk(base, args.seconds, str(script))
                    results["by tag", variant] = _wrk(
                        base + "/api/products?tag=gift&limit=20", args.seconds, None
                    )
                finally:
                    proc.terminate()
                    proc.wait(30)
    finally:
        if server is not None:
            server.stop()
    print(f"\nwrk -t1 -c32 -d{args.seconds}s, uvicorn 1 worker, pool 10, 10,000 products\n")
    print("| endpoint | variant | requests/s | p99 ms | pgkeel / best raw (req/s) |")
    print("|---|---|---:|---:|---:|")
    for endpoint in ("by id", "by tag"):
        raw = [results[endpoint, v][0] for v in variants if v != "pgkeel"]
        for v in variants:
            rps, p99 = results[endpoint, v]
            ratio = f"{rps / max(raw):.2f}x" if v == "pgkeel" and raw else ""
            print(f"| {endpoint} | {v} | {rps:,.0f} | {p99:.1f} | {ratio} |")


if __name__ == "__main__":
    main()
