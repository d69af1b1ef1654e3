"""The query type: a query built at runtime (f-string, +) is a mypy error with pgkeel's mypy
plugin; literals, named constants and psycopg.sql compositions are not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SNIPPET = """
import pgkeel
from psycopg import sql

BY_ID = "SELECT * FROM t WHERE id = %s"

def ok(db: pgkeel.Database, table: str) -> None:
    db.fetch_one("SELECT * FROM t WHERE id = %s", (1,))
    db.fetch_one(BY_ID, (1,))
    db.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))

def bad(db: pgkeel.Database, adb: pgkeel.AsyncDatabase, name: str) -> None:
    db.fetch_one(f"SELECT * FROM t WHERE name = '{name}'")
    db.execute("SELECT * FROM " + name)
    adb.fetch_val(f"SELECT {name}")
"""


def test_fstring_query_is_a_type_error(tmp_path: Path) -> None:
    """mypy rejects the three non-literal queries in the snippet and nothing else."""
    path = tmp_path / "snippet.py"
    path.write_text(SNIPPET)
    (tmp_path / "mypy.ini").write_text("[mypy]\nplugins = pgkeel.mypy_plugin\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--config-file",
            str(tmp_path / "mypy.ini"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--disable-error-code",
            "unused-coroutine",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 3, result.stdout
    assert all("[pgkeel-query]" in line for line in errors)
    assert sorted(int(line.split(":")[1]) for line in errors) == [13, 14, 15]
