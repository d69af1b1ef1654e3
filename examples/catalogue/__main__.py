"""``python -m examples.catalogue`` (``make demo``): start (or reuse) the development server,
bring the schema up to date, load 10,000 sample products the first time, and serve the
catalogue on http://127.0.0.1:8000 until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

import uvicorn
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import pgkeel
import pgkeel.migrate
from pgkeel import embedded

from .app import MIGRATIONS, create_app
from .sample import COLUMNS, products


async def _load(url: str, count: int) -> int:
    async with pgkeel.AsyncDatabase(url, min_size=1, max_size=2) as db:
        have = await db.fetch_val("SELECT count(*) FROM product")
        if have:
            print(f"the catalogue already holds {have} products: reusing them", file=sys.stderr)
            return int(have)
        with Progress(
            TextColumn("loading sample products"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=False,
        ) as bar:
            task = bar.add_task("load", total=count)
            done = await db.copy_in(
                "product",
                products(count),
                columns=COLUMNS,
                progress=lambda n: bar.update(task, completed=n),
            )
        await db.execute("ANALYZE product")
        return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.catalogue")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--products", type=int, default=10_000)
    args = parser.parse_args(argv)
    t0 = time.monotonic()

    where = embedded.dev_data_dir()
    server = embedded.running(where)
    started = server is None
    if server is None:
        print(f"starting the development server in {where}", file=sys.stderr)
        server = embedded.start(where)
    else:
        print(f"reusing the development server on port {server.port}", file=sys.stderr)
    try:
        url = server.url
        for applied in pgkeel.migrate.up(url, MIGRATIONS):
            print(f"migrated: {applied}", file=sys.stderr)
        asyncio.run(_load(url, args.products))
        base = f"http://{args.host}:{args.port}"
        print(
            f"\n  page:    {base}/\n  API:     {base}/docs\n  metrics: {base}/metrics\n"
            f"\n(ready {time.monotonic() - t0:.1f} s after start; Ctrl-C stops the service"
            f"{' and the server' if started else ''})\n",
            file=sys.stderr,
        )
        uvicorn.run(
            create_app(url, migrate=False),
            host=args.host,
            port=args.port,
            log_level="warning",
        )
    finally:
        if started:
            server.stop()
            print("stopped the development server (its data stays)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
