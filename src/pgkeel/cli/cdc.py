"""``pgkeel cdc tail|slots|drop``: change data capture from the command line, over
:mod:`pgkeel.cdc`. ``tail`` prints each committed change (a JSON line with ``--json``) and
acknowledges a transaction once all its lines are written and flushed, so a stopped ``tail``
resumes after the last transaction it printed; Ctrl-C stops cleanly (exit 130). ``slots``
lists the server's logical slots with their retained WAL and lag; ``drop`` asks first.
"""

from __future__ import annotations

import base64
import json
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import click
import psycopg

from pgkeel.cli._options import url_option
from pgkeel.errors import Error

__all__ = ["cdc"]

EXIT_INTERRUPTED = 130


@contextmanager
def _sigint_held() -> Iterator[None]:
    """Hold Ctrl-C back until the block ends: once a transaction's lines are out, its ack must
    follow, or a reader who saw them stop the tail would get them again on the next start."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no signal masks
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | memoryview):
        return "base64:" + base64.b64encode(bytes(value)).decode()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def change_record(change: Any) -> dict[str, Any]:
    """One change as ``tail --json`` prints it. Unchanged TOAST values are left out of ``new``
    and named in ``unchanged`` (never printed as null)."""
    from pgkeel.cdc import UNCHANGED, format_lsn

    new = change.new
    unchanged: list[str] = []
    if new is not None:
        unchanged = [k for k, v in new.items() if v is UNCHANGED]
        if unchanged:
            new = {k: v for k, v in new.items() if v is not UNCHANGED}
    record = {
        "lsn": format_lsn(change.lsn),
        "commit_lsn": format_lsn(change.commit_lsn),
        "xid": change.xid,
        "op": change.op,
        "table": ".".join(change.table),
        "new": new,
        "old": change.old,
    }
    if unchanged:
        record["unchanged"] = unchanged
    return record


@click.group()
def cdc() -> None:
    """Change data capture: stream committed changes through a replication slot."""


@cdc.command()
@url_option
@click.option("--slot", required=True, help="Replication slot name.")
@click.option("--publication", required=True, help="Publication name.")
@click.option(
    "--tables",
    default=None,
    help="Comma-separated tables: create the publication for them if it is missing.",
)
@click.option("--create", is_flag=True, help="Create the slot if it never existed.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per change.")
@click.option(
    "--max-transactions",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after this many transactions (default: run until Ctrl-C).",
)
def tail(
    url: str,
    slot: str,
    publication: str,
    tables: str | None,
    create: bool,
    as_json: bool,
    max_transactions: int | None,
) -> None:
    """Print committed changes as they arrive, acknowledging each printed transaction."""
    from pgkeel import cdc as cdc_api

    out = sys.stdout
    seen = 0
    try:
        with cdc_api.changes(
            url,
            slot=slot,
            publication=publication,
            create=create,
            tables=[t.strip() for t in tables.split(",") if t.strip()] if tables else None,
        ) as stream:
            try:
                for tx in stream.transactions():
                    for change in tx:
                        record = change_record(change)
                        if as_json:
                            line = json.dumps(record, default=_json_default, ensure_ascii=False)
                        else:
                            line = (
                                f"{record['lsn']} {change.op.upper()} {record['table']} "
                                f"new={json.dumps(record['new'], default=_json_default)} "
                                f"old={json.dumps(record['old'], default=_json_default)}"
                            )
                        out.write(line + "\n")
                    with _sigint_held():
                        out.flush()
                        stream.ack(tx)  # printed and flushed: never printed again
                    seen += 1
                    if max_transactions is not None and seen >= max_transactions:
                        break
            except KeyboardInterrupt:
                click.echo(f"stopped after {seen} transactions", err=True)
                sys.exit(EXIT_INTERRUPTED)
    except (Error, psycopg.Error) as exc:
        raise click.ClickException(str(exc)) from None


@cdc.command()
@url_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def slots(url: str, as_json: bool) -> None:
    """List logical replication slots with retained WAL and lag (bytes and seconds)."""
    from pgkeel.cdc import list_slots
    from pgkeel.config import resolve

    try:
        with psycopg.connect(resolve(url).conninfo, autocommit=True) as conn:
            infos = list_slots(conn)
    except (Error, psycopg.Error) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps([asdict(i) for i in infos], indent=2))
        return
    if not infos:
        click.echo("no logical replication slots")
        return
    click.echo(f"{'slot':<24} {'database':<16} {'active':<6} {'retained':>12} {'lag':>12} lag_s")
    for i in infos:
        lag_s = "-" if i.lag_seconds is None else f"{i.lag_seconds:.1f}"
        click.echo(
            f"{i.name:<24} {i.database or '-':<16} {'yes' if i.active else 'no':<6} "
            f"{_size(i.retained_bytes):>12} {_size(i.lag_bytes):>12} {lag_s}"
        )


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)  # pragma: no cover


@cdc.command()
@url_option
@click.argument("slot")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def drop(url: str, slot: str, yes: bool) -> None:
    """Drop replication slot SLOT (and pgkeel's record of it): its unread changes are lost."""
    from pgkeel.cdc import drop_slot
    from pgkeel.cdc._slots import check_name
    from pgkeel.config import resolve

    try:
        check_name("slot", slot)
        if not yes:
            click.confirm(
                f"Drop replication slot {slot!r}? Changes its consumer has not read are lost",
                abort=True,
            )
        with psycopg.connect(resolve(url).conninfo, autocommit=True) as conn:
            existed = drop_slot(conn, slot)
    except (Error, psycopg.Error) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"dropped slot {slot}" if existed else f"slot {slot} did not exist (record cleared)")
