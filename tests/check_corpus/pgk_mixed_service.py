"""A small order service in the style of the tutorials: the wrong shapes next to the right ones."""

import atexit
import logging
import os
from contextlib import asynccontextmanager

import asyncpg
import psycopg
from fastapi import FastAPI, Request
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

log = logging.getLogger("orders")
DATABASE_URL = os.getenv("DATABASE_URL", "postgresql://localhost:5432/orders")

pool = ConnectionPool(DATABASE_URL, min_size=2, max_size=10, timeout=5.0, max_lifetime=3600.0)
atexit.register(pool.close)


@asynccontextmanager
async def lifespan(app: FastAPI):
    app.state.apool = await asyncpg.create_pool(
        DATABASE_URL, min_size=2, max_size=10, command_timeout=30
    )
    yield
    await app.state.apool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/customers/{email}")
def customer_by_email(email: str):
    with pool.connection() as conn:
        return conn.execute(
            f"SELECT id, name FROM customers WHERE email = '{email}'"  # expect: PGK001
        ).fetchone()


@app.get("/customers")
def customers(order_by: str = "name"):
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        query = sql.SQL("SELECT id, name FROM customers ORDER BY {}").format(
            sql.Identifier(order_by)
        )
        cur.execute(query)
        return cur.fetchall()


@app.get("/orders/{order_id}")
async def order(order_id: int, request: Request):
    async with request.app.state.apool.acquire() as conn:
        return await conn.fetchrow("SELECT * FROM orders WHERE id = %s", order_id)  # expect: PGK004


@app.get("/orders/{order_id}/lines")
async def order_lines(order_id: int, request: Request):
    conn = await request.app.state.apool.acquire()  # expect: PGK003
    rows = await conn.fetch("SELECT * FROM order_lines WHERE order_id = $1", order_id)
    await request.app.state.apool.release(conn)
    return rows


@app.post("/reports/{name}")
def run_report(name: str):
    conn = psycopg.connect(DATABASE_URL)  # expect: PGK002
    try:
        log.info("running report %s", name)
        return conn.execute("SELECT * FROM report_%s" % name).fetchall()  # expect: PGK001
    finally:
        conn.close()


@app.post("/import")
def import_rows(rows: list[dict]):
    with pool.connection() as conn:
        for row in rows:
            conn.execute(  # expect: PGK005
                "INSERT INTO events (name, at, payload) VALUES (%s, %s, %s)",
                (row["name"], row["at"], row["payload"]),
            )


@app.post("/import-fast")
def import_rows_fast(rows: list[dict]):
    with pool.connection() as conn, conn.cursor() as cur:
        with cur.copy("COPY events (name, at, payload) FROM STDIN") as copy:
            for row in rows:
                copy.write_row((row["name"], row["at"], row["payload"]))


@app.get("/search")
def search(term: str, limit: int = 20):
    log.info(f"SELECT for term {term!r}")
    with pool.connection() as conn:
        return conn.execute(
            "SELECT id FROM products WHERE name ILIKE %s LIMIT %s", (f"%{term}%", limit)
        ).fetchall()


async def listen(conn: asyncpg.Connection, channel: str):
    await conn.execute(f'LISTEN "{channel}"')  # expect: PGK001


def notify(conn: psycopg.Connection, channel: str, payload: str):
    conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))


def simulated_input(cur):
    user_input = "Alice'; DROP TABLE users; --"
    cur.execute(f"SELECT * FROM users WHERE name = '{user_input}'")  # expect: PGK001
    cur.execute("SELECT * FROM users WHERE name = '%s'" % user_input)  # expect: PGK001
