"""`pgkeel db`: a persistent development server driven from the command line, and psql on it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pgkeel import embedded
from pgkeel.embedded import _runas, _server


def _clean_env(**extra: str) -> dict[str, str]:
    """Our environment without anything naming a server (DATABASE_URL, PG*, PGKEEL_DATA_DIR)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PG") and k not in ("DATABASE_URL", "PGKEEL_DATA_DIR")
    }
    return {**env, **extra}


def _pgkeel(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgkeel", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=_clean_env() if env is None else env,
    )


@pytest.fixture
def dev_cluster(cluster_dir: Path) -> Iterator[tuple[Path, str]]:
    """A running `pgkeel db` cluster in cluster_dir/.pgkeel: (its project directory, its URL)."""
    started = _pgkeel("db", "start", cwd=cluster_dir)
    assert started.returncode == 0, started.stderr
    try:
        yield cluster_dir, started.stdout.strip()
    finally:
        _pgkeel("db", "stop", cwd=cluster_dir)


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
    assert _server._wait_gone(pid)
    assert _pgkeel("db", "status", cwd=cluster_dir).returncode == 1
    assert (cluster_dir / ".pgkeel" / "data" / "PG_VERSION").exists()


def test_db_url_without_a_server_says_how_to_start_one(cluster_dir: Path) -> None:
    """url on a directory with no server fails with exit 1 and the command to run."""
    result = _pgkeel("db", "url", "--data-dir", str(cluster_dir / "none"), cwd=cluster_dir)
    assert result.returncode == 1
    assert "pgkeel db start" in result.stderr


def test_db_stop_when_nothing_runs_is_a_success(cluster_dir: Path) -> None:
    """stop is idempotent, like systemctl stop: nothing running is exit 0 and "not running"."""
    result = _pgkeel("db", "stop", cwd=cluster_dir)
    assert result.returncode == 0, result.stderr
    assert "not running" in result.stderr


def test_stale_pidfile_pointing_at_an_unrelated_process(cluster_dir: Path) -> None:
    """db stop never signals a reused pid of a stale postmaster.pid; status says not running."""
    assert _pgkeel("db", "start", cwd=cluster_dir).returncode == 0
    pidfile = cluster_dir / ".pgkeel" / "data" / "postmaster.pid"
    lines = pidfile.read_text().splitlines()
    assert _pgkeel("db", "stop", cwd=cluster_dir).returncode == 0
    who = _runas._run_as()
    with subprocess.Popen(["sleep", "300"], user=who.uid, group=who.gid) as unrelated:
        try:
            pidfile.write_text("\n".join([str(unrelated.pid), *lines[1:]]) + "\n")
            status = _pgkeel("db", "status", cwd=cluster_dir)
            assert status.returncode == 1
            assert "not running" in status.stdout
            stopped = _pgkeel("db", "stop", cwd=cluster_dir)
            assert stopped.returncode == 0
            assert "not running" in stopped.stderr
            assert unrelated.poll() is None, "db stop signalled an unrelated process"
        finally:
            unrelated.kill()


def test_persistent_cluster_keeps_its_port_across_restarts(dev_cluster: tuple[Path, str]) -> None:
    """stop + start gives the same port (and URL); a taken port is named with the --port fix."""
    project, url = dev_cluster
    port = psycopg.conninfo.conninfo_to_dict(url)["port"]
    assert _pgkeel("db", "stop", cwd=project).returncode == 0
    again = _pgkeel("db", "start", cwd=project)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == url
    assert _pgkeel("db", "stop", cwd=project).returncode == 0
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as postgres does
        squatter.bind(("127.0.0.1", int(str(port))))
        squatter.listen()
        refused = _pgkeel("db", "start", cwd=project)
    assert refused.returncode == 1
    assert f"port {port} is taken" in refused.stderr
    assert "--port" in refused.stderr


def test_start_with_options_a_running_server_does_not_match(dev_cluster: tuple[Path, str]) -> None:
    """db start --port N on a running cluster on another port fails and says how to restart."""
    project, url = dev_cluster
    port = int(str(psycopg.conninfo.conninfo_to_dict(url)["port"]))
    other = port + 1 if port < 65535 else port - 1
    result = _pgkeel("db", "start", "--port", str(other), cwd=project)
    assert result.returncode == 1
    assert "does not match" in result.stderr
    assert f"pgkeel db stop && pgkeel db start --port {other}" in result.stderr
    if embedded.supports_ssl(embedded.find_bindir()):
        tls = _pgkeel("db", "start", "--ssl", cwd=project)
        assert tls.returncode == 1
        assert "serves no TLS" in tls.stderr
        assert "pgkeel db start --ssl" in tls.stderr


def test_commands_find_the_cluster_from_a_subdirectory(dev_cluster: tuple[Path, str]) -> None:
    """From a subdirectory, db url/status and copy (no --url) use the project's dev cluster."""
    project, url = dev_cluster
    deeper = project / "src" / "deeper"
    deeper.mkdir(parents=True)
    assert _pgkeel("db", "url", cwd=deeper).stdout.strip() == url
    assert _pgkeel("db", "status", cwd=deeper).returncode == 0
    exported = _pgkeel("copy", "out", "select 41 + 1 as answer", "out.csv", cwd=deeper)
    assert exported.returncode == 0, exported.stderr
    assert (deeper / "out.csv").read_text().splitlines() == ["answer", "42"]
    # An explicit choice wins: PGKEEL_DATA_DIR names another (stopped) cluster.
    elsewhere = _clean_env(PGKEEL_DATA_DIR=str(project / "other"))
    assert _pgkeel("db", "status", cwd=deeper, env=elsewhere).returncode == 1


def test_data_dir_variable_is_documented_in_help(cluster_dir: Path) -> None:
    """--help names PGKEEL_DATA_DIR, and the rule for finding the cluster."""
    shown = _pgkeel("db", "start", "--help", cwd=cluster_dir).stdout
    assert "PGKEEL_DATA_DIR" in shown
    assert "nearest parent" in shown


def test_db_psql_keeps_the_password_out_of_argv(
    dev_cluster: tuple[Path, str], tmp_path: Path
) -> None:
    """db psql gives psql the password through its environment, never on its command line."""
    project, url = dev_cluster
    password = psycopg.conninfo.conninfo_to_dict(url)["password"]
    assert isinstance(password, str)
    # A bin directory like the real one, whose psql records what it was given.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("postgres", "initdb", "pg_ctl"):
        (bindir / name).symlink_to(embedded.find_bindir() / name)
    (bindir / "psql").write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$0" "$@" > {tmp_path}/argv\nenv > {tmp_path}/env\n'
    )
    (bindir / "psql").chmod(0o755)
    env = _clean_env(PGKEEL_PG_BINDIR=str(bindir))
    result = _pgkeel("db", "psql", "-c", "select 1", cwd=project, env=env)
    assert result.returncode == 0, result.stderr
    argv = (tmp_path / "argv").read_text()
    assert password not in argv
    assert "-c\nselect 1\n" in argv
    assert f"PGPASSWORD={password}\n" in (tmp_path / "env").read_text()


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


def test_dev_url_gives_way_to_database_url_and_libpq_variables(
    dev_cluster: tuple[Path, str],
) -> None:
    """dev_url() is the running dev cluster's URL unless DATABASE_URL or a PG* server var is set."""
    project, url = dev_cluster
    deeper = project / "a" / "b"
    deeper.mkdir(parents=True)
    assert embedded.dev_data_dir(deeper, environ={}) == project / ".pgkeel" / "data"
    assert embedded.dev_url(deeper, environ={}) == url
    assert embedded.dev_url(deeper, environ={"PGPASSWORD": "x"}) == url  # names no server
    for name in ("DATABASE_URL", "PGHOST", "PGPORT", "PGDATABASE", "PGSERVICE"):
        assert embedded.dev_url(deeper, environ={name: "x"}) is None
    elsewhere = {"PGKEEL_DATA_DIR": str(project / "nothing-here")}
    assert embedded.dev_url(deeper, environ=elsewhere) is None


def test_db_start_standby_of(dev_cluster: tuple[Path, str]) -> None:
    """start --standby-of DIR makes a streaming standby of the dev cluster: read-only, with the
    primary's writes; stop leaves its data for the next start; its own directory is required."""
    root, url = dev_cluster
    primary_dir = root / ".pgkeel" / "data"
    standby_dir = root / ".pgkeel" / "standby"
    same = _pgkeel("db", "start", "--standby-of", str(primary_dir), cwd=root)
    assert same.returncode == 1
    assert "its own --data-dir" in same.stderr
    args = ["--data-dir", str(standby_dir)]
    started = _pgkeel("db", "start", *args, "--standby-of", str(primary_dir), cwd=root)
    assert started.returncode == 0, started.stderr
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE from_primary (id int)")
            lsn = conn.execute("SELECT pg_current_wal_flush_lsn()").fetchone()
        with psycopg.connect(started.stdout.strip(), autocommit=True) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
            deadline = time.monotonic() + 30
            while not conn.execute(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn[0] if lsn else None]
            ).fetchone()[0]:  # type: ignore[index]
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert conn.execute("SELECT count(*) FROM from_primary").fetchone() == (0,)
    finally:
        assert _pgkeel("db", "stop", *args, cwd=root).returncode == 0
    assert (standby_dir / "standby.signal").exists()
    missing = _pgkeel(
        "db", "start", "--data-dir", str(root / "other"), "--standby-of", str(root / "x"), cwd=root
    )
    assert missing.returncode == 1
    assert "no server is running" in missing.stderr
