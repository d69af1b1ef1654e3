"""Running the server as an unprivileged user when we are root (PostgreSQL refuses root)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from pgkeel.embedded import _postmaster
from pgkeel.errors import EmbeddedServerError

SERVICE_USER = "pgkeel"


_RunAs = _postmaster.RunAs


def _run_as() -> _RunAs:
    if os.geteuid() != 0:
        return _RunAs(os.geteuid(), os.getegid(), pwd.getpwuid(os.geteuid()).pw_name)
    for attempt in range(2):
        for name in (os.environ.get("PGKEEL_PG_USER", SERVICE_USER), "postgres"):
            with contextlib.suppress(KeyError):
                entry = pwd.getpwnam(name)
                return _RunAs(entry.pw_uid, entry.pw_gid, name)
        if attempt == 0 and shutil.which("useradd"):
            subprocess.run(  # noqa: S603 - creating our own system user, as root
                ["useradd", "--system", "--user-group", "--no-create-home",  # noqa: S607
                 "--shell", "/usr/sbin/nologin", SERVICE_USER],
                capture_output=True, check=False,
            )  # fmt: skip
    raise EmbeddedServerError(
        "PostgreSQL refuses to run as root and no unprivileged user could be found or created; "
        f"create one (useradd --system {SERVICE_USER}) or set PGKEEL_PG_USER to an existing user."
    )


def _check_reachable(path: Path, who: _RunAs) -> None:
    """Fail early, with the fix, when the server's user cannot reach ``path``."""
    if not who.is_other:
        return
    resolved = path.resolve()
    for parent in [*reversed(resolved.parents), resolved]:
        st = parent.stat()
        mode = st.st_mode
        ok = (
            (st.st_uid == who.uid and mode & 0o100)
            or (st.st_gid == who.gid and mode & 0o010)
            or mode & 0o001
        )
        if not ok:
            raise EmbeddedServerError(
                f"the server runs as user {who.name!r} (PostgreSQL refuses to run as root), "
                f"which cannot enter {parent}; choose a data directory outside it "
                "(e.g. --data-dir /var/tmp/pgkeel) or run as a non-root user."
            )
