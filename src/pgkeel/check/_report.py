"""Output formats: ruff-like text, JSON (a list of findings), SARIF 2.1.0 (code scanning)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pgkeel.check._model import RULES, Finding

__all__ = ["FORMATS", "render"]

FORMATS = ("text", "json", "sarif")
_SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}
_SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def render(findings: Sequence[Finding], fmt: str, files: int = 0, version: str = "") -> str:
    """The findings in ``fmt`` (one of FORMATS)."""
    if fmt == "json":
        return json.dumps([_as_dict(f) for f in findings], indent=2)
    if fmt == "sarif":
        return json.dumps(_sarif(findings, version), indent=2)
    lines = [f"{f.path}:{f.line}:{f.col}: {f.code} {f.message}" for f in findings]
    count = len(findings)
    checked = f" in {files} file{'s' if files != 1 else ''}" if files else ""
    if count:
        lines.append(f"Found {count} problem{'s' if count != 1 else ''}{checked}.")
    else:
        lines.append(f"All checks passed{checked}!")
    return "\n".join(lines)


def _as_dict(f: Finding) -> dict[str, Any]:
    return {
        "path": f.path,
        "line": f.line,
        "col": f.col,
        "end_line": f.end_line,
        "end_col": f.end_col,
        "code": f.code,
        "severity": f.severity,
        "message": f.message,
    }


def _uri(path: str) -> str:
    p = Path(path)
    if p.is_absolute():
        try:
            p = p.relative_to(Path.cwd())
        except ValueError:
            return p.as_uri()
    return p.as_posix()


def _sarif(findings: Sequence[Finding], version: str) -> dict[str, Any]:
    rules = [
        {
            "id": rule.code,
            "name": rule.name,
            "shortDescription": {"text": rule.summary},
            "defaultConfiguration": {"level": _SARIF_LEVEL[rule.severity]},
        }
        for rule in RULES.values()
    ]
    index = {rule.code: i for i, rule in enumerate(RULES.values())}
    results = []
    for f in findings:
        result: dict[str, Any] = {
            "ruleId": f.code,
            "level": _SARIF_LEVEL.get(f.severity, "error"),
            "message": {"text": f.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": _uri(f.path), "uriBaseId": "%SRCROOT%"},
                        "region": {
                            "startLine": f.line,
                            "startColumn": f.col,
                            **(
                                {"endLine": f.end_line, "endColumn": f.end_col}
                                if f.end_line >= f.line and f.end_line
                                else {}
                            ),
                        },
                    }
                }
            ],
        }
        if f.code in index:
            result["ruleIndex"] = index[f.code]
        results.append(result)
    return {
        "$schema": _SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "pgkeel check",
                        "informationUri": "https://pypi.org/project/pgkeel/",
                        "version": version or "0",
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }
