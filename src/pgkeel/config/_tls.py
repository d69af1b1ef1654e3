"""The SSL policy: which sslmode and host libpq will really use (URL, service file, ``PG*``
variables), and whether that is plaintext to a host that is not local."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_LOCAL_HOSTS = frozenset({"", "localhost"})
_PLAINTEXT_SSLMODES = frozenset({"disable", "allow", "prefer"})


def effective_params(params: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """The parameters libpq will use for host and sslmode: the connection string's, then the
    service file's (``service=`` or ``PGSERVICE``), then the ``PG*`` variables'."""
    out: dict[str, Any] = {}
    for key, var in (("host", "PGHOST"), ("hostaddr", "PGHOSTADDR"), ("sslmode", "PGSSLMODE")):
        if environ.get(var):
            out[key] = environ[var]
    service = params.get("service") or environ.get("PGSERVICE")
    if service:
        out.update(read_service(str(service), environ) or {})
    out.update({k: v for k, v in params.items() if v not in (None, "")})
    return out


def service_files(environ: Mapping[str, str]) -> list[Path]:
    """Where libpq looks for a service, in order: ``PGSERVICEFILE`` or ``~/.pg_service.conf``,
    then ``PGSYSCONFDIR/pg_service.conf`` (libpq's built-in directory when unset:
    ``/etc/postgresql-common`` for psycopg-binary's libpq and Debian's)."""
    if environ.get("PGSERVICEFILE"):
        user = Path(environ["PGSERVICEFILE"])
    else:
        home = environ.get("HOME") or os.path.expanduser("~")
        user = Path(home) / ".pg_service.conf"
    system = Path(environ.get("PGSYSCONFDIR") or "/etc/postgresql-common") / "pg_service.conf"
    return [user, system]


def read_service(name: str, environ: Mapping[str, str]) -> dict[str, str] | None:
    """The parameters of service ``name`` as libpq reads them (the first file that defines
    it), or ``None``. Only host, hostaddr, port and sslmode are kept: the SSL policy needs
    nothing else, and a password in the file must not travel further."""
    for path in service_files(environ):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        found: dict[str, str] | None = None
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                if found is not None:
                    break
                if line.startswith(f"[{name}]"):
                    found = {}
            elif found is not None:
                key, eq, value = line.partition("=")
                if eq and key in ("host", "hostaddr", "port", "sslmode"):
                    found.setdefault(key, value)
        if found is not None:
            return found
    return None


def _sslmode(params: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    return str(params.get("sslmode") or environ.get("PGSSLMODE") or "prefer")


def ssl_verdict(
    params: Mapping[str, Any],
    environ: Mapping[str, str],
    accept: tuple[str, ...] = ("require", "verify-ca", "verify-full"),
) -> str | None:
    """Return why the connection to a non-local host does not meet ``accept`` (the sslmodes
    that pass), or ``None``. The default passes any encrypted connection."""
    sslmode = _sslmode(params, environ)
    if sslmode in accept:
        return None
    hosts = str(params.get("hostaddr") or params.get("host") or environ.get("PGHOST") or "")
    remote = [h for h in hosts.split(",") if not _is_local(h.strip())]
    if not remote:
        return None
    if sslmode in _PLAINTEXT_SSLMODES:
        return (
            f"sslmode={sslmode} lets the connection to {', '.join(remote)} go without TLS "
            "(passwords and data in clear on the network)"
        )
    if sslmode == "require":
        return (
            f"sslmode=require encrypts the connection to {', '.join(remote)} but checks no "
            "certificate (a man in the middle can read and change everything)"
        )
    return (
        f"sslmode={sslmode} checks that the certificate of {', '.join(remote)} is signed by "
        "the CA, not that it names the host"
    )


def _is_local(host: str) -> bool:
    if host in _LOCAL_HOSTS or host.startswith(("/", "@")):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
