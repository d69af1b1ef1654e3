"""Scaling out: a Database behind a transaction pooler (``pooler="pgbouncer"``), read replicas
with lag-aware routing and read-your-writes (``replicas=[...]``, ``max_replica_lag=``), and
:func:`~pgkeel.config.direct_conninfo` for the features that need a session of their own.

The pooler's rules live in the Database (no prepared statements, no session state, no DISCARD
ALL) and in ``_pooler_*`` (the server settings checked at open, applied per transaction where
missing). Routing is a layer that picks which pool serves a statement: ``_router`` (state and
decisions, no I/O), ``_monitor`` (the background thread that measures each node) and
``_reads_async`` (the replicas' pools and the query-method mixin). Failover needs no code of
pgkeel's: a multi-host URL with ``target_session_attrs=read-write`` has libpq find the new
primary, and the pool replaces the connections that the old one dropped.
"""

from __future__ import annotations

from pgkeel.config import direct_conninfo
from pgkeel.errors import PoolerError

__all__ = ["PoolerError", "direct_conninfo"]
