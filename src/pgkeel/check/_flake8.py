"""The checker as a flake8 plugin (entry point ``PGK``): ``flake8 --select PGK``.

flake8 hands over the parsed tree and applies ``# noqa`` and ``--select`` itself; the project-wide
part of PGK006 (a pool closed by another module) is not available per file, as with
``check_source``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from pgkeel.check._rules import analyze

__all__ = ["Plugin"]


class Plugin:
    """flake8's AST plugin protocol: ``Plugin(tree, filename).run()`` yields findings."""

    name = "pgkeel-check"
    version = "1"

    def __init__(self, tree: ast.AST, filename: str = "<unknown>") -> None:
        self.tree = tree
        self.filename = filename

    def run(self) -> Iterator[tuple[int, int, str, type[Plugin]]]:
        """(line, 0-based column, "PGKnnn message", plugin type) per finding."""
        if not isinstance(self.tree, ast.Module):
            return
        findings, _facts = analyze(self.tree, self.filename)
        for f in sorted(findings, key=lambda f: (f.line, f.col, f.code)):
            yield f.line, f.col - 1, f"{f.code} {f.message}", type(self)
