"""``pgkeel.ops.doctor()``: connect as the application would and run the checks, each in its own
READ ONLY transaction with a short statement_timeout and lock_timeout, so that it is safe on a
production primary. A check that lacks a privilege, times out or meets an unexpected catalog says
``skipped`` with why, and the others still run."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from pgkeel._database_base import first_line, scrub_error
from pgkeel.config import Config, resolve
from pgkeel.ops._checks import CHECKS
from pgkeel.ops._context import Context, NeedsPrivilege
from pgkeel.ops._model import GROUPS, MONITOR_GRANT, Check, DoctorOptions, Finding

__all__ = ["APPLICATION_NAME", "doctor", "select_checks"]

logger = logging.getLogger("pgkeel.ops")

#: doctor's own sessions, told apart from the application's in pg_stat_activity.
APPLICATION_NAME = "pgkeel doctor"


def select_checks(select: Iterable[str] = (), ignore: Iterable[str] = ()) -> list[Check]:
    """The checks to run, in report order: ``select`` (names or groups; all when empty) minus
    ``ignore``. An unknown name raises ``ValueError`` listing the known ones."""
    # A lone name is one check, not its letters.
    select = [select] if isinstance(select, str) else list(select)
    ignore = [ignore] if isinstance(ignore, str) else list(ignore)
    for name in (*select, *ignore):
        if name not in CHECKS and name not in GROUPS:
            raise ValueError(
                f"unknown check {name!r}; the checks are {', '.join(CHECKS)} "
                f"and the groups {', '.join(GROUPS)}"
            )
    chosen = [
        c
        for c in CHECKS.values()
        if (not select or c.name in select or c.group in select)
        and c.name not in ignore and c.group not in ignore
    ]  # fmt: skip
    return sorted(chosen, key=lambda c: GROUPS.index(c.group))


def doctor(
    url: str | None = None,
    *,
    options: DoctorOptions | None = None,
    select: Iterable[str] = (),
    ignore: Iterable[str] = (),
    connection: psycopg.Connection[Any] | None = None,
    environ: Mapping[str, str] | None = None,
    **config_options: Any,
) -> list[Finding]:
    """Audit a deployment: the client configuration that ``Database(url, **config_options)``
    would resolve, and the server it connects to. Returns one :class:`Finding` per check.

    ``connection``: run on this open connection instead (its transaction, if one is open, is
    kept: each check runs in a savepoint). Raises ``psycopg.OperationalError`` (secrets scrubbed)
    when the server cannot be reached.
    """
    opts = options or DoctorOptions()
    checks = select_checks(select, ignore)
    config = resolve(url, config_options, environ)
    own = connection is None
    conn = _connect(config) if connection is None else connection
    try:
        ctx = Context(conn=conn, config=config, options=opts, params=_params(conn))
        # Before any SET LOCAL of ours: the settings as a fresh session of this role gets them.
        with conn.transaction(force_rollback=True):
            conn.execute("SET TRANSACTION READ ONLY", prepare=False)
            ctx.load()
        findings = []
        for check in checks:
            findings.append(_run(ctx, check))
        return findings
    finally:
        if own:
            conn.close()


def _connect(config: Config) -> psycopg.Connection[Any]:
    # Without pgkeel's session settings (plain_conninfo): the timeouts check must see what a
    # fresh session gets from the server, the database and the role, as psql would.
    conninfo = make_conninfo(config.plain_conninfo, application_name=APPLICATION_NAME)
    try:
        return psycopg.connect(conninfo, autocommit=True, **dict(config.connect_kwargs))
    except psycopg.Error as exc:
        scrub_error(exc, config.scrub)
        raise


def _params(conn: psycopg.Connection[Any]) -> dict[str, str]:
    params = dict(conn.info.get_parameters())
    params.setdefault("host", conn.info.host)
    if conn.info.hostaddr:
        params.setdefault("hostaddr", conn.info.hostaddr)
    params.pop("password", None)
    return params


def _in_transaction(ctx: Context, fn: Any) -> Any:
    """Run ``fn`` in a READ ONLY transaction (a savepoint inside the caller's), bounded by a
    short statement_timeout and lock_timeout, and roll it back: nothing of it stays, not even
    the SET LOCALs in a caller's transaction."""
    with ctx.conn.transaction(force_rollback=True):
        ctx.conn.execute("SET TRANSACTION READ ONLY", prepare=False)
        ms = str(int(ctx.options.query_timeout * 1000))
        ctx.conn.execute(
            "SELECT set_config('statement_timeout', %s, true), "
            "set_config('lock_timeout', %s, true)",
            [ms, str(min(int(ms), 1000))],
            prepare=False,
        )
        return fn()


def _run(ctx: Context, check: Check) -> Finding:
    started = time.perf_counter()
    try:
        finding: Finding = _in_transaction(ctx, lambda: check.run(ctx))
    except NeedsPrivilege as exc:
        finding = Finding(check.name, "skipped", str(exc))
    except psycopg.errors.InsufficientPrivilege as exc:
        finding = Finding(
            check.name, "skipped", f"{first_line(exc)}; {MONITOR_GRANT.format(role=ctx.role)}"
        )
    except psycopg.errors.QueryCanceled:
        finding = Finding(check.name, "skipped", f"timed out after {ctx.options.query_timeout:g} s")
    except psycopg.errors.LockNotAvailable:
        finding = Finding(check.name, "skipped", "a catalog it reads is locked by DDL")
    except psycopg.OperationalError:
        raise
    except psycopg.Error as exc:
        logger.warning("doctor check %s failed: %s", check.name, first_line(exc))
        finding = Finding(check.name, "skipped", f"the check failed: {first_line(exc)}")
    return dataclasses.replace(finding, group=check.group, elapsed=time.perf_counter() - started)
