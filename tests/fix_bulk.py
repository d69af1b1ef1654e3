"""Fixtures for the bulk and streaming tests: a Database on a fresh database, and an admin link."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import psycopg
import pytest

import pgkeel

T = TypeVar("T")


@pytest.fixture
def admin(pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the test's database, for setup and checks."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def db(pg_url: str) -> Iterator[pgkeel.Database]:
    """The sync face under test, on the test's fresh database."""
    with pgkeel.Database(pg_url, min_size=1, max_size=4) as database:
        yield database


def run_async(url: str, body: Callable[[pgkeel.AsyncDatabase], Awaitable[T]]) -> T:
    """Run ``body(adb)`` on a fresh AsyncDatabase in a new event loop (no async test plugin)."""

    async def main() -> T:
        async with pgkeel.AsyncDatabase(url, min_size=1, max_size=4) as adb:
            return await body(adb)

    return asyncio.run(main())


@pytest.fixture
def arun(pg_url: str) -> Callable[[Callable[[pgkeel.AsyncDatabase], Awaitable[Any]]], Any]:
    """``arun(body)`` runs ``async body(adb)`` on an AsyncDatabase on the test's database."""
    return lambda body: run_async(pg_url, body)
