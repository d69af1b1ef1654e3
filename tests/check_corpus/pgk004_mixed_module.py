"""PGK004 stays quiet where it cannot tell which driver runs the query."""

import asyncpg
import psycopg


async def unknown_driver(conn, user_id):
    return await conn.execute("SELECT * FROM users WHERE id = %s", user_id)  # ok: ambiguous


def psycopg_known(conn: psycopg.Connection, user_id):
    return conn.execute("SELECT * FROM users WHERE id = $1", (user_id,))  # expect: PGK004


async def asyncpg_known(conn: asyncpg.Connection, user_id):
    return await conn.fetch("SELECT * FROM users WHERE id = %s", user_id)  # expect: PGK004
