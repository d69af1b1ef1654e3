"""PGK003: pooled connections that are not returned on every path; and the right shapes."""

import asyncio
import atexit
import contextlib

import asyncpg
import psycopg2.pool
from psycopg_pool import ConnectionPool

pool = ConnectionPool("postgresql:///shop", timeout=5, max_lifetime=3600, open=False)
legacy = psycopg2.pool.ThreadedConnectionPool(1, 10, "dbname=shop")  # noqa: PGK008
atexit.register(pool.close)
atexit.register(legacy.closeall)


def no_putconn():
    conn = pool.getconn()  # expect: PGK003
    return conn.execute("SELECT 1").fetchone()[0]


def putconn_not_in_finally():
    conn = legacy.getconn()  # expect: PGK003
    cur = conn.cursor()
    cur.execute("SELECT 1")
    row = cur.fetchone()
    legacy.putconn(conn)
    return row


def chained():
    return pool.getconn().execute("SELECT 1").fetchone()  # expect: PGK003


async def acquire_without_release(apool: asyncpg.Pool):
    conn = await apool.acquire()  # expect: PGK003
    return await conn.fetchval("SELECT 1")


async def release_not_in_finally(apool: asyncpg.Pool):
    conn = await apool.acquire()  # expect: PGK003
    value = await conn.fetchval("SELECT 1")
    await apool.release(conn)
    return value


async def created_here(dsn):
    async with asyncpg.create_pool(dsn, command_timeout=5) as db_pool:
        conn = await db_pool.acquire()  # expect: PGK003
        return await conn.fetch("SELECT 1")


# --- negatives ---------------------------------------------------------------------------------


def putconn_in_finally():
    conn = legacy.getconn()  # ok: returned in finally
    try:
        cur = conn.cursor()
        cur.execute("SELECT 1")
        return cur.fetchone()
    finally:
        legacy.putconn(conn)


def context_manager():
    with pool.connection() as conn:  # ok
        return conn.execute("SELECT 1").fetchone()


@contextlib.contextmanager
def get_conn():
    conn = legacy.getconn()  # ok: the contextmanager returns it in finally
    try:
        yield conn
    finally:
        legacy.putconn(conn)


def checkout():
    return pool.getconn()  # ok: the caller owns it


class Session:
    def __init__(self):
        self.conn = legacy.getconn()  # ok: owned by the object

    def close(self):
        legacy.putconn(self.conn)


async def async_with(apool: asyncpg.Pool):
    async with apool.acquire() as conn:  # ok
        return await conn.fetchval("SELECT 1")


async def release_in_finally(apool: asyncpg.Pool):
    conn = await apool.acquire()  # ok: released in finally
    try:
        return await conn.fetchval("SELECT 1")
    finally:
        await apool.release(conn)


async def a_lock(lock: asyncio.Lock, sem: asyncio.Semaphore):
    await lock.acquire()  # ok: not a pool
    await sem.acquire()  # ok: not a pool
    lock.release()
    sem.release()


class Limiter:
    def __init__(self):
        self._pool_lock = asyncio.Lock()

    async def run(self):
        await self._pool_lock.acquire()  # ok: a lock, whatever its name
        self._pool_lock.release()
