"""PGK006: pools that are never closed or never started; the teardown that closes the pool."""

import contextlib

import asyncpg
import psycopg2.pool
from fastapi import FastAPI
from flask import Flask, g
from psycopg_pool import AsyncConnectionPool, ConnectionPool

DSN = "postgresql:///shop"
flask_app = Flask(__name__)
flask_pool = psycopg2.pool.ThreadedConnectionPool(1, 10, DSN)  # noqa: PGK008


@flask_app.teardown_appcontext
def close_db(exc):
    flask_pool.closeall()  # expect: PGK006


@flask_app.teardown_appcontext
def return_conn(exc):
    conn = g.pop("db", None)
    if conn is not None:
        flask_pool.putconn(conn)  # ok: returns the request's connection


async def not_awaited():
    pool = asyncpg.create_pool(DSN, command_timeout=5)  # expect: PGK006
    return pool


def never_closed_local():
    pool = ConnectionPool(DSN, timeout=5, max_lifetime=3600)  # expect: PGK006
    with pool.connection() as conn:
        conn.execute("SELECT 1")


class Store:
    def __init__(self):
        self.readers = AsyncConnectionPool(DSN, timeout=5, max_lifetime=3600)  # expect: PGK006

    async def get(self, key):
        async with self.readers.connection() as conn:
            return await conn.execute("SELECT v FROM kv WHERE k = %s", (key,))


# --- negatives ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI):
    app.state.pool = AsyncConnectionPool(DSN, timeout=5, max_lifetime=3600, open=False)  # ok
    await app.state.pool.open()
    yield
    await app.state.pool.close()


async def awaited():
    pool = await asyncpg.create_pool(DSN, command_timeout=5)  # ok: awaited and closed
    try:
        return await pool.fetchval("SELECT 1")
    finally:
        await pool.close()


async def async_with():
    async with asyncpg.create_pool(DSN, command_timeout=5) as pool:  # ok
        return await pool.fetchval("SELECT 1")


def context_manager():
    with ConnectionPool(DSN, timeout=5, max_lifetime=3600) as pool:  # ok
        with pool.connection() as conn:
            conn.execute("SELECT 1")


def factory():
    return ConnectionPool(DSN, timeout=5, max_lifetime=3600, open=False)  # ok: the caller owns it


class Service:
    def __init__(self):
        self.pool = ConnectionPool(DSN, timeout=5, max_lifetime=3600)  # ok: closed in close()

    def close(self):
        self.pool.close()


def created_then_returned():
    pool = ConnectionPool(DSN, timeout=5, max_lifetime=3600, open=False)  # ok: returned
    pool.open(wait=True)
    return pool


def by_name(names):
    pools = {}
    for name in names:
        pools[name] = ConnectionPool(DSN, timeout=5, max_lifetime=3600)  # ok: closed from the dict
    return pools
