"""Module-level snippets, the way the guides show them (the module is one case)."""

import asyncpg
import psycopg_pool
from psycopg2.pool import ThreadedConnectionPool

legacy = ThreadedConnectionPool(1, 5, "postgresql://app:hunter2@db.example.com/app")  # expect: PGK006, PGK007, PGK008
prod = psycopg_pool.ConnectionPool("postgresql://prod-db/app")  # expect: PGK006, PGK007, PGK008
apool = asyncpg.create_pool("postgresql://localhost/app")  # expect: PGK006

conn = legacy.getconn()  # expect: PGK003
cur = conn.cursor()
cur.execute("SELECT 1")

rows = [("a", 1), ("b", 2)]
for name, qty in rows:
    cur.execute("INSERT INTO items (name, qty) VALUES (%s, %s)", (name, qty))  # expect: PGK005
