"""The doctor's report without I/O: one text line per check (and its fix), the ``--json`` list,
and the exit code."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import orjson

from pgkeel.ops._model import Finding

__all__ = ["exit_code", "render_json", "render_text"]

_COLORS = {"ok": "green", "warn": "yellow", "fail": "red", "skipped": "blue"}


def exit_code(findings: Sequence[Finding], fail_on: Literal["warn", "fail"] = "warn") -> int:
    """0 all ok (or skipped), 1 a warning, 2 a failure; ``fail_on="fail"`` lets warnings pass."""
    statuses = {f.status for f in findings}
    if "fail" in statuses:
        return 2
    if "warn" in statuses and fail_on == "warn":
        return 1
    return 0


def render_json(findings: Sequence[Finding]) -> str:
    return orjson.dumps(
        [f.as_dict() for f in findings], option=orjson.OPT_INDENT_2, default=_default
    ).decode()


def _default(value: Any) -> Any:
    # Decimal (pg_stat_statements' numbers on some versions), IP addresses, intervals.
    return str(value)


def render_text(findings: Sequence[Finding], header: str, style: Any = None) -> str:
    """The report; ``style`` is ``click.style`` (or None for no color)."""
    lines = [header]
    group = None
    width = max((len(f.check) for f in findings), default=10)
    for f in findings:
        if f.group != group:
            group = f.group
            lines.append("")
            lines.append(group)
        status = f"{f.status:<7}"
        if style is not None:
            status = style(status, fg=_COLORS[f.status], bold=f.status == "fail")
        lines.append(f"  {status} {f.check:<{width}}  {f.summary}")
        pad = " " * (2 + 8 + width + 2)
        if f.fix and f.status in ("warn", "fail", "skipped"):
            lines.append(f"{pad}fix: {f.fix}")
        if f.check == "top_queries":
            for i, q in enumerate(f.details, 1):
                lines.append(
                    f"{pad}{i}. {q['total_ms']:.0f} ms total, {q['mean_ms']:.2f} ms mean, "
                    f"{q['calls']} calls, {q['rows']} rows: {q['query'][:120]}"
                )
    counts = {
        s: sum(1 for f in findings if f.status == s) for s in ("ok", "warn", "fail", "skipped")
    }
    lines.append("")
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()))
    return "\n".join(lines)
