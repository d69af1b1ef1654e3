"""The README's tour runs as written against a real server."""

from __future__ import annotations

import asyncio
import inspect
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

import pgkeel

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


def _async_claims() -> dict[str, list[str]]:
    """The README's list of AsyncDatabase names: "awaited", "async with", "called without"."""
    text = README.read_text().split("has the same names as the sync face:", 1)[1]
    bullets = text.lstrip("\n").split("\n\n", 1)[0].split("\n- ")
    claims = {}
    for bullet in bullets:
        kind, _, names = bullet.strip("- \n").partition(":")
        # Names are the backticked words before any parenthesis (which holds details).
        words = re.findall(r"`([a-z_]+)`", re.sub(r"\([^)]*\)", "", names))
        claims[kind.strip("`")] = words
    return claims


def test_readme_async_face_is_what_the_code_does(pg_url: str) -> None:
    """Each AsyncDatabase method the README says is awaited is a coroutine function, each
    `async with` one an async context manager, and stats() / stream() are plain calls."""
    claims = _async_claims()
    assert set(claims) == {"awaited", "async with", "called without `await"}, claims
    assert "stream" in claims["called without `await"]

    async def check() -> None:
        async with pgkeel.AsyncDatabase(pg_url) as adb:
            for name in claims["awaited"]:
                assert inspect.iscoroutinefunction(getattr(adb, name)), name
            for name in claims["async with"]:
                async with getattr(adb, name)():
                    pass
            assert isinstance(adb.stats(), dict)
            rows = adb.stream("SELECT 1 AS one")
            assert [r async for r in rows] == [{"one": 1}]
            async with adb.pipeline() as p:
                for name in ("execute", "execute_many", "fetch_one", "fetch_all", "fetch_val"):
                    assert inspect.iscoroutinefunction(getattr(p, name)), name

    asyncio.run(check())


def test_readme_tour_passes_the_mypy_plugin(tmp_path: Path) -> None:
    """The tour, checked by mypy with pgkeel's plugin, has no pgkeel-query error."""
    (tmp_path / "tour.py").write_text(_tour())
    (tmp_path / "mypy.ini").write_text("[mypy]\nplugins = pgkeel.mypy_plugin\n")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--config-file", "mypy.ini", "tour.py"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert "pgkeel-query" not in result.stdout
    assert "Success" in result.stdout, result.stdout
