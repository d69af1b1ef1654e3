"""The figures behind ``stats()`` that pgkeel counts itself, and the last reason the pool
could not connect (for ``health()`` and timeouts).
"""

from __future__ import annotations

import threading


class LastError:
    """The last reason the pool could not connect (password-free), for ``health()`` and for
    the message of a checkout that timed out; cleared by the next successful connection."""

    __slots__ = ("message",)

    def __init__(self) -> None:
        self.message: str | None = None

    def record(self, exc: BaseException) -> None:
        """Remember ``exc`` (already scrubbed by :func:`scrub_error`)."""
        text = " ".join(str(exc).split())
        self.message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__

    def clear(self) -> None:
        self.message = None


class Counters:
    """The figures pgkeel adds to psycopg_pool's own in ``stats()``."""

    __slots__ = ("checkouts", "errors", "lock", "resets", "retries", "wait_max", "wait_total")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.checkouts = 0
        self.wait_total = 0.0
        self.wait_max = 0.0
        self.errors = 0
        self.retries = 0
        self.resets = 0

    def checkout(self, waited: float) -> None:
        with self.lock:
            self.checkouts += 1
            self.wait_total += waited
            if waited > self.wait_max:
                self.wait_max = waited

    def error(self) -> None:
        with self.lock:
            self.errors += 1

    def retry(self) -> None:
        with self.lock:
            self.retries += 1

    def reset(self) -> None:
        with self.lock:
            self.resets += 1
