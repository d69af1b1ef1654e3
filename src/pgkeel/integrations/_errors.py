"""Database errors as HTTP answers: one pure mapping shared by the FastAPI and Flask faces.

The body says what happened and what a client can do, names the constraint when the server gave
one, and never carries the SQL, the parameters or the connection's details (host, user...).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import psycopg
import psycopg.errors as pg_errors
from psycopg_pool import PoolTimeout

from pgkeel.errors import BadValueError, CommitOutcomeUnknownError, NotStorableError

logger = logging.getLogger("pgkeel.integrations")

#: Seconds a client is asked to wait before retrying after a 503.
RETRY_AFTER = 1


@dataclass(frozen=True)
class HttpError:
    """An HTTP answer for a database error: status, JSON body, extra headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


#: The exception classes :func:`map_error` answers; frameworks register handlers for these.
HANDLED: tuple[type[Exception], ...] = (psycopg.Error, PoolTimeout, NotStorableError)


def _constraint(exc: psycopg.Error) -> str | None:
    # The constraint's name is schema metadata the application chose, not data: safe to show.
    return exc.diag.constraint_name if isinstance(exc, psycopg.Error) else None


def _body(error: str, message: str, constraint: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": error, "message": message}
    if constraint:
        body["constraint"] = constraint
    return body


def unmapped(exc: BaseException, method: str, route: str) -> HttpError:
    """The 500 answer for a database error :func:`map_error` does not map, logged by class and
    SQLSTATE only (its message may quote the row's values)."""
    logger.error(
        "unmapped database error %s (SQLSTATE %s) on %s %s",
        type(exc).__name__,
        getattr(exc, "sqlstate", None),
        method,
        route,
    )
    return HttpError(500, _body("internal", "internal server error"))


def map_error(exc: BaseException) -> HttpError | None:
    """The HTTP answer for ``exc``, or None when it is not a database error we map (the
    framework then answers 500 as for any other bug)."""
    if isinstance(exc, pg_errors.UniqueViolation | pg_errors.ExclusionViolation):
        what = "unique" if isinstance(exc, pg_errors.UniqueViolation) else "exclusion"
        return HttpError(
            409,
            _body(
                "conflict",
                f"the request conflicts with existing data ({what} constraint)",
                _constraint(exc),
            ),
        )
    if isinstance(exc, pg_errors.SerializationFailure | pg_errors.DeadlockDetected):
        return HttpError(
            409,
            _body(
                "conflict",
                "the request conflicted with a concurrent one and was rolled back; retry it",
            ),
        )
    if isinstance(
        exc,
        pg_errors.ForeignKeyViolation | pg_errors.CheckViolation | pg_errors.NotNullViolation,
    ):
        kind = {
            pg_errors.ForeignKeyViolation: "it refers to a row that does not exist",
            pg_errors.CheckViolation: "a value breaks a rule of the data (check constraint)",
            pg_errors.NotNullViolation: "a required value is missing",
        }[type(exc)]
        return HttpError(
            422, _body("invalid", f"the data cannot be stored: {kind}", _constraint(exc))
        )
    if isinstance(exc, BadValueError):
        where = f" in column {exc.column!r}" if exc.column else ""
        row = f", row {exc.row}" if exc.row else ""
        return HttpError(422, _body("invalid", f"a value cannot be stored as it is{where}{row}"))
    if isinstance(exc, NotStorableError):
        return HttpError(
            422,
            _body(
                "invalid",
                "a value cannot be stored as it is (a naive datetime, NaN or infinity in "
                "JSON, a NUL character...)",
            ),
        )
    if isinstance(exc, pg_errors.DataError):
        # Out-of-range numbers, bad text representations, NUL in text: the client's data.
        return HttpError(422, _body("invalid", "a value is out of range or malformed"))
    if isinstance(exc, PoolTimeout):
        return HttpError(
            503,
            _body("unavailable", "the database is busy or unreachable; retry shortly"),
            {"Retry-After": str(RETRY_AFTER)},
        )
    if isinstance(exc, pg_errors.QueryCanceled):
        # statement_timeout (or a cancel): the work took too long and was undone.
        return HttpError(504, _body("timeout", "the database took too long and gave up"))
    if isinstance(exc, CommitOutcomeUnknownError):
        return HttpError(
            503,
            _body(
                "unknown_outcome",
                "the connection was lost while committing: the change may or may not be "
                "stored; check before retrying",
            ),
        )
    if isinstance(exc, psycopg.OperationalError):
        # A lost connection, a server shutting down or restarting: transient.
        return HttpError(
            503,
            _body("unavailable", "the database connection failed; retry shortly"),
            {"Retry-After": str(RETRY_AFTER)},
        )
    return None
