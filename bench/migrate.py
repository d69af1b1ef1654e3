"""Migrations: ``pgkeel migrate up`` applying 200 small migrations to an empty database, side by
side with a plain loop of ``psql -1 -f`` over the same files (the lower bound: no lock, no
history, no checksums, no parsing), and the linter on 1,000 statements.

Variants, interleaved round by round, each on a fresh database: the psql loop; the CLI
(``python -m pgkeel migrate up``, interpreter start and pglast import included); the Python API
(``pgkeel.migrate.up`` in-process). Prints medians and the ratio the goal is stated in (within
1.5x of the psql loop; lint of 1,000 statements under 1 s).

    flock /tmp/pgkeel-bench.lock .venv/bin/python bench/migrate.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql

import pgkeel.migrate
from _common import server
from pgkeel import embedded
from pgkeel.pytest_plugin import with_dbname


def write_migrations(root: Path, n: int) -> None:
    """``n`` small migrations, the kind an application accumulates: tables, columns, indexes on
    new tables, a function, a few rows."""
    for v in range(1, n + 1):
        parts = [
            f"CREATE TABLE t{v} (id bigint PRIMARY KEY, name text NOT NULL, "
            "created_at timestamptz NOT NULL DEFAULT now());",
            f"CREATE INDEX t{v}_name ON t{v} (name);",
            f"INSERT INTO t{v} (id, name) SELECT g, 'row ' || g FROM generate_series(1, 20) g;",
        ]
        if v > 1:
            parts.append(f"ALTER TABLE t{v - 1} ADD COLUMN note_{v} text;")
        if v % 10 == 0:
            parts.append(
                f"CREATE FUNCTION f{v}(x int) RETURNS int LANGUAGE plpgsql AS $$\n"
                "BEGIN RETURN x + 1; END $$;"
            )
        (root / f"{v:04d}_step_{v}.sql").write_text("\n".join(parts) + "\n")


def lint_file(path: Path, n: int) -> None:
    """``n`` statements of every kind the rules look at (most of them flagged)."""
    kinds = [
        "CREATE TABLE n{i} (id bigint PRIMARY KEY, v text);",
        "CREATE INDEX i{i} ON t1 (name);",
        "ALTER TABLE t1 ADD COLUMN c{i} int NOT NULL;",
        "ALTER TABLE t1 ALTER COLUMN name TYPE varchar(200);",
        "ALTER TABLE t1 ADD CONSTRAINT f{i} FOREIGN KEY (id) REFERENCES t2 (id);",
        "UPDATE t1 SET name = 'x' WHERE id = {i};",
        "CREATE FUNCTION g{i}() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$;",
        "ALTER TABLE t1 RENAME COLUMN c{i} TO d{i};",
        "SELECT 'a;b', E'it\\'s';",
        "DROP INDEX i{i};",
    ]
    path.write_text("\n".join(kinds[i % len(kinds)].format(i=i) for i in range(n)) + "\n")


def psql_binary() -> str:
    found = embedded.find_bindir() / "psql"
    return str(found) if found.exists() else (shutil.which("psql") or "psql")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--migrations", type=int, default=200)
    p.add_argument("--repeat", type=int, default=5, help="rounds; medians are kept")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pgkeel-bench-migrate-"))
    root = work / "migrations"
    root.mkdir()
    write_migrations(root, args.migrations)
    files = sorted(root.glob("*.sql"))
    psql = psql_binary()
    names = ("psql -1 -f loop", "psql, one session", "pgkeel migrate up (CLI)", "pgkeel.up() API")
    times: dict[str, list[float]] = {name: [] for name in names}
    with server() as url, psycopg.connect(url, autocommit=True) as admin:
        counter = 0

        def fresh() -> str:
            nonlocal counter
            counter += 1
            name = f"bench_migrate_{counter}"
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return with_dbname(url, name)

        def psql_loop(target: str) -> None:
            for f in files:
                subprocess.run(
                    [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-f", str(f), target],
                    check=True, stdout=subprocess.DEVNULL,
                )  # fmt: skip

        def psql_once(target: str) -> None:
            # All files through one psql session, no per-file transaction: the floor for the
            # server work itself.
            subprocess.run(
                [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1",
                 *(a for f in files for a in ("-f", str(f))), target],
                check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip

        def cli(target: str) -> None:
            subprocess.run(
                [sys.executable, "-m", "pgkeel", "migrate", "up", "--url", target,
                 "--dir", str(root)],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip

        def api(target: str) -> None:
            pgkeel.migrate.up(target, root, echo=lambda line: None)

        variants: dict[str, Callable[[str], None]] = dict(
            zip(times, (psql_loop, psql_once, cli, api), strict=True)
        )
        for _ in range(args.repeat):
            for name, run in variants.items():
                target = fresh()
                started = time.perf_counter()
                run(target)
                times[name].append(time.perf_counter() - started)
                with psycopg.connect(target) as check:
                    tables = check.execute(
                        "SELECT count(*) FROM pg_tables WHERE tablename ~ '^t[0-9]+$'"
                    ).fetchone()
                assert tables == (args.migrations,), (name, tables)
        for i in range(1, counter + 1):
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(f"bench_migrate_{i}"))
            )

    lint_path = work / "0001_lint.sql"
    lint_file(lint_path, 1000)
    lint_times = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        findings = pgkeel.migrate.lint([lint_path])
        lint_times.append(time.perf_counter() - started)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pgkeel", "migrate", "lint", str(lint_path)],
        check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    lint_cli = time.perf_counter() - started
    shutil.rmtree(work, ignore_errors=True)

    base = statistics.median(times["psql -1 -f loop"])
    print(f"\n{args.migrations} migrations on an empty database, {args.repeat} rounds (seconds)")
    print(f"{'variant':<28} {'median':>8}   runs")
    for name, runs in times.items():
        median = statistics.median(runs)
        runs_s = ", ".join(f"{r:.2f}" for r in runs)
        print(f"{name:<28} {median:>8.2f}   {runs_s}  ({median / base:.2f}x psql)")
    print(
        f"\nlint of 1,000 statements ({len(findings)} findings): in-process median "
        f"{statistics.median(lint_times) * 1000:.0f} ms "
        f"({', '.join(f'{t * 1000:.0f}' for t in lint_times)}); CLI wall {lint_cli * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
