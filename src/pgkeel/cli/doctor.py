"""``pgkeel doctor``: audit a running deployment, a thin layer over :func:`pgkeel.ops.doctor`.

Exit status: 0 all ok, 1 a warning, 2 a failure (``--fail-on fail``: warnings exit 0); 2 also
when the server cannot be reached, since nothing could be checked.
"""

from __future__ import annotations

import shutil
import sys

import click

from pgkeel.cli._options import url_option

__all__ = ["doctor"]


class _Usage(click.UsageError):
    exit_code = 2


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@url_option
@click.option("--json", "as_json", is_flag=True, help="A JSON list of objects, one per check.")
@click.option(
    "--select", multiple=True, help="Only these checks or groups (repeatable; see --list)."
)
@click.option("--ignore", multiple=True, help="Skip these checks or groups (repeatable).")
@click.option(
    "--pool-size",
    type=click.IntRange(min=1),
    default=None,
    help="Connections per application instance (default: the resolved max_size).",
)
@click.option(
    "--instances",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Application instances, each with its own pool.",
)
@click.option(
    "--headroom",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Connection slots to keep free for psql, migrations and deploys.",
)
@click.option(
    "--idle-threshold",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds idle in a transaction before a session is reported.",
)
@click.option(
    "--top",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="List the N queries with the most total time (needs pg_stat_statements).",
)
@click.option(
    "--fail-on",
    type=click.Choice(["warn", "fail"]),
    default="warn",
    show_default=True,
    help="Lowest status that gives a non-zero exit: warn (1 warnings, 2 failures) or fail.",
)
@click.option("--list", "list_checks", is_flag=True, help="Print the checks and exit.")
def doctor(
    url: str | None,
    as_json: bool,
    select: tuple[str, ...],
    ignore: tuple[str, ...],
    pool_size: int | None,
    instances: int,
    headroom: int,
    idle_threshold: float,
    top: int,
    fail_on: str,
    list_checks: bool,
) -> None:
    """Audit the database the app uses: TLS, client defaults, capacity, server settings,
    schema health, replication, top queries. Read-only, safe on a production primary.

    Exit status: 0 all ok, 1 warnings, 2 failures or the server unreachable.
    """
    import psycopg

    from pgkeel import ops
    from pgkeel.errors import ConfigError

    if list_checks:
        for check in ops.CHECKS.values():
            click.echo(f"{check.group:<12} {check.name:<22} {check.title}")
        return
    try:
        checks = ops.select_checks(select, ignore)
    except ValueError as exc:
        raise _Usage(str(exc)) from None
    if not checks:
        raise _Usage("--select/--ignore leave no check to run")
    options = ops.DoctorOptions(
        pool_size=pool_size,
        instances=instances,
        headroom=headroom,
        idle_threshold=idle_threshold,
        top=top,
    )
    try:
        findings = ops.doctor(url, options=options, select=select, ignore=ignore)
    except ConfigError as exc:
        raise _Usage(str(exc)) from None
    except psycopg.Error as exc:
        click.echo(f"pgkeel doctor: cannot connect: {str(exc).strip()}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(ops.render_json(findings))
    else:
        header = f"pgkeel doctor: {_where(url)}"
        width = min(max(shutil.get_terminal_size((100, 24)).columns, 80), 160)
        click.echo(ops.render_text(findings, header, click.style, width))
    sys.exit(ops.exit_code(findings, "fail" if fail_on == "fail" else "warn"))


def _where(url: str | None) -> str:
    """user@host:port/dbname of the URL (never its password)."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(url or "")
    host = params.get("host") or "(libpq default host)"
    user = f"{params['user']}@" if params.get("user") else ""
    port = f":{params['port']}" if params.get("port") else ""
    return f"{user}{host}{port}/{params.get('dbname') or ''}"
