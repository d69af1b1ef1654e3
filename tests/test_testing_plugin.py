"""The shipped pytest plugin: isolated databases, the version marker, one clear stop on failure."""

from __future__ import annotations

import ast
import importlib
import socket
import subprocess
import sys

import psycopg
import pytest

from pgkeel.testing.plugin import PgServer, describe, version_matches, with_dbname


def test_pg_url_is_a_fresh_empty_database(pg_url: str, pg_server: PgServer) -> None:
    """pg_url names a database of its own, with no user tables, on the server under test."""
    with psycopg.connect(pg_url) as conn:
        name = conn.execute("select current_database()").fetchone()
        tables = conn.execute(
            "select count(*) from pg_tables"
            " where schemaname not in ('pg_catalog', 'information_schema')"
        ).fetchone()
    assert name is not None
    assert name[0].startswith("pgkeel_test_")
    assert tables == (0,)
    assert pg_url != pg_server.url


_ISOLATION_TESTS = """
import psycopg, pytest

@pytest.mark.parametrize("n", range(3))
def test_each_gets_an_empty_db(pg_url, n):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("create table shared_name (x int)")  # fails if another test's table is seen
        conn.execute("insert into shared_name values (%s)", [n])
        assert conn.execute("select count(*) from shared_name").fetchone() == (1,)

@pytest.mark.pg(">=10")
def test_runs_on_any_supported_server(pg_server):
    assert pg_server.version_num >= 100000

@pytest.mark.pg(">=999")
def test_skipped_on_every_real_server(pg_server):
    raise AssertionError("must be skipped")
"""


def test_databases_are_isolated_and_dropped(
    pytester: pytest.Pytester, pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tests never see each other's tables, the marker skips by version, and nothing is left."""
    monkeypatch.setenv("PGKEEL_TEST_URL", pg_server.url)
    pytester.makepyfile(_ISOLATION_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, skipped=1)
    with psycopg.connect(pg_server.url) as conn:
        left = conn.execute(
            "select count(*) from pg_database where datname like 'pgkeel_t%%' "
            "and datname not in (current_database(), %s)",
            [pg_server.template],
        ).fetchone()
    # Only databases of the outer session (this test's template, live fixtures) may exist.
    assert left == (0,)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_stops_the_session_once(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unreachable server ends the run with one message naming it, not an error per test."""
    url = f"postgresql://someone:canary-pw-123@127.0.0.1:{_closed_port()}/db"
    monkeypatch.setenv("PGKEEL_TEST_URL", url)
    pytester.makepyfile("\n".join(f"def test_{i}(pg_url):\n    pass\n" for i in range(20)))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == 3
    output = result.stdout.str() + result.stderr.str()
    assert output.count("is unreachable") == 1
    assert "canary-pw-123" not in output
    assert "--pg-url" in output


@pytest.mark.parametrize(
    ("version", "spec", "expected"),
    [
        (150018, ">=15", True),
        (150018, ">=16", False),
        (160002, ">=15,<17", True),
        (170000, ">=15,<17", False),
        (150018, "15", True),
        (150018, ">=15.19", False),
        (150018, "<15.19", True),
        (140010, "!=14", False),
    ],
)
def test_version_spec_matching(version: int, spec: str, expected: bool) -> None:
    """The pg marker's spec compares major (and optionally minor) versions."""
    assert version_matches(version, spec) is expected


def test_bad_version_spec_is_explained() -> None:
    """A malformed spec says what a good one looks like."""
    with pytest.raises(ValueError, match=r"e\.g\. '>=16'"):
        version_matches(150000, "sixteen")


def test_url_helpers_keep_secrets_out() -> None:
    """with_dbname swaps only the database; describe never shows the password."""
    url = "postgresql://u:s3cret@h:5/a?sslmode=require"
    assert with_dbname(url, "b") == "postgresql://u:s3cret@h:5/b?sslmode=require"
    assert "dbname=b" in with_dbname("host=h password=s3cret dbname=a", "b")
    assert "s3cret" not in describe(url)
    assert "host=h" in describe(url)


_PLAIN_TEST = """
import sys
import psutil

def test_plain(request):
    assert request.fixturenames == ["request"], request.fixturenames
    assert "pgkeel.embedded" not in sys.modules
    assert psutil.Process().children(recursive=True) == []
"""


def test_plugin_is_inert_for_tests_that_do_not_use_it(pytester: pytest.Pytester) -> None:
    """A plain test in a project with the plugin installed gets no fixture, import or server."""
    pytester.makepyfile(_PLAIN_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_version_marker_applies_without_any_fixture_requested(
    pytester: pytest.Pytester, pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test marked pg(...) that asks for no fixture is still checked (and here skipped)."""
    monkeypatch.setenv("PGKEEL_TEST_URL", pg_server.url)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.pg(">=999")
        def test_too_new():
            raise AssertionError("must be skipped")

        @pytest.mark.pg(">=10")
        def test_supported():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1)


def test_old_module_warns_and_reexports() -> None:
    """`pgkeel.pytest_plugin` still imports, with a DeprecationWarning naming the new module."""
    sys.modules.pop("pgkeel.pytest_plugin", None)
    with pytest.warns(DeprecationWarning, match=r"pgkeel\.testing\.plugin"):
        old = importlib.import_module("pgkeel.pytest_plugin")
    assert old.PgServer is PgServer
    assert old.version_matches is version_matches


def test_old_module_listed_in_pytest_plugins_still_works(
    pytester: pytest.Pytester, pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A project whose conftest names `pgkeel.pytest_plugin` keeps getting `pg_url`."""
    monkeypatch.setenv("PGKEEL_TEST_URL", pg_server.url)
    pytester.makeconftest('pytest_plugins = ["pgkeel.pytest_plugin"]\n')
    pytester.makepyfile("def test_it(pg_url):\n    assert pg_url\n")
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"
    )
    result.assert_outcomes(passed=1)


def test_plugin_import_is_inert() -> None:
    """Loading the plugin imports neither the embedded server's module nor pglast."""
    code = "import pgkeel.testing.plugin, sys; print(sorted(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(ast.literal_eval(out.stdout))
    assert "pgkeel.testing.plugin" in loaded
    assert loaded & {"pgkeel.embedded", "pglast", "cryptography"} == set()
