"""Options shared by the command groups that connect."""

from __future__ import annotations

import click

from pgkeel import embedded

__all__ = ["url_option"]

#: ``--url`` for a command that connects. Without it nor ``$DATABASE_URL``: the one rule of
#: :func:`pgkeel.embedded.dev_url` (libpq's PG* variables when one names a server, else the
#: running ``pgkeel db`` development cluster found from the current directory).
url_option = click.option(
    "--url",
    envvar="DATABASE_URL",
    default=None,
    callback=lambda ctx, param, value: value or embedded.dev_url(),
    help="Database URL (default: $DATABASE_URL, else libpq's PG* variables when one names a "
    "server, else the running `pgkeel db` development cluster).",
)
