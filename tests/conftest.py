"""Suite-wide checks: pytester for plugin tests, and proof that no postgres outlives the suite."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgkeel import embedded
from pgkeel.embedded import _server

pytest_plugins = ["pytester"]
# Fixture modules that tests also import helpers from: rewritten before that first import.
pytest.register_assert_rewrite("fix_cdc")


@pytest.fixture(scope="session")
def require_tls() -> None:
    """Skip when the server binaries in use were built without TLS (the pgserver wheel)."""
    bindir = embedded.find_bindir()
    if not embedded.supports_ssl(bindir):
        pytest.skip(f"{bindir} has no TLS support")


@pytest.fixture
def cluster_dir() -> Iterator[Path]:
    """A directory for persistent clusters that the server's user can enter even under root.

    (pytest's tmp_path lives in a 0700 directory of root's, which the unprivileged server user
    that pgkeel runs PostgreSQL as cannot enter.)
    """
    path = Path(tempfile.mkdtemp(prefix="pgkeel-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if any postmaster started in this process is still alive at the end."""
    left = [
        (pid, str(data)) for pid, data in _server._STARTED if not _server._wait_gone(pid, timeout=5)
    ]
    if left:
        session.config.pluginmanager.get_plugin("terminalreporter").write_line(
            f"ORPHANED postgres processes after the suite: {left}", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
