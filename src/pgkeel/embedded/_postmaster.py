"""Process care of an embedded postmaster: who runs it, whether a pid is really it, how to stop
it, and the watchdog that stops it when its owner dies. Standard library only, because this file
also runs as the watchdog script (``python -I _postmaster.py``), without importing pgkeel.

The watchdog is spawned before the server starts and runs ``pg_ctl start`` itself, so that no
window exists in which a postmaster runs without a guardian. It holds a pipe from its owner; when
that pipe closes (the owner called ``stop()``, exited, or was killed by any signal, even SIGKILL
or the OOM killer), it stops the server and removes the throwaway directories. A throwaway
cluster's directory also carries a ``lock`` file that owner and watchdog hold with ``flock``:
if both are gone (e.g. ``kill -9`` of both), the next throwaway start reaps the directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Environment variables passed on to the server's processes, besides the fixed ones: the
#: library path a server build may need, and the time zone initdb records. Nothing else of the
#: caller's environment (secrets, PG* variables) reaches the server.
_KEPT_ENV = ("LD_LIBRARY_PATH", "TZ")
_SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
LOCK_FILE = "lock"
_STOP_TIMEOUT_S = 30.0


def minimal_env(user: str) -> dict[str, str]:
    """The environment the server's processes get: fixed values, not the caller's."""
    env = {"PATH": _SAFE_PATH, "HOME": "/", "USER": user, "LOGNAME": user}
    env.update({name: os.environ[name] for name in _KEPT_ENV if name in os.environ})
    return env


@dataclasses.dataclass(frozen=True)
class RunAs:
    """Who runs the server: ourselves, or (when we are root) an unprivileged system user."""

    uid: int
    gid: int
    name: str

    @property
    def is_other(self) -> bool:
        return self.uid != os.geteuid()

    def run(self, args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        kwargs["env"] = minimal_env(self.name)
        if self.is_other:
            kwargs.update(user=self.uid, group=self.gid, extra_groups=[])
            kwargs.setdefault("cwd", "/")
        return subprocess.run(args, text=True, check=False, **kwargs)  # noqa: S603

    def own(self, path: Path) -> None:
        """Give ``path`` (recursively) to the server's user; a no-op when that is us."""
        if not self.is_other:
            return
        os.chown(path, self.uid, self.gid)
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                os.chown(os.path.join(root, name), self.uid, self.gid, follow_symlinks=False)


# --- is that pid our postmaster? ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Postmaster:
    """A postmaster confirmed to be serving a data directory."""

    pid: int
    port: int
    socket_dir: str


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by another user
    return True


def _verdict(pid: int, data: Path) -> bool | None:
    """Whether process ``pid`` is a postmaster on ``data`` (not a reused pid); None: cannot tell.

    A postmaster runs the ``postgres`` binary, as the owner of its data directory, from inside
    it (it chdirs there at start).
    """
    proc = Path(f"/proc/{pid}")
    try:
        argv0 = (proc / "cmdline").read_bytes().split(b"\0")[0]
        cwd = os.readlink(proc / "cwd")
        owner = proc.stat().st_uid
    except FileNotFoundError:
        return False if Path("/proc/self").exists() else None
    except OSError:  # hidden from us (another user's process, hidepid)
        return None
    if os.path.basename(argv0) not in (b"postgres", b"postmaster"):
        return False
    try:
        return os.path.samefile(cwd, data) and owner == data.stat().st_uid
    except OSError:
        return False


def _socket_answers(socket_dir: str, port: int) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(os.path.join(socket_dir, f".s.PGSQL.{port}"))
        except OSError:
            return False
    return True


def find(data: Path) -> Postmaster | None:
    """The postmaster serving ``data``, confirmed (never a stale pidfile's reused pid), or None."""
    try:
        lines = (data / "postmaster.pid").read_text().splitlines()
        pid, port, socket_dir = int(lines[0]), int(lines[3]), lines[4]
    except (OSError, IndexError, ValueError):
        return None
    if pid <= 0:
        return None
    verdict = _verdict(pid, data)
    if verdict is None:  # no /proc to ask: is a server alive and listening on its socket?
        verdict = _alive(pid) and _socket_answers(socket_dir, port)
    return Postmaster(pid, port, socket_dir) if verdict else None


def remove_stale_pidfile(data: Path) -> None:
    """Delete a ``postmaster.pid`` whose pid is provably not a postmaster on ``data``.

    Only where ``/proc`` makes the proof exact; PostgreSQL would otherwise refuse to start when
    the stale pid now belongs to a live process of the server's user.
    """
    pidfile = data / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return
    if _verdict(pid, data) is False:
        with contextlib.suppress(FileNotFoundError):
            pidfile.unlink()


@contextlib.contextmanager
def _pinned(pid: int) -> Iterator[int | None]:
    """A pidfd for ``pid`` where the OS has them, so that a signal cannot reach a reused pid."""
    fd: int | None = None
    with contextlib.suppress(AttributeError, OSError):
        fd = os.pidfd_open(pid)
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


def _send(pid: int, fd: int | None, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        if fd is not None:
            signal.pidfd_send_signal(fd, sig)
        else:
            os.kill(pid, sig)


def _wait_exit(pid: int, fd: int | None, timeout: float) -> bool:
    if fd is not None:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def stop(data: Path, timeout: float = _STOP_TIMEOUT_S) -> bool:
    """Stop the postmaster serving ``data``: fast, then immediate, then SIGKILL as last resort.

    Only a pid confirmed by :func:`find` is ever signalled. True if a server was stopped.
    """
    found = find(data)
    if found is None:
        return False
    with _pinned(found.pid) as fd:
        if find(data) != found:  # gone (and maybe reused) between the check and the pin
            return False
        for sig, wait in (
            (signal.SIGINT, timeout),  # "fast" shutdown
            (signal.SIGQUIT, 10.0),  # "immediate"
            (signal.SIGKILL, 10.0),
        ):
            _send(found.pid, fd, sig)
            if _wait_exit(found.pid, fd, wait):
                return True
    return not _alive(found.pid)


# --- the watchdog ------------------------------------------------------------------------------


def try_lock(path: Path) -> int | None:
    """An fd holding an exclusive flock on ``path``, or None if another process holds it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def hold_new_lock(root: Path) -> int:
    """Create ``root``'s lock file already locked, and return the fd holding it.

    Made under another name, locked, then renamed into place: a reaper that sees a lock file
    always finds it held (with ``try_lock`` on the final name, a reaper could open the new file
    between its creation and its flock, take the lock and remove a directory being set up)."""
    tmp = root / f"{LOCK_FILE}.new"
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(tmp, root / LOCK_FILE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def reap_orphans(tmpdir: Path, uids: set[int]) -> list[Path]:
    """Stop and remove throwaway clusters (``<tmpdir>/pgkeel-*``) whose owner and watchdog died.

    A directory is an orphan when nobody holds its ``lock`` file; one without a lock file
    (being created, or made by an older pgkeel) is left alone. Returns the directories reaped.
    """
    reaped = []
    for root in tmpdir.glob("pgkeel-*"):
        try:
            if root.is_symlink() or root.stat().st_uid not in uids:
                continue
        except OSError:
            continue
        if not (root / LOCK_FILE).exists():
            continue
        fd = try_lock(root / LOCK_FILE)
        if fd is None:
            continue
        try:
            stop(root / "data")
            shutil.rmtree(root, ignore_errors=True)
            reaped.append(root)
        finally:
            os.close(fd)
    return reaped


def _watch(config: dict[str, Any]) -> None:
    """Run ``pg_ctl start`` when asked; on "stop" or EOF stop the server and remove the files."""
    who = RunAs(config["uid"], config["gid"], config["user"])
    data = Path(config["data"])
    for line in sys.stdin:
        command = json.loads(line)
        if command["cmd"] == "detach":
            return
        if command["cmd"] == "stop":
            break  # an explicit stop: a forked child of the owner may still hold the pipe open
        if command["cmd"] == "start":
            # pg_ctl's output goes to a file: a pipe would be inherited by the postmaster.
            with tempfile.TemporaryFile("w+") as out:
                result = who.run(command["argv"], stdout=out, stderr=out, stdin=subprocess.DEVNULL)
                out.seek(0)
                reply = {"returncode": result.returncode, "output": out.read()}
            with contextlib.suppress(BrokenPipeError):
                print(json.dumps(reply), flush=True)
    try:
        stop(data)
    finally:
        for path in config["remove"]:
            shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is for the owner
    config = json.loads(sys.stdin.readline())
    _watch(config)


if __name__ == "__main__":
    main()
