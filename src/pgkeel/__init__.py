"""pgkeel: PostgreSQL for Python, production-grade by default."""

import typing as _typing

from pgkeel.database import Database
from pgkeel.database_async import AsyncDatabase
from pgkeel.errors import (
    BadValueError,
    ColumnNotFoundError,
    CommitOutcomeUnknownError,
    ConfigError,
    DuplicateKeyError,
    EmbeddedServerError,
    Error,
    IdentifierError,
    MigrationError,
    MigrationLintError,
    NotStorableError,
    NotSupportedError,
    PayloadTooLargeError,
    PoolerError,
    PoolSizeError,
    RowError,
    ServerNotFoundError,
    StreamIdleTimeoutError,
    TableNotFoundError,
)
from pgkeel.transaction import Transaction
from pgkeel.transaction_async import AsyncTransaction

if _typing.TYPE_CHECKING:
    from pgkeel import events as events
    from pgkeel import migrate as migrate

__version__ = "0.1.0.dev0"

__all__ = [
    "AsyncDatabase",
    "AsyncTransaction",
    "BadValueError",
    "ColumnNotFoundError",
    "CommitOutcomeUnknownError",
    "ConfigError",
    "Database",
    "DuplicateKeyError",
    "EmbeddedServerError",
    "Error",
    "IdentifierError",
    "MigrationError",
    "MigrationLintError",
    "NotStorableError",
    "NotSupportedError",
    "PayloadTooLargeError",
    "PoolSizeError",
    "PoolerError",
    "RowError",
    "ServerNotFoundError",
    "StreamIdleTimeoutError",
    "TableNotFoundError",
    "Transaction",
    "__version__",
]


def __getattr__(name: str) -> object:
    # `pgkeel.migrate.up(url, "migrations")` after a plain `import pgkeel`, without paying for
    # the migrate package (hashlib, its rule table) in every process that only queries.
    if name in ("migrate", "events"):
        import importlib

        return importlib.import_module(f"pgkeel.{name}")
    raise AttributeError(f"module 'pgkeel' has no attribute {name!r}")
