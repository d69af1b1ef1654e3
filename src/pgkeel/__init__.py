"""pgkeel: PostgreSQL for Python, production-grade by default."""

from pgkeel.errors import ConfigError, EmbeddedServerError, Error, ServerNotFoundError

__version__ = "0.1.0.dev0"

__all__ = [
    "ConfigError",
    "EmbeddedServerError",
    "Error",
    "ServerNotFoundError",
    "__version__",
]
