"""`pgkeel db`: a persistent development server driven from the command line, and psql on it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from pgkeel import embedded


def _pgkeel(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgkeel", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_db_start_url_psql_status_stop(cluster_dir: Path) -> None:
    """start keeps ./.pgkeel running after the CLI exits, reuses it, and psql reaches it."""
    started = _pgkeel("db", "start", cwd=cluster_dir)
    assert started.returncode == 0, started.stderr
    pid = None
    try:
        url = started.stdout.strip()
        assert (cluster_dir / ".pgkeel" / "data" / "PG_VERSION").exists()
        with psycopg.connect(url) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        again = _pgkeel("db", "start", cwd=cluster_dir)
        assert again.returncode == 0
        assert again.stdout.strip() == url
        assert "already running" in again.stderr
        assert _pgkeel("db", "url", cwd=cluster_dir).stdout.strip() == url
        bundled = embedded.find_bindir() / "psql"
        psql_bin = str(bundled) if bundled.exists() else shutil.which("psql") or "psql"
        psql = subprocess.run(
            [psql_bin, url, "-tAc", "select 1"], capture_output=True, text=True, check=True
        )
        assert psql.stdout.strip() == "1"
        via_cli = _pgkeel("db", "psql", "-tAc", "select 40 + 2", cwd=cluster_dir)
        assert via_cli.stdout.strip() == "42"
        status = _pgkeel("db", "status", "--json", cwd=cluster_dir)
        info = json.loads(status.stdout)
        assert status.returncode == 0
        assert info["running"] is True
        pid = info["pid"]
    finally:
        stopped = _pgkeel("db", "stop", cwd=cluster_dir)
    assert stopped.returncode == 0, stopped.stderr
    assert pid is not None
    assert embedded._wait_gone(pid)
    assert _pgkeel("db", "status", cwd=cluster_dir).returncode == 1
    assert (cluster_dir / ".pgkeel" / "data" / "PG_VERSION").exists()


def test_db_url_without_a_server_says_how_to_start_one(cluster_dir: Path) -> None:
    """url/stop on a directory with no server fail with exit 1 and the command to run."""
    result = _pgkeel("db", "url", "--data-dir", str(cluster_dir / "none"), cwd=cluster_dir)
    assert result.returncode == 1
    assert "pgkeel db start" in result.stderr


@pytest.mark.usefixtures("require_tls")
def test_db_start_with_data_dir_and_ssl(cluster_dir: Path) -> None:
    """--data-dir and --ssl give a verify-full URL that works."""
    data_dir = cluster_dir / "tls"
    started = _pgkeel("db", "start", "--data-dir", str(data_dir), "--ssl", cwd=cluster_dir)
    assert started.returncode == 0, started.stderr
    try:
        url = started.stdout.strip()
        assert "sslmode=verify-full" in url
        with psycopg.connect(url) as conn:
            assert conn.pgconn.ssl_in_use
    finally:
        _pgkeel("db", "stop", "--data-dir", str(data_dir), cwd=cluster_dir)
    assert os.path.exists(data_dir / "PG_VERSION")
