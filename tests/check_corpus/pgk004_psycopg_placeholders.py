"""PGK004 in psycopg / psycopg2 / pgkeel code: asyncpg's $1 where they expect %s."""

import psycopg
import psycopg2

import pgkeel


def dollar_in_psycopg(conn: psycopg.Connection, user_id):
    return conn.execute("SELECT * FROM users WHERE id = $1", (user_id,)).fetchone()  # expect: PGK004


def dollar_in_psycopg2(dsn, a, b):
    conn = psycopg2.connect(dsn)
    cur = conn.cursor()
    cur.execute("UPDATE t SET a = $1 WHERE b = $2", (a, b))  # expect: PGK004


def dollar_in_pgkeel(db: pgkeel.Database, sku):
    return db.fetch_val("SELECT price FROM products WHERE sku = $1", (sku,))  # expect: PGK004


def dollar_unknown_receiver(cur, sku):
    cur.execute("DELETE FROM products WHERE sku = $1", (sku,))  # expect: PGK004


# --- negatives ---------------------------------------------------------------------------------


def percent(conn: psycopg.Connection, user_id):
    return conn.execute("SELECT * FROM users WHERE id = %s", (user_id,)).fetchone()  # ok


def dollar_quoted_body(conn: psycopg.Connection):
    conn.execute(
        "CREATE FUNCTION inc(int) RETURNS int AS $$ SELECT $1 + 1 $$ LANGUAGE sql"  # ok
    )


def dollar_in_string(conn: psycopg.Connection):
    conn.execute("INSERT INTO notes (body) VALUES ('costs $1 a day')")  # ok: a literal


def tagged_dollar_quote(conn: psycopg.Connection):
    conn.execute("DO $body$ BEGIN PERFORM $1; END $body$")  # ok: inside a dollar quote
