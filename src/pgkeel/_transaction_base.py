"""What the two faces of :mod:`pgkeel.transaction` and the Database's ``run_transaction``
share, without I/O: the retry policy (which SQLSTATEs are retried, the backoff between
attempts), the message for a COMMIT whose outcome is unknown, the ``isolation=`` names, and the
error for a transaction used after its block.
"""

from __future__ import annotations

import random

import psycopg
from psycopg import IsolationLevel
from psycopg import errors as pg_errors

__all__ = [
    "RETRYABLE",
    "Isolation",
    "backoff",
    "commit_unknown_message",
    "isolation_level",
    "transaction_ended",
]

#: SQLSTATEs after which running the whole transaction again is safe and likely to succeed.
RETRYABLE: tuple[type[psycopg.Error], ...] = (
    pg_errors.SerializationFailure,
    pg_errors.DeadlockDetected,
)


def backoff(attempt: int, *, base: float = 0.01, cap: float = 1.0) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): capped exponential, full jitter."""
    return random.uniform(0, min(cap, base * 2**attempt))  # noqa: S311 - jitter, not crypto


def commit_unknown_message(exc: BaseException) -> str:
    return (
        f"the connection was lost during COMMIT ({type(exc).__name__}): the transaction may or "
        "may not have committed; check the data (or use an idempotency key) before retrying"
    )


#: ``isolation=`` takes a psycopg ``IsolationLevel`` or its name: ``"serializable"``,
#: ``"repeatable read"``, ``"read committed"``, ``"read uncommitted"`` (any case, ``_`` or space).
Isolation = IsolationLevel | str | None


def isolation_level(value: Isolation) -> IsolationLevel | None:
    """Normalise an ``isolation=`` argument."""
    if value is None or isinstance(value, IsolationLevel):
        return value
    try:
        return IsolationLevel[value.strip().upper().replace(" ", "_").replace("-", "_")]
    except KeyError:
        names = ", ".join(repr(level.name.lower().replace("_", " ")) for level in IsolationLevel)
        raise ValueError(f"unknown isolation level {value!r}; use one of {names}") from None


def transaction_ended() -> psycopg.ProgrammingError:
    return psycopg.ProgrammingError(
        "this transaction has ended; run queries inside its `with` block"
    )
