"""`pgkeel copy in|out`: CSV load and export from the command line, summaries and exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from pgkeel.cli import main

pytest_plugins = ["fix_bulk"]


def test_copy_in_then_out_round_trip_with_json_summary(
    pg_url: str, admin: Any, tmp_path: Path
) -> None:
    """copy in loads a CSV (header maps columns) and copy out writes it back, each with --json."""
    admin.execute("CREATE SCHEMA s; CREATE TABLE s.t (id int, name text)")
    src = tmp_path / "in.csv"
    src.write_text('name,id\n"a, b",1\n"multi\nline",2\n')
    runner = CliRunner()
    loaded = runner.invoke(main, ["copy", "in", "s.t", str(src), "--url", pg_url, "--json"])
    assert loaded.exit_code == 0, loaded.output
    summary = json.loads(loaded.output)
    assert summary["ok"] is True
    assert summary["rows"] == 2
    out = tmp_path / "out.csv"
    query = "SELECT id, name FROM s.t ORDER BY id"
    dumped = runner.invoke(main, ["copy", "out", query, str(out), "--url", pg_url])
    assert dumped.exit_code == 0, dumped.output
    assert "out: 2 rows" in dumped.output
    assert out.read_text() == 'id,name\n1,"a, b"\n2,"multi\nline"\n'


def test_copy_in_error_exits_1_and_loads_nothing(pg_url: str, admin: Any, tmp_path: Path) -> None:
    """A bad CSV line makes copy in exit 1 with the server's message; the table stays empty."""
    admin.execute("CREATE TABLE t (id int)")
    src = tmp_path / "bad.csv"
    src.write_text("id\n1\nzwei\n")
    runner = CliRunner()
    result = runner.invoke(main, ["copy", "in", "t", str(src), "--url", pg_url])
    assert result.exit_code == 1
    assert "invalid input syntax for type integer" in result.output
    as_json = runner.invoke(main, ["copy", "in", "nosuch", str(src), "--url", pg_url, "--json"])
    assert as_json.exit_code == 1
    assert json.loads(as_json.output)["type"] == "UndefinedTable"
    assert admin.execute("SELECT count(*) FROM t").fetchone() == (0,)
