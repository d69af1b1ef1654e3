"""pgkeel's own errors.

Database errors are psycopg's SQLSTATE classes (``psycopg.errors.UniqueViolation``...), reused
as they are; this module holds only what is pgkeel's own, all under :class:`Error`, each
message naming the fix.
"""

from __future__ import annotations


class Error(Exception):
    """Base of every error raised by pgkeel itself (not by the server)."""


class ConfigError(Error, ValueError):
    """A URL, option or environment variable is malformed or unknown."""


class EmbeddedServerError(Error):
    """The embedded PostgreSQL server could not be set up, started or stopped."""


class ServerNotFoundError(EmbeddedServerError):
    """No PostgreSQL server binaries were found in any of the places pgkeel looks."""


class PoolerError(ConfigError):
    """A feature that needs a session of its own on the server (LISTEN, a session advisory
    lock, the replication protocol) was asked of a Database behind a transaction pooler without
    ``direct_url=``."""


class PoolSizeError(Error):
    """The pool's ``max_size`` does not fit in the connections the server has left."""


class CommitOutcomeUnknownError(Error):
    """The connection was lost during COMMIT: the transaction may or may not have committed.

    Never retried automatically; check the data (or use an idempotency key) before running the
    transaction again.
    """


class NotStorableError(Error, ValueError):
    """A Python value cannot be stored as it is (a naive datetime, NaN in JSON...)."""


class IdentifierError(Error, ValueError):
    """A table, schema or column name that PostgreSQL would not keep as given (empty, too long)."""


class RowError(Error, ValueError):
    """Rows given to a bulk operation do not fit the table (a missing key, a generated column)."""


class DuplicateKeyError(Error, ValueError):
    """Rows given to ``upsert()`` repeat a conflict key; ``.key`` is one of the repeated keys."""

    def __init__(self, message: str, *, key: object) -> None:
        super().__init__(message)
        self.key = key


class MigrationError(Error):
    """A migration cannot run as asked: a bad file name, a gap, an edited or missing applied
    file, a failed non-transactional migration, a migration lock held too long."""


class MigrationLintError(MigrationError):
    """The migration linter found errors; ``.findings`` lists them (file, line, rule)."""

    def __init__(self, message: str, *, findings: list[object]) -> None:
        super().__init__(message)
        self.findings = findings


class TableNotFoundError(Error, LookupError):
    """A bulk call names a table that does not exist (or is not on the ``search_path``)."""


class ColumnNotFoundError(RowError, LookupError):
    """Rows (dict keys) or ``columns=`` given to a bulk call name a column the table lacks."""


class BadValueError(NotStorableError, RowError):
    """A value given to ``copy_in()``/``upsert()`` cannot be stored in its column as it is.

    Raised before the COPY commits: the table is unchanged. ``.row`` is the row's 1-based
    position in the rows given, ``.column`` the column's name, ``.column_type`` its SQL type and
    ``.value_type`` the Python type of the value (None when it is no longer known).
    """

    def __init__(
        self,
        message: str,
        *,
        row: int | None,
        column: str | None,
        column_type: str | None,
        value_type: str | None,
    ) -> None:
        super().__init__(message)
        self.row = row
        self.column = column
        self.column_type = column_type
        self.value_type = value_type


class StreamIdleTimeoutError(Error):
    """The server ended a stream's session: the caller paused too long between two batches."""


class CdcError(Error):
    """Change data capture cannot go on as asked (``pgkeel.cdc``)."""


class CdcSetupError(CdcError):
    """What streaming changes needs is missing (wal_level, REPLICATION, a publication, a replica
    identity, a valid name): found before streaming starts; the message names the fix."""


class SlotLostError(CdcError):
    """A replication slot pgkeel created no longer exists: changes may have been lost, so it is
    never silently re-created."""


class NotSupportedError(Error):
    """What was asked cannot work on the chosen driver (or its extra is not installed); the
    message names the driver and the way out.

    Which driver when: ``psycopg`` (default, both faces) for everything, PgBouncer, COPY from
    CSV, pipelines and CDC; ``asyncpg`` (``AsyncDatabase``) for asyncio services dominated by
    point reads; ``psycopg2`` (``Database``) to keep an existing psycopg2 deployment's driver.
    Errors are the same classes on every driver (psycopg's SQLSTATE classes, the driver's own
    exception as ``__cause__``)."""


class PayloadTooLargeError(Error, ValueError):
    """A NOTIFY payload is at or over the server's limit (8000 bytes in the database encoding):
    refused before anything is sent; durable topics (``publish``) have no such limit."""
