"""The checker's vocabulary: the rule table (fixed codes), a finding, and what a module tells about
others (names it closes, pools it leaves open)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["RULES", "Finding", "ModuleFacts", "Rule"]


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule of the checker: its fixed code, a short name, a severity and what it finds."""

    code: str
    name: str
    severity: str  # "error", "warning" or "info"
    summary: str


RULES: dict[str, Rule] = {
    r.code: r
    for r in (
        Rule("PGK001", "sql-built-from-strings", "error", "SQL built from strings reaches a query"),
        Rule("PGK002", "connection-per-request", "warning", "connection opened per request/loop"),
        Rule("PGK003", "connection-not-returned", "warning", "pooled connection not returned"),
        Rule("PGK004", "placeholder-style", "error", "placeholder style of another driver"),
        Rule("PGK005", "row-by-row-insert", "warning", "INSERT executed once per loop turn"),
        Rule("PGK006", "pool-lifecycle", "warning", "pool never closed or never awaited"),
        Rule("PGK007", "insecure-connection", "warning", "password or weak sslmode in a DSN"),
        Rule("PGK008", "pool-without-limits", "info", "pool without timeout or lifetime"),
    )
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One finding; ``line`` and ``col`` are 1-based, like ruff's."""

    path: str
    line: int
    col: int
    code: str
    message: str
    end_line: int = 0
    end_col: int = 0

    @property
    def severity(self) -> str:
        """``error``, ``warning`` or ``info`` (the rule's)."""
        rule = RULES.get(self.code)
        return rule.severity if rule else "error"


@dataclass(slots=True)
class ModuleFacts:
    """What a module tells about others: names it closes (``x.close()``), and its pools that are
    never closed in it, keyed by the name they are bound to (another module may close them)."""

    closed: set[str] = field(default_factory=set)
    unclosed: list[tuple[str, Finding]] = field(default_factory=list)


# -- what the libraries are ------------------------------------------------------------------
