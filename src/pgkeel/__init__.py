"""pgkeel: PostgreSQL for Python, production-grade by default."""

from pgkeel.database import Database
from pgkeel.database_async import AsyncDatabase
from pgkeel.errors import (
    CommitOutcomeUnknownError,
    ConfigError,
    EmbeddedServerError,
    Error,
    NotStorableError,
    PoolSizeError,
    ServerNotFoundError,
)
from pgkeel.transaction import AsyncTransaction, Transaction

__version__ = "0.1.0.dev0"

__all__ = [
    "AsyncDatabase",
    "AsyncTransaction",
    "CommitOutcomeUnknownError",
    "ConfigError",
    "Database",
    "EmbeddedServerError",
    "Error",
    "NotStorableError",
    "PoolSizeError",
    "ServerNotFoundError",
    "Transaction",
    "__version__",
]
