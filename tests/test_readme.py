"""The README's tour runs as written against a real server."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

README = Path(__file__).parent.parent / "README.md"


def _tour() -> str:
    text = README.read_text()
    section = text.split("## A tour", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README's tour has no python block"
    return match.group(1)


def test_readme_tour_runs(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every call shown in the README's tour works, with DATABASE_URL as the only setting."""
    monkeypatch.setenv("DATABASE_URL", pg_url)
    exec(compile(_tour(), str(README), "exec"), {"print": lambda *a: None})  # noqa: S102
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT id, balance FROM accounts WHERE id < 3 ORDER BY id").fetchall()
        count = conn.execute("SELECT count(*) FROM accounts").fetchone()
    assert rows == [(1, 7), (2, 50 + 10 + 5)]  # upserted; savepoint transfer + run_transaction
    assert count == (99_999,)
