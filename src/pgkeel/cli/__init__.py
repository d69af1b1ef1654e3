"""The ``pgkeel`` command: a thin layer over the public API, one module per command group.

``main`` is the click group behind the ``pgkeel`` console script and ``python -m pgkeel``; each
command group lives in its own module (``db`` for the development server, ``copy`` for CSV in and
out, ``migrate`` for migrations, ``check`` for the static checker, ``events`` for durable
topics) and is registered here. A group's module imports only what building its commands needs,
so ``pgkeel --help`` stays quick and never loads an optional extra (pglast is imported only when
a migration is split or linted).
"""

from __future__ import annotations

import click

from pgkeel import __version__
from pgkeel.cli.cdc import cdc as cdc_group
from pgkeel.cli.check import check as check_command
from pgkeel.cli.copy import copy as copy_group
from pgkeel.cli.db import db as db_group
from pgkeel.cli.doctor import doctor as doctor_command
from pgkeel.cli.events import events as events_group
from pgkeel.cli.migrate import migrate as migrate_group

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pgkeel")
def main() -> None:
    """pgkeel: PostgreSQL for Python, production-grade by default.

    Commands that connect (``pgkeel copy``...) use, when given no --url: $DATABASE_URL, else
    libpq's PG* variables when one names a server (PGHOST, PGPORT...), else the running
    development cluster of ``pgkeel db`` (found as --data-dir describes).
    """


main.add_command(db_group)
main.add_command(copy_group)
main.add_command(migrate_group)
main.add_command(check_command)
main.add_command(cdc_group)
main.add_command(doctor_command)
main.add_command(events_group)
