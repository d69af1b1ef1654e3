"""The embedded server: lifecycle, discovery, root handling, TLS and cleanup, on real servers."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from psycopg import sql

from pgkeel import embedded
from pgkeel.embedded import _postmaster, _runas, _server
from pgkeel.embedded._certs import make_ca_and_server_cert
from pgkeel.errors import EmbeddedServerError, ServerNotFoundError

REAL_BINDIR = embedded.find_bindir()
needs_tls = pytest.mark.usefixtures("require_tls")


def _select_one(url: str) -> object:
    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute("select 1").fetchone()
        return row[0] if row else None


def test_throwaway_cluster_starts_answers_and_is_removed_on_stop() -> None:
    """A throwaway cluster serves queries and leaves neither process nor files after stop()."""
    server = embedded.start()
    pid, data_dir = server.pid, server.data_dir
    assert pid is not None
    assert _select_one(server.url) == 1
    with psycopg.connect(server.url) as conn:
        assert conn.execute("show wal_level").fetchone() == ("logical",)
        assert conn.execute("show listen_addresses").fetchone() == ("127.0.0.1",)
    server.stop()
    assert _server._wait_gone(pid)
    assert not data_dir.exists()


def test_context_manager_stops_the_server() -> None:
    """Leaving the `with` block stops the server."""
    with embedded.start() as server:
        pid = server.pid
        assert _select_one(server.url) == 1
    assert pid is not None
    assert _server._wait_gone(pid)


def test_persistent_cluster_keeps_data_and_password_across_restarts(cluster_dir: Path) -> None:
    """A data_dir cluster survives stop/start with its tables and its password."""
    data_dir = cluster_dir / "cluster"
    with embedded.start(data_dir) as first:
        with psycopg.connect(first.url, autocommit=True) as conn:
            conn.execute("create table kept (x int); insert into kept values (42)")
        password = first.password
    assert (data_dir / "PG_VERSION").exists()
    with embedded.start(data_dir) as second:
        assert second.password == password
        with psycopg.connect(second.url) as conn:
            assert conn.execute("select x from kept").fetchone() == (42,)
    assert (data_dir / "PG_VERSION").exists()


def test_password_file_is_private_and_differs_per_cluster() -> None:
    """Each cluster gets its own generated password, stored 0600 in its data directory."""
    with embedded.start() as a, embedded.start() as b:
        assert a.password != b.password
        mode = stat.S_IMODE((a.data_dir / "pgkeel.password").stat().st_mode)
        assert mode == 0o600
        assert a.password not in repr(a)


def test_wrong_password_is_refused() -> None:
    """Authentication is scram-sha-256, never trust: a wrong password fails."""
    with embedded.start() as server:
        bad = server.url.replace(server.password, "not-the-password")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(bad, connect_timeout=5)


def test_two_clusters_at_once_on_different_ports() -> None:
    """Two throwaway clusters run side by side, each on its own port."""
    with embedded.start() as a, embedded.start() as b:
        assert a.port != b.port
        assert _select_one(a.url) == _select_one(b.url) == 1


def test_requested_port_and_settings_are_applied() -> None:
    """port= is used as given and settings= overrides the defaults."""
    with embedded.start() as probe:
        port = probe.port  # known free once probe stops
    with embedded.start(port=port, settings={"max_connections": 23}) as server:
        assert server.port == port
        with psycopg.connect(server.url) as conn:
            assert conn.execute("show max_connections").fetchone() == ("23",)


def test_persistent_cluster_already_running_is_an_error(cluster_dir: Path) -> None:
    """Starting a persistent cluster twice names the running one and how to reach it."""
    with (
        embedded.start(cluster_dir / "c"),
        pytest.raises(EmbeddedServerError, match="already running"),
    ):
        embedded.start(cluster_dir / "c")


def test_non_empty_non_cluster_directory_is_refused(cluster_dir: Path) -> None:
    """pgkeel never initdb's over a directory that holds other files."""
    (cluster_dir / "stuff.txt").write_text("mine")
    with pytest.raises(EmbeddedServerError, match="not empty"):
        embedded.start(cluster_dir)
    assert (cluster_dir / "stuff.txt").read_text() == "mine"


# --- binary discovery -------------------------------------------------------------------------


def _fake_bindir(where: Path) -> Path:
    """A directory holding links to the real server binaries."""
    where.mkdir(parents=True)
    for name in ("postgres", "initdb", "pg_ctl"):
        (where / name).symlink_to(REAL_BINDIR / name)
    return where


def _fake_pg_config(where: Path, bindir: Path) -> None:
    where.mkdir(parents=True, exist_ok=True)
    script = where / "pg_config"
    script.write_text(f"#!/bin/sh\necho {bindir}\n")
    script.chmod(0o755)


def test_discovery_prefers_pgkeel_pg_bindir(tmp_path: Path) -> None:
    """PGKEEL_PG_BINDIR wins over everything else."""
    chosen = _fake_bindir(tmp_path / "chosen")
    on_path = _fake_bindir(tmp_path / "onpath")
    env = {"PGKEEL_PG_BINDIR": str(chosen), "PATH": str(on_path)}
    assert embedded.find_bindir(environ=env) == chosen


def test_discovery_rejects_a_wrong_pgkeel_pg_bindir(tmp_path: Path) -> None:
    """A PGKEEL_PG_BINDIR without binaries is an error, not silently skipped."""
    with pytest.raises(ServerNotFoundError, match="PGKEEL_PG_BINDIR"):
        embedded.find_bindir(environ={"PGKEEL_PG_BINDIR": str(tmp_path), "PATH": ""})


def test_discovery_uses_pg_config_before_path(tmp_path: Path) -> None:
    """pg_config --bindir comes before server binaries found on PATH."""
    via_config = _fake_bindir(tmp_path / "via_config")
    path_dir = _fake_bindir(tmp_path / "path")
    _fake_pg_config(path_dir, via_config)
    assert embedded.find_bindir(environ={"PATH": str(path_dir)}) == via_config


def test_discovery_skips_client_only_pg_config_then_uses_path(tmp_path: Path) -> None:
    """A pg_config pointing at a client-only bindir is skipped; PATH binaries are used."""
    client_only = tmp_path / "client"
    client_only.mkdir()
    path_dir = _fake_bindir(tmp_path / "path")
    tools = tmp_path / "tools"
    _fake_pg_config(tools, client_only)
    env = {"PATH": f"{tools}:{path_dir}"}
    assert embedded.find_bindir(environ=env, system_root=tmp_path / "none") == path_dir


def test_discovery_picks_newest_system_version(tmp_path: Path) -> None:
    """Without env or PATH hits, the newest /usr/lib/postgresql/<version>/bin is used."""
    root = tmp_path / "postgresql"
    for version in ("9.6", "14", "16"):
        _fake_bindir(root / version / "bin")
    (root / "17").mkdir()  # a version directory without binaries is skipped
    found = embedded.find_bindir(environ={"PATH": ""}, system_root=root)
    assert found == root / "16" / "bin"


def test_discovery_falls_back_to_pgserver_wheel(tmp_path: Path) -> None:
    """With nothing else available, the binaries bundled in the pgserver wheel are used."""
    pytest.importorskip("pgserver")
    found = embedded.find_bindir(environ={"PATH": ""}, system_root=tmp_path)
    assert found.parts[-3:] == ("pgserver", "pginstall", "bin")


def test_discovery_failure_lists_every_place_and_the_fix(tmp_path: Path) -> None:
    """When nothing is found, the error names each place looked and how to fix it."""
    with pytest.raises(ServerNotFoundError) as info:
        embedded.find_bindir(environ={"PATH": ""}, system_root=tmp_path, use_pgserver=False)
    message = str(info.value)
    for place in ("PGKEEL_PG_BINDIR", "pg_config", "PATH", str(tmp_path)):
        assert place in message
    assert "pip install 'pgkeel[embedded]'" in message


def test_pgserver_wheel_binaries_run_a_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pgserver wheel's PostgreSQL 16 starts, and its pgoutput plugin decodes changes."""
    pytest.importorskip("pgserver")
    bindir = embedded.find_bindir(environ={"PATH": ""}, system_root=Path("/nonexistent"))
    monkeypatch.setenv("PGKEEL_PG_BINDIR", str(bindir))
    with embedded.start() as server, psycopg.connect(server.url, autocommit=True) as conn:
        assert server.major == 16
        conn.execute("create table t (x int); create publication p for table t")
        conn.execute("select pg_create_logical_replication_slot('s', 'pgoutput')")
        conn.execute("insert into t values (1)")
        changes = conn.execute(
            "select count(*) from pg_logical_slot_peek_binary_changes("
            "'s', null, null, 'proto_version', '1', 'publication_names', 'p')"
        ).fetchone()
        assert changes is not None
        assert changes[0] >= 3  # begin, insert, commit
        conn.execute("select pg_drop_replication_slot('s')")


def test_ssl_on_a_build_without_tls_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    """ssl=True with the pgserver wheel (built without OpenSSL) fails early and names the fix."""
    pytest.importorskip("pgserver")
    bindir = embedded.find_bindir(environ={"PATH": ""}, system_root=Path("/nonexistent"))
    assert not embedded.supports_ssl(bindir)
    monkeypatch.setenv("PGKEEL_PG_BINDIR", str(bindir))
    with pytest.raises(EmbeddedServerError, match="without TLS support"):
        embedded.start(ssl=True)


# --- root, TLS, cleanup -----------------------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="only meaningful when run as root")
def test_as_root_the_server_runs_unprivileged() -> None:
    """As root, the postmaster runs as an unprivileged user owning its data directory."""
    with embedded.start() as server:
        assert server.pid is not None
        assert psutil.Process(server.pid).uids().real != 0
        assert server.data_dir.stat().st_uid != 0
        assert _select_one(server.url) == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="only meaningful when run as root")
def test_as_root_an_unreachable_data_dir_is_explained(tmp_path: Path) -> None:
    """As root, a data_dir the server's user cannot enter fails early with the fix."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(EmbeddedServerError, match="cannot enter"):
        embedded.start(private / "data")


@needs_tls
def test_ssl_verify_full_succeeds_with_the_generated_ca() -> None:
    """ssl=True serves TLS that verify-full accepts against the generated CA."""
    with embedded.start(ssl=True) as server:
        assert "sslmode=verify-full" in server.url
        with psycopg.connect(server.url) as conn:
            assert conn.pgconn.ssl_in_use
            assert conn.execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()")


@needs_tls
def test_ssl_verify_full_fails_with_a_wrong_ca(tmp_path: Path) -> None:
    """verify-full against another CA is refused: the certificate check is real."""
    other_ca, _, _ = make_ca_and_server_cert("localhost")
    wrong = tmp_path / "wrong.crt"
    wrong.write_bytes(other_ca)
    with embedded.start(ssl=True) as server:
        assert server.ssl_ca is not None
        url = server.url.replace(str(server.ssl_ca).replace("/", "%2F"), str(wrong))
        assert str(wrong) in url
        with pytest.raises(psycopg.OperationalError, match="SSL error"):
            psycopg.connect(url, connect_timeout=5)


_CHILD = textwrap.dedent(
    """
    import sys, time
    from pgkeel import embedded
    server = embedded.start()
    print(server.pid, server.data_dir, flush=True)
    if sys.argv[1] == "wait":
        time.sleep(120)
    """
)


def _gone(path: Path, timeout: float = 60.0) -> bool:
    """True once ``path`` no longer exists (polled: the watchdog works asynchronously)."""
    deadline = time.monotonic() + timeout
    while path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize(
    ("mode", "sig"),
    [("exit", None), ("wait", signal.SIGTERM), ("wait", signal.SIGKILL)],
    ids=["interpreter-exit", "SIGTERM", "SIGKILL"],
)
def test_owner_process_ending_stops_the_server(mode: str, sig: signal.Signals | None) -> None:
    """A server is stopped and its files removed however its owner ends (exit, SIGTERM, SIGKILL)."""
    with subprocess.Popen(
        [sys.executable, "-c", _CHILD, mode], stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        pid_text, data_dir = child.stdout.readline().split()
        pid = int(pid_text)
        if sig is not None:
            assert psutil.pid_exists(pid)
            child.send_signal(sig)
        child.wait(timeout=30)
    assert _server._wait_gone(pid, timeout=60), f"postmaster {pid} outlived its owner ({sig})"
    assert _gone(Path(data_dir).parent)


_DIE_WHILE_STARTING = textwrap.dedent(
    """
    import os, signal, time
    from pgkeel import embedded
    real_init = embedded.EmbeddedServer.__init__

    def init_then_die(self, **kwargs):
        # The postmaster runs, but this process has not registered it yet: SIGTERM now.
        data = kwargs["data_dir"]
        print(open(data / "postmaster.pid").readline().strip(), data, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(60)

    embedded.EmbeddedServer.__init__ = init_then_die
    embedded.start()
    """
)


def test_sigterm_during_start_leaves_no_server() -> None:
    """SIGTERM between pg_ctl start and the server's registration leaves no postmaster or files."""
    with subprocess.Popen(
        [sys.executable, "-c", _DIE_WHILE_STARTING], stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        pid_text, data_dir = child.stdout.readline().split()
        assert child.wait(timeout=30) == -signal.SIGTERM
    assert _server._wait_gone(int(pid_text), timeout=60), "postmaster outlived SIGTERM at start"
    assert _gone(Path(data_dir).parent)


def test_orphan_of_a_dead_owner_and_watchdog_is_reaped_at_next_start() -> None:
    """If owner and watchdog both die (kill -9 of both), the next throwaway start reaps it."""
    with subprocess.Popen(
        [sys.executable, "-c", _CHILD, "wait"], stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        pid_text, data_dir = child.stdout.readline().split()
        for helper in psutil.Process(child.pid).children():
            helper.kill()  # the watchdog first, so that nobody cleans up after the owner
        child.kill()
        child.wait(timeout=30)
    pid = int(pid_text)
    assert psutil.pid_exists(pid)  # orphaned, as after an OOM kill of the whole group
    with embedded.start():
        pass
    assert _server._wait_gone(pid, timeout=60)
    assert not Path(data_dir).parent.exists()


def test_password_is_never_sent_in_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cluster's password is in neither pg_stat_statements nor the log, and logging in works."""
    with embedded.start() as server:
        assert _select_one(server.url) == 1
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("create extension if not exists pg_stat_statements")
            seen = conn.execute(
                "select count(*) from pg_stat_statements where strpos(query, %s) > 0",
                [server.password],
            ).fetchone()
            altered = conn.execute(
                "select count(*) from pg_stat_statements where query ilike %s", ["%alter role%"]
            ).fetchone()
        assert seen == (0,)
        assert altered == (0,)
        log = (server.data_dir / "pgkeel-server.log").read_text(errors="replace")
        assert server.password not in log


def test_scram_verifier_is_what_postgresql_accepts() -> None:
    """A verifier computed by pgkeel for a known password lets that password (only) log in."""
    with embedded.start() as server, psycopg.connect(server.url, autocommit=True) as conn:
        verifier = _server._scram_verifier("s3cret-Pass", iterations=4096, salt=b"0123456789abcdef")
        assert verifier.startswith("SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$")
        conn.execute(sql.SQL("create role alice login password {}").format(sql.Literal(verifier)))
        good = f"postgresql://alice:s3cret-Pass@127.0.0.1:{server.port}/postgres"
        assert _select_one(good) == 1
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(good.replace("s3cret-Pass", "s3cret-pass"), connect_timeout=5)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_server_gets_a_minimal_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller's environment (a canary secret, PG* variables) does not reach the postmaster."""
    monkeypatch.setenv("PGKEEL_CANARY_SECRET", "canary-7f3e")
    monkeypatch.setenv("PGOPTIONS", "-c work_mem=1234kB")
    with embedded.start() as server:
        assert server.pid is not None
        environ = Path(f"/proc/{server.pid}/environ").read_bytes()
        assert b"canary-7f3e" not in environ
        assert b"PGOPTIONS" not in environ
        assert _select_one(server.url) == 1


def _stale_pidfile_for(data_dir: Path, pid: int) -> None:
    """Leave ``data_dir`` as after a crash: its last postmaster.pid, now naming ``pid``."""
    with embedded.start(data_dir):
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
    lines[0] = str(pid)
    (data_dir / "postmaster.pid").write_text("\n".join(lines) + "\n")


def test_stale_pidfile_with_a_reused_pid_is_not_a_server(cluster_dir: Path) -> None:
    """A postmaster.pid whose pid another process now has: not a server, no obstacle to start."""
    data_dir = cluster_dir / "c"
    who = _runas._run_as()
    # An unrelated process of the server's own user, so that even PostgreSQL's own check
    # (kill(pid, 0)) would take it for a live postmaster.
    with subprocess.Popen(
        ["sleep", "300"], user=who.uid, group=who.gid, extra_groups=[]
    ) as unrelated:
        try:
            _stale_pidfile_for(data_dir, unrelated.pid)
            assert embedded.running(data_dir) is None
            with embedded.start(data_dir) as server:  # a stale pidfile does not block a start
                assert server.pid not in (None, unrelated.pid)
                assert _select_one(server.url) == 1
            assert unrelated.poll() is None
        finally:
            unrelated.kill()


@needs_tls
def test_running_reflects_how_the_cluster_was_last_started(cluster_dir: Path) -> None:
    """running() gives a TLS URL only while the persistent cluster really serves TLS."""
    data_dir = cluster_dir / "c"
    with embedded.start(data_dir, ssl=True):
        attached = embedded.running(data_dir)
        assert attached is not None
        assert "sslmode=verify-full" in attached.url
        assert _select_one(attached.url) == 1
    with embedded.start(data_dir):
        attached = embedded.running(data_dir)
        assert attached is not None
        assert "sslmode" not in attached.url
        assert _select_one(attached.url) == 1


def test_stop_does_not_wait_for_a_forked_child_holding_the_pipe() -> None:
    """stop() ends the watchdog even while a forked child still holds the watchdog's pipe."""
    server = embedded.start()
    watchdog = server._watchdog
    assert watchdog is not None
    hold_r, hold_w = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads: child only reads
        child = os.fork()
    if child == 0:  # pragma: no cover - the child waits for its pipe to close, then leaves
        os.close(hold_w)
        os.read(hold_r, 1)
        os._exit(0)
    os.close(hold_r)
    try:
        server.stop()
        assert watchdog.poll() is not None, "stop() gave up on its watchdog"
        assert not server.data_dir.exists()
    finally:
        os.close(hold_w)
        os.waitpid(child, 0)


def _reap_until(tmp: str, stop: Any) -> None:
    while not stop.is_set():
        _postmaster.reap_orphans(Path(tmp), {os.geteuid()})


def test_a_directory_being_set_up_is_never_reaped(tmp_path: Path) -> None:
    """Another process reaping orphans in a loop never takes the lock of (and removes) a
    throwaway directory that start() is creating: its lock file appears already held."""
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    reaper = ctx.Process(target=_reap_until, args=(str(tmp_path), stop))
    reaper.start()
    lost = made = 0
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            root = Path(tempfile.mkdtemp(prefix="pgkeel-", dir=tmp_path))
            fd = _postmaster.hold_new_lock(root)
            made += 1
            try:
                # While we hold the lock, the directory is ours: still there, and writable.
                (root / "data").mkdir()
            except FileNotFoundError:
                lost += 1
            finally:
                os.close(fd)
                shutil.rmtree(root, ignore_errors=True)
    finally:
        stop.set()
        reaper.join(30)
    assert made > 50
    assert lost == 0
