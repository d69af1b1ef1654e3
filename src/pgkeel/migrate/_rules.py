"""The linter's rules (id, severity, one-line summary) and its findings. Pure, and free of
pglast, so that ``pgkeel.migrate`` can export them without the ``migrate`` extra installed."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["RULES", "Finding", "Rule", "Severity"]

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    severity: Severity
    summary: str


RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule("create-index", "error", "CREATE INDEX without CONCURRENTLY on an existing table"),
        Rule("drop-index", "warning", "DROP INDEX without CONCURRENTLY"),
        Rule("add-column-not-null", "error", "ADD COLUMN ... NOT NULL without a DEFAULT"),
        Rule(
            "add-column-volatile-default",
            "error",
            "ADD COLUMN with a volatile default, serial or stored generated column (rewrite)",
        ),
        Rule("alter-column-type", "error", "ALTER COLUMN ... TYPE (rewrites the table)"),
        Rule("set-not-null", "error", "SET NOT NULL without a validated CHECK first"),
        Rule("constraint-not-valid", "error", "FOREIGN KEY or CHECK added without NOT VALID"),
        Rule("unique-constraint", "error", "UNIQUE / PRIMARY KEY added without an index first"),
        Rule("rename-column", "warning", "renaming a column that running code may use"),
        Rule("rename-table", "warning", "renaming a table that running code may use"),
        Rule("drop-column", "warning", "dropping a column that running code may use"),
        Rule("drop-table", "warning", "dropping a table that running code may use"),
        Rule("vacuum-full", "error", "VACUUM FULL (ACCESS EXCLUSIVE for a full rewrite)"),
        Rule("cluster", "error", "CLUSTER (ACCESS EXCLUSIVE for a full rewrite)"),
        Rule("lock-table", "error", "explicit LOCK TABLE"),
        Rule("reindex", "error", "REINDEX without CONCURRENTLY"),
        Rule("detach-partition", "warning", "DETACH PARTITION without CONCURRENTLY"),
        Rule("missing-lock-timeout", "warning", "strong lock taken without a lock_timeout"),
        Rule(
            "concurrently-in-transaction",
            "error",
            "CONCURRENTLY inside an explicit transaction",
        ),
        Rule("mixed-ddl-dml", "warning", "DDL and UPDATE/DELETE on existing tables, one tx"),
        Rule("allow-without-reason", "warning", "`-- pgkeel: allow RULE` with no reason"),
    )
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: where (file, line), which rule, how bad, and what to do instead."""

    path: str
    line: int
    rule: str
    severity: Severity
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.severity} {self.rule}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
