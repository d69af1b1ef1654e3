"""What :class:`~pgkeel.Database` and :class:`~pgkeel.AsyncDatabase` share, without I/O:
configuration and the pool's arguments, ``stats()``'s figures, the sizing verdict, and the
wording of their errors. The pool's policy (liveness, leaks, counters, sizing, and the session
rule: when a connection is reset before it goes back, ``pool/_reset.py``) is in :mod:`pgkeel.pool`;
the retry policy and the ``isolation=`` names in ``_transaction_base``. The two faces only add the
I/O (blocking or awaited) around these.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import psycopg
from psycopg.rows import dict_row

from pgkeel.config import Config, resolve
from pgkeel.errors import PoolSizeError
from pgkeel.pool._counters import Counters
from pgkeel.pool._leaks import LeakWatcher
from pgkeel.pool._sizing import pool_size_problem

logger = logging.getLogger("pgkeel.pool")


def scrub_error(exc: BaseException, scrub: Callable[[str], str]) -> None:
    """Remove secrets from ``exc``'s message in place, so that the error keeps its class, its
    SQLSTATE, its diagnostics and its cause while no traceback or log shows the secret."""
    text = str(exc)
    clean = scrub(text)
    if clean != text:
        exc.args = (clean,)


def not_open_message(name: str | None, closed: bool) -> str:
    state = "has been closed" if closed else "is not open yet"
    return (
        f"the Database (pool {name!r}) {state}: use it as a context manager "
        "(`with Database(...) as db:`, `async with AsyncDatabase(...) as db:`) or call "
        "`open()` first"
    )


def first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


class DatabaseBase:
    """State and pure logic shared by the sync and async faces."""

    config: Config

    def __init__(self, url: str | None, options: Mapping[str, Any]) -> None:
        self.config = resolve(url, options)
        self._counters = Counters()
        self._leaks = LeakWatcher(self.config.leak_timeout)
        self._dirty: set[int] = set()
        if self.config.ssl_warning:
            logger.warning(
                "%s; add sslmode=verify-full (with sslrootcert) to the URL",
                self.config.ssl_warning,
            )

    def _pool_kwargs(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "conninfo": cfg.conninfo,
            "min_size": cfg.min_size,
            "max_size": cfg.max_size,
            "timeout": cfg.timeout,
            "max_idle": cfg.max_idle,
            "max_lifetime": cfg.max_lifetime,
            "max_waiting": cfg.max_waiting,
            "name": cfg.name,
            # One statement is one transaction: no BEGIN/ROLLBACK round trips around single
            # queries; transaction() issues BEGIN itself.
            "kwargs": {
                **cfg.connect_kwargs,
                "autocommit": True,
                "row_factory": dict_row,
                "prepare_threshold": cfg.prepare_threshold,
            },
            "open": False,
        }

    def _target(self) -> str:
        info = psycopg.conninfo.conninfo_to_dict(self.config.conninfo)
        host = info.get("host") or info.get("hostaddr") or "default host"
        port = f":{info['port']}" if info.get("port") else ""
        return f"{host}{port}/{info.get('dbname') or ''}"

    def _stats(
        self, pool_stats: Mapping[str, int], waiting: int | None, last_error: str | None
    ) -> dict[str, Any]:
        c = self._counters
        with c.lock:
            own = {
                "checkouts": c.checkouts,
                "wait_ms_total": round(c.wait_total * 1000, 3),
                "wait_ms_max": round(c.wait_max * 1000, 3),
                "errors": c.errors,
                "retries": c.retries,
                "resets": c.resets,
            }
        return {
            "size": pool_stats.get("pool_size", 0),
            "available": pool_stats.get("pool_available", 0),
            # Clients waiting now (psycopg_pool's requests_waiting also counts ones that timed
            # out, until a connection comes back: see pgkeel._compat.waiting).
            "waiting": pool_stats.get("requests_waiting", 0) if waiting is None else waiting,
            "min_size": self.config.min_size,
            "max_size": self.config.max_size,
            **own,
            "connections_made": pool_stats.get("connections_num", 0),
            "connection_errors": pool_stats.get("connections_errors", 0),
            "connections_lost": pool_stats.get("connections_lost", 0)
            + pool_stats.get("returns_bad", 0),
            "timeouts": pool_stats.get("requests_errors", 0),
            "last_connection_error": last_error,
        }

    def _size_verdict(self, row: tuple[int, int, int], ours: int) -> None:
        problem = pool_size_problem(
            max_size=self.config.max_size,
            max_connections=row[0],
            reserved=row[1],
            in_use=row[2],
            ours=ours,
        )
        if problem is None or self.config.size_check == "off":
            return
        if self.config.size_check == "error":
            raise PoolSizeError(problem)
        logger.warning("%s", problem)
