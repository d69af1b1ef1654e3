"""The contract fixture: the core behaviour tests run once per driver of each face through
``on_driver`` (asyncio face: psycopg, asyncpg) and ``on_sync_driver`` (sync face: psycopg,
psycopg2), never copied per driver."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import pgkeel

#: The drivers of the asyncio face; each test using ``on_driver`` runs once per name.
ASYNC_DRIVERS = ["psycopg", "asyncpg"]


@pytest.fixture(params=ASYNC_DRIVERS)
def driver(request: pytest.FixtureRequest) -> str:
    """The driver this run of a contract test uses."""
    return str(request.param)


def run_on(
    url: str, driver: str, fn: Callable[[pgkeel.AsyncDatabase], Awaitable[Any]], **options: Any
) -> Any:
    """Run ``await fn(db)`` in a fresh event loop with an open AsyncDatabase on ``driver``
    (small pool: min 1, max 4, unless ``options`` say)."""
    options = {"min_size": 1, "max_size": 4, **options}

    async def main() -> Any:
        async with pgkeel.AsyncDatabase(url, driver=driver, **options) as db:
            async with asyncio.timeout(60):
                return await fn(db)

    return asyncio.run(main())


class OnDriver:
    """``on_driver(fn, **options)``: :func:`run_on` the test database with this run's driver."""

    def __init__(self, url: str, driver: str) -> None:
        self.url = url
        self.driver = driver

    def __call__(self, fn: Callable[[pgkeel.AsyncDatabase], Awaitable[Any]], **options: Any) -> Any:
        return run_on(self.url, self.driver, fn, **options)


@pytest.fixture
def on_driver(pg_url: str, driver: str) -> OnDriver:
    """Runs a contract test's body on this run's driver (see :class:`OnDriver`)."""
    return OnDriver(pg_url, driver)


#: The drivers of the sync face; each test using ``on_sync_driver`` runs once per name.
SYNC_DRIVERS = ["psycopg", "psycopg2"]


@pytest.fixture(params=SYNC_DRIVERS)
def sync_driver(request: pytest.FixtureRequest) -> str:
    """The driver this run of a sync contract test uses."""
    return str(request.param)


@pytest.fixture
def on_sync_driver(pg_url: str, sync_driver: str) -> Callable[..., Any]:
    """``on_sync_driver(fn, **options)`` returns ``fn(db)`` with an open Database on this run's
    driver (small pool: min 1, max 4, unless ``options`` say)."""

    def run(fn: Callable[[pgkeel.Database], Any], **options: Any) -> Any:
        options = {"min_size": 1, "max_size": 4, **options}
        with pgkeel.Database(pg_url, driver=sync_driver, **options) as db:
            return fn(db)

    return run
