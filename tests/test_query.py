"""The query type under pgkeel's mypy plugin: a query argument of type str passes only if mypy
knows its value (a literal, a Final constant); f-strings, variables, parameters and any string
built at runtime are errors, in every method and function that takes a query."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# Every line marked "# E" must be flagged, and nothing else.
FLAGGED = """
from typing import Final, LiteralString
import pgkeel
from pgkeel.bulk.copy import copy_out
from pgkeel.bulk.stream import stream, stream_batches
from pgkeel.bulk import copy_async

BY_ID: Final = "SELECT * FROM t WHERE id = %s"
BUILT: Final = f"SELECT * FROM t WHERE id = {BY_ID}"
PLAIN = "SELECT 1"


class Queries:
    ALL = "SELECT * FROM t"


def direct(db: pgkeel.Database, adb: pgkeel.AsyncDatabase, name: str) -> None:
    db.fetch_one(f"SELECT * FROM t WHERE name = '{name}'")  # E
    db.execute("SELECT * FROM " + name)  # E
    adb.fetch_val(f"SELECT {name}")  # E
    db.fetch_all("SELECT %s" % name)  # E
    db.fetch_all("SELECT {}".format(name))  # E
    db.fetch_all(BY_ID + " OR name = " + name)  # E


def through_a_variable(db: pgkeel.Database, adb: pgkeel.AsyncDatabase, name: str) -> None:
    q = f"SELECT * FROM t WHERE name = '{name}'"
    db.fetch_all(q)  # E
    db.execute_many(q, [])  # E
    db.stream(q)  # E
    adb.stream(q)  # E
    db.copy_out(q, "out.csv")  # E
    db.copy_out(name, "out.csv")  # E
    with db.pipeline() as p:
        p.execute(q)  # E
        p.fetch_val(f"SELECT {name}")  # E
    with db.transaction() as tx:
        tx.fetch_all(q)  # E
        copy_out(tx.connection, q, "out.csv")  # E
        stream(tx.connection, q)  # E
        stream_batches(tx.connection, query=q)  # E


async def on_the_async_face(adb: pgkeel.AsyncDatabase, name: str) -> None:
    q = f"SELECT {name}"
    async with adb.pipeline() as p:
        await p.execute(q)  # E
    async with adb.transaction() as tx:
        await tx.copy_out(q, "out.csv")  # E
        await copy_async.copy_out(tx.connection, q, "out.csv")  # E


def what_mypy_cannot_prove(db: pgkeel.Database, lit: LiteralString, flag: bool) -> None:
    # mypy reads LiteralString as str and infers str for a variable given a literal: only
    # Final names keep their value, so these are flagged too.
    local = "SELECT 1"
    db.fetch_all(local)  # E
    db.fetch_all(PLAIN)  # E
    db.fetch_all(Queries.ALL)  # E
    db.fetch_all(lit)  # E
    db.fetch_all(BUILT)  # E
    for each in ["SELECT 1"]:
        db.fetch_all(each)  # E
"""

PASSES = """
from typing import Final, Literal
import pgkeel
from psycopg import sql
from pgkeel.bulk.copy import copy_out
from constants import SHARED

BY_ID: Final = "SELECT * FROM t WHERE id = %s"
JOINED: Final = "SELECT * " + "FROM t"


def ok(
    db: pgkeel.Database,
    adb: pgkeel.AsyncDatabase,
    table: str,
    which: Literal["SELECT 1", "SELECT 2"],
    flag: bool,
) -> None:
    local: Final = "SELECT 3"
    db.fetch_one("SELECT * FROM t WHERE id = %s", (1,))
    db.fetch_one(BY_ID, (1,))
    db.fetch_all(JOINED)
    db.fetch_all(SHARED)
    db.fetch_all(local)
    db.fetch_all(which)
    db.fetch_all(BY_ID + " LIMIT 1" if flag else "SELECT 2")
    db.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))
    db.stream("SELECT * FROM t", batch_size=10)
    adb.stream(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))
    db.copy_out("people", "out.csv")
    db.copy_out(("public", table), "out.csv")
    with db.pipeline() as p:
        p.execute(BY_ID, (1,))
    with db.transaction() as tx:
        copy_out(tx.connection, "SELECT 1", "out.csv")
"""


def _mypy(tmp_path: Path, snippet: str) -> list[str]:
    """mypy --strict with the plugin on ``snippet``; the error lines."""
    path = tmp_path / "snippet.py"
    path.write_text(snippet)
    (tmp_path / "constants.py").write_text('from typing import Final\nSHARED: Final = "SELECT 1"\n')
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
        cwd=tmp_path,
    )
    return [line for line in result.stdout.splitlines() if ": error:" in line]


def test_non_literal_queries_are_type_errors_everywhere(tmp_path: Path) -> None:
    """Each line marked # E is a pgkeel-query error (f-strings, variables, stream, copy_out,
    pipelines, module functions, both faces), and no other line is."""
    errors = _mypy(tmp_path, FLAGGED)
    assert all("[pgkeel-query]" in line for line in errors), errors
    marked = [i for i, line in enumerate(FLAGGED.splitlines(), 1) if line.endswith("# E")]
    assert sorted(int(line.split(":")[1]) for line in errors) == marked, errors


def test_literal_queries_pass(tmp_path: Path) -> None:
    """Literals, Final constants (also imported), Literal types, sql compositions and table
    names or (schema, name) pairs raise nothing."""
    assert _mypy(tmp_path, PASSES) == []


def test_error_says_what_to_do(tmp_path: Path) -> None:
    """The message names the variable and the fixes: Final, %s parameters, sql.Identifier."""
    errors = _mypy(tmp_path, FLAGGED)
    local = next(line for line in errors if '"local"' in line)
    assert "Final" in local
    assert "%s parameters" in local
    assert "psycopg.sql.Identifier" in local
