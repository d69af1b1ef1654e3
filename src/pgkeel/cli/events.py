"""``pgkeel events tail|status``: durable topics from the command line, over
:mod:`pgkeel.events`. ``tail TOPIC`` prints each event as a JSON line (``id``, ``topic``,
``payload``, ``created_at``); with ``--consumer`` it reads and acknowledges as that named
consumer (a stopped tail resumes after the last line it printed), without one it reads as a
temporary consumer removed on exit. ``status`` lists topics and each consumer's lag in events
and seconds. Ctrl-C stops cleanly (exit 130).
"""

from __future__ import annotations

import json
import secrets
import sys
from datetime import datetime
from typing import Any

import click
import psycopg

from pgkeel.cli._options import url_option
from pgkeel.errors import Error

__all__ = ["events"]

EXIT_INTERRUPTED = 130


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


@click.group()
def events() -> None:
    """Durable topics: follow a topic, see consumers' lag."""


@events.command()
@url_option
@click.argument("topic")
@click.option("--consumer", default=None, help="Read (and acknowledge) as this named consumer.")
@click.option(
    "--from",
    "start",
    type=click.Choice(["latest", "earliest"]),
    default="latest",
    help="Where a new consumer starts: after the latest event (default) or at the oldest kept.",
)
@click.option(
    "--max-events", type=click.IntRange(min=1), default=None, help="Stop after this many events."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="Stop after this many seconds without an event (default: wait for ever).",
)
def tail(
    url: str,
    topic: str,
    consumer: str | None,
    start: str,
    max_events: int | None,
    timeout: float | None,
) -> None:
    """Print the events of TOPIC as JSON lines as they are published."""
    import pgkeel

    name = consumer or f"pgkeel-tail-{secrets.token_hex(4)}"
    seen = 0
    try:
        with (
            pgkeel.Database(url, min_size=1, max_size=2, size_check="off") as db,
            db.subscribe(topic, name, start=start, ack_interval=0) as sub,
        ):
            try:
                while max_events is None or seen < max_events:
                    event = sub.get(timeout)
                    if event is None:
                        break
                    record = {
                        "id": event.id,
                        "topic": event.topic,
                        "payload": event.payload,
                        "created_at": event.created_at,
                    }
                    sys.stdout.write(
                        json.dumps(record, default=_json_default, ensure_ascii=False) + "\n"
                    )
                    sys.stdout.flush()
                    sub.ack(event)  # printed and flushed: never printed again
                    seen += 1
            except KeyboardInterrupt:
                click.echo(f"stopped after {seen} events", err=True)
                sys.exit(EXIT_INTERRUPTED)
            finally:
                if consumer is None:
                    db.execute(
                        "DELETE FROM pgkeel_event_consumers WHERE topic = %s AND consumer = %s",
                        [topic, name],
                    )
    except (Error, psycopg.Error) as exc:
        raise click.ClickException(str(exc)) from None


@events.command()
@url_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def status(url: str, as_json: bool) -> None:
    """List topics (events kept, last published) and consumers (lag in events and seconds)."""
    import pgkeel
    from pgkeel.events.topics import status as events_status

    try:
        with pgkeel.Database(url, min_size=1, max_size=1, size_check="off") as db:
            report = events_status(db)
    except (Error, psycopg.Error) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(report, default=_json_default, indent=2))
        return
    if not report["topics"] and not report["consumers"]:
        click.echo("no events and no consumers")
        return
    click.echo(f"{'topic':<32} {'events':>10} last published")
    for t in report["topics"]:
        click.echo(f"{t['topic']:<32} {t['events']:>10} {_when(t['last_at'])}")
    if report["consumers"]:
        click.echo()
        click.echo(f"{'topic':<32} {'consumer':<24} {'lag':>10} {'lag_s':>10}")
        for c in report["consumers"]:
            lag_s = "-" if c["lag_seconds"] is None else f"{c['lag_seconds']:.1f}"
            click.echo(f"{c['topic']:<32} {c['consumer']:<24} {c['lag_events']:>10} {lag_s:>10}")


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.isoformat(timespec="seconds")
