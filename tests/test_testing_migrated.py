"""The pytest helper: a fresh database per test, migrated to head, from a per-session template."""

from __future__ import annotations

import psycopg
import pytest

from pgkeel.testing.plugin import PgServer

_TESTS = """
import psycopg

def test_head(pg_migrated_url):
    with psycopg.connect(pg_migrated_url, autocommit=True) as conn:
        conn.execute("INSERT INTO products VALUES (1)")  # fails if another test's row is seen
        assert conn.execute("SELECT count(*) FROM products").fetchone() == (1,)
        assert conn.execute("SELECT max(version) FROM pgkeel_migrations").fetchone() == (2,)

def test_again(pg_migrated_url):
    test_head(pg_migrated_url)

def test_other_directory(pg_migrated, tmp_path):
    (tmp_path / "0001_x.sql").write_text("CREATE TABLE x (a int);")
    with psycopg.connect(pg_migrated(tmp_path)) as conn:
        assert conn.execute("SELECT to_regclass('x') IS NOT NULL").fetchone() == (True,)
"""


def test_pg_migrated_url_gives_each_test_a_migrated_database(
    pytester: pytest.Pytester, pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each test gets its own database at head; templates and clones are dropped afterwards."""
    monkeypatch.setenv("PGKEEL_TEST_URL", pg_server.url)
    pytester.makeini("[pytest]\npgkeel_migrations = db/migrations\n")
    root = pytester.path / "db" / "migrations"
    root.mkdir(parents=True)
    (root / "0001_products.sql").write_text("CREATE TABLE products (id int PRIMARY KEY);")
    (root / "0002_name.sql").write_text("ALTER TABLE products ADD COLUMN name text;")
    pytester.makepyfile(_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    with psycopg.connect(pg_server.url) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'pgkeel_mtpl_%%'"
        ).fetchone()
    assert left == (0,)
