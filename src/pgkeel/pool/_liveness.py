"""Liveness of an idle pooled connection, without a round trip: the socket poll that sees a
terminated backend or a closed server, and which checkouts get a round-trip check
(``needs_check``).
"""

from __future__ import annotations

import select
import time
from typing import Any

import psycopg

_POLL_EVENTS = select.POLLIN | select.POLLERR | select.POLLHUP if hasattr(select, "poll") else 0


def socket_ready(conn: psycopg.BaseConnection[Any]) -> bool:
    """True if the server sent something on an idle connection: an error before closing it
    (terminated backend, shutdown) or EOF. Costs one poll(2), no round trip."""
    try:
        # The poll object is built once per connection and kept on it (a pgkeel connection).
        pfd = getattr(conn, "pollfd", None)
        if pfd is None:
            pfd = select.poll()
            pfd.register(conn.pgconn.socket, _POLL_EVENTS)
            if hasattr(conn, "pollfd"):
                conn.pollfd = pfd
        return bool(pfd.poll(0))
    except (OSError, psycopg.Error):
        return True


#: A connection back in the pool for less than this (seconds) is taken without the socket poll.
#: It finished a query that long ago; a backend killed in that window fails the next query just
#: as one killed during it would (psycopg_pool then replaces the connection). Only a hot pool
#: hands out connections this young, and there the poll, a system call per query, cost ~10 % of
#: 16-thread throughput (bench/RESULTS.md).
POLL_AFTER = 0.002


def needs_check(conn: psycopg.BaseConnection[Any], check_idle: float) -> bool:
    """Decide if a connection just taken from the pool gets a round-trip check: idle longer
    than ``check_idle``, or idle at least ``POLL_AFTER`` and the server has written to it."""
    idle = time.monotonic() - getattr(conn, "idle_since", 0.0)
    return idle > check_idle or (idle >= POLL_AFTER and socket_ready(conn))
