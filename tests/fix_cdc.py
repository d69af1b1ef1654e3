"""Fixtures for the change data capture tests: a fresh database whose replication slots are
dropped afterwards (a slot keeps its database from being dropped), and an admin connection."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest


def drop_slots(url: str) -> None:
    """Drop every replication slot of ``url``'s database, ending its consumer first."""
    with psycopg.connect(url, autocommit=True) as conn:
        for name, pid in conn.execute(
            "SELECT slot_name, active_pid FROM pg_replication_slots WHERE database = "
            "current_database()"
        ).fetchall():
            if pid is not None:
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
            for _ in range(100):
                busy = conn.execute(
                    "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (name,)
                ).fetchone()
                if not busy or not busy[0]:
                    break
                conn.execute("SELECT pg_sleep(0.05)")
            conn.execute("SELECT pg_drop_replication_slot(%s)", (name,))


@pytest.fixture
def cdc_url(pg_url: str) -> Iterator[str]:
    """A fresh database for a CDC test; its slots are dropped at the end."""
    try:
        yield pg_url
    finally:
        drop_slots(pg_url)


@pytest.fixture
def admin(cdc_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the test database."""
    with psycopg.connect(cdc_url, autocommit=True) as conn:
        yield conn


def wait_inactive(admin: psycopg.Connection[Any], slot: str) -> None:
    """Wait until the server released ``slot`` (its walsender exits after the client closed)."""
    query = "SELECT active FROM pg_replication_slots WHERE slot_name = %s"
    while admin.execute(query, (slot,)).fetchone() == (True,):
        time.sleep(0.05)
