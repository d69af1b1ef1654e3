"""The ``pgkeel`` command: a thin layer over the public API.

``pgkeel db ...`` manages a persistent embedded server for development (``./.pgkeel/data`` unless
``--data-dir`` says otherwise), so that ``psql "$(pgkeel db url)"`` works on any machine.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import click

from pgkeel import __version__, embedded
from pgkeel.cli_copy import copy as copy_group
from pgkeel.errors import Error

__all__ = ["main"]

DEFAULT_DATA_DIR = Path(".pgkeel") / "data"

_data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR,
    show_default=True,
    envvar="PGKEEL_DATA_DIR",
    help="Cluster directory (persistent; reused on the next start).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pgkeel")
def main() -> None:
    """pgkeel: PostgreSQL for Python, production-grade by default."""


@main.group()
def db() -> None:
    """A local PostgreSQL server for development, no Docker needed."""


def _running_or_exit(data_dir: Path) -> embedded.EmbeddedServer:
    server = embedded.running(data_dir)
    if server is None:
        raise click.ClickException(
            f"no server is running on {data_dir}; start one with `pgkeel db start`"
        )
    return server


@db.command()
@_data_dir_option
@click.option("--port", type=int, default=None, help="TCP port (default: a free one).")
@click.option("--ssl", is_flag=True, help="Serve TLS with a generated CA (verify-full).")
def start(data_dir: Path, port: int | None, ssl: bool) -> None:
    """Start (or reuse) the cluster and print its URL."""
    server = embedded.running(data_dir)
    if server is None:
        try:
            server = embedded.start(data_dir, port=port, ssl=ssl)
        except Error as exc:
            raise click.ClickException(str(exc)) from exc
        server.detach()
        click.echo(f"started PostgreSQL {server.version} on port {server.port}", err=True)
    else:
        click.echo(f"already running on port {server.port}", err=True)
    click.echo(server.url)


@db.command()
@_data_dir_option
def stop(data_dir: Path) -> None:
    """Stop the cluster (its data stays)."""
    _running_or_exit(data_dir).stop()
    click.echo("stopped", err=True)


@db.command()
@_data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def status(data_dir: Path, as_json: bool) -> None:
    """Say whether the cluster runs; exit 1 when it does not."""
    server = embedded.running(data_dir)
    info = {
        "running": server is not None,
        "data_dir": str(data_dir.absolute()),
        "port": server.port if server else None,
        "pid": server.pid if server else None,
        "version": server.version if server else None,
    }
    if as_json:
        click.echo(json.dumps(info))
    elif server:
        click.echo(f"running: PostgreSQL {server.version}, pid {server.pid}, port {server.port}")
    else:
        click.echo(f"not running ({info['data_dir']})")
    sys.exit(0 if server else 1)


@db.command()
@_data_dir_option
def url(data_dir: Path) -> None:
    """Print the cluster's URL (it holds the password: treat it as a secret)."""
    click.echo(_running_or_exit(data_dir).url)


@db.command(context_settings={"ignore_unknown_options": True})
@_data_dir_option
@click.argument("psql_args", nargs=-1, type=click.UNPROCESSED)
def psql(data_dir: Path, psql_args: tuple[str, ...]) -> None:
    """Open psql on the cluster; extra arguments go to psql."""
    server = _running_or_exit(data_dir)
    binary = server.bindir / "psql"
    found = str(binary) if os.access(binary, os.X_OK) else shutil.which("psql")
    if not found:
        raise click.ClickException("psql not found; install the PostgreSQL client")
    os.execv(found, [found, server.url, *psql_args])  # noqa: S606 - replacing ourselves with psql


main.add_command(copy_group)
main.add_command(__import__("pgkeel.check._cli", fromlist=["check"]).check)
