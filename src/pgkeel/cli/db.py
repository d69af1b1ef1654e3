"""``pgkeel db start|stop|status|url|psql``: a thin layer over :mod:`pgkeel.embedded`.

``pgkeel db ...`` manages a persistent embedded server for development (``.pgkeel/data`` in the
current directory or a parent, unless ``--data-dir`` / ``$PGKEEL_DATA_DIR`` says otherwise), so
that ``psql "$(pgkeel db url)"`` works on any machine and from any subdirectory.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import click

from pgkeel import embedded
from pgkeel.errors import Error

__all__ = ["db"]

_data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="PGKEEL_DATA_DIR",
    show_envvar=True,
    help="Cluster directory (persistent; reused on the next start). Default: .pgkeel/data in "
    "the current directory or the nearest parent that has one (as git finds .git), else "
    "./.pgkeel/data.",
)


@click.group()
def db() -> None:
    """A local PostgreSQL server for development, no Docker needed."""


def _resolve(data_dir: Path | None) -> Path:
    return data_dir.absolute() if data_dir is not None else embedded.dev_data_dir()


def _running_or_exit(data_dir: Path) -> embedded.EmbeddedServer:
    server = embedded.running(data_dir)
    if server is None:
        raise click.ClickException(
            f"no server is running on {data_dir}; start one with `pgkeel db start`"
        )
    return server


def _mismatch(server: embedded.EmbeddedServer, port: int | None, ssl: bool) -> str | None:
    """What in the requested options the running server does not match, or None."""
    wrong = []
    if port is not None and port != server.port:
        wrong.append(f"it listens on port {server.port}, not {port}")
    if ssl and not server.ssl:
        wrong.append("it serves no TLS")
    return "; ".join(wrong) or None


@db.command()
@_data_dir_option
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="TCP port, kept across restarts (default: the cluster's port, a free one when new).",
)
@click.option("--ssl", is_flag=True, help="Serve TLS with a generated CA (verify-full).")
@click.option(
    "--standby-of",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Make a new cluster a streaming standby (read-only replica) of the server running on "
    "this data directory; give the standby its own --data-dir.",
)
def start(data_dir: Path | None, port: int | None, ssl: bool, standby_of: Path | None) -> None:
    """Start (or reuse) the cluster and print its URL."""
    where = _resolve(data_dir)
    if standby_of is not None and standby_of.absolute() == where:
        raise click.ClickException(
            f"--standby-of {standby_of} is the cluster being started; give the standby its own "
            "--data-dir"
        )
    server = embedded.running(where)
    if server is None:
        try:
            server = embedded.start(where, port=port, ssl=ssl, standby_of=standby_of)
        except Error as exc:
            raise click.ClickException(str(exc)) from exc
        server.detach()
        click.echo(f"started PostgreSQL {server.version} on port {server.port}", err=True)
    elif problem := _mismatch(server, port, ssl):
        options = " ".join(
            [*([f"--port {port}"] if port is not None else []), *(["--ssl"] if ssl else [])]
        )
        raise click.ClickException(
            f"the server running on {where} does not match the options given: {problem}. "
            f"Restart it with them: pgkeel db stop && pgkeel db start {options}"
        )
    else:
        click.echo(f"already running on port {server.port}", err=True)
    click.echo(server.url)


@db.command()
@_data_dir_option
def stop(data_dir: Path | None) -> None:
    """Stop the cluster (its data stays); exit 0 when it is not running."""
    where = _resolve(data_dir)
    server = embedded.running(where)
    if server is None:
        click.echo(f"not running ({where})", err=True)
        return
    server.stop()
    click.echo("stopped", err=True)


@db.command()
@_data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def status(data_dir: Path | None, as_json: bool) -> None:
    """Say whether the cluster runs; exit 1 when it does not."""
    where = _resolve(data_dir)
    server = embedded.running(where)
    info = {
        "running": server is not None,
        "data_dir": str(where),
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
def url(data_dir: Path | None) -> None:
    """Print the cluster's URL (it holds the password: treat it as a secret)."""
    click.echo(_running_or_exit(_resolve(data_dir)).url)


@db.command(context_settings={"ignore_unknown_options": True})
@_data_dir_option
@click.argument("psql_args", nargs=-1, type=click.UNPROCESSED)
def psql(data_dir: Path | None, psql_args: tuple[str, ...]) -> None:
    """Open psql on the cluster; extra arguments go to psql."""
    server = _running_or_exit(_resolve(data_dir))
    binary = server.bindir / "psql"
    found = str(binary) if os.access(binary, os.X_OK) else shutil.which("psql")
    if not found:
        raise click.ClickException("psql not found; install the PostgreSQL client")
    # The password goes in the environment, readable only by us and root, not in the argv that
    # every user sees in `ps`.
    env = {**os.environ, "PGPASSWORD": server.password}
    target = server.url_for("postgres", with_password=False)
    os.execve(found, [found, target, *psql_args], env)  # noqa: S606 - replacing ourselves with psql
