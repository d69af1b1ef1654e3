"""How long a throwaway cluster takes to be ready: pgkeel.embedded vs raw initdb + pg_ctl start.

Both variants end with a server accepting a password-authenticated connection on 127.0.0.1 and
are stopped and deleted afterwards; pgkeel's cold start (no cached template) is shown apart.

    python bench/embedded_start.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from pgkeel import embedded


def _timed_pgkeel() -> float:
    t0 = time.perf_counter()
    server = embedded.start()
    psycopg.connect(server.url).close()
    elapsed = time.perf_counter() - t0
    server.stop()
    return elapsed


def _timed_raw(bindir: Path) -> float:
    """initdb + pg_ctl start by hand, as the unprivileged user pgkeel would use."""
    who = embedded._run_as()
    root = Path(tempfile.mkdtemp(prefix="bench-raw-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    password = secrets.token_urlsafe(16)
    (root / "pw").write_text(password)
    who.own(root)
    port = embedded._free_port()
    t0 = time.perf_counter()
    try:
        who.run(
            [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=scram-sha-256",
             f"--pwfile={root / 'pw'}", "--no-sync", "--no-instructions"],
            capture_output=True,
        ).check_returncode()  # fmt: skip
        who.run(
            [str(bindir / "pg_ctl"), "start", "-D", str(data), "-w", "-s", "-l",
             str(root / "log"), "-o", f"-p {port} -k {sock} -c listen_addresses=127.0.0.1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ).check_returncode()  # fmt: skip
        psycopg.connect(
            host="127.0.0.1", port=port, user="postgres", password=password, dbname="postgres"
        ).close()
        return time.perf_counter() - t0
    finally:
        who.run([str(bindir / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate", "-s"])
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--repeat", type=int, default=5)
    repeat = args.parse_args().repeat
    bindir = embedded.find_bindir()
    print(f"server: {bindir} ({embedded._server_version(bindir)}); {repeat} runs, median")

    cache = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    os.environ["PGKEEL_CACHE_DIR"] = str(cache)
    cold = _timed_pgkeel()  # builds the template
    warm = statistics.median(_timed_pgkeel() for _ in range(repeat))
    raw = statistics.median(_timed_raw(bindir) for _ in range(repeat))
    shutil.rmtree(cache, ignore_errors=True)

    print(f"{'variant':<42}{'seconds':>9}")
    print(f"{'raw initdb + pg_ctl start + connect':<42}{raw:>9.3f}")
    print(f"{'pgkeel.embedded.start(), cold (no cache)':<42}{cold:>9.3f}")
    print(f"{'pgkeel.embedded.start(), cached template':<42}{warm:>9.3f}")
    print(f"pgkeel cached / raw: {warm / raw:.2f}x the time ({raw / warm:.1f}x faster)")


if __name__ == "__main__":
    main()
