"""The cluster template cache: ``initdb`` runs once per server version and user, and each new
cluster is a copy of that template (then gets its own password)."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from pgkeel.embedded._runas import _RunAs
from pgkeel.errors import EmbeddedServerError

SUPERUSER = "postgres"
_PASSWORD_FILE = "pgkeel.password"  # noqa: S105 - a file name, not a password
_CONF_FILE = "pgkeel.conf"


def _cache_dir() -> Path:
    if override := os.environ.get("PGKEEL_CACHE_DIR"):
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pgkeel"


def _fail(what: str, result: subprocess.CompletedProcess[str], log: Path | None = None) -> None:
    if result.returncode == 0:
        return
    detail = (result.stderr or "") + (result.stdout or "")
    if log is not None and log.exists():
        detail += "\n--- server log (last lines) ---\n" + "\n".join(
            log.read_text(errors="replace").splitlines()[-20:]
        )
    raise EmbeddedServerError(f"{what} failed (exit {result.returncode}):\n{detail.strip()}")


_template_lock = threading.Lock()


def _template(bindir: Path, version: str, who: _RunAs) -> Path:
    """Return an initdb'd template cluster for this server, making it once per version."""
    key = hashlib.sha256(f"{bindir.resolve()}|{version}|{who.uid}".encode()).hexdigest()[:12]
    template = _cache_dir() / "templates" / f"pg{version}-{key}"
    with _template_lock:
        if (template / "data" / "PG_VERSION").exists():
            return template
        # initdb runs as the server's user, so build where it can write, then move into place.
        work = Path(tempfile.mkdtemp(prefix="pgkeel-initdb-"))
        try:
            data = work / "data"
            data.mkdir(mode=0o700)
            password = secrets.token_urlsafe(24)
            pwfile = work / "pw"
            pwfile.write_text(password)
            pwfile.chmod(0o600)
            who.own(work)
            result = who.run(
                [str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER,
                 "--auth=scram-sha-256", f"--pwfile={pwfile}", "--encoding=UTF8",
                 "--locale=C", "--no-sync", "--no-instructions"],
                capture_output=True,
            )  # fmt: skip
            _fail("initdb", result)
            with (data / "postgresql.conf").open("a") as conf:
                conf.write(f"\ninclude_if_exists = '{_CONF_FILE}'\n")
            (data / _PASSWORD_FILE).write_text(password)
            pwfile.unlink()
            template.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=template.parent))
            shutil.copytree(data, staging / "data", symlinks=True)
            try:
                staging.rename(template)
            except OSError:  # another process made it first
                shutil.rmtree(staging, ignore_errors=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return template
