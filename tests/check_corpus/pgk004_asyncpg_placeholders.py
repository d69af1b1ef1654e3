"""PGK004 in asyncpg code: psycopg's %s where asyncpg numbers its parameters ($1)."""

import asyncpg

GET_USER = "SELECT * FROM users WHERE id = %s"


async def percent_s(conn: asyncpg.Connection, user_id):
    return await conn.fetchrow("SELECT * FROM users WHERE id = %s", user_id)  # expect: PGK004


async def named(conn: asyncpg.Connection, email):
    return await conn.fetch("SELECT * FROM users WHERE email = %(email)s", email)  # expect: PGK004


async def via_constant(pool: asyncpg.Pool, user_id):
    return await pool.fetchrow(GET_USER, user_id)  # expect: PGK004


async def via_local(dsn, name, total):
    conn = await asyncpg.connect(dsn)
    try:
        insert = "INSERT INTO orders (name, total) VALUES (%s, %s)"
        await conn.execute(insert, name, total)  # expect: PGK004
    finally:
        await conn.close()


async def unknown_receiver_in_asyncpg_module(conn, sku):
    return await conn.fetchval("SELECT price FROM products WHERE sku = %s", sku)  # expect: PGK004


# --- negatives ---------------------------------------------------------------------------------


async def dollar(conn: asyncpg.Connection, user_id):
    return await conn.fetchrow("SELECT * FROM users WHERE id = $1", user_id)  # ok


async def percent_in_literal(conn: asyncpg.Connection, name):
    return await conn.fetch("SELECT * FROM t WHERE a LIKE '%s%' AND b = $1", name)  # ok: a literal


async def modulo(conn: asyncpg.Connection):
    return await conn.fetch("SELECT id FROM t WHERE id % 2 = 0")  # ok: the modulo operator


async def in_comment(conn: asyncpg.Connection, n):
    return await conn.fetch("SELECT $1::int -- was %s before the port\n", n)  # ok: a comment
