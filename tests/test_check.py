"""`pgkeel check`: the rules on the marked corpus, pgkeel's own code, the CLI, the library API."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import pgkeel.check
from pgkeel.check import RULES, Config, check_paths, check_source
from pgkeel.check._sql import HOLE, first_keyword, is_row_insert, placeholders, scan

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "check_corpus"
CORPUS_FILES = sorted(CORPUS.glob("pgk*.py"))

HEAD = "import psycopg\n\n\ndef f(cur, name):\n"
BAD = HEAD + "    cur.execute(f\"SELECT * FROM t WHERE n = '{name}'\")\n"
GOOD = HEAD + '    cur.execute("SELECT * FROM t WHERE n = %s", (name,))\n'


def _marks(text: str) -> list[tuple[int, str]]:
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if "# expect:" in line:
            for code in line.split("# expect:", 1)[1].replace(",", " ").split():
                out.append((number, code))
    return out


def _pgkeel(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgkeel", "check", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- the rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name)
def test_corpus_expectations(path: Path) -> None:
    """Every `# expect:` mark of the corpus file is found, on its line, and nothing else is."""
    text = path.read_text()
    found = check_source(text, str(path))
    unmatched = list(found)
    missing = []
    for line, code in _marks(text):
        match = next(
            (f for f in unmatched if f.code == code and f.line <= line <= max(f.line, f.end_line)),
            None,
        )
        if match is None:
            missing.append((line, code))
        else:
            unmatched.remove(match)
    extra = [(f.line, f.code, f.message) for f in unmatched]
    assert (missing, extra) == ([], [])


def test_corpus_covers_every_rule() -> None:
    """The corpus has positives for each rule."""
    codes = {code for p in CORPUS_FILES for _, code in _marks(p.read_text())}
    assert codes == set(RULES)


def test_pgkeel_own_code_is_clean() -> None:
    """pgkeel's src/, tests/ and bench/ pass the checker under the repository's configuration."""
    config = pgkeel.check.load_config(ROOT / "pyproject.toml")
    report = check_paths([ROOT / "src", ROOT / "tests", ROOT / "bench"], config)
    assert report.files > 30
    assert [f"{f.path}:{f.line}: {f.code}" for f in report.findings] == []


def test_aliases_and_imports_are_resolved() -> None:
    """`import psycopg as pg` and `from psycopg_pool import ConnectionPool as Pool` are followed."""
    src = (
        "import psycopg as pg\nfrom psycopg_pool import ConnectionPool as Pool\n"
        "def f(dsn, rows):\n"
        "    with Pool(dsn) as pool, pg.connect(dsn) as conn:\n"
        "        for r in rows:\n"
        "            conn.execute('INSERT INTO t VALUES ($1)', r)\n"
    )
    assert sorted(f.code for f in check_source(src)) == ["PGK004", "PGK005", "PGK008"]


@pytest.mark.parametrize(
    "imported", ["pgkeel.copy.copy_out", "pgkeel.bulk.copy.copy_out", "pgkeel.bulk.stream.stream"]
)
def test_pgkeel_bulk_functions_are_query_calls(imported: str) -> None:
    """pgkeel's copy_out and stream, old path or new, take a query: an f-string there is PGK001."""
    module, _, name = imported.rpartition(".")
    src = (
        f"from {module} import {name}\n"
        "def f(conn, table):\n"
        f"    {name}(conn, f'SELECT * FROM {{table}}', 'out.csv')\n"
    )
    assert [f.code for f in check_source(src)] == ["PGK001"]


def test_pool_closed_in_another_module(tmp_path: Path) -> None:
    """A module-level pool closed by another checked module is not reported by check_paths."""
    (tmp_path / "db.py").write_text(
        "from psycopg_pool import ConnectionPool\n"
        "pool = ConnectionPool('', timeout=5, max_lifetime=60)\n"
    )
    (tmp_path / "main.py").write_text("from db import pool\n\ndef stop():\n    pool.close()\n")
    assert [f.code for f in check_source((tmp_path / "db.py").read_text())] == ["PGK006"]
    assert check_paths([tmp_path]).findings == []


def test_noqa() -> None:
    """`# noqa: CODE` silences that code on its line; another code or no comment does not."""
    line = "    cur.execute(f\"SELECT * FROM t WHERE n = '{name}'\")"
    assert [f.code for f in check_source(BAD)] == ["PGK001"]
    assert check_source(BAD.replace(line, line + "  # noqa: PGK001")) == []
    assert check_source(BAD.replace(line, line + "  # noqa")) == []
    assert check_source(BAD.replace(line, line + "  # noqa: PGK001, PGK005")) == []
    assert len(check_source(BAD.replace(line, line + "  # noqa: PGK004"))) == 1


def test_columns_count_characters() -> None:
    """Columns are 1-based characters, also after non-ASCII text on the line."""
    src = BAD.replace("cur.execute(", "é = cur.execute(")
    (finding,) = check_source(src)
    assert (finding.line, finding.col) == (5, 21)


@pytest.mark.parametrize(
    "source",
    [
        "def f(:\n",
        "x = 1\x00\n",
        "",
        "\ufeffimport psycopg\n",
        "cur.execute(" + " + ".join(['"SELECT 1"'] * 3000) + " + x)\n",
    ],
    ids=["syntax", "nul", "empty", "bom", "deep"],
)
def test_hostile_sources_do_not_crash(source: str) -> None:
    """Broken, empty, NUL-bearing or absurdly nested sources give findings or none, no crash."""
    found = check_source(source)
    assert all(f.code in {"E999", *RULES} for f in found)


def test_sql_scanner() -> None:
    """The lexer skips literals, quoted identifiers, dollar quotes and comments."""
    text = "SELECT $1, '$2', \"$3\", $$ $4 $$, $t$ %s $t$, E'\\' %s' /* %s /* */ */ -- %s\n%(x)s %%"
    pyformat, dollar = placeholders(scan(text))
    assert (pyformat, dollar) == (["%(x)s"], ["$1"])
    assert first_keyword(scan("  (select 1)")) == "SELECT"
    assert first_keyword(scan(HOLE + " FROM t")) is None
    assert is_row_insert(scan("insert into t values (%s, %s)"))
    assert not is_row_insert(scan("insert into t select * from u"))
    assert not is_row_insert(scan("insert into t values " + HOLE))
    assert [t.kind for t in scan("'open $$x /* y")] == ["string"]  # unterminated: no crash
    assert scan("/* open") == []


def test_all_is_complete_and_lazy() -> None:
    """pgkeel.check exports its public names; `import pgkeel` does not load the checker."""
    public = {n for n in vars(pgkeel.check) if not n.startswith("_") and n[0].isupper()}
    assert public | {"check_paths", "check_source", "load_config"} == set(pgkeel.check.__all__)
    assert all(hasattr(pgkeel.check, n) for n in pgkeel.check.__all__)
    probe = "import sys, pgkeel; print('pgkeel.check' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"


def test_parallel_equals_serial(tmp_path: Path) -> None:
    """Many files checked by worker processes give exactly the serial findings."""
    for i in range(80):
        (tmp_path / f"m{i}.py").write_text(BAD if i % 3 else GOOD)
    serial = check_paths([tmp_path], jobs=1)
    parallel = check_paths([tmp_path], jobs=2)
    assert serial.files == parallel.files == 80
    assert serial.findings == parallel.findings
    assert len(serial.findings) == 53


# --- the command --------------------------------------------------------------------------------


def test_cli_text_and_exit_codes(tmp_path: Path) -> None:
    """Findings print as path:line:col: CODE message with a summary and exit 1; clean exits 0."""
    (tmp_path / "bad.py").write_text(BAD)
    (tmp_path / "good.py").write_text(GOOD)
    out = _pgkeel(".", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    first, summary = out.stdout.strip().splitlines()
    assert first.startswith("bad.py:5:17: PGK001 SQL built with an f-string")
    assert summary == "Found 1 problem in 2 files."
    clean = _pgkeel("good.py", cwd=tmp_path)
    assert (clean.returncode, clean.stdout.strip()) == (0, "All checks passed in 1 file!")
    assert _pgkeel("--exit-zero", cwd=tmp_path).returncode == 0


def test_cli_usage_errors_exit_2(tmp_path: Path) -> None:
    """An unknown rule, a missing path or a bad config exits 2 with a message naming the fix."""
    bad_code = _pgkeel("--select", "PGK999", cwd=tmp_path)
    assert bad_code.returncode == 2
    assert "PGK001" in bad_code.stderr
    assert _pgkeel("missing.py", cwd=tmp_path).returncode == 2
    (tmp_path / "pyproject.toml").write_text("[tool.pgkeel.check]\nselekt = ['PGK001']\n")
    bad_config = _pgkeel(cwd=tmp_path)
    assert bad_config.returncode == 2
    assert "selekt" in bad_config.stderr


def test_cli_json_and_sarif(tmp_path: Path) -> None:
    """--format json is a list of findings; sarif is SARIF 2.1.0 with rules and regions."""
    (tmp_path / "bad.py").write_text(BAD)
    as_json = json.loads(_pgkeel("--format", "json", cwd=tmp_path).stdout)
    assert [(d["path"], d["line"], d["col"], d["code"]) for d in as_json] == [
        ("bad.py", 5, 17, "PGK001")
    ]
    assert {"path", "line", "col", "code", "message"} <= set(as_json[0])
    sarif = json.loads(_pgkeel("--format", "sarif", cwd=tmp_path).stdout)
    assert sarif["version"] == "2.1.0"
    run = sarif["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == sorted(RULES)
    (result,) = run["results"]
    assert result["ruleId"] == "PGK001"
    assert result["level"] == "error"
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "bad.py"
    assert location["region"]["startLine"] == 5


def test_cli_select_ignore_and_config(tmp_path: Path) -> None:
    """--select/--ignore and [tool.pgkeel.check] choose the rules; per-file-ignores apply."""
    (tmp_path / "bad.py").write_text(BAD)
    assert _pgkeel("--ignore", "PGK001", cwd=tmp_path).returncode == 0
    assert _pgkeel("--select", "PGK002,PGK003", cwd=tmp_path).returncode == 0
    assert _pgkeel("--select", "PGK00", cwd=tmp_path).returncode == 1  # a prefix
    (tmp_path / "pyproject.toml").write_text('[tool.pgkeel.check]\nignore = ["PGK001"]\n')
    assert _pgkeel(cwd=tmp_path).returncode == 0
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pgkeel.check.per-file-ignores]\n"b*.py" = ["PGK001"]\n'
    )
    assert _pgkeel(cwd=tmp_path).returncode == 0
    config = Config().with_options(select=["pgk001"])
    assert config.enabled() == {"PGK001"}


def test_cli_syntax_error_reported_rest_checked(tmp_path: Path) -> None:
    """A file that does not parse is reported (E999) and the other files are still checked."""
    (tmp_path / "broken.py").write_text("def f(:\n    pass\n")
    (tmp_path / "bad.py").write_text(BAD)
    out = _pgkeel(cwd=tmp_path)
    assert out.returncode == 1
    codes = [line.split()[1] for line in out.stdout.splitlines()[:-1]]
    assert codes == ["PGK001", "E999"]


def test_cli_gitignore_and_exclude(tmp_path: Path) -> None:
    """Files ignored by .gitignore or --exclude, and virtualenvs, are not checked."""
    for name in ("gen/a.py", "keep/b.py", ".venv/lib/c.py", "skip/d.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(BAD)
    (tmp_path / ".gitignore").write_text("# generated\ngen/\n")
    out = _pgkeel("--exclude", "skip", cwd=tmp_path)
    assert out.stdout.splitlines()[0].startswith("keep/b.py:5:17: PGK001")
    assert out.stdout.splitlines()[-1] == "Found 1 problem in 1 file."
    # a path named on the command line is checked even inside an ignored directory
    assert _pgkeel(".venv/lib/c.py", cwd=tmp_path).returncode == 1


def test_cli_list_rules(tmp_path: Path) -> None:
    """--list-rules prints every rule code with its severity."""
    out = _pgkeel("--list-rules", cwd=tmp_path)
    assert out.returncode == 0
    assert [line.split()[0] for line in out.stdout.splitlines()] == sorted(RULES)


def test_flake8_plugin() -> None:
    """The flake8 entry point yields (line, 0-based col, 'CODE message') for a parsed tree."""
    from pgkeel.check._flake8 import Plugin

    (finding,) = Plugin(ast.parse(BAD), "bad.py").run()
    assert finding[:2] == (5, 16)
    assert finding[2].startswith("PGK001 SQL built with an f-string")


def test_readme_lists_every_rule_and_its_tour_is_clean() -> None:
    """The README's checker table names every rule; the README's own tour passes the checker."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## `pgkeel check`", 1)[1]
    assert all(f"| {code} |" in section for code in RULES)
    tour = readme.split("## A tour", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert check_source(tour, "README.md") == []


def test_cli_many_files_in_worker_processes(tmp_path: Path) -> None:
    """Enough files for worker processes: `python -m pgkeel check` reports each once."""
    for i in range(70):
        (tmp_path / f"m{i}.py").write_text(BAD)
    out = _pgkeel("--jobs", "2", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    lines = out.stdout.splitlines()
    assert lines[-1] == "Found 70 problems in 70 files."
    assert len(lines) == 71
