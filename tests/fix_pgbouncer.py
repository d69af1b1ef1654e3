"""A real PgBouncer (the Debian ``pgbouncer`` package) in front of the test server.

``pgbouncer_factory(**settings)`` starts one in transaction mode, with PgBouncer's defaults for
everything not given (so ``ignore_startup_parameters`` is empty: the ``options`` startup
parameter is refused), and returns a function that turns a server URL into the same URL through
PgBouncer. Tests skip, with the reason, where ``pgbouncer`` is not installed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
from psycopg.conninfo import conninfo_to_dict

PGBOUNCER = shutil.which("pgbouncer") or (
    "/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None
)

Through = Callable[[str], str]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def pgbouncer_factory(pg_server: Any) -> Iterator[Callable[..., Through]]:
    """Start PgBouncers (transaction mode, defaults) in front of the test server."""
    if PGBOUNCER is None:
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer)")
    info = conninfo_to_dict(pg_server.url)
    user, password = str(info["user"]), str(info["password"])
    started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(**settings: object) -> Through:
        workdir = Path(tempfile.mkdtemp(prefix="pgkeel-pgbouncer-"))
        workdir.chmod(0o755)
        port = _free_port()
        server_host = info.get("hostaddr") or info.get("host") or "127.0.0.1"
        conf = {
            "listen_addr": "127.0.0.1",
            "listen_port": port,
            "unix_socket_dir": "",
            "auth_type": "scram-sha-256",
            "auth_file": str(workdir / "userlist.txt"),
            "pool_mode": "transaction",
            "logfile": "",
            "pidfile": "",
            **settings,
        }
        lines = [
            "[databases]",
            f"* = host={server_host} port={info.get('port') or 5432}",
            "[pgbouncer]",
            *(f"{k} = {v}" for k, v in conf.items()),
        ]
        (workdir / "pgbouncer.ini").write_text("\n".join(lines) + "\n")
        (workdir / "userlist.txt").write_text(f'"{user}" "{password}"\n')
        for name in ("pgbouncer.ini", "userlist.txt"):
            (workdir / name).chmod(0o644)
        # PgBouncer refuses to run as root.
        extra: dict[str, Any] = {"user": "nobody", "group": "nogroup"} if os.geteuid() == 0 else {}
        with (workdir / "out.log").open("wb") as log:
            proc = subprocess.Popen(
                [PGBOUNCER, str(workdir / "pgbouncer.ini")],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                **extra,
            )
        started.append((proc, workdir))
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"pgbouncer did not start:\n{(workdir / 'out.log').read_text()}")
                time.sleep(0.05)

        def through(url: str) -> str:
            parts = urlsplit(url)
            dbname = parts.path.lstrip("/")
            netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{port}"
            # PgBouncer listens without TLS; the host is local, so pgkeel's SSL policy is quiet.
            return urlunsplit(("postgresql", netloc, "/" + dbname, "sslmode=disable", ""))

        return through

    try:
        yield start
    finally:
        for proc, workdir in started:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            shutil.rmtree(workdir, ignore_errors=True)
