"""The replica monitor: a background thread that measures, every ``replica_interval`` seconds,
the primary's flushed WAL position and each replica's state and replay position, each query
bounded in time, and hands the figures to the :class:`~pgkeel.scale._router.Router`. One thread
(running its own asyncio loop, so that every check has a deadline) serves both faces; queries never
wait for it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from pgkeel._database_base import first_line
from pgkeel.scale._router import Node, Router

logger = logging.getLogger("pgkeel.scale")

_PRIMARY_QUERY = (
    "SELECT pg_current_wal_flush_lsn() - '0/0'::pg_lsn, "
    "('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"
)
_REPLICA_QUERY = (
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() - '0/0'::pg_lsn, "
    "pg_last_wal_receive_lsn() - '0/0'::pg_lsn, "
    "extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8, "
    "coalesce((SELECT received_tli FROM pg_stat_wal_receiver), "
    "CASE WHEN has_function_privilege('pg_control_checkpoint()', 'execute') "
    "THEN (pg_control_checkpoint()).timeline_id END)"
)


class Monitor:
    """Measures the nodes in the background (see the module docstring)."""

    def __init__(
        self,
        router: Router,
        primary: str,
        replicas: list[str],
        *,
        interval: float,
        scrub: Any,
    ) -> None:
        self.router = router
        self._conninfo: list[str] = [primary, *replicas]
        self._conns: list[psycopg.AsyncConnection[Any] | None] = [None] * len(self._conninfo)
        self.interval = interval
        #: Each check (connect and query) gets this long; a node that does not answer in time
        #: is out of rotation after at most interval + timeout.
        self.timeout = max(1.0, 5 * interval)
        self._scrub = scrub
        self.first_round = threading.Event()
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping.clear()
        self.first_round.clear()
        self._thread = threading.Thread(
            target=self._run, name="pgkeel-replica-monitor", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(wake.set)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.timeout + 2 * self.interval + 1)
        self._thread = None

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        try:
            while not self._stopping.is_set():
                await self.round()
                self.first_round.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.interval)
        finally:
            self.first_round.set()
            for conn in self._conns:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
            self._conns = [None] * len(self._conninfo)
            self._loop = None

    async def round(self) -> None:
        """One measurement of every node: the primary first, then the replicas at once."""
        await self._check_primary()
        await asyncio.gather(*(self._check_replica(node) for node in self.router.nodes))

    async def _query(self, i: int, query: str) -> tuple[Any, ...]:
        async def run() -> tuple[Any, ...]:
            conn = self._conns[i]
            if conn is None or conn.closed:
                conn = await psycopg.AsyncConnection.connect(
                    self._conninfo[i],
                    autocommit=True,
                    prepare_threshold=None,
                    connect_timeout=max(1, round(self.timeout)),
                )
                self._conns[i] = conn
            cur = await conn.cursor(row_factory=tuple_row).execute(query)
            row = await cur.fetchone()
            assert row is not None
            return row

        try:
            return await asyncio.wait_for(run(), self.timeout)
        except BaseException:
            conn, self._conns[i] = self._conns[i], None
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
            raise

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, TimeoutError):
            return f"no answer within {self.timeout:g}s"
        return str(self._scrub(first_line(exc)))

    async def _check_primary(self) -> None:
        t = time.monotonic()
        try:
            lsn, timeline = await self._query(0, _PRIMARY_QUERY)
        except (psycopg.Error, OSError, TimeoutError) as exc:
            self.router.primary_failed(self._describe(exc))
            return
        self.router.primary_sample(t, int(lsn), None if timeline is None else int(timeline))

    async def _check_replica(self, node: Node) -> None:
        t = time.monotonic()
        try:
            in_recovery, replay, receive, age, tli = await self._query(
                node.index + 1, _REPLICA_QUERY
            )
        except (psycopg.Error, OSError, TimeoutError) as exc:
            message = self.router.replica_failed(node, self._describe(exc))
        else:
            replay_lsn = None if replay is None else int(replay)
            if replay_lsn is not None and receive is not None and replay_lsn >= int(receive):
                own_lag: float | None = 0.0
            else:
                own_lag = None if age is None else max(0.0, float(age))
            message = self.router.replica_sample(
                node,
                t=t,
                in_recovery=bool(in_recovery),
                replay_lsn=replay_lsn,
                own_lag=own_lag,
                timeline=None if tli is None else int(tli),
                replay_age=None if age is None else max(0.0, float(age)),
            )
        if message:
            if node.state == "ok":
                logger.info("%s", message)
            else:
                logger.warning("%s", message)
