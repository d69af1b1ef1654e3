"""What a doctor check returns (:class:`Finding`), the options that tune the checks, and the
check registry's entry type. No I/O: the report, the exit code and the JSON are built from these."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from pgkeel.ops._context import Context

__all__ = ["GROUPS", "JSON_KEYS", "STATUSES", "Check", "DoctorOptions", "Finding", "Status"]

Status = Literal["ok", "warn", "fail", "skipped"]

#: Every status, from best to worst (``skipped`` is not a problem: it says why nothing was seen).
STATUSES: tuple[Status, ...] = ("ok", "skipped", "warn", "fail")

#: The check groups, in report order.
GROUPS: tuple[str, ...] = ("connection", "capacity", "settings", "schema", "replication", "queries")

#: The keys of each object in ``--json`` output, in order.
JSON_KEYS = ("check", "group", "status", "summary", "fix", "details", "elapsed_ms")

#: The grant that makes the statistics views show every session and statement.
MONITOR_GRANT = "GRANT pg_monitor TO {role}"


@dataclasses.dataclass(frozen=True, slots=True)
class Finding:
    """One check's verdict: a status, what was found (with numbers) and how to fix it."""

    check: str
    status: Status
    summary: str
    fix: str | None = None
    #: The items behind the verdict (one dict per index, session, table...), for ``--json``.
    details: Sequence[Mapping[str, Any]] = ()
    #: The check's group (set by the runner from the registry).
    group: str = ""
    #: Seconds the check took.
    elapsed: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The JSON object of ``pgkeel doctor --json`` (see :data:`JSON_KEYS`)."""
        return {
            "check": self.check,
            "group": self.group,
            "status": self.status,
            "summary": self.summary,
            "fix": self.fix,
            "details": [dict(d) for d in self.details],
            "elapsed_ms": round(self.elapsed * 1000, 1),
        }


@dataclasses.dataclass(frozen=True, slots=True)
class DoctorOptions:
    """Thresholds and the pool plan the checks judge against."""

    #: Connections per application instance (default: the resolved ``max_size``).
    pool_size: int | None = None
    #: Application instances (processes or hosts) each with its own pool.
    instances: int = 1
    #: Slots kept free for psql, migrations, cron jobs and a deploy's overlap.
    headroom: int = 5
    #: Seconds a session may sit idle in a transaction before it is reported.
    idle_threshold: float = 60.0
    #: Seconds a query may run before it is reported.
    long_query: float = 300.0
    #: Bytes of WAL a replication slot may retain before it is a failure (and a standby may be
    #: behind before it is reported).
    slot_wal_bytes: int = 1 << 30
    #: Seconds a standby may replay behind before it is reported.
    lag_seconds: float = 60.0
    #: Fraction of its maximum a sequence may reach before it is a warning (failure at 0.98).
    sequence_ratio: float = 0.9
    #: Dead-tuple ratio (of live + dead) above which a table with ``dead_min`` dead rows is
    #: reported.
    dead_ratio: float = 0.2
    dead_min: int = 1000
    #: Rows (or bytes) that make a table "large" for the unused-index and never-analyzed checks.
    large_rows: int = 10_000
    #: Queries listed by the top-queries check (0: the check only says whether it could).
    top: int = 0
    #: The statement_timeout of each of doctor's own queries, in seconds.
    query_timeout: float = 5.0

    def __post_init__(self) -> None:
        for name in ("instances", "headroom", "dead_min", "large_rows", "top"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
        if self.pool_size is not None and (
            not isinstance(self.pool_size, int)
            or isinstance(self.pool_size, bool)
            or self.pool_size < 1
        ):
            raise ValueError(f"pool_size must be a whole number >= 1, got {self.pool_size!r}")
        for name in ("idle_threshold", "long_query", "query_timeout", "lag_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")
        for name in ("sequence_ratio", "dead_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
                raise ValueError(f"{name} must be a fraction between 0 and 1, got {value!r}")
        if (
            not isinstance(self.slot_wal_bytes, int)
            or isinstance(self.slot_wal_bytes, bool)
            or self.slot_wal_bytes < 0
        ):
            raise ValueError(f"slot_wal_bytes must be >= 0, got {self.slot_wal_bytes!r}")


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    """A registered check: its name, group, what it looks at, and the function that runs it."""

    name: str
    group: str
    title: str
    run: Callable[[Context], Finding]
