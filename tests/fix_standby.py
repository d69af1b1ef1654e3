"""A throwaway embedded primary with a streaming standby of it (``pgkeel.embedded.start(
standby_of=...)``), for the replica, read-your-writes and failover tests. Each test gets its own
pair: they pause replay, stop servers and promote standbys."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import psycopg
import pytest

from pgkeel import embedded


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``check`` until true; return the seconds it took, or fail naming ``what``."""
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"{what}: not within {timeout}s")
        time.sleep(0.02)
    return time.monotonic() - t0


def replayed(primary_url: str, standby_url: str) -> bool:
    """Has the standby replayed everything the primary has written so far?"""
    with psycopg.connect(primary_url, autocommit=True) as p:
        row = p.execute("SELECT pg_current_wal_flush_lsn()").fetchone()
    with psycopg.connect(standby_url, autocommit=True) as s:
        done = s.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [row[0]]).fetchone()
    return bool(done and done[0])


Pair = tuple[embedded.EmbeddedServer, embedded.EmbeddedServer]


def _pair() -> Iterator[Pair]:
    if not (embedded.find_bindir() / "pg_basebackup").exists():
        pytest.skip(f"no pg_basebackup in {embedded.find_bindir()} (a standby needs it)")
    with embedded.start() as primary, embedded.start(standby_of=primary) as standby:
        wait_for(lambda: replayed(primary.url, standby.url), 30, "the standby catching up")
        yield primary, standby


@pytest.fixture
def primary_and_standby() -> Iterator[Pair]:
    """A fresh primary and a streaming standby of it, caught up, for a test that stops or
    promotes one of them."""
    yield from _pair()


@pytest.fixture(scope="module")
def shared_pair() -> Iterator[Pair]:
    """The same, shared by a module's tests that leave both running, replay resumed, and use
    tables of their own."""
    yield from _pair()
