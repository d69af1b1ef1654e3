"""Every use of a psycopg / psycopg_pool private API left in pgkeel, each with why.

pgkeel uses the public mechanisms where one exists: ``connection_class=`` (a subclass that keeps
each connection's idle time and poll object and remembers the last connection error),
``configure=``, ``reconnect_timeout=`` (instead of overriding ``_add_connection`` with a capped
``AttemptWithBackoff``), ``getconn()`` / ``putconn()`` for checkout and return, and the public
connection methods for the reset. Two public hooks are not used, on purpose: ``check=`` (after
a second failed check in one checkout psycopg_pool sleeps a second before the next, so after a
mass backend termination a checkout would wait seconds; pgkeel's own check loop replaces dead
connections at once) and ``reset=`` (with it set, every return goes through a pool worker, a
thread or task hand-off per query; pgkeel resets only the connections that need it). What
remains, all routed through this module:

- :func:`waiting`: psycopg_pool's ``requests_waiting`` statistic is ``len(pool._waiting)``, a
  queue in which a client that timed out stays until a connection comes back to the pool: during
  an outage it climbs with every timed-out request although nothing waits. No public figure
  counts only the live waiters, so this reads the queue (``_waiting``, and each entry's ``conn``
  / ``error``, the same fields psycopg_pool's own code tests) without changing it. It runs in
  ``stats()`` only, never on the query path; if the internals change it falls back to
  psycopg_pool's figure.

Not private, but worth knowing: on the asyncio face a connection's return is driven step by step
(``coroutine.send``) so that a cancelled caller cannot interrupt it (``database_async``); that
is Python's public coroutine protocol, not psycopg_pool's internals.
"""

from __future__ import annotations

from typing import Any

__all__ = ["waiting"]


def waiting(pool: Any) -> int | None:
    """Clients waiting for a connection right now, or ``None`` if psycopg_pool's internals are
    not the ones this was written for (the caller then uses ``requests_waiting``)."""
    try:
        queue = list(pool._waiting)  # one C-level copy: safe against other threads
        return sum(1 for pos in queue if pos.conn is None and pos.error is None)
    except (AttributeError, TypeError, RuntimeError):
        return None
