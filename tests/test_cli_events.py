"""``pgkeel events tail|status`` end to end: JSON lines, a named consumer resuming after the
last printed event, the temporary consumer removed, and lag in the status report."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner

import pgkeel
from pgkeel.cli import main

pytest_plugins = ["fix_db"]


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_tail_json_lines_and_resume(db: pgkeel.Database, pg_url: str) -> None:
    """tail prints one JSON object per event; a named consumer resumes after the last line."""
    ids = [db.publish("orders", {"n": i, "text": "é"}) for i in range(3)]
    base = ["events", "tail", "orders", "--url", pg_url, "--from", "earliest", "--timeout", "1"]
    first = run(*base, "--consumer", "ops", "--max-events", "2")
    assert first.exit_code == 0, first.output
    lines = [json.loads(line) for line in first.output.splitlines()]
    assert [(r["id"], r["payload"]) for r in lines] == [
        (ids[0], {"n": 0, "text": "é"}),
        (ids[1], {"n": 1, "text": "é"}),
    ]
    assert lines[0]["topic"] == "orders"
    assert "T" in lines[0]["created_at"]
    second = run(*base, "--consumer", "ops")
    assert [json.loads(line)["id"] for line in second.output.splitlines()] == [ids[2]]


def test_tail_without_consumer_leaves_none(db: pgkeel.Database, pg_url: str) -> None:
    """Without --consumer, tail reads as a temporary consumer that is removed on exit."""
    db.publish("orders", 1)
    result = run(
        "events", "tail", "orders", "--url", pg_url, "--from", "earliest", "--timeout", "0.5"
    )
    assert [json.loads(line)["payload"] for line in result.output.splitlines()] == [1]
    assert db.fetch_val("SELECT count(*) FROM pgkeel_event_consumers") == 0


def test_status_shows_lag(db: pgkeel.Database, pg_url: str) -> None:
    """status --json lists topics and each consumer's lag; the table form names them too."""
    with db.subscribe("orders", "mailer", ack_interval=0) as sub:
        for i in range(3):
            db.publish("orders", i)
        event = sub.get(5)
        assert event is not None
        sub.ack(event)
    report = json.loads(run("events", "status", "--url", pg_url, "--json").output)
    assert [(t["topic"], t["events"]) for t in report["topics"]] == [("orders", 3)]
    assert [(c["consumer"], c["lag_events"]) for c in report["consumers"]] == [("mailer", 2)]
    text = run("events", "status", "--url", pg_url).output
    assert "mailer" in text
    assert "orders" in text


def test_bad_topic_is_a_clear_error(pg_url: str) -> None:
    """A topic name PostgreSQL would truncate is refused with exit status 1 and the reason."""
    result = CliRunner().invoke(main, ["events", "tail", "x" * 70, "--url", pg_url])
    assert result.exit_code == 1
    assert "63 bytes" in result.output
