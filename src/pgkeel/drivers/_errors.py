"""A driver's exceptions translated into the ones pgkeel raises on every driver: psycopg's
SQLSTATE classes (``psycopg.errors.UniqueViolation``...), ``psycopg.OperationalError`` for a
lost connection, ``psycopg.InterfaceError`` for a connection in a wrong state. The driver's
exception becomes the ``__cause__``, so a user's ``except`` clause does not change with the
driver and nothing the driver said is lost.

Pure: it reads the exception's SQLSTATE (asyncpg's ``sqlstate``, psycopg2's ``pgcode``) and
class names, never imports a driver.
"""

from __future__ import annotations

import psycopg
from psycopg import errors as pg_errors

__all__ = ["translate"]

#: Class names (asyncpg's, psycopg2's, the standard library's) that mean the connection is gone.
_LOST = frozenset(
    {
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "ConnectionResetError",
        "ConnectionRefusedError",
        "ConnectionAbortedError",
        "BrokenPipeError",
        "InterfaceError",  # psycopg2: "connection already closed"
        "OperationalError",  # psycopg2: "server closed the connection unexpectedly"
        "OSError",
        "TimeoutError",  # asyncpg's connect timeout
    }
)
_MISUSE = frozenset({"InterfaceError", "InterfaceWarning"})


def translate(exc: BaseException, *, driver: str) -> psycopg.Error | None:
    """The pgkeel exception for ``exc`` (raise it ``from exc``), or None when ``exc`` is not
    the driver's (a pgkeel or user error, a cancellation) and must pass unchanged."""
    if isinstance(exc, psycopg.Error):
        return None
    state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    message = _message(exc)
    if module_of(exc).startswith("asyncpg") and "out of" in message and "range" in message:
        # asyncpg refuses an out-of-range parameter before sending it; the server (and so
        # psycopg) says 22003.
        return pg_errors.NumericValueOutOfRange(f"{driver}: {message}")
    if isinstance(state, str) and len(state) == 5:
        try:
            cls = pg_errors.lookup(state)
        except KeyError:
            cls = _by_class(state)
        return cls(message)
    name = type(exc).__name__
    module = type(exc).__module__ or ""
    if module.startswith("asyncpg") and name in _MISUSE:
        return psycopg.InterfaceError(f"{driver}: {message}")
    if name in _LOST and (module.startswith(("asyncpg", "psycopg2", "builtins"))):
        return psycopg.OperationalError(
            f"the connection to the server was lost ({driver}: {message})"
        )
    if module.startswith(("asyncpg", "psycopg2")):
        if "Data" in name or "Value" in name:
            return psycopg.DataError(f"{driver}: {message}")
        return psycopg.DatabaseError(f"{driver}: {message}")
    return None


def module_of(exc: BaseException) -> str:
    return type(exc).__module__ or ""


def _message(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    detail = getattr(exc, "detail", None)
    if isinstance(detail, str) and detail and detail not in text:
        text += f"\nDETAIL:  {detail}"
    return text


def _by_class(state: str) -> type[psycopg.Error]:
    """The DB-API class for an SQLSTATE psycopg has no class for, by its two-letter class."""
    cls = state[:2]
    if cls in ("08", "57", "53", "58"):
        return psycopg.OperationalError
    if cls in ("22",):
        return psycopg.DataError
    if cls in ("23",):
        return psycopg.IntegrityError
    if cls in ("40",):
        return pg_errors.TransactionRollback
    if cls in ("42", "26", "34", "3D", "3F"):
        return psycopg.ProgrammingError
    return psycopg.DatabaseError
