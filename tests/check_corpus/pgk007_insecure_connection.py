"""PGK007: passwords in DSN literals, weak sslmode to remote hosts; and what is fine."""

import os

import asyncpg
import psycopg
import psycopg2
import psycopg_pool

PROD_URL = "postgresql://app:s3cr3t@db.prod.example.com:5432/shop"  # expect: PGK007
REMOTE_NO_TLS = "postgresql://app@10.0.4.12/shop?sslmode=disable"  # expect: PGK007
SERVICE_NO_TLS = "postgresql://app@db:5432/shop?sslmode=disable"  # expect: PGK007


def password_keyword():
    return psycopg.connect(host="db.example.com", user="app", password="hunter2")  # expect: PGK007


def sslmode_keyword():
    return psycopg2.connect(host="db.internal.example.com", sslmode="prefer", dbname="x")  # expect: PGK007


def conninfo_string():
    return psycopg.connect("host=pg.example.net dbname=shop sslmode=allow")  # expect: PGK007


async def asyncpg_ssl_off():
    return await asyncpg.connect(host="replica.example.org", ssl=False)  # expect: PGK007


def default_with_password():
    return os.environ.get("DATABASE_URL", "postgres://admin:admin123@localhost/app")  # expect: PGK007


def no_sslmode_remote():
    return psycopg_pool.ConnectionPool("postgresql://reports.example.com/bi", timeout=5)  # expect: PGK007


def no_sslmode_keywords():
    return psycopg2.connect(host="warehouse.example.com", dbname="bi", user="bi")  # expect: PGK007


# --- negatives ---------------------------------------------------------------------------------

LOCAL_NO_TLS = "postgresql://app@localhost/shop?sslmode=disable"  # ok: local
NO_PASSWORD = "postgresql://app@db.prod.example.com/shop?sslmode=verify-full"  # ok
TEMPLATE = "postgresql://app:${DB_PASSWORD}@db.prod.example.com/shop"  # ok: a placeholder


def from_environment():
    password = os.environ["PGPASSWORD"]
    return psycopg.connect(f"postgresql://app:{password}@db.example.com/shop")  # ok


def require_tls():
    return psycopg.connect(host="db.example.com", sslmode="require")  # ok


def documented():
    """Connect, e.g. to postgresql://user:secret@db.example.com/app (a docstring)."""
    return psycopg.connect(os.environ["DATABASE_URL"])  # ok


def no_sslmode_local():
    return psycopg.connect("host=localhost dbname=shop")  # ok: loopback


def no_sslmode_unix_socket():
    return psycopg.connect("postgresql:///shop?host=/var/run/postgresql")  # ok: a socket


def host_from_environment():
    return psycopg.connect(host=os.environ["PGHOST"], dbname="shop")  # ok: unknown host


def ssl_context(ctx):
    return asyncpg.connect(host="db.example.com", ssl=ctx)  # ok: the caller's TLS context


def cli(parser):
    parser.add_argument("--url", help="postgresql://user:secret@db.example.com/app")  # ok: help
