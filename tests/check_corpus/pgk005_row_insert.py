"""PGK005: an INSERT executed once per row in a loop; and loops that are fine."""

import time

import asyncpg
import psycopg

import pgkeel

INSERT_ITEM = "INSERT INTO items (sku, qty) VALUES (%s, %s)"


def per_row(conn: psycopg.Connection, rows):
    with conn.cursor() as cur:
        for sku, qty in rows:
            cur.execute("INSERT INTO items (sku, qty) VALUES (%s, %s)", (sku, qty))  # expect: PGK005


def per_row_constant(cur, rows):
    for row in rows:
        cur.execute(INSERT_ITEM, row)  # expect: PGK005


def upsert_per_row(cur, rows):
    for row in rows:
        cur.execute(  # expect: PGK005
            "INSERT INTO items (sku, qty) VALUES (%s, %s) "
            "ON CONFLICT (sku) DO UPDATE SET qty = EXCLUDED.qty",
            row,
        )


async def asyncpg_per_row(conn: asyncpg.Connection, records):
    for r in records:
        await conn.execute("INSERT INTO events (kind, at) VALUES ($1, $2)", r.kind, r.at)  # expect: PGK005


def pgkeel_per_row(db: pgkeel.Database, rows):
    for row in rows:
        db.execute("INSERT INTO items (sku, qty) VALUES (%(sku)s, %(qty)s)", row)  # expect: PGK005


def while_index(cur, rows):
    i = 0
    while i < len(rows):
        cur.execute("INSERT INTO items VALUES (%s, %s)", rows[i])  # expect: PGK005
        i += 1


def nested(cur, batches):
    for batch in batches:
        for row in batch:
            cur.execute("INSERT INTO items VALUES (%s, %s)", row)  # expect: PGK005


def returning_ids(cur, names):
    ids = []
    for name in names:
        cur.execute("INSERT INTO tags (name) VALUES (%s) RETURNING id", (name,))  # expect: PGK005
        ids.append(cur.fetchone()[0])
    return ids


# --- negatives ---------------------------------------------------------------------------------


def executemany(cur, rows):
    cur.executemany("INSERT INTO items VALUES (%s, %s)", rows)  # ok


def insert_select_per_table(cur, tables):
    for table in ("a", "b"):
        cur.execute(f"INSERT INTO archive_{table} SELECT * FROM {table}")  # ok: set-based


def retry(cur, row):
    for attempt in range(3):
        try:
            cur.execute("INSERT INTO items VALUES (%s, %s)", row)  # ok: a retry loop
            break
        except psycopg.errors.SerializationFailure:
            time.sleep(attempt)


def executemany_per_batch(cur, batches):
    for batch in batches:
        cur.executemany("INSERT INTO items VALUES (%s, %s)", batch)  # ok: one batch per turn


def update_per_row(cur, rows):
    for sku, qty in rows:
        cur.execute("UPDATE items SET qty = %s WHERE sku = %s", (qty, sku))  # ok: not an INSERT


async def consume(conn: asyncpg.Connection, stream):
    async for event in stream:
        await conn.execute("INSERT INTO log (body) VALUES ($1)", event)  # ok: one event at a time


def pipelined(conn: psycopg.Connection, rows):
    with conn.pipeline(), conn.cursor() as cur:
        for row in rows:
            cur.execute("INSERT INTO items VALUES (%s, %s)", row)  # ok: the pipeline batches


def worker(cur, queue):
    while True:
        job = queue.get()
        cur.execute("INSERT INTO done (job) VALUES (%s)", (job,))  # ok: a server loop


def multi_row_values(cur, chunks):
    for chunk in chunks:
        values = ",".join(["(%s, %s)"] * len(chunk))
        flat = [v for row in chunk for v in row]
        cur.execute("INSERT INTO items VALUES " + values, flat)  # ok: one batch per turn


def select_in_loop(cur, ids):
    for i in ids:
        cur.execute("SELECT * FROM items WHERE id = %s", (i,))  # ok: not an INSERT


def comprehension(cur, rows):
    [cur.execute("INSERT INTO items VALUES (%s, %s)", r) for r in rows]  # expect: PGK005


def written_out(cur):
    for mode in ("FAIL", "ABORT"):
        cur.execute("INSERT INTO modes (name) VALUES (%s)", (mode,))  # ok: two values in the code
