"""Upsert benchmark: 1M rows into a keyed table already holding 500k of them (50% conflicts).

pgkeel ``upsert`` from plain dicts against the raw drivers' usual ways, in one run. Limit:
server-side ``COPY`` from a file into the staging table, then the same ``INSERT ... ON CONFLICT``.
Before each run the table is reset to the same 500k rows (untimed), after one untimed warm-up
run of the limit. Run:
``python bench/upsert.py [--rows N] [--repeat N] [--only a,b]``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import psycopg2
import psycopg2.extras

import _common as c
import pgkeel

TABLE = "products"
COLS = ", ".join(c.COLUMNS)
UPDATE = ", ".join(f"{col} = EXCLUDED.{col}" for col in c.COLUMNS[1:])
MERGE = (
    f"INSERT INTO products ({COLS}) SELECT {COLS} FROM stage"
    f" ON CONFLICT (id) DO UPDATE SET {UPDATE}"
)
INSERT = f"INSERT INTO products ({COLS}) VALUES %s ON CONFLICT (id) DO UPDATE SET {UPDATE}"
STAGE = f"CREATE TEMP TABLE stage ON COMMIT DROP AS SELECT {COLS} FROM products WITH NO DATA"


def main() -> None:
    args = c.parser(__doc__ or "", rows=1_000_000, repeat=3).parse_args()
    dicts, tuples, wrapped = c.datasets(args.rows)
    tmp = c.scratch_dir()
    half, full = tmp / "half.csv", tmp / "full.csv"
    c.write_csv(dicts[: args.rows // 2], half)
    c.write_csv(dicts, full)
    res = c.Results(f"Upsert, {args.rows:,} rows into {args.rows // 2:,} (50% conflicts)")
    with c.server() as url:
        db = pgkeel.Database(url, min_size=1, max_size=2, statement_timeout=0)
        variants: list[tuple[str, str, Any]] = [
            ("pgkeel upsert (dicts)", "pgkeel", lambda: db.upsert(TABLE, dicts, key="id")),
            (
                "pgkeel AsyncDatabase(driver='asyncpg').upsert (dicts)",
                "pgkeel",
                lambda: asyncio.run(asyncpg_pgkeel(url, dicts)),
            ),
            ("psycopg 3 binary COPY to temp + INSERT", "peer", lambda: psycopg_stage(url, tuples)),
            ("psycopg 3 executemany", "peer", lambda: psycopg_many(url, wrapped)),
            ("asyncpg executemany", "peer", lambda: asyncio.run(asyncpg_many(url, tuples))),
            ("psycopg2 execute_values", "peer", lambda: psycopg2_values(url, wrapped)),
            ("server COPY file to temp + INSERT", "limit", lambda: server_stage(url, full)),
        ]
        with db:
            # One untimed run first: otherwise whichever variant comes first pays for the server's
            # cold caches right after start (seen as pgkeel's lowest figure, always its first run).
            prepare(url, half)
            server_stage(url, full)
            for run in range(args.repeat):
                print(f"run {run + 1}/{args.repeat}", flush=True)
                for name, kind, fn in variants:
                    if not c.selected(args, name):
                        continue
                    prepare(url, half)
                    seconds = c.timed(fn)
                    check(url, args.rows)
                    res.add(name, kind, args.rows / seconds)
    res.report()


async def asyncpg_pgkeel(url: str, rows: list[dict[str, Any]]) -> None:
    async with pgkeel.AsyncDatabase(
        url, min_size=1, max_size=1, statement_timeout=0, driver="asyncpg"
    ) as adb:
        await adb.upsert(TABLE, rows, key="id")


def prepare(url: str, half: Path) -> None:
    c.reset(url, TABLE, pk=True)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"COPY products ({COLS}) FROM '{half}' CSV")  # type: ignore[arg-type]
        conn.execute("VACUUM ANALYZE products")
        conn.execute("CHECKPOINT")


def check(url: str, n: int) -> None:
    with psycopg.connect(url) as conn:
        got = conn.execute("SELECT count(*) FROM products").fetchone()
    assert got == (n,), f"{got} rows after upsert, expected {n}"


def psycopg_stage(url: str, rows: list[tuple[Any, ...]]) -> None:
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute(STAGE)  # type: ignore[arg-type]
        with cur.copy(f"COPY stage ({COLS}) FROM STDIN (FORMAT BINARY)") as copy:  # type: ignore[arg-type]
            copy.set_types(list(c.TYPES))
            for r in rows:
                copy.write_row(r)
        cur.execute(MERGE)  # type: ignore[arg-type]


def server_stage(url: str, path: Path) -> None:
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute(STAGE)  # type: ignore[arg-type]
        cur.execute(f"COPY stage ({COLS}) FROM '{path}' CSV")  # type: ignore[arg-type]
        cur.execute(MERGE)  # type: ignore[arg-type]


def psycopg_many(url: str, rows: list[tuple[Any, ...]]) -> None:
    values = ", ".join(["%s"] * len(c.COLUMNS))
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.executemany(INSERT.replace("%s", f"({values})"), rows)  # type: ignore[arg-type]


async def asyncpg_many(url: str, rows: list[tuple[Any, ...]]) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.set_type_codec(
            "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )
        values = ", ".join(f"${i}" for i in range(1, len(c.COLUMNS) + 1))
        async with conn.transaction():
            await conn.executemany(INSERT.replace("%s", f"({values})"), rows)
    finally:
        await conn.close()


def psycopg2_values(url: str, rows: list[tuple[Any, ...]]) -> None:
    conn = psycopg2.connect(url)
    psycopg2.extras.register_uuid(conn_or_curs=conn)
    try:
        with conn, conn.cursor() as cur:
            plain = [(*r[:5], psycopg2.extras.Json(r[5].obj), *r[6:]) for r in rows]
            psycopg2.extras.execute_values(cur, INSERT, plain, page_size=1000)
    finally:
        conn.close()


if __name__ == "__main__":
    main()
