"""PGK006 negative: a module-level pool closed by atexit."""

import atexit

import psycopg_pool

pool = psycopg_pool.ConnectionPool("postgresql:///shop", timeout=5, max_lifetime=3600)  # ok
atexit.register(pool.close)
