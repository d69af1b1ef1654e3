"""PGK008 (informational): pools without a checkout timeout or a connection lifetime."""

import asyncpg
import psycopg2.pool
from psycopg_pool import AsyncConnectionPool, ConnectionPool

import pgkeel

DSN = "postgresql:///shop"
OPTIONS = {"timeout": 5, "max_lifetime": 3600}


def bare():
    with ConnectionPool(DSN) as pool:  # expect: PGK008
        return pool


async def sized_only():
    async with AsyncConnectionPool(DSN, min_size=2, max_size=10) as pool:  # expect: PGK008
        return pool


def psycopg2_pool():
    pool = psycopg2.pool.ThreadedConnectionPool(2, 10, DSN)  # expect: PGK008
    try:
        return pool
    finally:
        pool.closeall()


async def asyncpg_pool():
    async with asyncpg.create_pool(DSN, min_size=2) as pool:  # expect: PGK008
        return pool


# --- negatives ---------------------------------------------------------------------------------


def with_timeout():
    with ConnectionPool(DSN, timeout=5.0) as pool:  # ok
        return pool


def with_lifetime():
    with ConnectionPool(DSN, max_lifetime=1800) as pool:  # ok
        return pool


def from_options():
    with ConnectionPool(DSN, **OPTIONS) as pool:  # ok: cannot tell
        return pool


async def asyncpg_limited():
    async with asyncpg.create_pool(DSN, command_timeout=10) as pool:  # ok
        return pool


def pgkeel_database():
    with pgkeel.Database(DSN) as db:  # ok: pgkeel sets both
        return db
