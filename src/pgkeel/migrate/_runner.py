"""Applying migrations: the advisory lock on one dedicated session, the history table, each
migration in its own transaction (or statement by statement when it cannot run in one), the
lock_timeout retry loop, status, baseline and resolve.

Sync only, over one psycopg connection: migrating is deploy-time work, and the lock must live
on a single session for the whole run (a pooled connection would hand it back). From asyncio
(a FastAPI lifespan) run it in a thread: ``await asyncio.to_thread(pgkeel.migrate.up, url)``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import random
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from pgkeel import types
from pgkeel.config import Config, direct_conninfo, duration, scrub
from pgkeel.config import resolve as resolve_config
from pgkeel.errors import ConfigError, MigrationError, MigrationLintError
from pgkeel.migrate._files import Migration, discover

__all__ = ["Applied", "Entry", "baseline", "lint", "resolve", "status", "up"]

logger = logging.getLogger("pgkeel.migrate")

DEFAULT_TABLE = "pgkeel_migrations"
ENV_URL = "PGKEEL_MIGRATE_URL"
ENV_DIR = "PGKEEL_MIGRATIONS"

State = Literal["applied", "baseline", "pending", "changed", "missing", "failed"]
Echo = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Applied:
    """A migration that ``up`` applied (or, with ``dry_run``, would apply: duration 0)."""

    version: int
    name: str
    transactional: bool
    duration: float


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of ``status``: a migration file, a history row, or both."""

    version: int
    name: str
    state: State
    applied_at: datetime | None = None
    duration: float | None = None
    applied_by: str | None = None
    #: For ``failed``: what ran and what stopped it; for ``changed``: the two checksums.
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "name": self.name,
            "state": self.state,
            "applied_at": self.applied_at.isoformat() if self.applied_at else None,
            "duration": self.duration,
            "applied_by": self.applied_by,
            "detail": self.detail,
        }


# --- connection, lock, history table --------------------------------------------------------


def _conninfo(db_or_url: Any) -> str:
    config = getattr(db_or_url, "config", None)
    if isinstance(config, Config):
        # The migration lock is a session advisory lock: behind a pooler, direct_url= or an error.
        return direct_conninfo(config, "pgkeel.migrate (its session advisory lock)")
    if config is not None and isinstance(getattr(config, "conninfo", None), str):
        return str(config.conninfo)
    if db_or_url is not None and not isinstance(db_or_url, str):
        raise ConfigError(
            f"migrate needs a URL or a pgkeel Database, got {type(db_or_url).__name__}"
        )
    url = db_or_url if db_or_url is not None else os.environ.get(ENV_URL)
    return resolve_config(url).conninfo


def _table_parts(table: str) -> tuple[str, ...]:
    parts = tuple(table.split("."))
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise ConfigError(f"table={table!r}: use 'name' or 'schema.name'")
    return parts


def _lock_key(table: str) -> int:
    """The advisory lock key (a signed 64-bit number) for one history table."""
    digest = hashlib.sha256(f"pgkeel.migrate:{table}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def _session(db_or_url: Any) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    conninfo = _conninfo(db_or_url)
    try:
        conn = psycopg.connect(conninfo, autocommit=True, row_factory=dict_row)
    except psycopg.OperationalError as exc:
        raise psycopg.OperationalError(scrub(str(exc), conninfo)) from None
    try:
        types.configure(conn)
        if conn.info.server_version >= 140000:
            # A runner killed mid-statement: the server notices the closed socket within a
            # second and rolls back (releasing the lock) instead of finishing a long statement.
            conn.execute("SET client_connection_check_interval = '1s'")
        yield conn
    finally:
        conn.close()


def _applied_by(conn: psycopg.Connection[Any]) -> str:
    app = conn.info.parameter_status("application_name") or "pgkeel"
    return f"{app} on {socket.gethostname()} (pid {os.getpid()})"


def _acquire(conn: psycopg.Connection[Any], key: int, lock_wait: float, echo: Echo) -> None:
    """Take the session advisory lock, waiting at most ``lock_wait`` seconds, saying who holds
    it while waiting."""
    deadline = time.monotonic() + lock_wait
    delay = 0.05
    announced = False
    while True:
        row = conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", [key]).fetchone()
        if row and row["ok"]:
            return
        holder = conn.execute(
            """
            SELECT a.pid, a.application_name, host(a.client_addr) AS addr, a.backend_start
            FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND l.classid = %s AND l.objid = %s AND l.objsubid = 1
            """,
            [(key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF],
        ).fetchone()
        who = (
            f"pid {holder['pid']} ({holder['application_name'] or 'no application_name'}"
            f"{', ' + holder['addr'] if holder['addr'] else ''})"
            if holder
            else "another session"
        )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise MigrationError(
                f"another migration runner, {who}, held the migration lock for longer than "
                f"lock_wait={lock_wait:g}s; let it finish (or check it in pg_stat_activity), "
                "then run again, or raise --lock-wait"
            )
        if not announced:
            echo(f"waiting for the migration lock held by {who} (up to {lock_wait:g}s)")
            announced = True
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 1.0)


def _ident(table: str) -> sql.Identifier:
    return sql.Identifier(*_table_parts(table))


def _create_history(conn: psycopg.Connection[Any], table: str) -> None:
    parts = _table_parts(table)
    if len(parts) == 2:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(parts[0])))
    conn.execute(
        sql.SQL(
            """
            CREATE TABLE IF NOT EXISTS {} (
                version bigint PRIMARY KEY,
                name text NOT NULL,
                checksum text NOT NULL,
                state text NOT NULL CHECK (state IN ('applied', 'baseline', 'failed')),
                transactional boolean NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now(),
                duration_ms double precision,
                applied_by text NOT NULL,
                statements_done integer NOT NULL DEFAULT 0,
                statements_total integer NOT NULL DEFAULT 0,
                error text
            )
            """
        ).format(_ident(table))
    )


def _history(conn: psycopg.Connection[Any], table: str) -> dict[int, dict[str, Any]]:
    exists = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL AS ok", [str(_ident(table).as_string(conn))]
    ).fetchone()
    if not exists or not exists["ok"]:
        return {}
    rows = conn.execute(sql.SQL("SELECT * FROM {} ORDER BY version").format(_ident(table)))
    return {int(r["version"]): r for r in rows.fetchall()}


# --- planning --------------------------------------------------------------------------------


def _entries(files: Sequence[Migration], history: dict[int, dict[str, Any]]) -> list[Entry]:
    by_version = {m.version: m for m in files}
    entries: list[Entry] = []
    for version in sorted(set(by_version) | set(history)):
        m, row = by_version.get(version), history.get(version)
        if row is None:
            assert m is not None
            entries.append(Entry(version, m.name, "pending"))
            continue
        common = {
            "applied_at": row["applied_at"],
            "duration": None if row["duration_ms"] is None else row["duration_ms"] / 1000,
            "applied_by": row["applied_by"],
        }
        state: State = row["state"]
        detail = None
        if state == "failed":
            detail = (
                f"stopped after {row['statements_done']} of {row['statements_total']} "
                f"statements: {row['error'] or 'no error recorded'}"
            )
        elif m is None:
            state, detail = "missing", "applied, but its file is gone"
        elif m.checksum != row["checksum"]:
            state = "changed"
            detail = f"file edited after it was applied (checksum {row['checksum'][:12]} -> " + (
                f"{m.checksum[:12]})"
            )
        entries.append(Entry(version, row["name"], state, detail=detail, **common))
    return entries


def _failed_message(entry: Entry, directory: Path) -> str:
    return (
        f"migration {entry.version} ({entry.name}) failed half way and blocks every later "
        f"migration: it {entry.detail} (by {entry.applied_by}). It ran outside a transaction, "
        "so what it did was not rolled back: check the schema, finish or undo its statements by "
        f"hand, then run `pgkeel migrate resolve {entry.version} --applied` (it is done) or "
        f"`--rolled-back` (it will run again). Files: {directory}"
    )


def _check(
    entries: Sequence[Entry], directory: Path, *, allow_changed: bool, allow_missing: bool
) -> None:
    for entry in entries:
        if entry.state == "failed":
            raise MigrationError(_failed_message(entry, directory))
        if entry.state == "changed" and not allow_changed:
            raise MigrationError(
                f"migration {entry.version} ({entry.name}) was {entry.detail}; restore the "
                "applied version and put the change in a new migration, or pass "
                "--allow-changed (allow_changed=True) if the edit is harmless (a comment)"
            )
        if entry.state == "missing" and not allow_missing:
            raise MigrationError(
                f"migration {entry.version} ({entry.name}) was applied, but its file is "
                f"missing from {directory}; restore it, or pass --allow-missing "
                "(allow_missing=True)"
            )
    done = [e.version for e in entries if e.state not in ("pending",)]
    for entry in entries:
        if entry.state == "pending" and done and entry.version < max(done):
            raise MigrationError(
                f"migration {entry.version} ({entry.name}) is pending but {max(done)} is "
                "already applied; renumber it after the last applied migration"
            )


def _parse_all(files: Sequence[Migration]) -> dict[int, Any]:
    """Every SQL file split and checked before anything connects or runs."""
    from pgkeel.migrate import _split  # pglast: imported only when migrating

    parsed = {m.version: _split.parse(m.text, m.path) for m in files if m.kind == "sql"}
    for p in parsed.values():
        _split.check_runnable(p)
    return parsed


def _lint_pending(
    parsed: dict[int, Any], pending: set[int], echo: Echo, *, lock_timeout_set: bool = True
) -> None:
    from pgkeel.migrate import _lint

    ordered = [parsed[v] for v in sorted(parsed)]
    pending_paths = {str(parsed[v].path) for v in pending if v in parsed}
    findings = [
        f for f in _lint.lint(ordered, lock_timeout_set=lock_timeout_set) if f.path in pending_paths
    ]
    for finding in findings:
        if finding.severity == "warning":
            echo(str(finding))
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        listing = "\n".join(str(f) for f in errors)
        raise MigrationLintError(
            f"the linter found {len(errors)} error(s) in pending migrations; nothing was run:\n"
            f"{listing}\nFix them, or silence one statement with `-- pgkeel: allow RULE "
            "reason` after checking it is safe (or --no-lint)",
            findings=list(errors),
        )


# --- applying --------------------------------------------------------------------------------


def _backoff(attempt: int) -> float:
    # Capped exponential with full jitter: runners that collide on a busy table spread out.
    return random.uniform(0.5, 1.0) * min(30.0, 0.5 * 2.0 ** min(attempt, 16))  # noqa: S311 - jitter


def _settings(lock_timeout: float, statement_timeout: float, local: bool) -> sql.Composed:
    scope = sql.SQL("SET LOCAL " if local else "SET ")
    return sql.Composed(
        [
            scope,
            sql.SQL("lock_timeout = {}; ").format(sql.Literal(duration(lock_timeout))),
            scope,
            sql.SQL("statement_timeout = {}").format(sql.Literal(duration(statement_timeout))),
        ]
    )


def _server_error_note(exc: BaseException, where: str, what: str) -> None:
    exc.add_note(f"pgkeel migrate: {where}: {what}")


class _Runner:
    def __init__(
        self,
        conn: psycopg.Connection[dict[str, Any]],
        table: str,
        echo: Echo,
        *,
        lock_timeout: float,
        lock_retries: int,
        statement_timeout: float,
    ) -> None:
        self.conn = conn
        self.table = table
        self.echo = echo
        self.lock_timeout = lock_timeout
        self.lock_retries = lock_retries
        self.statement_timeout = statement_timeout
        self.applied_by = _applied_by(conn)

    def _retry(
        self, attempt: int, label: str, line: int, exc: Exception, *, rolled_back: bool = True
    ) -> None:
        if attempt >= self.lock_retries:
            outcome = "rolled back, nothing was recorded" if rolled_back else "not run"
            _server_error_note(
                exc,
                label,
                f"gave up after {attempt + 1} tries, each waiting lock_timeout="
                f"{self.lock_timeout:g}s for a lock (line {line}; {outcome}). Find the session "
                "holding it (pg_locks / pg_stat_activity), or raise --lock-retries / "
                "--lock-timeout",
            )
            raise exc
        delay = _backoff(attempt)
        self.echo(
            f"{label}: waited lock_timeout={self.lock_timeout:g}s for a lock at line {line}; "
            f"retry {attempt + 1}/{self.lock_retries} in {delay:.1f}s"
        )
        time.sleep(delay)

    def _record(self, m: Migration, started: float | None, *, total: int, done: int = 0) -> None:
        """Insert the history row: ``applied`` with its duration (``started`` given, inside
        the migration's transaction), or ``failed`` until proven otherwise (outside one)."""
        applied = started is not None
        self.conn.execute(
            sql.SQL(
                "INSERT INTO {} (version, name, checksum, state, transactional, applied_by, "
                "statements_total, statements_done, duration_ms, error) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            ).format(_ident(self.table)),
            [
                m.version,
                m.name,
                m.checksum,
                "applied" if applied else "failed",
                applied,
                self.applied_by,
                total,
                done,
                (time.perf_counter() - started) * 1000 if started is not None else None,
                None if applied else "interrupted: the runner stopped before the migration ended",
            ],
        )

    def _finish(self, m: Migration, started: float, **columns: Any) -> None:
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = %s").format(sql.Identifier(k)) for k in columns
        )
        self.conn.execute(
            sql.SQL("UPDATE {} SET {}, duration_ms = %s WHERE version = %s").format(
                _ident(self.table), assignments
            ),
            [*columns.values(), (time.perf_counter() - started) * 1000, m.version],
        )

    def transactional(self, m: Migration, statements: Sequence[Any]) -> float:
        """Run a migration as one transaction, again (after a backoff) when lock_timeout fires."""
        attempt = 0
        while True:
            started = time.perf_counter()
            line = 0
            try:
                with self.conn.transaction():
                    self.conn.execute(
                        _settings(self.lock_timeout, self.statement_timeout, local=True)
                    )
                    if m.kind == "python":
                        line = 1
                        _run_python(m, self.conn)
                    for stmt in statements:
                        line = stmt.line
                        self.conn.execute(stmt.sql.encode())
                    line = 0
                    self._record(m, started, total=len(statements), done=len(statements))
                return time.perf_counter() - started
            except psycopg.errors.LockNotAvailable as exc:
                self._retry(attempt, m.path.name, line, exc)
                attempt += 1
            except psycopg.Error as exc:
                where = f"{m.path}:{line}" if line else str(m.path)
                _server_error_note(exc, where, "the migration was rolled back; nothing recorded")
                raise

    def outside_transaction(self, m: Migration, statements: Sequence[Any]) -> float:
        """Run a migration statement by statement, recording progress after each, so that a
        stop half way leaves a ``failed`` row saying how far it got."""
        started = time.perf_counter()
        self._record(m, None, total=len(statements))
        self.conn.execute(_settings(self.lock_timeout, self.statement_timeout, local=False))
        try:
            for done, stmt in enumerate(statements):
                attempt = 0
                while True:
                    try:
                        self.conn.execute(stmt.sql.encode())
                        break
                    except psycopg.errors.LockNotAvailable as exc:
                        try:
                            self._retry(attempt, m.path.name, stmt.line, exc, rolled_back=False)
                        except psycopg.Error:
                            self._failed(m, started, done, stmt, exc)
                            raise
                        attempt += 1
                    except psycopg.Error as exc:
                        self._failed(m, started, done, stmt, exc)
                        raise
                self._finish(m, started, statements_done=done + 1)
            self._finish(m, started, state="applied", error=None)
        finally:
            if not self.conn.closed and not self.conn.broken:
                self.conn.execute("RESET lock_timeout; RESET statement_timeout")
        return time.perf_counter() - started

    def _failed(
        self, m: Migration, started: float, done: int, stmt: Any, exc: psycopg.Error
    ) -> None:
        message = (exc.diag.message_primary or str(exc)).strip()
        if not self.conn.closed and not self.conn.broken:
            self._finish(m, started, error=f"line {stmt.line}: {message}")
        _server_error_note(
            exc,
            f"{m.path}:{stmt.line}",
            f"this migration runs outside a transaction and stopped after {done} of its "
            "statements; it is recorded as failed and blocks later migrations until a person "
            f"checks the schema and runs `pgkeel migrate resolve {m.version} --applied` or "
            "`--rolled-back`",
        )


def _run_python(m: Migration, conn: psycopg.Connection[Any]) -> None:
    from pgkeel.transaction import Transaction

    spec = importlib.util.spec_from_file_location(f"pgkeel_migration_{m.version}", m.path)
    if spec is None or spec.loader is None:
        raise MigrationError(f"{m.path}: cannot load this Python migration")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    up = getattr(module, "up", None)
    if not callable(up):
        raise MigrationError(f"{m.path}: a Python migration must define `def up(tx): ...`")
    tx = Transaction(conn)
    try:
        up(tx)
    finally:
        tx._end()


# --- public functions ------------------------------------------------------------------------


def _directory(directory: str | Path | None) -> Path:
    return Path(directory if directory is not None else os.environ.get(ENV_DIR, "migrations"))


def _log(message: str) -> None:
    logger.info("%s", message)


def up(
    db_or_url: Any = None,
    directory: str | Path | None = None,
    *,
    to: int | None = None,
    dry_run: bool = False,
    lint: bool = True,
    lock_timeout: float = 5.0,
    lock_retries: int = 10,
    lock_wait: float = 300.0,
    statement_timeout: float = 0.0,
    allow_changed: bool = False,
    allow_missing: bool = False,
    table: str = DEFAULT_TABLE,
    echo: Echo | None = None,
) -> list[Applied]:
    """Apply pending migrations from ``directory`` in version order; return what was applied.

    ``db_or_url``: a URL (default ``$PGKEEL_MIGRATE_URL``, then ``$DATABASE_URL``) or a
    :class:`pgkeel.Database` (its configuration is used for one dedicated connection). Behind
    PgBouncer in transaction mode, give a direct URL: the advisory lock lives on one session.
    ``directory``: default ``$PGKEEL_MIGRATIONS``, then ``./migrations``.

    Any number of runners may start at once: one applies, the others wait for the advisory lock
    (up to ``lock_wait`` seconds) and find nothing left to do. Each migration runs in its own
    transaction with ``lock_timeout`` (seconds) and ``statement_timeout`` (0: no limit); when
    the lock timeout fires it is rolled back and run again after a backoff, ``lock_retries``
    times at most. Statements that cannot run in a transaction (``CREATE INDEX CONCURRENTLY``)
    run one by one; one that fails leaves the migration ``failed`` (see :func:`resolve`).
    ``echo`` receives one line per event (default: the ``pgkeel.migrate`` logger).
    """
    say = echo or _log
    root = _directory(directory)
    files = discover(root)
    if to is not None and not any(m.version == to for m in files):
        raise MigrationError(f"--to {to}: no migration with that version in {root}")
    parsed = _parse_all(files)
    with _session(db_or_url) as conn:
        key = _lock_key(table)
        if not dry_run:
            _acquire(conn, key, lock_wait, say)
            _create_history(conn, table)
        entries = _entries(files, _history(conn, table))
        _check(entries, root, allow_changed=allow_changed, allow_missing=allow_missing)
        pending = [
            e.version for e in entries if e.state == "pending" and (to is None or e.version <= to)
        ]
        if lint:
            _lint_pending(parsed, set(pending), say)
        by_version = {m.version: m for m in files}
        if dry_run:
            for v in pending:
                say(f"would apply {by_version[v].path.name}")
            return [
                Applied(v, by_version[v].name, v not in parsed or parsed[v].transactional, 0.0)
                for v in pending
            ]
        runner = _Runner(
            conn,
            table,
            say,
            lock_timeout=lock_timeout,
            lock_retries=lock_retries,
            statement_timeout=statement_timeout,
        )
        applied: list[Applied] = []
        for v in pending:
            m = by_version[v]
            p = parsed.get(v)
            statements = p.statements if p is not None else ()
            if p is None or p.transactional:
                took = runner.transactional(m, statements)
            else:
                took = runner.outside_transaction(m, statements)
            transactional = p is None or p.transactional
            say(
                f"applied {m.path.name} in {took * 1000:.0f} ms"
                + ("" if transactional else " (outside a transaction)")
            )
            applied.append(Applied(v, m.name, transactional, took))
        if not applied:
            say("nothing to apply: the database is up to date")
        return applied


def status(
    db_or_url: Any = None, directory: str | Path | None = None, *, table: str = DEFAULT_TABLE
) -> list[Entry]:
    """Every migration, file or history row: applied, baseline, pending, changed, missing or
    failed, with when, how long and by whom. Reads only (no lock, no table created)."""
    root = _directory(directory)
    files = discover(root)
    with _session(db_or_url) as conn:
        return _entries(files, _history(conn, table))


def baseline(
    db_or_url: Any = None,
    directory: str | Path | None = None,
    version: int = 0,
    *,
    table: str = DEFAULT_TABLE,
    lock_wait: float = 300.0,
    echo: Echo | None = None,
) -> list[int]:
    """Adopt an existing database: record migrations up to ``version`` as applied (state
    ``baseline``) without running them. Refused when the history is not empty."""
    say = echo or _log
    root = _directory(directory)
    files = [m for m in discover(root) if m.version <= version]
    if not files or files[-1].version != version:
        raise MigrationError(f"baseline {version}: no migration with that version in {root}")
    with _session(db_or_url) as conn:
        _acquire(conn, _lock_key(table), lock_wait, say)
        _create_history(conn, table)
        if _history(conn, table):
            raise MigrationError(
                f"baseline {version}: {table} already has migrations recorded; baseline only "
                "adopts a database that pgkeel has never migrated"
            )
        applied_by = _applied_by(conn)
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                sql.SQL(
                    "INSERT INTO {} (version, name, checksum, state, transactional, "
                    "applied_by) VALUES (%s, %s, %s, 'baseline', true, %s)"
                ).format(_ident(table)),
                [[m.version, m.name, m.checksum, applied_by] for m in files],
            )
        say(f"baseline: {len(files)} migration(s) up to {version} recorded as applied")
        return [m.version for m in files]


def resolve(
    db_or_url: Any = None,
    version: int = 0,
    *,
    applied: bool,
    table: str = DEFAULT_TABLE,
    lock_wait: float = 300.0,
    echo: Echo | None = None,
) -> None:
    """After a person checked the schema: mark a ``failed`` migration as applied
    (``applied=True``), or forget it so the next ``up`` runs it again (``applied=False``)."""
    say = echo or _log
    with _session(db_or_url) as conn:
        _acquire(conn, _lock_key(table), lock_wait, say)
        row = _history(conn, table).get(version)
        if row is None or row["state"] != "failed":
            state = "not recorded" if row is None else row["state"]
            raise MigrationError(
                f"resolve {version}: only a failed migration can be resolved; this one is {state}"
            )
        if applied:
            conn.execute(
                sql.SQL(
                    "UPDATE {} SET state = 'applied', error = NULL, applied_at = now() "
                    "WHERE version = %s"
                ).format(_ident(table)),
                [version],
            )
            say(f"migration {version} marked as applied")
        else:
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE version = %s").format(_ident(table)), [version]
            )
            say(f"migration {version} forgotten: the next `up` runs it again")


def lint(
    paths: str | Path | Sequence[str | Path] | None = None, *, lock_timeout_set: bool = True
) -> list[Any]:
    """Lint migration files (a directory, or files) and return the findings
    (:class:`pgkeel.migrate.Finding`); unparseable SQL raises :class:`MigrationError`."""
    from pgkeel.migrate import _lint, _split

    if paths is None or isinstance(paths, str | Path):
        root = _directory(paths)
        if root.is_dir():
            migrations = [m for m in discover(root) if m.kind == "sql"]
            parsed = [_split.parse(m.text, m.path) for m in migrations]
            return list(_lint.lint(parsed, lock_timeout_set=lock_timeout_set))
        chosen = [root]
    else:
        chosen = [Path(p) for p in paths]
    from pgkeel.migrate._files import normalise

    parsed = []
    for path in chosen:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise MigrationError(f"{path}: cannot read: {exc.strerror}") from None
        parsed.append(_split.parse(normalise(raw, path), path))
    return list(_lint.lint(parsed, lock_timeout_set=lock_timeout_set))
