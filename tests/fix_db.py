"""Fixtures for the core data-access tests: an open Database on the per-test database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import pgkeel


@pytest.fixture
def db(pg_url: str) -> Iterator[pgkeel.Database]:
    """An open sync Database on a fresh empty database."""
    with pgkeel.Database(pg_url, min_size=1, max_size=4) as database:
        yield database
