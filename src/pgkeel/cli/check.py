"""``pgkeel check [PATHS]``: the checker's command; exit 0 clean, 1 findings, 2 usage error."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pgkeel.check._config import find_pyproject, load_config
from pgkeel.check._engine import check_paths
from pgkeel.check._model import RULES
from pgkeel.check._report import FORMATS, render
from pgkeel.errors import ConfigError

__all__ = ["check"]


class _Usage(click.UsageError):
    exit_code = 2


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
    help="text (path:line:col: CODE message), json, or sarif (GitHub code scanning).",
)  # fmt: skip
@click.option("--select", multiple=True, help="Only these codes (PGK001,PGK004 or a prefix).")
@click.option("--ignore", multiple=True, help="Skip these codes.")
@click.option("--exclude", multiple=True, help="Skip paths matching this glob (repeatable).")
@click.option(
    "--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="pyproject.toml to read [tool.pgkeel.check] from (default: the nearest one).",
)  # fmt: skip
@click.option("--jobs", type=click.IntRange(min=1), default=None, help="Worker processes.")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when something is found.")
@click.option("--list-rules", is_flag=True, help="Print the rules and exit.")
def check(
    paths: tuple[Path, ...],
    fmt: str,
    select: tuple[str, ...],
    ignore: tuple[str, ...],
    exclude: tuple[str, ...],
    config_file: Path | None,
    jobs: int | None,
    exit_zero: bool,
    list_rules: bool,
) -> None:
    """Check Python code for wrong PostgreSQL patterns (PGK001..PGK008).

    Exit status: 0 nothing found, 1 something found, 2 usage error.
    """
    from pgkeel import __version__

    if list_rules:
        for rule in RULES.values():
            click.echo(f"{rule.code}  {rule.severity:<7}  {rule.name}: {rule.summary}")
        return
    roots = list(paths) or [Path(".")]
    for root in roots:
        if not root.exists():
            raise _Usage(f"{root}: no such file or directory")
    try:
        config = load_config(config_file or find_pyproject(roots[0]))
        config = config.with_options(select, ignore, exclude)
        report = check_paths(roots, config, jobs=jobs)
    except ConfigError as exc:
        raise _Usage(str(exc)) from exc
    click.echo(render(report.findings, fmt, report.files, __version__))
    sys.exit(1 if report.findings and not exit_zero else 0)
