"""pgkeel.events as a whole: the README's events example runs as written, and the pure parts
(names, payload checks, backoff, DDL) behave without a server."""

from __future__ import annotations

import math
import re
from pathlib import Path

import psycopg
import pytest

import pgkeel
from pgkeel.events import NOTIFY_PAYLOAD_LIMIT, SCHEMA_SQL
from pgkeel.events._base import (
    SCHEMA_STATEMENTS,
    check_name,
    event_payload,
    notify_payload,
    reconnect_delay,
)

README = Path(__file__).parent.parent / "README.md"


def test_readme_events_example_runs(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's events example works as written, with DATABASE_URL as the only setting."""
    text = README.read_text().split("## Events: LISTEN/NOTIFY", 1)[1]
    match = re.search(r"```python\n(.*?)```", text, re.S)
    assert match
    monkeypatch.setenv("DATABASE_URL", pg_url)
    exec(compile(match.group(1), str(README), "exec"), {"print": lambda *a: None})  # noqa: S102
    with pgkeel.Database(pg_url, size_check="off") as db:
        assert db.fetch_val("SELECT count(*) FROM pgkeel_events") == 2


def test_notify_payload_limit_without_server() -> None:
    """The limit is counted in UTF-8 bytes: 7999 pass, 8000 raise, whatever the characters."""
    assert notify_payload("x" * (NOTIFY_PAYLOAD_LIMIT - 1)) == "x" * 7999
    assert notify_payload("€" * 2666) == "€" * 2666  # 7998 bytes
    for text in ("x" * 8000, "€" * 2667, "😀" * 2000):
        with pytest.raises(pgkeel.PayloadTooLargeError):
            notify_payload(text)
    assert notify_payload(None) == ""
    assert notify_payload({"a": [1, "é"]}) == '{"a":[1,"é"]}'


def test_event_payload_refusals_without_server() -> None:
    """Non-JSON-able, NaN, NUL anywhere (key or value, nested) raise; a literal backslash-u
    sequence is text and passes."""
    with pytest.raises(TypeError):
        event_payload({"a": object()})
    with pytest.raises(pgkeel.NotStorableError):
        event_payload({"a": [1, {"b": math.nan}]})
    with pytest.raises(psycopg.errors.UntranslatableCharacter):
        event_payload({"a": [1, {"b": "\x00"}]})
    assert event_payload("\\u0000") == '"\\\\u0000"'
    assert event_payload({"n": 10**30}) == '{"n":1000000000000000000000000000000}'


def test_names_and_backoff() -> None:
    """Names are checked like identifiers; the backoff grows, is jittered and capped."""
    assert check_name("product.changed", "topic") == "product.changed"
    with pytest.raises(pgkeel.IdentifierError, match="63 bytes"):
        check_name("é" * 32, "topic")
    delays = [reconnect_delay(a, 2.0) for a in range(12)]
    assert all(0 < d <= 2.0 for d in delays)
    assert reconnect_delay(0, 2.0) <= 0.05
    assert reconnect_delay(40, 2.0) >= 1.0


def test_schema_sql_is_the_statements() -> None:
    """SCHEMA_SQL (for migrations) is exactly what pgkeel runs on first use."""
    assert "".join(s + ";\n" for s in SCHEMA_STATEMENTS) == SCHEMA_SQL
    assert SCHEMA_SQL.count("IF NOT EXISTS") == 3
