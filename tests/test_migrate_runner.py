"""``pgkeel.migrate.up`` and friends against a real server: history, checksums, failures."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

import pgkeel
from pgkeel import migrate
from pgkeel.errors import MigrationError, MigrationLintError

pytest_plugins = ["fix_migrate"]

Write = Callable[..., Path]
Rows = Callable[..., list[Any]]

BASE = {
    "0001_create_products": "CREATE TABLE products (id bigint PRIMARY KEY, name text);",
    "0002_add_tags": (
        "CREATE TABLE tags (id bigint PRIMARY KEY, product bigint);\n"
        "INSERT INTO products VALUES (1, 'a; b');\n"
    ),
}


def test_fresh_database_to_head_then_idempotent(
    pg_url: str, migrations: Write, history: Rows, fetch: Rows
) -> None:
    """A fresh database gets every migration once; a second run applies nothing."""
    root = migrations(**BASE)
    applied = migrate.up(pg_url, root)
    assert [(a.version, a.name, a.transactional) for a in applied] == [
        (1, "create_products", True),
        (2, "add_tags", True),
    ]
    rows = history(pg_url)
    assert [(r["version"], r["state"]) for r in rows] == [(1, "applied"), (2, "applied")]
    assert all(r["applied_by"] and r["duration_ms"] is not None for r in rows)
    assert migrate.up(pg_url, root) == []
    assert fetch(pg_url, "SELECT name FROM products") == [("a; b",)]


def test_accepts_a_database_and_to(pg_url: str, migrations: Write) -> None:
    """``up`` takes a pgkeel.Database (its config, one dedicated session) and stops at --to."""
    root = migrations(**BASE)
    with pgkeel.Database(pg_url, min_size=1, max_size=2) as db:
        assert [a.version for a in migrate.up(db, root, to=1)] == [1]
        assert [e.state for e in migrate.status(db, root)] == ["applied", "pending"]
        assert [a.version for a in migrate.up(db, root)] == [2]


def test_failing_statement_rolls_back_and_records_nothing(
    pg_url: str, migrations: Write, history: Rows, fetch: Rows
) -> None:
    """A failing statement rolls its migration back, names file and line, records nothing."""
    root = migrations(
        **BASE,
        **{"0003_bad": "CREATE TABLE c (id int);\n\nINSERT INTO nowhere VALUES (1);\n"},
    )
    with pytest.raises(psycopg.errors.UndefinedTable) as info:
        migrate.up(pg_url, root)
    assert any("0003_bad.sql:3" in note for note in info.value.__notes__)
    assert [r["version"] for r in history(pg_url)] == [1, 2]
    assert fetch(pg_url, "SELECT to_regclass('c')") == [(None,)]


def test_statement_timeout_is_per_migration_not_the_30s_default(
    pg_url: str, migrations: Write, fetch: Rows
) -> None:
    """Migrations run with statement_timeout from the option (0 = none), not the pool's 30 s."""
    root = migrations(
        **{
            "0001_show": "CREATE TABLE t AS SELECT current_setting('statement_timeout') AS s,"
            " current_setting('lock_timeout') AS l;"
        }
    )
    migrate.up(pg_url, root, lock_timeout=2)
    assert fetch(pg_url, "SELECT s, l FROM t") == [("0", "2s")]


def test_dry_run_changes_nothing(pg_url: str, migrations: Write, fetch: Rows) -> None:
    """--dry-run lists the pending migrations and creates nothing, not even the history."""
    root = migrations(**BASE)
    planned = migrate.up(pg_url, root, dry_run=True)
    assert [p.version for p in planned] == [1, 2]
    assert fetch(pg_url, "SELECT to_regclass('pgkeel_migrations'), to_regclass('products')") == [
        (None, None)
    ]


def test_edited_and_deleted_files_are_detected(pg_url: str, migrations: Write) -> None:
    """An applied file edited (even one character) or deleted makes up and status fail."""
    root = migrations(**BASE)
    migrate.up(pg_url, root)
    (root / "0002_add_tags.sql").write_text(BASE["0002_add_tags"] + "-- edited\n")
    [_, changed] = migrate.status(pg_url, root)
    assert changed.state == "changed"
    with pytest.raises(MigrationError, match=r"migration 2 \(add_tags\) was file edited"):
        migrate.up(pg_url, root)
    assert migrate.up(pg_url, root, allow_changed=True) == []
    (root / "0002_add_tags.sql").unlink()
    assert [e.state for e in migrate.status(pg_url, root)] == ["applied", "missing"]
    with pytest.raises(MigrationError, match="its file is missing"):
        migrate.up(pg_url, root)


def test_crlf_checkout_is_not_an_edit(pg_url: str, migrations: Write) -> None:
    """The same file with CRLF line endings has the same checksum."""
    root = migrations(**BASE)
    migrate.up(pg_url, root)
    path = root / "0002_add_tags.sql"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert [e.state for e in migrate.status(pg_url, root)] == ["applied", "applied"]


def test_lint_errors_stop_up_before_anything_runs(
    pg_url: str, migrations: Write, history: Rows
) -> None:
    """A lint error in a pending migration refuses the run; --no-lint runs it."""
    root = migrations(**BASE, **{"0003_idx": "CREATE INDEX products_name ON products (name);"})
    migrate.up(pg_url, root, to=2)
    with pytest.raises(MigrationLintError, match=r"0003_idx\.sql:1: error create-index"):
        migrate.up(pg_url, root)
    assert [r["version"] for r in history(pg_url)] == [1, 2]
    assert [a.version for a in migrate.up(pg_url, root, lint=False)] == [3]


def test_concurrent_index_runs_outside_a_transaction(
    pg_url: str, migrations: Write, history: Rows, fetch: Rows
) -> None:
    """A CREATE INDEX CONCURRENTLY migration is detected and applied outside a transaction."""
    root = migrations(
        **BASE, **{"0003_idx": "CREATE INDEX CONCURRENTLY products_name ON products (name);"}
    )
    applied = migrate.up(pg_url, root)
    assert applied[-1].transactional is False
    assert history(pg_url)[-1]["state"] == "applied"
    assert fetch(
        pg_url, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'products_name'::regclass"
    ) == [(True,)]


def test_mixed_migration_is_refused_with_how_to_split(
    pg_url: str, migrations: Write, fetch: Rows
) -> None:
    """A file mixing CONCURRENTLY with transactional statements is refused before running."""
    root = migrations(
        **BASE,
        **{
            "0003_mixed": (
                "CREATE TABLE x (a int);\nCREATE INDEX CONCURRENTLY xi ON products (name);"
            )
        },
    )
    with pytest.raises(MigrationError, match=r"0003_mixed.sql:2: CREATE INDEX CONCURRENTLY .* own"):
        migrate.up(pg_url, root)
    assert fetch(pg_url, "SELECT to_regclass('pgkeel_migrations')") == [(None,)]


def test_non_transactional_failure_is_recorded_and_blocks(
    pg_url: str, migrations: Write, history: Rows, fetch: Rows
) -> None:
    """A no-transaction migration failing half way is 'failed', blocks up; resolve unblocks."""
    root = migrations(
        **BASE,
        **{
            "0003_half": (
                "-- pgkeel: no-transaction\n"
                "CREATE TABLE half (a int);\n"
                "INSERT INTO nowhere VALUES (1);\n"
            ),
            "0004_after": "CREATE TABLE after_half (a int);",
        },
    )
    with pytest.raises(psycopg.errors.UndefinedTable):
        migrate.up(pg_url, root)
    row = history(pg_url)[-1]
    assert (row["version"], row["state"], row["statements_done"]) == (3, "failed", 1)
    assert fetch(pg_url, "SELECT to_regclass('half') IS NOT NULL") == [(True,)]
    with pytest.raises(MigrationError, match="resolve 3 --applied"):
        migrate.up(pg_url, root)
    assert [e.state for e in migrate.status(pg_url, root)][2:] == ["failed", "pending"]
    (root / "0003_half.sql").write_text("-- pgkeel: no-transaction\nCREATE TABLE half (a int);\n")
    migrate.resolve(pg_url, 3, applied=False)
    with pytest.raises(psycopg.errors.DuplicateTable):  # the person did not drop it: still half
        migrate.up(pg_url, root)
    migrate.resolve(pg_url, 3, applied=True)
    assert [a.version for a in migrate.up(pg_url, root, allow_changed=True)] == [4]


def test_resolve_refuses_a_migration_that_did_not_fail(pg_url: str, migrations: Write) -> None:
    """resolve only acts on a failed migration."""
    root = migrations(**BASE)
    migrate.up(pg_url, root)
    with pytest.raises(MigrationError, match="this one is applied"):
        migrate.resolve(pg_url, 1, applied=True)


def test_baseline_adopts_an_existing_database(
    pg_url: str, migrations: Write, history: Rows
) -> None:
    """baseline records versions up to N unrun; up then applies only the later ones."""
    root = migrations(**BASE, **{"0003_more": "CREATE TABLE more (a int);"})
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE products (id bigint PRIMARY KEY, name text)")
        conn.execute("CREATE TABLE tags (id bigint, product bigint)")
    assert migrate.baseline(pg_url, root, 2) == [1, 2]
    assert [a.version for a in migrate.up(pg_url, root)] == [3]
    assert [r["state"] for r in history(pg_url)] == ["baseline", "baseline", "applied"]
    with pytest.raises(MigrationError, match="already has migrations"):
        migrate.baseline(pg_url, root, 2)


def test_python_migration_gets_a_transaction(pg_url: str, migrations: Write, fetch: Rows) -> None:
    """A NNNN_name.py migration's up(tx) runs in the migration's transaction."""
    root = migrations(
        **BASE,
        **{
            "0003_data.py": (
                "def up(tx):\n    tx.execute('INSERT INTO products VALUES (%s, %s)', [2, 'py'])\n"
            )
        },
    )
    migrate.up(pg_url, root)
    assert fetch(pg_url, "SELECT name FROM products WHERE id = 2") == [("py",)]


def test_schema_qualified_history_table(pg_url: str, migrations: Write, history: Rows) -> None:
    """The history can live in a schema of its own."""
    root = migrations(**BASE)
    migrate.up(pg_url, root, table="ops.migrations")
    assert [r["version"] for r in history(pg_url, "ops.migrations")] == [1, 2]


def test_lock_timeout_retry_against_a_locked_table(pg_url: str, migrations: Write) -> None:
    """A migration blocked by another session's lock gives up each try at lock_timeout, retries,
    and succeeds once the other session lets go."""
    root = migrations(**BASE, **{"0003_alter": "ALTER TABLE products ADD COLUMN price numeric;"})
    migrate.up(pg_url, root, to=2)
    holder = psycopg.connect(pg_url)
    holder.execute("LOCK TABLE products IN ACCESS EXCLUSIVE MODE")
    retried = threading.Event()
    lines: list[str] = []

    def echo(line: str) -> None:
        lines.append(line)
        if "retry" in line:
            retried.set()

    result: list[object] = []
    worker = threading.Thread(
        target=lambda: result.append(
            migrate.up(pg_url, root, lock_timeout=0.1, lock_retries=1000, echo=echo)
        )
    )
    worker.start()
    try:
        assert retried.wait(60), lines
    finally:
        holder.rollback()
        holder.close()
    worker.join(120)
    assert result
    assert [a.version for a in result[0]] == [3]  # type: ignore[attr-defined]
    assert "waited lock_timeout=0.1s for a lock at line 1" in lines[0]


def test_lock_timeout_gives_up_after_its_retries(
    pg_url: str, migrations: Write, history: Rows
) -> None:
    """With the retries spent, the server's LockNotAvailable surfaces; nothing is recorded."""
    root = migrations(**BASE, **{"0003_alter": "ALTER TABLE products ADD COLUMN price numeric;"})
    migrate.up(pg_url, root, to=2)
    with psycopg.connect(pg_url) as holder:
        holder.execute("LOCK TABLE products IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(psycopg.errors.LockNotAvailable) as info:
            migrate.up(pg_url, root, lock_timeout=0.05, lock_retries=0)
    assert "gave up after 1 tries" in info.value.__notes__[0]
    assert [r["version"] for r in history(pg_url)] == [1, 2]


def test_bad_files_are_clear_errors(tmp_path: Path, migrations: Write) -> None:
    """A gap, a duplicate, a misnamed or empty file, unparseable SQL: errors before any I/O."""
    url = "postgresql://nobody@127.0.0.1:1/none"  # never reached
    root = migrations(**{"0001_a": "SELECT 1;", "0003_c": "SELECT 1;"})
    with pytest.raises(MigrationError, match="gap in migration versions"):
        migrate.up(url, root)
    (root / "0003_c.sql").rename(root / "0002_c.sql")
    (root / "002_dup.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="duplicate migration version 2"):
        migrate.up(url, root)
    (root / "002_dup.sql").rename(root / "add-thing.sql")
    with pytest.raises(MigrationError, match=r"add-thing\.sql: file name does not fit"):
        migrate.up(url, root)
    (root / "add-thing.sql").unlink()
    (root / "0003_empty.sql").write_text("\n  \n")
    with pytest.raises(MigrationError, match=r"0003_empty\.sql: empty migration"):
        migrate.up(url, root)
    (root / "0003_empty.sql").write_text("-- only a comment\n")
    with pytest.raises(MigrationError, match="no SQL statement"):
        migrate.up(url, root)
    (root / "0003_empty.sql").write_text("SELECT 1;\n\nSELEC 2;\n")
    with pytest.raises(
        MigrationError, match=r"0003_empty.sql:3: syntax error at or near \"SELEC\""
    ):
        migrate.up(url, root)


def test_lock_wait_names_the_holder(pg_url: str, migrations: Write, history: Rows) -> None:
    """A runner that cannot get the migration lock within lock_wait says who holds it."""
    from psycopg.conninfo import make_conninfo

    from pgkeel.migrate._runner import _lock_key

    root = migrations(**BASE)
    lines: list[str] = []
    with psycopg.connect(make_conninfo(pg_url, application_name="deploy-7")) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [_lock_key("pgkeel_migrations")])
        pid = holder.info.backend_pid
        with pytest.raises(MigrationError, match=rf"pid {pid} \(deploy-7.*--lock-wait"):
            migrate.up(pg_url, root, lock_wait=0.2, echo=lines.append)
    [line] = lines
    assert line.startswith(f"waiting for the migration lock held by pid {pid} (deploy-7")
    assert line.endswith("(up to 0.2s)")
    assert "/32" not in line
    assert migrate.up(pg_url, root, lock_wait=0.2)  # released with the session
    assert len(history(pg_url)) == 2


def test_hostile_options(pg_url: str, migrations: Write) -> None:
    """An unknown --to version, a malformed table name or a wrong db type: clear errors."""
    root = migrations(**BASE)
    with pytest.raises(MigrationError, match="--to 7: no migration with that version"):
        migrate.up(pg_url, root, to=7)
    with pytest.raises(pgkeel.ConfigError, match=r"'schema\.name'"):
        migrate.up(pg_url, root, table="a.b.c")
    with pytest.raises(pgkeel.ConfigError, match="a URL or a pgkeel Database, got int"):
        migrate.up(42, root)
    with pytest.raises(MigrationError, match="baseline 9: no migration"):
        migrate.baseline(pg_url, root, 9)


def test_pending_below_an_applied_version_is_refused(pg_url: str, migrations: Write) -> None:
    """A pending migration numbered below one already applied (another branch) is refused."""
    root = migrations(**BASE, **{"0003_more": "CREATE TABLE more (a int);"})
    migrate.up(pg_url, root)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DELETE FROM pgkeel_migrations WHERE version = 2")
    with pytest.raises(MigrationError, match=r"migration 2 .* is pending but 3 is already applied"):
        migrate.up(pg_url, root)


def test_lock_timeout_outside_a_transaction_leaves_failed(
    pg_url: str, migrations: Write, history: Rows
) -> None:
    """A no-transaction migration whose retries run out is recorded failed at that statement."""
    root = migrations(
        **BASE,
        **{
            "0003_steps": (
                "-- pgkeel: no-transaction\nCREATE TABLE step1 (a int);\n"
                "ALTER TABLE products ADD COLUMN price numeric;\n"
            )
        },
    )
    migrate.up(pg_url, root, to=2)
    with psycopg.connect(pg_url) as holder:
        holder.execute("LOCK TABLE products IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(psycopg.errors.LockNotAvailable) as info:
            migrate.up(pg_url, root, lock_timeout=0.05, lock_retries=0)
    notes = "\n".join(info.value.__notes__)
    assert "line 3; not run" in notes
    assert "resolve 3 --applied" in notes
    row = history(pg_url)[-1]
    assert (row["state"], row["statements_done"], row["statements_total"]) == ("failed", 1, 2)
    assert row["error"].startswith("line 3: canceling statement due to lock timeout")
