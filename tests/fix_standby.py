"""A primary and a streaming hot standby for the doctor's replication tests: a throwaway embedded
server, a ``pg_basebackup -R`` copy of it started on another port (as the server's user), both
stopped at the end."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from pgkeel import embedded
from pgkeel.embedded import _runas


@dataclass
class Pair:
    primary: str
    standby: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def standby_pair() -> Iterator[Pair]:
    """A primary URL and the URL of a hot standby streaming from it."""
    who = _runas._run_as()
    with embedded.start() as primary:
        root = Path(tempfile.mkdtemp(prefix="pgkeel-standby-"))
        os.chown(root, who.uid, who.gid)
        data = root / "data"
        bindir = primary.bindir

        def as_server_user(*argv: str) -> None:
            subprocess.run(
                argv, check=True, capture_output=True, cwd=root, user=who.uid, group=who.gid,
                timeout=120,
            )  # fmt: skip

        port = _free_port()
        try:
            as_server_user(
                str(bindir / "pg_basebackup"), "-D", str(data), "-R", "-X", "stream",
                "-c", "fast", "-d", primary.url,
            )  # fmt: skip
            as_server_user(
                str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w",
                "-t", "60", "-o",
                f"-c port={port} -c listen_addresses=127.0.0.1 "
                f"-c unix_socket_directories={root}",
                "start",
            )  # fmt: skip
            try:
                url = make_conninfo(primary.url, port=str(port))
                with psycopg.connect(primary.url, autocommit=True) as conn:
                    for _ in range(200):
                        row = conn.execute(
                            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
                        ).fetchone()
                        if row == (1,):
                            break
                        time.sleep(0.05)
                    else:
                        raise AssertionError("the standby never started streaming")
                yield Pair(primary=primary.url, standby=url)
            finally:
                as_server_user(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(root, ignore_errors=True)
