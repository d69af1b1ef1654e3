"""The embedded server itself: starting a cluster (throwaway or persistent) under a watchdog,
the :class:`EmbeddedServer` handle, finding one already running, and stopping every server this
process started when it exits."""

from __future__ import annotations

import atexit
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Self
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql

from pgkeel.embedded import _postmaster
from pgkeel.embedded._binaries import _pkglibdir, _server_version, find_bindir, supports_ssl
from pgkeel.embedded._runas import _check_reachable, _run_as, _RunAs
from pgkeel.embedded._template import (
    _CONF_FILE,
    _PASSWORD_FILE,
    SUPERUSER,
    _fail,
    _template,
)
from pgkeel.errors import EmbeddedServerError

__all__ = ["DEFAULT_SETTINGS", "EmbeddedServer", "running", "start"]

logger = logging.getLogger("pgkeel.embedded")

_LOG_FILE = "pgkeel-server.log"
_STATE_FILE = "pgkeel.json"  # what a persistent cluster keeps between starts: its port
_START_TIMEOUT_S = 60

#: Settings every embedded server gets unless ``settings=`` overrides them: what pgkeel's own
#: features need (logical decoding, replication slots, pg_stat_statements).
DEFAULT_SETTINGS: Mapping[str, str] = {
    "wal_level": "logical",
    "max_replication_slots": "10",
    "max_wal_senders": "10",
    "shared_preload_libraries": "pg_stat_statements",
    "password_encryption": "scram-sha-256",
    "max_connections": "100",
}
# A throwaway cluster's data is gone at stop, so durability only costs time. (Not
# synchronous_commit=off: logical decoding only sees flushed WAL, so commits would show up late.)
_THROWAWAY_SETTINGS: Mapping[str, str] = {"fsync": "off", "full_page_writes": "off"}


# --- the server -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _conf_value(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    text = str(value)
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def _scram_verifier(password: str, *, iterations: int = 4096, salt: bytes | None = None) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802 / RFC 7677).

    Sent instead of the password, so that the clear text never reaches the server, its log or
    ``pg_stat_statements``. pgkeel's passwords are ASCII, which SASLprep leaves unchanged.
    """
    salt = secrets.token_bytes(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _tell(watchdog: subprocess.Popen[str], message: Mapping[str, object]) -> None:
    assert watchdog.stdin is not None
    watchdog.stdin.write(json.dumps(message) + "\n")
    watchdog.stdin.flush()


def _release(watchdog: subprocess.Popen[str]) -> None:
    """Close the watchdog's pipe (it then stops the server unless detached) and wait for it."""
    with contextlib.suppress(OSError):
        if watchdog.stdin is not None:
            watchdog.stdin.close()
    try:
        watchdog.wait(timeout=90)
    except subprocess.TimeoutExpired:
        logger.warning(
            "pgkeel watchdog %s did not finish; stopping the server directly", watchdog.pid
        )
    if watchdog.stdout is not None:
        watchdog.stdout.close()


def _spawn_watchdog(
    data: Path, who: _RunAs, remove: list[Path], lock_fd: int | None
) -> subprocess.Popen[str]:
    """Start the process that runs ``pg_ctl start`` and stops the server when we die."""
    if not sys.executable:
        raise EmbeddedServerError("cannot find the Python interpreter to run pgkeel's watchdog")
    watchdog = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-I", "-S", _postmaster.__file__],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=_postmaster.minimal_env(pwd.getpwuid(os.geteuid()).pw_name),
        start_new_session=True,  # a terminal's Ctrl-C goes to the owner, which then stops us
        pass_fds=() if lock_fd is None else (lock_fd,),
        cwd="/",
    )
    config = {"uid": who.uid, "gid": who.gid, "user": who.name, "data": str(data),
              "remove": [str(p) for p in remove]}  # fmt: skip
    _tell(watchdog, config)
    return watchdog


def _is_our_socket_dir(path: Path) -> bool:
    return path.parent == _tmp_root() and path.name.startswith("pgkeel-sock-")


class EmbeddedServer:
    """A running PostgreSQL server owned by this process (see :func:`start`)."""

    def __init__(
        self,
        *,
        data_dir: Path,
        bindir: Path,
        version: str,
        port: int,
        password: str,
        socket_dir: Path,
        throwaway: bool,
        ssl_ca: Path | None,
        run_as: _RunAs,
        watchdog: subprocess.Popen[str] | None = None,
        remove: tuple[Path, ...] = (),
        lock_fd: int | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.bindir = bindir
        self.version = version
        self.port = port
        self.socket_dir = socket_dir
        self.throwaway = throwaway
        self.ssl_ca = ssl_ca
        self._password = password
        self._run_as = run_as
        self._watchdog = watchdog
        self._remove = remove
        self._lock_fd = lock_fd
        self._stopped = False
        self._owner_pid = os.getpid()

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def pid(self) -> int | None:
        """The postmaster's pid, confirmed to be this server's (None once it is gone)."""
        found = _postmaster.find(self.data_dir)
        return found.pid if found else None

    @property
    def ssl(self) -> bool:
        return self.ssl_ca is not None

    @property
    def password(self) -> str:
        return self._password

    @property
    def url(self) -> str:
        """A libpq URL for the ``postgres`` database as the superuser, password included."""
        return self.url_for(SUPERUSER)

    def url_for(self, dbname: str, *, with_password: bool = True) -> str:
        """The same URL as :attr:`url` for another database (optionally without the password)."""
        query: dict[str, str] = {}
        host = "127.0.0.1"
        if self.ssl_ca is not None:
            host = "localhost"  # the name the certificate is for; hostaddr skips DNS
            query = {"hostaddr": "127.0.0.1", "sslmode": "verify-full",
                     "sslrootcert": str(self.ssl_ca)}  # fmt: skip
        secret = ":" + quote(self._password, safe="") if with_password else ""
        url = f"postgresql://{SUPERUSER}{secret}@{host}:{self.port}/" + quote(dbname, safe="")
        return url + ("?" + urlencode(query) if query else "")

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else f"port={self.port}"
        return f"<EmbeddedServer PostgreSQL {self.version} {state} data_dir={str(self.data_dir)!r}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def detach(self) -> None:
        """Leave the server running when this process exits (``pgkeel db start`` does this)."""
        _LIVE.discard(self)
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            with contextlib.suppress(OSError):
                _tell(watchdog, {"cmd": "detach"})
            _release(watchdog)
        self._close_lock()

    def stop(self) -> None:
        """Stop the server (fast shutdown) and, for a throwaway cluster, delete its files."""
        if self._stopped or os.getpid() != self._owner_pid:
            return  # a forked child must not stop its parent's server
        self._stopped = True
        _LIVE.discard(self)
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            with contextlib.suppress(OSError):
                _tell(watchdog, {"cmd": "stop"})
            _release(watchdog)  # the watchdog stops the server and removes the files...
        _postmaster.stop(self.data_dir)  # ...and so do we, should it have failed: both idempotent
        for path in self._remove:
            shutil.rmtree(path, ignore_errors=True)
        if _is_our_socket_dir(self.socket_dir):  # only ours: the path comes from postmaster.pid
            shutil.rmtree(self.socket_dir, ignore_errors=True)
        self._close_lock()

    def _close_lock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)


def _write_ssl_files(data_dir: Path) -> Path:
    """Make a throwaway CA and a server certificate for ``localhost``; return the CA's path."""
    try:
        from pgkeel.embedded._certs import make_ca_and_server_cert
    except ImportError as exc:  # cryptography missing
        raise EmbeddedServerError(
            "ssl=True needs the 'cryptography' package: pip install 'pgkeel[embedded]'"
        ) from exc
    ca_pem, cert_pem, key_pem = make_ca_and_server_cert("localhost")
    (data_dir / "server.crt").write_bytes(cert_pem)
    key = data_dir / "server.key"
    key.write_bytes(key_pem)
    key.chmod(0o600)
    ca = data_dir / "root.crt"
    ca.write_bytes(ca_pem)
    return ca


def _settings_for(
    bindir: Path, port: int, socket_dir: Path, throwaway: bool, ssl: bool,
    settings: Mapping[str, object] | None,
) -> dict[str, object]:  # fmt: skip
    merged: dict[str, object] = dict(DEFAULT_SETTINGS)
    if throwaway:
        merged.update(_THROWAWAY_SETTINGS)
    libdir = _pkglibdir(bindir)
    if settings is None or "shared_preload_libraries" not in settings:
        wanted = str(merged["shared_preload_libraries"]).split(",")
        present = [
            lib for lib in wanted if libdir is not None and (libdir / f"{lib.strip()}.so").exists()
        ]
        if present != wanted:
            logger.info(
                "not preloading %s: not shipped with %s", set(wanted) - set(present), bindir
            )
        merged["shared_preload_libraries"] = ",".join(present)
    merged.update(settings or {})
    merged.update(port=port, listen_addresses="127.0.0.1", unix_socket_directories=str(socket_dir))
    if ssl:
        merged.update(ssl=True, ssl_cert_file="server.crt", ssl_key_file="server.key")
    return merged


def _tmp_root() -> Path:
    return Path(tempfile.gettempdir())


def start(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    port: int | None = None,
    settings: Mapping[str, object] | None = None,
    ssl: bool = False,
    standby_of: EmbeddedServer | str | os.PathLike[str] | None = None,
) -> EmbeddedServer:
    """Start a PostgreSQL server and return it; use it as a context manager to stop it.

    ``data_dir=None`` makes a throwaway cluster, deleted at stop; a path makes (or reuses) a
    persistent one. ``port=None`` picks a free port for a new cluster; a persistent cluster then
    keeps that port across restarts (``port=`` moves it). ``settings`` override
    :data:`DEFAULT_SETTINGS` (e.g. ``{"max_connections": 20}``). ``ssl=True`` generates a CA and
    a certificate for ``localhost``; the URL then asks for ``sslmode=verify-full``.

    ``standby_of`` (a running EmbeddedServer, or the data directory of one) makes the new
    cluster a streaming standby of it: a ``pg_basebackup`` of the primary, ``standby.signal``
    and ``primary_conninfo``; it serves read-only queries (hot standby) and can be promoted
    with ``SELECT pg_promote()``. An existing cluster is started as it is.
    """
    bindir = find_bindir()
    if ssl and not supports_ssl(bindir):
        raise EmbeddedServerError(
            f"ssl=True, but the PostgreSQL in {bindir} was built without TLS support; "
            "install a server built with OpenSSL (e.g. apt-get install postgresql) and point "
            "PGKEEL_PG_BINDIR at its bin/ directory."
        )
    version = _server_version(bindir)
    who = _run_as()
    primary = _primary(standby_of)
    throwaway = data_dir is None
    lock_fd: int | None = None
    if data_dir is None:
        _postmaster.reap_orphans(_tmp_root(), {os.geteuid(), who.uid})
        root = Path(tempfile.mkdtemp(prefix="pgkeel-"))
        # Held by us and our watchdog: while either lives, no other start reaps this directory.
        lock_fd = _postmaster.hold_new_lock(root)
        who.own(root)
        data = root / "data"
    else:
        data = Path(data_dir).absolute()
        data.parent.mkdir(parents=True, exist_ok=True)
    try:
        _check_reachable(data.parent, who)
        if primary is not None and not (data / "PG_VERSION").exists():
            _base_backup(primary, data, who)
            # A hot standby refuses to start with a lower max_connections (and others) than
            # its primary: it starts with the primary's settings, settings= over them.
            settings = {**_conf_settings(data / _CONF_FILE), **(settings or {})}
        password = _prepare_data_dir(data, bindir, version, who)
        server = _launch(
            data, bindir, version, who, password, port, settings, ssl, throwaway, lock_fd
        )
    except BaseException:
        if throwaway:
            shutil.rmtree(data.parent, ignore_errors=True)
        if lock_fd is not None:
            os.close(lock_fd)
        raise
    return server


def _primary(
    standby_of: EmbeddedServer | str | os.PathLike[str] | None,
) -> EmbeddedServer | None:
    if standby_of is None or isinstance(standby_of, EmbeddedServer):
        return standby_of
    found = running(standby_of)
    if found is None:
        raise EmbeddedServerError(
            f"standby_of: no server is running on {Path(standby_of).absolute()}; start the "
            "primary first (pgkeel db start --data-dir ...)"
        )
    return found


#: Settings pgkeel writes for each server itself: never copied from a primary.
_OWN_SETTINGS = frozenset(
    {"port", "listen_addresses", "unix_socket_directories", "ssl", "ssl_cert_file", "ssl_key_file"}
)


def _conf_settings(path: Path) -> dict[str, object]:
    """The settings of a ``pgkeel.conf`` (as :func:`_conf_value` wrote them), but the ones
    that belong to one server (port, sockets, TLS files)."""
    out: dict[str, object] = {}
    with contextlib.suppress(FileNotFoundError):
        for line in path.read_text().splitlines():
            name, eq, value = line.partition(" = ")
            if not eq or line.startswith("#") or name in _OWN_SETTINGS:
                continue
            value = value.strip()
            if value.startswith("'") and value.endswith("'"):
                value = value[1:-1].replace("''", "'").replace("\\\\", "\\")
            out[name.strip()] = value
    return out


def _base_backup(primary: EmbeddedServer, data: Path, who: _RunAs) -> None:
    """Make ``data`` a streaming standby of ``primary``: pg_basebackup (with the WAL it needs),
    ``standby.signal`` and ``primary_conninfo``. The password travels in a passfile kept in the
    cluster (mode 0600), never on a command line."""
    if data.exists() and any(data.iterdir()):
        raise EmbeddedServerError(
            f"standby_of: {data} exists and is not empty; a standby starts from an empty directory"
        )
    if not (primary.bindir / "pg_basebackup").exists():
        raise EmbeddedServerError(
            f"standby_of: {primary.bindir} has no pg_basebackup; install the PostgreSQL server "
            "package (e.g. apt-get install postgresql) and point PGKEEL_PG_BINDIR at its bin/"
        )
    data.mkdir(mode=0o700, exist_ok=True)  # the server's user may not write in data.parent
    who.own(data)
    passfile = data.parent / f".{data.name}.pgpass"
    passfile.write_text(f"127.0.0.1:{primary.port}:*:{SUPERUSER}:{primary.password}\n")
    passfile.chmod(0o600)
    who.own(passfile)
    conninfo = (
        f"host=127.0.0.1 port={primary.port} user={SUPERUSER} passfile={passfile} "
        "sslmode=prefer connect_timeout=10"
    )
    try:
        result = who.run(
            [str(primary.bindir / "pg_basebackup"), "-D", str(data), "-d", conninfo,
             "-X", "stream", "-c", "fast", "--no-sync"],
            capture_output=True,
        )  # fmt: skip
        _fail("pg_basebackup", result)
        kept = data / "pgkeel.pgpass"
        shutil.move(str(passfile), kept)
        with contextlib.suppress(FileNotFoundError):
            (data / _STATE_FILE).unlink()  # the primary's port, not ours
        (data / "standby.signal").write_text("")
        primary_conninfo = conninfo.replace(f"passfile={passfile}", f"passfile={kept}")
        with (data / "postgresql.auto.conf").open("a") as conf:
            conf.write(f"primary_conninfo = {_conf_value(primary_conninfo)}\n")
        for path in (data / "standby.signal", data / "postgresql.auto.conf", kept):
            who.own(path)
    except BaseException:
        shutil.rmtree(data, ignore_errors=True)  # a half-copied cluster must not start later
        raise
    finally:
        passfile.unlink(missing_ok=True)


def _prepare_data_dir(data: Path, bindir: Path, version: str, who: _RunAs) -> str | None:
    """Make ``data`` a cluster; return the password to switch to, or None if it is kept."""
    if (data / "PG_VERSION").exists():
        major = (data / "PG_VERSION").read_text().strip()
        if major != version.split(".")[0]:
            raise EmbeddedServerError(
                f"{data} holds a PostgreSQL {major} cluster but the binaries in {bindir} are "
                f"{version}; set PGKEEL_PG_BINDIR to a PostgreSQL {major} bin/ directory."
            )
        if found := _postmaster.find(data):
            raise EmbeddedServerError(
                f"the cluster in {data} is already running (pid {found.pid}, port {found.port}); "
                "use `pgkeel db url` to reach it or `pgkeel db stop` to stop it."
            )
        _postmaster.remove_stale_pidfile(data)
        if not (data / _PASSWORD_FILE).exists():
            raise EmbeddedServerError(f"{data} is a cluster pgkeel did not create (no password)")
        return None
    if data.exists() and any(data.iterdir()):
        raise EmbeddedServerError(
            f"{data} exists, is not empty and is not a PostgreSQL cluster; choose another path."
        )
    template = _template(bindir, version, who)
    data.mkdir(mode=0o700, exist_ok=True)
    shutil.copytree(template / "data", data, symlinks=True, dirs_exist_ok=True)
    return secrets.token_urlsafe(24)


def _remembered_port(data: Path) -> int | None:
    try:
        port = json.loads((data / _STATE_FILE).read_text())["port"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return port if isinstance(port, int) else None


def _launch(
    data: Path, bindir: Path, version: str, who: _RunAs, new_password: str | None,
    port: int | None, settings: Mapping[str, object] | None, ssl: bool, throwaway: bool,
    lock_fd: int | None,
) -> EmbeddedServer:  # fmt: skip
    data.chmod(0o700)
    ssl_ca = _write_ssl_files(data) if ssl else None
    if throwaway:
        socket_dir = data.parent / "sock"
        socket_dir.mkdir(mode=0o700)
        remove = [data.parent]
    else:
        socket_dir = Path(tempfile.mkdtemp(prefix="pgkeel-sock-"))
        remove = [socket_dir]
    fixed = port if port is not None or throwaway else _remembered_port(data)
    watchdog = _spawn_watchdog(data, who, remove, lock_fd)
    try:
        chosen = _start_postmaster(
            watchdog, data, bindir, who, fixed, socket_dir, throwaway, ssl, settings
        )
    except BaseException:
        _release(watchdog)  # stops whatever started and removes the directories
        raise
    if not throwaway:
        (data / _STATE_FILE).write_text(json.dumps({"port": chosen}) + "\n")
    password_file = data / _PASSWORD_FILE
    password = password_file.read_text().strip()
    server = EmbeddedServer(
        data_dir=data, bindir=bindir, version=version, port=chosen, password=password,
        socket_dir=socket_dir, throwaway=throwaway, ssl_ca=ssl_ca, run_as=who,
        watchdog=watchdog, remove=tuple(remove), lock_fd=lock_fd,
    )  # fmt: skip
    _LIVE.add(server)
    if server.pid is not None:
        _STARTED.append((server.pid, data))
    if new_password is not None:
        try:
            _set_password(server, new_password)
        except BaseException:
            server.stop()
            raise
        password_file.write_text(new_password)
        password_file.chmod(0o600)
        who.own(password_file)
        server._password = new_password
    return server


def _start_postmaster(
    watchdog: subprocess.Popen[str], data: Path, bindir: Path, who: _RunAs, fixed: int | None,
    socket_dir: Path, throwaway: bool, ssl: bool, settings: Mapping[str, object] | None,
) -> int:  # fmt: skip
    """Have the watchdog run ``pg_ctl start``; return the port the server listens on."""
    for attempt in range(3):
        chosen = fixed or _free_port()
        conf = _settings_for(bindir, chosen, socket_dir, throwaway, ssl, settings)
        (data / _CONF_FILE).write_text(
            "# written by pgkeel at each start; edit settings= instead\n"
            + "".join(f"{k} = {_conf_value(v)}\n" for k, v in conf.items())
        )
        who.own(data)
        who.own(socket_dir)
        log = data / _LOG_FILE
        with contextlib.suppress(FileNotFoundError):
            log.unlink()
        argv = [str(bindir / "pg_ctl"), "start", "-D", str(data), "-l", str(log), "-w",
                "-t", str(_START_TIMEOUT_S), "-s"]  # fmt: skip
        _tell(watchdog, {"cmd": "start", "argv": argv})
        assert watchdog.stdout is not None
        reply = watchdog.stdout.readline()
        if not reply:
            raise EmbeddedServerError("pgkeel's watchdog process died while starting the server")
        answer = json.loads(reply)
        result = subprocess.CompletedProcess(argv, answer["returncode"], answer["output"], "")
        if result.returncode == 0:
            return chosen
        in_use = log.exists() and "could not bind" in log.read_text(errors="replace")
        if in_use and fixed is not None:
            raise EmbeddedServerError(
                f"cannot start the cluster in {data}: port {fixed} is taken by another process; "
                "free that port, or start on another one with `pgkeel db start --port N` "
                "(or port=N), which the cluster then keeps."
            )
        if not in_use or attempt == 2:
            _fail("pg_ctl start", result, log)
        # else somebody took the free port between our check and the bind: try another
    raise AssertionError("unreachable")


def _set_password(server: EmbeddedServer, password: str) -> None:
    """Replace the template's password so that each cluster has its own.

    Only a SCRAM verifier computed here travels, and utility statements are not tracked for this
    session, so the password is in neither the server log nor ``pg_stat_statements``.
    """
    with psycopg.connect(
        host=str(server.socket_dir), port=server.port, user=SUPERUSER, dbname="postgres",
        password=server.password, autocommit=True, connect_timeout=10,
    ) as conn:  # fmt: skip
        conn.execute("SET pg_stat_statements.track_utility = off")
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(SUPERUSER), sql.Literal(_scram_verifier(password))
            )
        )


def _ssl_enabled(data: Path) -> bool:
    try:
        return "\nssl = on\n" in (data / _CONF_FILE).read_text()
    except OSError:
        return False


def running(data_dir: str | os.PathLike[str]) -> EmbeddedServer | None:
    """The server running on a persistent ``data_dir`` (started by any process), or None.

    The returned object can give the URL and stop the server; used by ``pgkeel db``. A
    ``postmaster.pid`` left by a dead server, whose pid another process now has, is not a
    running server.
    """
    data = Path(data_dir).absolute()
    found = _postmaster.find(data)
    if found is None:
        return None
    bindir = find_bindir()
    return EmbeddedServer(
        data_dir=data, bindir=bindir, version=_server_version(bindir), port=found.port,
        password=(data / _PASSWORD_FILE).read_text().strip(),
        socket_dir=Path(found.socket_dir), throwaway=False,
        ssl_ca=(data / "root.crt") if _ssl_enabled(data) else None, run_as=_run_as(),
    )  # fmt: skip


# --- never leave a postmaster behind ----------------------------------------------------------

_LIVE: set[EmbeddedServer] = set()
# Every postmaster this process started, so that a test suite can prove none outlived it.
_STARTED: list[tuple[int, Path]] = []


def _stop_all() -> None:
    for srv in list(_LIVE):
        with contextlib.suppress(Exception):
            srv.stop()


# Interpreter exit stops our servers here; any other death of this process (a signal, SIGKILL,
# the OOM killer) closes the watchdogs' pipes, and they stop the servers.
atexit.register(_stop_all)


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    """True once process ``pid`` has exited."""
    deadline = time.monotonic() + timeout
    while _postmaster._alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
