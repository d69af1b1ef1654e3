"""What the bulk, stream and upsert benchmarks share: the server, the data, timing and output.

The data is the guides' product catalogue: ``products(id uuid, name text, price numeric(10,2),
category text, tags text[], metadata jsonb, stock int, created_at timestamptz)``, generated
deterministically so every variant loads the same rows.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import csv
import datetime as dt
import json
import os
import random
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from pgkeel import embedded

COLUMNS = ("id", "name", "price", "category", "tags", "metadata", "stock", "created_at")
TYPES = ("uuid", "text", "numeric", "text", "text[]", "jsonb", "int4", "timestamptz")
DDL = """
CREATE TABLE {name} (
    id uuid {pk}, name text, price numeric(10, 2), category text, tags text[],
    metadata jsonb, stock int, created_at timestamptz
)
"""
CATEGORIES = ["tools", "garden", "kitchen", "toys", "books", "music", "sports", "office"]
TAGS = ["new", "sale", "eco", "gift", "bulk", "premium", "clearance", "imported"]


def parser(description: str, rows: int, repeat: int) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--rows", type=int, default=rows, help=f"rows per run (default {rows:,})")
    p.add_argument("--repeat", type=int, default=repeat, help="runs per variant; median is kept")
    p.add_argument("--only", default="", help="comma-separated variant names to run")
    return p


@contextlib.contextmanager
def server() -> Iterator[str]:
    """A URL: ``PGKEEL_BENCH_URL`` if set, else an embedded server started for the run."""
    url = os.environ.get("PGKEEL_BENCH_URL")
    if url:
        yield url
        return
    with embedded.start() as srv:
        yield srv.url


def make_rows(n: int, seed: int = 42, start: int = 0) -> list[dict[str, Any]]:
    """``n`` product rows as plain dicts (what applications hold), the same for a given seed."""
    rnd = random.Random(seed)
    base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    rows = []
    for i in range(start, start + n):
        rows.append(
            {
                "id": uuid.UUID(int=rnd.getrandbits(128), version=4),
                "name": f"Product {i} {rnd.choice(TAGS)}",
                "price": Decimal(rnd.randrange(100, 100_000)) / 100,
                "category": rnd.choice(CATEGORIES),
                "tags": rnd.sample(TAGS, rnd.randrange(0, 4)),
                "metadata": {"color": rnd.choice(["red", "blue", "green"]), "weight": i % 97},
                "stock": rnd.randrange(0, 1000),
                "created_at": base + dt.timedelta(seconds=i),
            }
        )
    return rows


def datasets(n: int) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The same ``n`` rows as dicts (pgkeel's input), tuples, and tuples with the jsonb value
    wrapped in ``Jsonb`` (what psycopg's executemany needs)."""
    print(f"generating {n:,} rows...", flush=True)
    dicts = make_rows(n)
    tuples = as_tuples(dicts)
    wrapped = [(*t[:5], Jsonb(t[5]), *t[6:]) for t in tuples]
    return dicts, tuples, wrapped


def scratch_dir() -> Path:
    """A directory for the run's CSV files, readable by the server's user, removed at exit."""
    path = Path(tempfile.mkdtemp(prefix="pgkeel-bench-"))
    path.chmod(0o755)
    atexit.register(shutil.rmtree, path, True)
    return path


def as_tuples(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [tuple(r[c] for c in COLUMNS) for r in rows]


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """The rows as PostgreSQL-readable CSV (arrays and JSON in their text forms)."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        for r in rows:
            w.writerow(csv_record(r))
    path.chmod(0o644)


def csv_record(r: dict[str, Any]) -> list[Any]:
    tags = "{" + ",".join(f'"{t}"' for t in r["tags"]) + "}"
    return [
        r["id"],
        r["name"],
        r["price"],
        r["category"],
        tags,
        json.dumps(r["metadata"]),
        r["stock"],
        r["created_at"].isoformat(),
    ]


def reset(url: str, name: str, *, pk: bool = False) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name}")
        conn.execute(DDL.format(name=name, pk="PRIMARY KEY" if pk else ""))


def checkpoint(url: str) -> None:
    """Flush dirty buffers between runs so one run's writes do not slow the next one down."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


class Results:
    """Collects each variant's runs and prints the table with pgkeel's ratios."""

    def __init__(self, title: str, unit: str = "rows/s") -> None:
        self.title = title
        self.unit = unit
        self.runs: dict[str, list[float]] = {}
        self.kinds: dict[str, str] = {}
        self.extra: dict[str, str] = {}

    def add(self, name: str, kind: str, rate: float, extra: str = "") -> None:
        self.runs.setdefault(name, []).append(rate)
        self.kinds[name] = kind
        if extra:
            self.extra[name] = extra
        print(f"  {name:<48} {rate:>10,.0f} {self.unit} {extra}", flush=True)

    def median(self, name: str) -> float:
        return statistics.median(self.runs[name])

    def report(self) -> str:
        lines = [f"{self.title}", "", f"| variant | kind | median {self.unit} | runs | note |"]
        lines.append("|---|---|---:|---|---|")
        order = sorted(self.runs, key=self.median, reverse=True)
        for name in order:
            runs = ", ".join(f"{r:,.0f}" for r in self.runs[name])
            lines.append(
                f"| {name} | {self.kinds[name]} | {self.median(name):,.0f} | {runs} |"
                f" {self.extra.get(name, '')} |"
            )
        peers = [n for n in self.runs if self.kinds[n] == "peer"]
        limits = [n for n in self.runs if self.kinds[n] == "limit"]
        for ours in (n for n in order if self.kinds[n] == "pgkeel"):
            if peers:
                best = max(peers, key=self.median)
                lines.append(
                    f"\n{ours} / best peer ({best}): {self.median(ours) / self.median(best):.2f}x"
                )
            for lim in limits:
                lines.append(f"{ours} / limit ({lim}): {self.median(ours) / self.median(lim):.2f}x")
        text = "\n".join(lines)
        print("\n" + text, flush=True)
        return text


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def selected(args: argparse.Namespace, name: str) -> bool:
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    return not only or any(o in name for o in only)
