"""PGK002: a connection opened per request or per loop turn; and where connecting is right."""

import atexit
import time

import asyncpg
import click
import psycopg
import psycopg as pg
import psycopg2
from fastapi import Depends, FastAPI
from flask import Flask
from psycopg import connect
from psycopg_pool import ConnectionPool
from starlette.routing import Route

DSN = "postgresql:///shop"
app = FastAPI()
flask_app = Flask(__name__)
pool = ConnectionPool(DSN, timeout=5, max_lifetime=3600, open=False)


@app.get("/orders")
def list_orders():
    conn = psycopg.connect(DSN)  # expect: PGK002
    try:
        return conn.execute("SELECT * FROM orders").fetchall()
    finally:
        conn.close()


@app.post("/orders/{order_id}/cancel")
async def cancel(order_id: int):
    conn = await asyncpg.connect(DSN)  # expect: PGK002
    try:
        await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1", order_id)
    finally:
        await conn.close()


@flask_app.route("/users/<int:user_id>")
def show_user(user_id):
    with psycopg2.connect(DSN) as conn:  # expect: PGK002
        cur = conn.cursor()
        cur.execute("SELECT * FROM users WHERE id = %s", (user_id,))
        return dict(cur.fetchone())


@app.get("/aliased")
def aliased():
    with pg.connect(DSN) as conn:  # expect: PGK002
        return conn.execute("SELECT 1").fetchone()


@app.get("/imported")
def imported():
    with connect(DSN) as conn:  # expect: PGK002
        return conn.execute("SELECT 1").fetchone()


def get_db():
    conn = psycopg.connect(DSN)  # expect: PGK002
    try:
        yield conn
    finally:
        conn.close()


@app.get("/items")
def items(conn=Depends(get_db)):
    return conn.execute("SELECT * FROM items").fetchall()


async def homepage(request):
    conn = await asyncpg.connect(DSN)  # expect: PGK002
    try:
        return await conn.fetch("SELECT 1")
    finally:
        await conn.close()


routes = [Route("/", homepage)]


def user_detail(request, pk):  # a Django view: the first parameter is the request
    with psycopg.connect(DSN) as conn:  # expect: PGK002
        return conn.execute("SELECT * FROM users WHERE id = %s", (pk,)).fetchone()


def sync_all(order_ids):
    for order_id in order_ids:
        with psycopg.connect(DSN) as conn:  # expect: PGK002
            conn.execute("UPDATE orders SET synced = true WHERE id = %s", (order_id,))


def consume(queue):
    while queue:
        job = queue.pop()
        conn = psycopg2.connect(DSN)  # expect: PGK002
        conn.cursor().execute("UPDATE jobs SET done = true WHERE id = %s", (job,))
        conn.commit()
        conn.close()
atexit.register(pool.close)


# --- negatives ---------------------------------------------------------------------------------


@app.get("/pooled")
def pooled():
    with pool.connection() as conn:  # ok: borrowed from the pool
        return conn.execute("SELECT 1").fetchone()


def main():
    with psycopg.connect(DSN) as conn:  # ok: a script's main()
        conn.execute("VACUUM ANALYZE")


@click.command()
def migrate_cli():
    with psycopg.connect(DSN) as conn:  # ok: a CLI command
        conn.execute("SELECT 1")


def connect_with_retry(attempts=5):
    for attempt in range(attempts):
        try:
            return psycopg.connect(DSN)  # ok: a retry loop
        except psycopg.OperationalError:
            time.sleep(2**attempt)
    raise RuntimeError("database unreachable")


def each_shard(dsns):
    for dsn in dsns:
        with psycopg.connect(dsn) as conn:  # ok: one connection per server
            conn.execute("ANALYZE")


def upgrade():
    with psycopg.connect(DSN) as conn:  # ok: a migration step
        conn.execute("ALTER TABLE orders ADD COLUMN note text")


def load_report():
    with psycopg.connect(DSN) as conn:  # ok: not a request handler, not in a loop
        return conn.execute("SELECT * FROM report").fetchall()


class Exporter:
    def get(self, key):  # ok: not a view class
        with psycopg.connect(DSN) as conn:
            return conn.execute("SELECT v FROM kv WHERE k = %s", (key,)).fetchone()


@flask_app.before_request
def open_db():
    flask_app.config["db"] = psycopg2.connect(DSN)  # expect: PGK002


def lambda_handler(event, context):
    with psycopg.connect(DSN) as conn:  # expect: PGK002
        return conn.execute("SELECT 1").fetchone()


def connect_each(dsns):
    return [psycopg.connect(dsn) for dsn in dsns]  # ok: one connection per server


def get_connection():
    return psycopg2.connect(DSN)  # expect: PGK002


@flask_app.route("/products")
def products():
    conn = get_connection()
    try:
        cur = conn.cursor()
        cur.execute("SELECT * FROM products")
        return cur.fetchall()
    finally:
        conn.close()


_shared = None


def shared_connection():
    global _shared
    if _shared is None:
        _shared = psycopg.connect(DSN)  # ok: opened once, cached
    return _shared


@app.get("/shared")
def use_shared():
    return shared_connection().execute("SELECT 1").fetchone()


def open_for_script():
    return psycopg.connect(DSN)  # ok: no request handler calls it
