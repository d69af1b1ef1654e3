"""The small contract between pgkeel's faces and a backend driver.

The faces talk to connections through the part of psycopg's connection API they use (cursor with
a row factory, execute / executemany / fetchone / fetchall, rowcount, statusmessage,
``transaction()`` that nests as savepoints, the BEGIN options, transaction status, close); psycopg
connections are that API, so the default path goes through no wrapper at all. Another driver
supplies a connection adapter with the same surface (``drivers/_asyncpg.py``), and the
:class:`AsyncDriver` (or :class:`SyncDriver`) below: how to build its pool, what to check when
the Database opens, and how to reset a connection before it goes back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pgkeel.database import Database
    from pgkeel.database_async import AsyncDatabase


class AsyncDriver(Protocol):
    """A backend for :class:`~pgkeel.AsyncDatabase` other than psycopg."""

    #: The ``driver=`` name.
    name: str
    #: The driver's own connection class (what ``conn.raw`` is).
    raw_class: type

    def new_pool(self, db: AsyncDatabase) -> Any:
        """A pool with psycopg_pool's ``getconn(timeout)`` / ``putconn(conn)`` / ``open()`` /
        ``close()`` / ``get_stats()`` and its ``PoolTimeout`` / ``PoolClosed`` errors."""

    async def probe(self, db: AsyncDatabase) -> None:
        """Connect once to fail fast with the real reason, and run the pool size check."""

    async def reset(self, conn: Any, db: AsyncDatabase) -> None:
        """Bring ``conn`` back to a fresh session's state (raise to have it closed)."""


class SyncDriver(Protocol):
    """A backend for :class:`~pgkeel.Database` other than psycopg."""

    name: str
    raw_class: type

    def new_pool(self, db: Database) -> Any: ...

    def probe(self, db: Database) -> None: ...

    def reset(self, conn: Any, db: Database) -> None: ...
