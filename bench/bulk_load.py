"""Bulk load benchmark: pgkeel ``copy_in`` from plain dicts against the raw drivers, one run.

Every variant loads the same product rows into an empty, unindexed ``products`` table. Peers get
the rows in the shape they want (tuples, JSON wrapped or pre-encoded where the driver needs it);
pgkeel gets plain dicts. Limits: ``psql \\copy`` of the same data as CSV, and server-side
``COPY FROM`` a file. Run: ``python bench/bulk_load.py [--rows N] [--repeat N] [--only a,b]``.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import psycopg2
from pgcopy import CopyManager

import _common as c
import pgkeel

TABLE = "products"
INSERT = "INSERT INTO products (id, name, price, category, tags, metadata, stock, created_at)"


def main() -> None:
    args = c.parser(__doc__ or "", rows=1_000_000, repeat=3).parse_args()
    dicts, tuples, wrapped = c.datasets(args.rows)
    tmp = c.scratch_dir()
    csv_path = tmp / "products.csv"
    c.write_csv(dicts, csv_path)
    res = c.Results(f"Bulk load, {args.rows:,} rows, median of {args.repeat}")
    with c.server() as url:
        db = pgkeel.Database(url, min_size=1, max_size=2, statement_timeout=0)
        variants: list[tuple[str, str, Any]] = [
            ("pgkeel copy_in (dicts)", "pgkeel", lambda: db.copy_in(TABLE, dicts)),
            (
                "pgkeel AsyncDatabase.copy_in (dicts)",
                "pgkeel",
                lambda: asyncio.run(async_pgkeel(url, dicts)),
            ),
            (
                "pgkeel AsyncDatabase(driver='asyncpg').copy_in (dicts)",
                "pgkeel",
                lambda: asyncio.run(async_pgkeel(url, dicts, driver="asyncpg")),
            ),
            ("psycopg 3 binary COPY + set_types", "peer", lambda: psycopg_binary(url, tuples)),
            (
                "asyncpg copy_records_to_table",
                "peer",
                lambda: asyncio.run(asyncpg_copy(url, tuples)),
            ),
            ("psycopg 3 text COPY write_row", "peer", lambda: psycopg_text(url, wrapped)),
            ("psycopg2 copy_expert CSV", "peer", lambda: psycopg2_csv(url, dicts)),
            ("psycopg 3 executemany", "peer", lambda: psycopg_executemany(url, wrapped)),
            ("pgcopy CopyManager", "peer", lambda: pgcopy_copy(url, tuples)),
            ("psql \\copy CSV file", "limit", lambda: psql_copy(url, csv_path)),
            ("server-side COPY FROM file", "limit", lambda: server_copy(url, csv_path)),
        ]
        with db:
            for run in range(args.repeat):
                print(f"run {run + 1}/{args.repeat}", flush=True)
                for name, kind, fn in variants:
                    if not c.selected(args, name):
                        continue
                    c.reset(url, TABLE)
                    c.checkpoint(url)
                    seconds = c.timed(fn)
                    check(url, args.rows)
                    res.add(name, kind, args.rows / seconds)
    res.report()


def check(url: str, n: int) -> None:
    with psycopg.connect(url) as conn:
        got = conn.execute("SELECT count(*) FROM products").fetchone()
    assert got == (n,), f"loaded {got} rows, expected {n}"


async def async_pgkeel(url: str, rows: list[dict[str, Any]], driver: str = "psycopg") -> None:
    async with pgkeel.AsyncDatabase(
        url, min_size=1, max_size=1, statement_timeout=0, driver=driver
    ) as adb:
        await adb.copy_in(TABLE, rows)


def psycopg_binary(url: str, rows: list[tuple[Any, ...]]) -> None:
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        stmt = f"COPY products ({', '.join(c.COLUMNS)}) FROM STDIN (FORMAT BINARY)"
        with cur.copy(stmt) as copy:  # type: ignore[arg-type]
            copy.set_types(list(c.TYPES))
            for r in rows:
                copy.write_row(r)


def psycopg_text(url: str, rows: list[tuple[Any, ...]]) -> None:
    stmt = f"COPY products ({', '.join(c.COLUMNS)}) FROM STDIN"
    with psycopg.connect(url) as conn, conn.cursor() as cur, cur.copy(stmt) as copy:  # type: ignore[arg-type]
        for r in rows:
            copy.write_row(r)


def psycopg_executemany(url: str, rows: list[tuple[Any, ...]]) -> None:
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.executemany(INSERT + " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", rows)


async def asyncpg_copy(url: str, rows: list[tuple[Any, ...]]) -> None:
    conn = await asyncpg.connect(url)
    try:
        # Binary COPY needs a binary codec: jsonb's binary form is a version byte, then the text.
        await conn.set_type_codec(
            "jsonb",
            encoder=lambda v: b"\x01" + json.dumps(v).encode(),
            decoder=lambda b: json.loads(b[1:]),
            schema="pg_catalog",
            format="binary",
        )
        await conn.copy_records_to_table(TABLE, records=rows, columns=list(c.COLUMNS))
    finally:
        await conn.close()


def psycopg2_csv(url: str, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    for r in rows:
        w.writerow(c.csv_record(r))
    buf.seek(0)
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.copy_expert(f"COPY products ({', '.join(c.COLUMNS)}) FROM STDIN CSV", buf)
    finally:
        conn.close()


def pgcopy_copy(url: str, rows: list[tuple[Any, ...]]) -> None:
    conn = psycopg2.connect(url)
    try:
        with conn:
            # pgcopy wants jsonb and text[] elements already encoded to bytes.
            encoded = (
                (*r[:4], [t.encode() for t in r[4]], json.dumps(r[5]).encode(), *r[6:])
                for r in rows
            )
            CopyManager(conn, TABLE, list(c.COLUMNS)).copy(encoded)
    finally:
        conn.close()


def psql_copy(url: str, path: Path) -> None:
    cols = ", ".join(c.COLUMNS)
    subprocess.run(
        [
            "psql",
            url,
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            f"\\copy products ({cols}) FROM '{path}' CSV",
        ],
        check=True,
    )


def server_copy(url: str, path: Path) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(f"COPY products ({', '.join(c.COLUMNS)}) FROM '{path}' CSV")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
