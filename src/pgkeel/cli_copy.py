"""``pgkeel copy in|out``: CSV files in and out of a database, over ``Database.copy_in_csv`` and
``Database.copy_out``. A progress bar (rows, rows/s) on a terminal, a one-line summary otherwise,
``--json`` for scripts; exit code 0 on success, 1 on any error.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import psycopg

from pgkeel import embedded
from pgkeel.database import Database
from pgkeel.errors import Error

__all__ = ["copy"]

_url_option = click.option(
    "--url",
    envvar="DATABASE_URL",
    default=None,
    # No --url nor $DATABASE_URL: the one rule of pgkeel.embedded.dev_url (PG* variables, else
    # the running `pgkeel db` development cluster found from the current directory).
    callback=lambda ctx, param, value: value or embedded.dev_url(),
    help="Database URL (default: $DATABASE_URL, else libpq's PG* variables when one names a "
    "server, else the running `pgkeel db` development cluster).",
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")


@click.group()
def copy() -> None:
    """Bulk CSV load and export with COPY."""


def _table(name: str) -> str | tuple[str, str]:
    # On the command line "schema.table" is the natural spelling; a name with more dots (or
    # none) is taken whole.
    schema, dot, table = name.partition(".")
    return (schema, table) if dot and "." not in table else name


@contextmanager
def _progress(enabled: bool, what: str) -> Iterator[Callable[[int], None]]:
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import (
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    started = time.perf_counter()
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,.0f} rows"),
        TextColumn("{task.fields[rate]:,.0f} rows/s"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(what, rate=0.0)

        def update(n: int) -> None:
            elapsed = max(time.perf_counter() - started, 1e-9)
            bar.update(task, completed=n, rate=n / elapsed)

        yield update


def _run(action: str, as_json: bool, work: Callable[[Callable[[int], None]], int]) -> None:
    started = time.perf_counter()
    try:
        with _progress(sys.stderr.isatty() and not as_json, action) as progress:
            rows = work(progress)
    except (Error, psycopg.Error, OSError, ValueError) as exc:
        message = str(exc).strip() or type(exc).__name__
        if as_json:
            click.echo(json.dumps({"ok": False, "error": message, "type": type(exc).__name__}))
        else:
            click.echo(f"pgkeel copy {action}: error: {message}", err=True)
        sys.exit(1)
    seconds = time.perf_counter() - started
    summary: dict[str, Any] = {
        "ok": True,
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_second": round(rows / seconds) if seconds else None,
    }
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(f"{action}: {rows:,} rows in {seconds:.2f}s ({rows / seconds:,.0f} rows/s)")


@copy.command("in")
@click.argument("table")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_url_option
@click.option("--delimiter", default=",", show_default=True, help="Field delimiter.")
@click.option(
    "--header/--no-header", default=True, show_default=True, help="First line names columns."
)
@click.option("--columns", default=None, help="Comma-separated columns (default: the header).")
@_json_option
def copy_in(
    table: str,
    file: Path,
    url: str | None,
    delimiter: str,
    header: bool,
    columns: str | None,
    as_json: bool,
) -> None:
    """Load a CSV FILE into TABLE ("name" or "schema.name") in one transaction."""
    cols = [c.strip() for c in columns.split(",")] if columns else None

    def work(progress: Callable[[int], None]) -> int:
        with Database(url, min_size=1, max_size=1) as db:
            return db.copy_in_csv(
                _table(table),
                file,
                columns=cols,
                header=header,
                delimiter=delimiter,
                progress=progress,
            )

    _run("in", as_json, work)


@copy.command("out")
@click.argument("source")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_url_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "text", "binary"]),
    default="csv",
    show_default=True,
)
@click.option("--header/--no-header", default=True, show_default=True, help="CSV header line.")
@_json_option
def copy_out(
    source: str, file: Path, url: str | None, fmt: str, header: bool, as_json: bool
) -> None:
    """Export SOURCE (a query, or a table "name" / "schema.name") to FILE, streaming."""
    # The command line is where a query is meant to come from as text.
    target = _table(source) if " " not in source.strip() else source

    def work(progress: Callable[[int], None]) -> int:
        with Database(url, min_size=1, max_size=1) as db:
            return db.copy_out(
                target,
                file,
                format=fmt,  # type: ignore[arg-type]
                header=header,
                progress=progress,
            )

    _run("out", as_json, work)
