"""Fixtures for the migration tests: a migrations directory writer and a history reader."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row


@pytest.fixture
def migrations(tmp_path: Path) -> Callable[..., Path]:
    """``migrations(**{"0001_a": "SQL", ...})`` writes .sql files (``.py`` when the name ends
    with it) into one directory and returns it."""
    root = tmp_path / "migrations"
    root.mkdir(exist_ok=True)

    def write(**files: str) -> Path:
        for name, text in files.items():
            path = root / (name if name.endswith(".py") else f"{name}.sql")
            path.write_text(text)
        return root

    return write


def _history(url: str, table: str = "pgkeel_migrations") -> list[dict[str, Any]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        query = sql.SQL("SELECT * FROM {} ORDER BY version").format(
            sql.Identifier(*table.split("."))
        )
        return conn.execute(query).fetchall()


def _fetch(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query.encode()).fetchall()


@pytest.fixture
def history() -> Callable[..., list[dict[str, Any]]]:
    """``history(url, table=...)``: the history table's rows, in version order."""
    return _history


@pytest.fixture
def fetch() -> Callable[[str, str], list[tuple[Any, ...]]]:
    """``fetch(url, sql)``: all rows of one query, on a connection of its own."""
    return _fetch
