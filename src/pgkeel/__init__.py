"""pgkeel: PostgreSQL for Python, production-grade by default."""

# A subpackage, not a name in __all__: `pgkeel.migrate.up(url, "migrations")`. Light: pglast
# is imported only when migrations are split or linted.
from pgkeel import migrate as migrate
from pgkeel.database import Database
from pgkeel.database_async import AsyncDatabase
from pgkeel.errors import (
    CommitOutcomeUnknownError,
    ConfigError,
    DuplicateKeyError,
    EmbeddedServerError,
    Error,
    IdentifierError,
    MigrationError,
    MigrationLintError,
    NotStorableError,
    PoolSizeError,
    RowError,
    ServerNotFoundError,
)
from pgkeel.transaction import Transaction
from pgkeel.transaction_async import AsyncTransaction

__version__ = "0.1.0.dev0"

__all__ = [
    "AsyncDatabase",
    "AsyncTransaction",
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
    "PoolSizeError",
    "RowError",
    "ServerNotFoundError",
    "Transaction",
    "__version__",
]
