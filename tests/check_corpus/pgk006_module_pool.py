"""PGK006: a module-level pool that nothing closes (no close(), no atexit, no lifespan)."""

from psycopg_pool import ConnectionPool

pool = ConnectionPool("postgresql:///shop", timeout=5, max_lifetime=3600)  # expect: PGK006


def get_orders():
    with pool.connection() as conn:
        return conn.execute("SELECT * FROM orders").fetchall()
