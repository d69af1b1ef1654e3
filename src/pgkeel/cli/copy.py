"""``pgkeel copy in|out``: CSV files in and out of a database, over ``Database.copy_in_csv`` and
``Database.copy_out``. ``-`` names stdin (``copy in``) or stdout (``copy out``); stdout carries
only data, so the summary goes to stderr (a ``--json`` summary to stdout unless the data does).
On a terminal a progress bar on stderr shows rows, rows/s and elapsed time, and bytes read against
the file's size (with an ETA) where the size is known. ``copy out`` writes a temporary file beside
the target and renames it on success, so a failed export leaves no file. Exit code 0 on success,
1 on any error, 130 on Ctrl-C (after the rollback).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, cast

import click
import psycopg

from pgkeel.bulk._base import parse_header
from pgkeel.cli._options import url_option
from pgkeel.database import Database
from pgkeel.errors import Error

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = ["copy"]

# What shells report for a command ended by SIGINT (128 + 2).
EXIT_INTERRUPTED = 130
STDIO = "-"
# A header line longer than this is not a header (a binary file, a CSV without one).
MAX_HEADER_BYTES = 1 << 20

_json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print a JSON summary (on stdout, or on stderr when stdout carries the data).",
)


class CopyUsageError(Error):
    """The command line cannot work as given (an empty file, a placeholder without a value)."""


@click.group()
def copy() -> None:
    """Bulk CSV load and export with COPY."""


def _table(name: str) -> str | tuple[str, str]:
    # On the command line "schema.table" is the natural spelling; a name with more dots (or
    # none) is taken whole.
    schema, dot, table = name.partition(".")
    return (schema, table) if dot and "." not in table else name


class Meter:
    """What the progress display shows: rows (with rows/s) and, for an input, bytes read.

    ``total_bytes`` is the input's size when known (a regular file), which gives a bar and an
    ETA. Without a terminal nothing is drawn but the counts are kept all the same.
    """

    def __init__(self, what: str, *, total_bytes: int | None, draw: bool) -> None:
        self.what = what
        self.total_bytes = total_bytes
        self.rows = 0
        self.bytes = 0
        self.bar: Progress | None = None
        self._draw = draw
        self._task: Any = None

    @contextlib.contextmanager
    def shown(self) -> Iterator[Meter]:
        if not self._draw:
            yield self
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            ProgressColumn,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns: list[ProgressColumn] = [SpinnerColumn(), TextColumn("{task.description}")]
        if self.total_bytes is not None:
            columns += [BarColumn(), DownloadColumn()]
        columns += [
            TextColumn("{task.fields[rows]:,} rows"),
            TextColumn("{task.fields[rate]:,.0f} rows/s"),
            TimeElapsedColumn(),
        ]
        if self.total_bytes is not None:
            columns.append(TimeRemainingColumn())
        # stderr: stdout may be the data. No redirection of sys.stdout while drawing, for the
        # same reason.
        console = Console(stderr=True)
        with Progress(
            *columns,
            console=console,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        ) as bar:
            self.bar = bar
            # total=None unless the size is known: rich's default total (100) "finishes" the
            # task at 100, which stops its clock and spinner.
            self._task = bar.add_task(self.what, total=self.total_bytes, rows=0, rate=0.0)
            try:
                yield self
            finally:
                self._refresh()

    def add_bytes(self, n: int) -> None:
        self.bytes += n
        self._refresh()

    def set_rows(self, n: int) -> None:
        self.rows = n
        self._refresh()

    def _refresh(self) -> None:
        if self.bar is None:
            return
        task = self.bar.tasks[0]
        elapsed = task.elapsed or 0.0
        completed = self.bytes if self.total_bytes is not None else self.rows
        rate = self.rows / elapsed if elapsed > 0 else 0.0
        self.bar.update(self._task, completed=completed, rows=self.rows, rate=rate)


class _Reader:
    """A binary input read by ``copy_in_csv``: ``prefix`` (a header line already read) first,
    then the rest of ``source``, counting bytes for the progress display."""

    def __init__(self, source: BinaryIO, prefix: bytes, on_read: Callable[[int], None]) -> None:
        self._source = source
        self._prefix = prefix
        self._on_read = on_read

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix, b""
        else:
            data = self._source.read(size)
        self._on_read(len(data))
        return data

    def readable(self) -> bool:
        return True


def _size(f: BinaryIO) -> int | None:
    """The size of a regular file (a path, or stdin redirected from a file), else None."""
    try:
        st = os.fstat(f.fileno())
    except (OSError, ValueError, AttributeError):  # no descriptor (a test's stdin, a pipe...)
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


@contextlib.contextmanager
def _output(file: Path) -> Iterator[BinaryIO]:
    """Where ``copy out`` writes ``file``: a temporary file beside it, renamed over it once the
    block succeeds and removed if it fails (or is interrupted), so that a failed export never
    leaves a file that looks complete. A FIFO, a device (/dev/null) or a socket is written
    directly: renaming over one would replace it."""
    target = file.resolve()
    try:
        special = not stat.S_ISREG(target.stat().st_mode)
    except FileNotFoundError:
        special = False
    if special:
        with open(target, "wb") as f:
            yield f
        return
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {file}: {exc.strerror}") from None
    try:
        # mkstemp creates the file 0600; give it the mode open() would have (0666 - umask).
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _param_hint(exc: BaseException, query: str, params: Sequence[str] | None) -> str:
    # The server saw a %s it could not parse: the value was meant to go through --param. Only
    # ever an addition to the server's own message.
    if params is None and isinstance(exc, psycopg.errors.SyntaxError) and "%" in query:
        return (
            "\nhint: pass values for %s placeholders with --param VALUE (once per value, in order)"
        )
    return ""


def _run(
    action: str,
    as_json: bool,
    work: Callable[[], int],
    *,
    interrupted: str,
    summary_to_stderr: bool = False,
    hint: Callable[[BaseException], str] = lambda exc: "",
) -> None:
    json_err = summary_to_stderr
    started = time.perf_counter()
    try:
        rows = work()
    except KeyboardInterrupt:
        # The transaction has been rolled back (and a partial output removed) on the way here.
        message = f"interrupted; {interrupted}"
        if as_json:
            payload = {"ok": False, "error": message, "type": "KeyboardInterrupt"}
            click.echo(json.dumps(payload), err=json_err)
        else:
            click.echo(f"pgkeel copy {action}: {message}", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except (Error, psycopg.Error, OSError, ValueError) as exc:
        message = (str(exc).strip() or type(exc).__name__) + hint(exc)
        if as_json:
            payload = {"ok": False, "error": message, "type": type(exc).__name__}
            click.echo(json.dumps(payload), err=json_err)
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
        click.echo(json.dumps(summary), err=summary_to_stderr)
    else:
        rate = f"{rows / seconds:,.0f}" if seconds else "-"
        click.echo(f"{action}: {rows:,} rows in {seconds:.2f}s ({rate} rows/s)", err=True)


def _draw_progress(as_json: bool) -> bool:
    return sys.stderr.isatty() and not as_json


@copy.command("in")
@click.argument("table")
@click.argument(
    "file", type=click.Path(exists=True, allow_dash=True, dir_okay=False, path_type=Path)
)
@url_option
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
    """Load a CSV FILE ("-" for stdin) into TABLE ("name" or "schema.name") in one transaction.

    Error messages give the line number in FILE, header included.
    """
    cols = [c.strip() for c in columns.split(",")] if columns else None
    from_stdin = str(file) == STDIO
    name = "stdin" if from_stdin else str(file)

    def work() -> int:
        with contextlib.ExitStack() as stack:
            source = sys.stdin.buffer if from_stdin else stack.enter_context(open(file, "rb"))
            meter = Meter("in", total_bytes=_size(source), draw=_draw_progress(as_json))
            stack.enter_context(meter.shown())
            prefix = b""
            header_cols = cols
            if header_cols is None and header:
                # Read the header here and let the server skip it (HEADER true), so that its
                # line numbers in errors are the file's own.
                prefix = source.readline(MAX_HEADER_BYTES + 1)
                if len(prefix) > MAX_HEADER_BYTES:
                    raise CopyUsageError(
                        f"the first line of {name} is longer than {MAX_HEADER_BYTES:,} bytes:"
                        " is it a CSV file with a header? (--no-header if it has none)"
                    )
                if not prefix:
                    raise CopyUsageError(
                        f"{name} is empty: expected a header line naming the columns"
                        " (or give --columns with --no-header); nothing was loaded"
                    )
                header_cols = parse_header(prefix.decode().rstrip("\r\n"), delimiter)
                if not any(header_cols):
                    raise CopyUsageError(
                        f"{name} has no header: its first line is blank; give the columns"
                        " with --columns, or fix the file"
                    )
            reader = cast(IO[bytes], _Reader(source, prefix, meter.add_bytes))
            with Database(url, min_size=1, max_size=1) as db:
                return db.copy_in_csv(
                    _table(table),
                    reader,
                    columns=header_cols,
                    header=header,
                    delimiter=delimiter,
                    progress=meter.set_rows,
                )

    _run("in", as_json, work, interrupted="rolled back, nothing was loaded")


@copy.command("out")
@click.argument("source")
@click.argument("file", type=click.Path(allow_dash=True, dir_okay=False, path_type=Path))
@url_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "text", "binary"]),
    default="csv",
    show_default=True,
)
@click.option("--header/--no-header", default=True, show_default=True, help="CSV header line.")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="VALUE",
    help="A value for the query's next %s placeholder (repeatable, in order). With --param a"
    " literal % in the query is written %%.",
)
@_json_option
def copy_out(
    source: str,
    file: Path,
    url: str | None,
    fmt: str,
    header: bool,
    params: tuple[str, ...],
    as_json: bool,
) -> None:
    """Export SOURCE (a query, or a table "name" / "schema.name") to FILE ("-" for stdout).

    The data streams into a temporary file beside FILE, renamed to FILE once complete.
    """
    # The command line is where a query is meant to come from as text.
    is_query = " " in source.strip()
    target = source if is_query else _table(source)
    if params and not is_query:
        raise click.UsageError(
            "--param gives values to a query's %s placeholders; SOURCE is a table"
        )
    to_stdout = str(file) == STDIO

    def work() -> int:
        meter = Meter("out", total_bytes=None, draw=_draw_progress(as_json))
        with contextlib.ExitStack() as stack:
            stack.enter_context(meter.shown())
            out = sys.stdout.buffer if to_stdout else stack.enter_context(_output(file))
            with Database(url, min_size=1, max_size=1) as db:
                rows = db.copy_out(
                    target,
                    out,
                    params=list(params) if params else None,
                    format=fmt,  # type: ignore[arg-type]
                    header=header,
                    progress=meter.set_rows,
                )
            out.flush()
            return rows

    _run(
        "out",
        as_json,
        work,
        interrupted="the output on stdout is incomplete" if to_stdout else f"{file} not written",
        summary_to_stderr=to_stdout,
        hint=lambda exc: _param_hint(exc, source, params or None),
    )
