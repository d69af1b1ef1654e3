"""Finding the PostgreSQL server binaries to run, and what they were built with."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from pgkeel.errors import EmbeddedServerError, ServerNotFoundError

__all__ = ["find_bindir", "supports_ssl"]

_BINARIES = ("postgres", "initdb", "pg_ctl")


def _has_binaries(path: Path) -> bool:
    return all(os.access(path / name, os.X_OK) for name in _BINARIES)


def find_bindir(
    *,
    environ: Mapping[str, str] | None = None,
    system_root: Path = Path("/usr/lib/postgresql"),
    use_pgserver: bool = True,
) -> Path:
    """Return the directory of the PostgreSQL server binaries to use.

    Looks, in order: ``PGKEEL_PG_BINDIR``; ``pg_config --bindir``; ``postgres``/``initdb``/
    ``pg_ctl`` on ``PATH``; ``<system_root>/<newest version>/bin``; the binaries bundled in the
    ``pgserver`` wheel (``pip install 'pgkeel[embedded]'``). ``environ``, ``system_root`` and
    ``use_pgserver`` exist so that the search can be tested without touching the system.
    """
    env = os.environ if environ is None else environ
    path_var = env.get("PATH", "")
    looked: list[str] = []

    explicit = env.get("PGKEEL_PG_BINDIR")
    if explicit:
        if _has_binaries(Path(explicit)):
            return Path(explicit)
        raise ServerNotFoundError(
            f"PGKEEL_PG_BINDIR={explicit} does not hold executable {', '.join(_BINARIES)}; "
            "point it at the bin/ directory of a PostgreSQL server installation, or unset it."
        )
    looked.append("PGKEEL_PG_BINDIR: not set")

    pg_config = shutil.which("pg_config", path=path_var)
    if pg_config:
        try:
            out = subprocess.run(  # noqa: S603 - a binary found on the user's own PATH
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError) as exc:
            looked.append(f"{pg_config} --bindir: failed ({exc})")
        else:
            if _has_binaries(Path(out)):
                return Path(out)
            looked.append(f"{pg_config} --bindir: {out} has no server binaries (client only)")
    else:
        looked.append("pg_config on PATH: not found")

    postgres = shutil.which("postgres", path=path_var)
    if postgres and _has_binaries(Path(postgres).parent):
        return Path(postgres).parent
    looked.append(
        "postgres, initdb and pg_ctl on PATH: "
        + (f"{postgres} lacks initdb/pg_ctl beside it" if postgres else "not found")
    )

    versions = sorted(
        (p for p in system_root.glob("*") if p.name.replace(".", "").isdigit()),
        key=lambda p: tuple(int(x) for x in p.name.split(".")),
        reverse=True,
    )
    for version_dir in versions:
        if _has_binaries(version_dir / "bin"):
            return version_dir / "bin"
    looked.append(f"{system_root}/<version>/bin: none found")

    if use_pgserver:
        spec = importlib.util.find_spec("pgserver")
        if spec is not None and spec.origin is not None:
            bundled = Path(spec.origin).parent / "pginstall" / "bin"
            if _has_binaries(bundled):
                return bundled
            looked.append(f"pgserver wheel: {bundled} has no server binaries")
        else:
            looked.append("pgserver wheel (pgkeel[embedded]): not installed")

    raise ServerNotFoundError(
        "No PostgreSQL server binaries found. Looked in:\n  - "
        + "\n  - ".join(looked)
        + "\nFix: pip install 'pgkeel[embedded]' (bundles PostgreSQL 16), or install a server "
        "(e.g. apt-get install postgresql), or set PGKEEL_PG_BINDIR to its bin/ directory."
    )


def _server_version(bindir: Path) -> str:
    out = subprocess.run(  # noqa: S603 - the server binary we just located
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"(\d+(?:\.\d+)?)", out)
    if not match:
        raise EmbeddedServerError(f"cannot read the server version from {out!r}")
    return match.group(1)


def supports_ssl(bindir: Path) -> bool:
    """Whether the server in ``bindir`` was built with TLS (pgserver's wheel is not)."""
    pg_config = bindir / "pg_config"
    try:
        configure = subprocess.run(  # noqa: S603 - pg_config beside the server binaries
            [str(pg_config), "--configure"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return True  # cannot tell: let the server say so when it starts
    return "--with-openssl" in configure or "--with-ssl=openssl" in configure


def _pkglibdir(bindir: Path) -> Path | None:
    pg_config = bindir / "pg_config"
    if os.access(pg_config, os.X_OK):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            return Path(
                subprocess.run(  # noqa: S603 - pg_config beside the server binaries
                    [str(pg_config), "--pkglibdir"], capture_output=True, text=True, check=True
                ).stdout.strip()
            )
    for candidate in (bindir.parent / "lib" / "postgresql", bindir.parent / "lib"):
        if candidate.is_dir():
            return candidate
    return None
