"""``pgkeel doctor`` on a large schema: 2,000 tables and 5,000 indexes (goal: under 5 s).

Each table ``t_<i> (id serial PRIMARY KEY, parent_id int REFERENCES t_<i-1>, a int, b int)``
with an index on ``(a)`` and, on every other table, one on ``(a, b)`` (so half the ``(a)`` indexes
are redundant), a few rows in each: 2,000 primary keys + 2,000 + 1,000 = 5,000 indexes, 2,000
sequences and 1,999 foreign keys without an index, all of which the checks must read and judge.
The reference in the same run is the raw driver reading the same catalogs (psycopg, one
connection: pg_class, pg_index, pg_attribute, pg_constraint, pg_sequence, pg_stat_user_tables
and pg_stat_user_indexes in full), the floor any audit of this schema pays.

    flock /tmp/pgkeel-bench.lock .venv/bin/python bench/doctor.py [--tables 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import LiteralString

import psycopg
from psycopg import sql

import _common as c
from pgkeel.ops import DoctorOptions, doctor

RAW_QUERIES: tuple[LiteralString, ...] = (
    "SELECT * FROM pg_class",
    "SELECT * FROM pg_index",
    "SELECT attrelid, attnum, attname, atttypid FROM pg_attribute",
    "SELECT oid, conname, conrelid, confrelid, conkey, contype FROM pg_constraint",
    "SELECT * FROM pg_sequence",
    "SELECT * FROM pg_stat_user_tables",
    "SELECT * FROM pg_stat_user_indexes",
)


def build(url: str, tables: int) -> int:
    """Create the schema in batches (one transaction would exceed the lock table)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for start in range(0, tables, 100):
            with conn.transaction():
                for i in range(start, min(start + 100, tables)):
                    t, parent = sql.Identifier(f"t_{i}"), sql.Identifier(f"t_{i - 1}")
                    ref = sql.SQL("REFERENCES {}").format(parent) if i else sql.SQL("")
                    conn.execute(
                        sql.SQL(
                            "CREATE TABLE {} (id serial PRIMARY KEY, parent_id int {}, "
                            "a int, b int)"
                        ).format(t, ref)
                    )
                    conn.execute(
                        sql.SQL("CREATE INDEX {} ON {} (a)").format(sql.Identifier(f"t_{i}_a"), t)
                    )
                    if i % 2 == 0:
                        conn.execute(
                            sql.SQL("CREATE INDEX {} ON {} (a, b)").format(
                                sql.Identifier(f"t_{i}_ab"), t
                            )
                        )
                    conn.execute(
                        sql.SQL(
                            "INSERT INTO {} (a, b) SELECT g, g FROM generate_series(1, 5) g"
                        ).format(t)
                    )
        conn.execute("ANALYZE")
        row = conn.execute(
            "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
        ).fetchone()
        assert row is not None
        return int(row[0])


def raw(url: str) -> float:
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        for query in RAW_QUERIES:
            conn.execute(query).fetchall()
    return time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tables", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    with c.server() as base:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS pgkeel_bench_doctor")
            conn.execute("CREATE DATABASE pgkeel_bench_doctor")
        url = psycopg.conninfo.make_conninfo(base, dbname="pgkeel_bench_doctor")
        started = time.perf_counter()
        indexes = build(url, args.tables)
        print(
            f"schema: {args.tables} tables, {indexes} indexes "
            f"({time.perf_counter() - started:.1f} s to build)"
        )
        doctor_s, raw_s, last = [], [], []
        for _ in range(args.repeat):
            raw_s.append(raw(url))
            started = time.perf_counter()
            last = doctor(url, options=DoctorOptions(top=10))
            doctor_s.append(time.perf_counter() - started)
        d, r = statistics.median(doctor_s), statistics.median(raw_s)
        print(f"pgkeel doctor (all {len(last)} checks): median {d:.2f} s "
              f"(runs: {', '.join(f'{x:.2f}' for x in doctor_s)})")  # fmt: skip
        print(f"raw psycopg catalog read:   median {r:.2f} s")
        print(
            f"ratio doctor / raw read:    {d / r:.1f}x; goal < 5 s: {'met' if d < 5 else 'MISSED'}"
        )
        print("slowest checks (last run):")
        for f in sorted(last, key=lambda f: -f.elapsed)[:6]:
            print(f"  {f.check:<22} {f.elapsed * 1000:7.0f} ms  {f.status:<7} {f.summary[:70]}")
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute("DROP DATABASE pgkeel_bench_doctor")


if __name__ == "__main__":
    main()
