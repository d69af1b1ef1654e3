"""The doctor's report without I/O: one text line per check (and its fix), the ``--json`` list,
and the exit code."""

from __future__ import annotations

import textwrap
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


def render_text(
    findings: Sequence[Finding], header: str, style: Any = None, width: int = 100
) -> str:
    """The report, wrapped to ``width`` columns; ``style`` is ``click.style`` (or None)."""
    lines = [header]
    group = None
    name_width = max((len(f.check) for f in findings), default=10)
    for f in findings:
        if f.group != group:
            group = f.group
            lines.append("")
            lines.append(group)
        status = f"{f.status:<7}"
        if style is not None:
            status = style(status, fg=_COLORS[f.status], bold=f.status == "fail")
        pad = " " * (2 + 8 + name_width + 2)
        text = textwrap.wrap(f.summary, max(width - len(pad), 30), break_on_hyphens=False) or [""]
        lines.append(f"  {status} {f.check:<{name_width}}  {text[0]}")
        lines.extend(pad + line for line in text[1:])
        if f.fix and f.status in ("warn", "fail", "skipped"):
            lines.extend(
                textwrap.wrap(
                    f"fix: {f.fix}",
                    width,
                    initial_indent=pad,
                    subsequent_indent=pad + "     ",
                    break_on_hyphens=False,
                )
            )
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
