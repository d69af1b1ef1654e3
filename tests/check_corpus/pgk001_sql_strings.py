"""PGK001: SQL built from strings that reaches a query; and what only looks like it."""

import logging

import asyncpg
import psycopg
import psycopg2
import psycopg2.extras
from psycopg import sql

import pgkeel

log = logging.getLogger(__name__)
TABLE = "users"


def fstring_direct(cur: psycopg.Cursor, name: str) -> None:
    cur.execute(f"SELECT * FROM users WHERE name = '{name}'")  # expect: PGK001


def percent_direct(conn, user_id):
    cur = conn.cursor()
    cur.execute("SELECT * FROM users WHERE id = %s" % user_id)  # expect: PGK001


def format_direct(cur, email):
    cur.execute("SELECT * FROM users WHERE email = '{}'".format(email))  # expect: PGK001


def concat_direct(cur, table):
    cur.execute("DELETE FROM " + table)  # expect: PGK001


def built_earlier(dsn, status):
    with psycopg.connect(dsn) as conn:
        query = f"SELECT id FROM orders WHERE status = '{status}'"
        return conn.execute(query).fetchall()  # expect: PGK001


def multi_line_percent(cur, start, end):
    query = (
        "SELECT id, total "
        "FROM orders "
        "WHERE created_at BETWEEN '%s' AND '%s'"
        % (start, end)
    )
    cur.execute(query)  # expect: PGK001


def format_in_variable(cur, email):
    sql_text = "SELECT * FROM users WHERE email = '{}'".format(email)
    cur.execute(sql_text)  # expect: PGK001


def augmented(cur, name, min_age):
    q = "SELECT * FROM users WHERE true"
    if name:
        q += f" AND name = '{name}'"
    if min_age:
        q += " AND age >= %s"
    cur.execute(q, (min_age,))  # expect: PGK001


def str_concat(cur, user_id):
    cur.execute("SELECT * FROM users WHERE id = " + str(user_id))  # expect: PGK001


async def asyncpg_fetch(conn: asyncpg.Connection, name):
    return await conn.fetch(f"SELECT * FROM users WHERE name = '{name}'")  # expect: PGK001


async def asyncpg_fetchrow_format(pool: asyncpg.Pool, user_id):
    return await pool.fetchrow("SELECT * FROM users WHERE id = {}".format(user_id))  # expect: PGK001


async def asyncpg_created_here(dsn, column):
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(f"SELECT max({column}) FROM orders")  # expect: PGK001
    finally:
        await conn.close()


def pgkeel_fetch_one(db: pgkeel.Database, sku):
    return db.fetch_one(f"SELECT * FROM products WHERE sku = '{sku}'")  # expect: PGK001


def copy_expert_psycopg2(dsn, table, f):
    conn = psycopg2.connect(dsn)
    cur = conn.cursor()
    cur.copy_expert(f"COPY {table} TO STDOUT WITH CSV", f)  # expect: PGK001


def copy_psycopg3(conn: psycopg.Connection, table):
    with conn.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN") as copy:  # expect: PGK001
        copy.write_row((1,))


def listen_channel(conn: psycopg.Connection, channel):
    conn.execute(f"LISTEN {channel}")  # expect: PGK001


async def notify_payload(conn: asyncpg.Connection, channel, payload):
    await conn.execute(f"NOTIFY {channel}, '{payload}'")  # expect: PGK001


def columns_from_keys(cur, data: dict):
    assignments = ", ".join(f"{key} = %({key})s" for key in data)
    cur.execute(f"UPDATE users SET {assignments} WHERE id = %(id)s", data)  # expect: PGK001


def sql_around_fstring(cur, table):
    cur.execute(sql.SQL(f"SELECT * FROM {table}"))  # expect: PGK001


def executemany_fstring(cur, table, rows):
    cur.executemany(f"INSERT INTO {table} (a, b) VALUES (%s, %s)", rows)  # expect: PGK001


def execute_values_fstring(cur, table, rows):
    psycopg2.extras.execute_values(cur, f"INSERT INTO {table} (a) VALUES %s", rows)  # expect: PGK001


def unknown_receiver_sql_text(self_db, user_id):
    return self_db.execute(f"SELECT * FROM accounts WHERE owner = {user_id}")  # expect: PGK001


def conditional(cur, name, flag):
    q = f"SELECT * FROM users WHERE name = '{name}'" if flag else "SELECT * FROM users"
    cur.execute(q)  # expect: PGK001


def filters_join(cur, filters: dict):
    where = " AND ".join(f"{k} = '{v}'" for k, v in filters.items())
    cur.execute("SELECT * FROM items WHERE " + where)  # expect: PGK001


def ids_with_map(cur, ids):
    cur.execute("SELECT * FROM items WHERE id IN (" + ",".join(map(str, ids)) + ")")  # expect: PGK001


class Repository:
    def __init__(self, conn, table):
        self.conn = conn
        self.table = table

    def count(self):
        return self.conn.execute(f"SELECT count(*) FROM {self.table}").fetchone()  # expect: PGK001


def django_style(connection, username):
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM auth_user WHERE username = '%s'" % username)  # expect: PGK001


def multi_line_fstring(cur, order_id):
    cur.execute(
        f"""
        SELECT *
        FROM order_lines
        WHERE order_id = {order_id}
        """  # expect: PGK001
    )


# --- negatives ---------------------------------------------------------------------------------


def parameters(cur, name):
    cur.execute("SELECT * FROM users WHERE name = %s", (name,))  # ok: a parameter


def constant_concatenation(cur):
    cur.execute(
        "SELECT id, name "
        "FROM users "  # ok: implicit concatenation of constants
        + "ORDER BY id"
    )


def composed_identifier(conn: psycopg.Connection, table, name):
    query = sql.SQL("SELECT * FROM {} WHERE name = %s").format(sql.Identifier(table))
    conn.execute(query, (name,))  # ok: sql.Identifier quotes the table name


def composed_columns(cur, table, columns):
    query = sql.SQL("SELECT {fields} FROM {table}").format(
        fields=sql.SQL(", ").join(map(sql.Identifier, columns)),
        table=sql.Identifier(table),
    )
    cur.execute(query)  # ok: composed


def placeholders_list(cur, ids):
    placeholders = ", ".join(["%s"] * len(ids))
    cur.execute(f"SELECT * FROM items WHERE id IN ({placeholders})", ids)  # ok: only %s


def placeholders_generator(cur, ids):
    marks = ",".join("%s" for _ in ids)
    cur.execute("SELECT * FROM items WHERE id IN (" + marks + ")", ids)  # ok: only %s


def log_message(cur, table, elapsed):
    log.info(f"SELECT from {table} took {elapsed:.2f}s")  # ok: never reaches a query
    log.debug("DELETE FROM %s: %d rows" % (table, cur.rowcount))  # ok: a log line
    cur.execute("SELECT 1")


def error_message(user_id):
    raise ValueError(f"DELETE FROM accounts failed for {user_id}")  # ok: an exception message


def module_constant(cur):
    cur.execute(f"SELECT * FROM {TABLE} WHERE id = %s", (1,))  # ok: TABLE is a constant


def integer_limit(cur, limit):
    cur.execute(f"SELECT * FROM items LIMIT {int(limit)}")  # ok: int() cannot inject


def annotated_int(cur, limit: int):
    cur.execute(f"SELECT * FROM items LIMIT {limit}")  # ok: typed int


def dynamic_where_constant_pieces(cur, name=None, min_price=None):
    clauses = []
    params = []
    if name:
        clauses.append("name = %s")
        params.append(name)
    if min_price is not None:
        clauses.append("price >= %s")
        params.append(min_price)
    where = " AND ".join(clauses) or "true"
    cur.execute("SELECT * FROM products WHERE " + where, params)  # ok: constant pieces


def query_parameter(cur, query, params):
    cur.execute(query, params)  # ok: the query is the caller's


def never_reaches_query(table):
    message = f"INSERT INTO {table} is slow"
    print(message)  # ok: not a query


def branch_constants(cur, ascending):
    order = "ASC" if ascending else "DESC"
    cur.execute(f"SELECT * FROM items ORDER BY id {order}")  # ok: one of two constants


def loop_over_constants(cur):
    for table in ("orders", "order_lines"):
        cur.execute(f"TRUNCATE {table}")  # ok: constant tables


def as_string(conn, table):
    query = sql.SQL("SELECT * FROM {}").format(sql.Identifier(table))
    conn.execute(query.as_string(conn))  # ok: composed, then rendered


def format_log_line(elapsed):
    log.debug("SELECT took {}".format(elapsed))  # ok: a log line


def fstring_parameter(cur, prefix):
    cur.execute("SELECT * FROM users WHERE name LIKE %s", (f"{prefix}%",))  # ok: a parameter


def fstring_without_fields(cur):
    cur.execute(f"SELECT 1")  # ok: no fields


class Report:
    TABLE = "reports"

    def __init__(self, conn):
        self.conn = conn

    def count(self):
        return self.conn.execute(f"SELECT count(*) FROM {self.TABLE}")  # ok: class constant


def not_sql(runner, path):
    runner.execute(f"ls -l {path}")  # ok: an unknown receiver and no SQL


def percent_constant(cur):
    cur.execute("SELECT * FROM %s WHERE id = %%s" % "users", (1,))  # ok: constant table


async def quoted_channel(conn: asyncpg.Connection, channel):
    await conn.execute("LISTEN {}".format(quote_ident(channel)))  # ok: quoted


def version_switch(conn, cur, name):
    typarray = conn.server_version >= 80300 and "typarray" or "NULL"
    cur.execute("SELECT oid, %s FROM pg_type WHERE typname = %%s" % typarray, (name,))  # ok


def quote_ident(name):
    return '"' + name.replace('"', '""') + '"'


def sql_around_variable(cur, column):
    query = sql.SQL("SELECT {} FROM t").format(sql.SQL(column))
    cur.execute(query)  # expect: PGK001


def keyword_format(cur, params):
    cur.execute("SELECT * FROM users WHERE id = {id}".format(**params))  # expect: PGK001


def mogrify_batch(cur, rows):
    values = ",".join(cur.mogrify("(%s,%s)", row).decode("utf-8") for row in rows)
    cur.execute("INSERT INTO items VALUES " + values)  # ok: mogrify quotes every value


def numeric_formats(cur, timeout_ms, ratio, limit):
    cur.execute("SET statement_timeout = %d" % timeout_ms)  # ok: %d takes numbers only
    cur.execute(f"SELECT * FROM t WHERE score > {ratio:.2f} LIMIT {limit:d}")  # ok: numeric
    cur.execute("SELECT * FROM t LIMIT {:d}".format(limit))  # ok: numeric


async def numbered_placeholders(conn: asyncpg.Connection, values):
    marks = ", ".join(f"${i}" for i, _ in enumerate(values, 1))
    await conn.execute(f"INSERT INTO t VALUES ({marks})", *values)  # ok: only $n


def columns_constant(cur, row):
    assignments = ", ".join(f"{col} = %s" for col, _ in zip(("a", "b"), row))
    cur.execute(f"UPDATE t SET {assignments} WHERE id = 1", row)  # ok: constant columns


def columns_from_argument(cur, cols, row):
    assignments = ", ".join(f"{col} = %s" for _, col in enumerate(cols))
    cur.execute(f"UPDATE t SET {assignments} WHERE id = 1", row)  # expect: PGK001


def reused_variable(cur, table):
    q = "SELECT relname FROM pg_class"
    cur.execute(q)  # ok: q is a constant here
    q = "SELECT * FROM {}".format(table)
    cur.execute(q)  # expect: PGK001
    q = "SELECT 1"
    cur.execute(q)  # ok: a constant again


def branch_assignments(cur, name, flag):
    if flag:
        q = f"SELECT * FROM users WHERE name = '{name}'"
    else:
        q = "SELECT * FROM users"
    cur.execute(q)  # expect: PGK001


def pandas_frame(conn, region):
    import pandas as pd

    return pd.read_sql(f"SELECT * FROM sales WHERE region = '{region}'", conn)  # expect: PGK001


ALLOWED_TABLES = {"orders", "customers"}


def allow_list_guard(cur, table):
    if table not in ALLOWED_TABLES:
        raise ValueError(f"unknown table {table!r}")
    cur.execute(f"SELECT count(*) FROM {table}")  # ok: checked against an allow-list


def allow_list_assert(cur, column):
    assert column in ("name", "email")
    cur.execute(f"SELECT {column} FROM users")  # ok: checked against an allow-list


def check_without_exit(cur, table):
    if table not in ALLOWED_TABLES:
        log.warning("unexpected table %s", table)
    cur.execute(f"SELECT count(*) FROM {table}")  # expect: PGK001
