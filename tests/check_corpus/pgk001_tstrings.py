"""PGK001 and t-strings (Python 3.14): a template is not string building, even on older Pythons,
where the checker reads the file anyway; the other cases of the file are still checked."""

import psycopg


def template(conn: psycopg.Connection, name):
    return conn.execute(t"SELECT * FROM users WHERE name = {name}").fetchall()  # ok: a template


def raw_template(conn: psycopg.Connection, table):
    return conn.execute(rt"SELECT * FROM {table:i} WHERE note ~ '\d'").fetchall()  # ok: a template


def fstring_next_door(conn: psycopg.Connection, name):
    return conn.execute(f"SELECT * FROM users WHERE name = '{name}'").fetchall()  # expect: PGK001
