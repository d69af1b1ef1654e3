"""``pgkeel migrate ...`` on the command line: exit codes, text and JSON output."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from pgkeel.cli import main

pytest_plugins = ["fix_migrate"]

Write = Callable[..., Path]


def test_lint_text_and_json_and_exit_codes(migrations: Write) -> None:
    """lint prints file:line findings (text or JSON) and exits 1 only when there are errors."""
    root = migrations(
        **{
            "0001_ok": "CREATE TABLE t (a int);",
            "0002_bad": "SELECT 1;\nCREATE INDEX i ON t (a);\nALTER TABLE t RENAME COLUMN a TO b;",
        }
    )
    runner = CliRunner()
    text = runner.invoke(main, ["migrate", "lint", "--dir", str(root)])
    assert text.exit_code == 1
    assert f"{root / '0002_bad.sql'}:2: error create-index:" in text.stdout
    assert f"{root / '0002_bad.sql'}:3: warning rename-column:" in text.stdout
    as_json = runner.invoke(
        main, ["migrate", "lint", "--format", "json", str(root / "0001_ok.sql")]
    )
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout) == []
    warn_only = runner.invoke(
        main, ["migrate", "lint", "--format", "json", "--dir", str(root)], catch_exceptions=False
    )
    rules = [f["rule"] for f in json.loads(warn_only.stdout)]
    assert rules == ["create-index", "rename-column"]


def test_lint_unparseable_file_exits_1_with_line(migrations: Write) -> None:
    """A syntax error is reported with file:line and exit code 1."""
    root = migrations(**{"0001_bad": "SELECT 1;\nSELEC 2;"})
    result = CliRunner().invoke(main, ["migrate", "lint", "--dir", str(root)])
    assert result.exit_code == 1
    assert "0001_bad.sql:2: syntax error" in result.output


def test_new_then_up_status_json(pg_url: str, tmp_path: Path) -> None:
    """new creates numbered files; up --json lists what it applied; status --json the states."""
    root = tmp_path / "migrations"
    runner = CliRunner()
    made = runner.invoke(main, ["migrate", "new", "create products", "--dir", str(root)])
    assert made.exit_code == 0
    Path(made.stdout.strip()).write_text("CREATE TABLE products (id int);\n")
    up = runner.invoke(main, ["migrate", "up", "--url", pg_url, "--dir", str(root), "--json"])
    assert up.exit_code == 0, up.output
    [applied] = json.loads(up.stdout)["applied"]
    assert (applied["version"], applied["name"]) == (1, "create_products")
    assert "applied 0001_create_products.sql in" in up.stderr
    status = runner.invoke(main, ["migrate", "status", "--url", pg_url, "--dir", str(root)])
    assert status.exit_code == 0
    assert "applied" in status.stdout
    assert "create_products" in status.stdout


def test_resolve_needs_an_outcome() -> None:
    """resolve without --applied/--rolled-back is a usage error."""
    result = CliRunner().invoke(main, ["migrate", "resolve", "3"])
    assert result.exit_code == 2
    assert "--applied or --rolled-back" in result.output


def test_without_pglast_a_one_line_install_hint(migrations: Write) -> None:
    """Without the migrate extra, lint says `pip install 'pgkeel[migrate]'` (and `import
    pgkeel` itself never imports pglast)."""
    root = migrations(**{"0001_a": "SELECT 1;"})
    code = (
        "import sys; sys.modules['pglast'] = None\n"
        "import pgkeel, pgkeel.migrate, pgkeel.cli\n"
        "from pgkeel.cli import main\n"
        f"main(['migrate', 'lint', '--dir', {str(root)!r}])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "pip install 'pgkeel[migrate]'" in result.stderr
    check = "import sys, pgkeel, pgkeel.migrate, pgkeel.cli; print('pglast' in sys.modules)"
    loaded = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "False"
