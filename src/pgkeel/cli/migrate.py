"""``pgkeel migrate up|status|lint|new|baseline|resolve``: a thin layer over
:mod:`pgkeel.migrate`. Progress goes to stderr, one line per migration; ``--json`` output for
scripts; exit code 1 on any error (and on lint errors, or a status that needs attention)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import psycopg

from pgkeel.errors import Error
from pgkeel.migrate import _files, _runner

__all__ = ["migrate"]

_url_option = click.option(
    "--url",
    envvar="PGKEEL_MIGRATE_URL",
    default=None,
    help="Database URL (default: $PGKEEL_MIGRATE_URL, then $DATABASE_URL). Behind PgBouncer in "
    "transaction mode use a direct URL: the migration lock lives on one session.",
)
_dir_option = click.option(
    "--dir",
    "directory",
    envvar="PGKEEL_MIGRATIONS",
    default="migrations",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Migrations directory (or $PGKEEL_MIGRATIONS).",
)
_table_option = click.option(
    "--table",
    default="pgkeel_migrations",
    show_default=True,
    help="History table ('name' or 'schema.name').",
)
_lock_wait_option = click.option(
    "--lock-wait",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    help="Seconds to wait for another runner's migration lock.",
)


def _echo(line: str) -> None:
    click.echo(line, err=True)


@contextmanager
def _errors() -> Iterator[None]:
    """pgkeel and server errors as one clear message (with pgkeel's notes), exit code 1."""
    try:
        yield
    except ImportError as exc:
        raise click.ClickException(str(exc)) from exc
    except (Error, psycopg.Error, OSError) as exc:
        lines = [str(exc).strip() or type(exc).__name__]
        if isinstance(exc, psycopg.Error) and exc.sqlstate:
            lines[0] = f"{lines[0]} (SQLSTATE {exc.sqlstate})"
        lines.extend(getattr(exc, "__notes__", ()))
        raise click.ClickException("\n".join(lines)) from exc


@click.group()
def migrate() -> None:
    """Versioned SQL migrations, safe to run from many pods at once."""


@migrate.command()
@_url_option
@_dir_option
@_table_option
@click.option("--to", "to", type=int, default=None, help="Stop after this version.")
@click.option("--dry-run", is_flag=True, help="List what would be applied; change nothing.")
@click.option("--no-lint", is_flag=True, help="Skip the linter.")
@click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Seconds each try may wait for a table lock before it is rolled back and retried.",
)
@click.option(
    "--lock-retries",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Tries after the first when lock_timeout fires (with backoff).",
)
@_lock_wait_option
@click.option(
    "--statement-timeout",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds one statement may run (0: no limit).",
)
@click.option("--allow-changed", is_flag=True, help="Accept applied files edited since.")
@click.option("--allow-missing", is_flag=True, help="Accept applied files deleted since.")
@click.option("--json", "as_json", is_flag=True, help="Print what was applied as JSON.")
def up(
    url: str | None,
    directory: Path,
    table: str,
    to: int | None,
    dry_run: bool,
    no_lint: bool,
    lock_timeout: float,
    lock_retries: int,
    lock_wait: float,
    statement_timeout: float,
    allow_changed: bool,
    allow_missing: bool,
    as_json: bool,
) -> None:
    """Apply pending migrations in version order (linted first)."""
    with _errors():
        applied = _runner.up(
            url,
            directory,
            to=to,
            dry_run=dry_run,
            lint=not no_lint,
            lock_timeout=lock_timeout,
            lock_retries=lock_retries,
            lock_wait=lock_wait,
            statement_timeout=statement_timeout,
            allow_changed=allow_changed,
            allow_missing=allow_missing,
            table=table,
            echo=_echo,
        )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "dry_run": dry_run,
                    "applied": [
                        {
                            "version": a.version,
                            "name": a.name,
                            "transactional": a.transactional,
                            "duration": round(a.duration, 6),
                        }
                        for a in applied
                    ],
                }
            )
        )


@migrate.command()
@_url_option
@_dir_option
@_table_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def status(url: str | None, directory: Path, table: str, as_json: bool) -> None:
    """Applied / pending / changed / missing / failed; exit 1 when any needs attention."""
    with _errors():
        entries = _runner.status(url, directory, table=table)
    if as_json:
        click.echo(json.dumps([e.as_dict() for e in entries]))
    else:
        for e in entries:
            when = e.applied_at.strftime("%Y-%m-%d %H:%M:%S%z") if e.applied_at else ""
            took = f"{e.duration * 1000:.0f} ms" if e.duration is not None else ""
            line = f"{e.version:>6}  {e.state:<8}  {e.name:<32}  {when}  {took}".rstrip()
            click.echo(line + (f"\n        {e.detail}" if e.detail else ""))
        if not entries:
            click.echo(f"no migrations in {directory}")
    bad = [e for e in entries if e.state in ("changed", "missing", "failed")]
    sys.exit(1 if bad else 0)


@migrate.command()
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@_dir_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--require-lock-timeout",
    is_flag=True,
    help="Files run by another tool: report strong locks taken with no lock_timeout set.",
)
def lint(files: tuple[Path, ...], directory: Path, fmt: str, require_lock_timeout: bool) -> None:
    """Lint migration FILES (default: every file in --dir); exit 1 on errors."""
    with _errors():
        findings = _runner.lint(
            list(files) if files else directory, lock_timeout_set=not require_lock_timeout
        )
    if fmt == "json":
        click.echo(json.dumps([f.as_dict() for f in findings]))
    else:
        for f in findings:
            click.echo(str(f))
        errors = sum(f.severity == "error" for f in findings)
        click.echo(f"{errors} error(s), {len(findings) - errors} warning(s)", err=True)
    sys.exit(1 if any(f.severity == "error" for f in findings) else 0)


@migrate.command()
@click.argument("name")
@_dir_option
@click.option("--python", "python", is_flag=True, help="A Python migration (def up(tx)).")
def new(name: str, directory: Path, python: bool) -> None:
    """Create the next numbered migration file and print its path."""
    with _errors():
        path = _files.new_file(directory, name, kind="python" if python else "sql")
    click.echo(str(path))


@migrate.command()
@click.argument("version", type=int)
@_url_option
@_dir_option
@_table_option
@_lock_wait_option
def baseline(url: str | None, directory: Path, table: str, version: int, lock_wait: float) -> None:
    """Adopt an existing database: record migrations up to VERSION as applied, unrun."""
    with _errors():
        _runner.baseline(url, directory, version, table=table, lock_wait=lock_wait, echo=_echo)


@migrate.command()
@click.argument("version", type=int)
@click.option("--applied", "outcome", flag_value="applied", help="It is done (by hand).")
@click.option(
    "--rolled-back", "outcome", flag_value="rolled-back", help="It was undone: run it again."
)
@_url_option
@_table_option
@_lock_wait_option
def resolve(
    version: int, outcome: str | None, url: str | None, table: str, lock_wait: float
) -> None:
    """Unblock a failed migration after a person checked the schema."""
    if outcome is None:
        raise click.UsageError("say what happened: --applied or --rolled-back")
    with _errors():
        _runner.resolve(
            url,
            version,
            applied=outcome == "applied",
            table=table,
            lock_wait=lock_wait,
            echo=_echo,
        )
