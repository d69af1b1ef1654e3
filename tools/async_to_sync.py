#!/usr/bin/env python3
"""Generate pgkeel's synchronous modules from their asyncio sources.

The async file is the one written by hand (``database_async.py``...); its sync twin
(``database.py``...) is produced by a pass over the source text, guided by the AST:

- ``await`` and the ``async`` of ``async def`` / ``async with`` / ``async for`` are dropped;
- names in ``RENAMES`` are replaced wherever they are code (names, attributes, imported names,
  modules in ``from ... import``) and, word by word, in strings and comments (so docstrings,
  ``__all__`` and ``repr`` follow); ``DOTTED`` replaces whole attribute chains
  (``asyncio.sleep`` -> ``time.sleep``); ``Awaitable[X]`` becomes ``X``, ``(await x).y`` becomes
  ``x.y``, and a union or an import that a rename made repeat a member keeps one;
- where the faces really differ, the async source says so explicitly::

      if True:  # ASYNC
          <async-only code>
      else:
          <sync-only code>

  and the sync file keeps only the ``else`` body (nothing, if there is no ``else``), at any level
  (module, class, function). The ``else`` body must still be valid in the async file: where the
  sync code needs ``yield from`` (not allowed in an ``async def``), put the whole ``def`` in the
  block.

Editing the text rather than unparsing an AST keeps comments, blank lines and ``# type: ignore``
markers exactly as written. The result is passed through ``ruff check --fix`` (unused imports,
import order) and ``ruff format``, so a generated file is lint-clean like the rest.

Usage: ``python tools/async_to_sync.py`` rewrites the sync files; ``--check`` only reports (exit
1, with a diff) the ones that are stale, which is what ``make lint`` and CI run.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import io
import re
import subprocess
import sys
import tokenize
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "src" / "pgkeel"


def async_sources(pkg: Path = PKG) -> dict[Path, Path]:
    """Every ``x_async.py`` under the package -> its generated twin ``x.py`` in the same directory.

    Discovered rather than listed, so a capability that moves into a subpackage (or a new one
    with an async face) is generated and checked without touching this tool.
    """
    return {
        src: src.with_name(src.name.removesuffix("_async.py") + ".py")
        for src in sorted(pkg.rglob("*_async.py"))
    }


#: One name for another, in code and (as whole words) in strings and comments.
RENAMES = {
    "AbstractAsyncContextManager": "AbstractContextManager",
    "AsyncBulkMethods": "BulkMethods",
    "AsyncChanges": "Changes",
    "AsyncConnection": "Connection",
    "AsyncConnectionPool": "ConnectionPool",
    "AsyncCopy": "Copy",
    "AsyncCursor": "Cursor",
    "AsyncDatabase": "Database",
    "AsyncIterable": "Iterable",
    "AsyncIterator": "Iterator",
    "AsyncListener": "Listener",
    "AsyncPipeline": "Pipeline",
    "AsyncQueryMethods": "QueryMethods",
    "AsyncReadRouting": "ReadRouting",
    "AsyncReplicas": "Replicas",
    "AsyncRowStream": "RowStream",
    "AsyncSubscription": "Subscription",
    "AsyncTransaction": "Transaction",
    "StopAsyncIteration": "StopIteration",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "__aiter__": "__iter__",
    "__anext__": "__next__",
    "aclose": "close",
    "aiter": "iter",
    "anext": "next",
    "asynccontextmanager": "contextmanager",
    "begin_async": "begin",
}
# Modules, in ``from pgkeel.x_async import ...`` and in docstrings: every discovered source.
RENAMES.update({src.stem: target.stem for src, target in async_sources().items()})

#: Whole attribute chains, in code only.
DOTTED = {
    "asyncio.sleep": "time.sleep",
}

_WORDS = re.compile(r"\b(" + "|".join(map(re.escape, RENAMES)) + r")\b")
_KEYWORD = {"await": re.compile(r"await\s*"), "async": re.compile(r"async\s+")}
_MARKER = re.compile(r"#\s*ASYNC\b")
_ELSE = re.compile(r"\s*else\s*:")
_DEFINITION = re.compile(r"(?:async\s+)?(?:def|class)\s+(\w+)")

Edit = tuple[int, int, str]  # start, end (character offsets), replacement


class _Text:
    """Source text with AST (line, UTF-8 byte column) positions mapped to character offsets."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines = io.StringIO(source).readlines()  # split on "\n" only, as the parser does
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def offset(self, lineno: int, col: int) -> int:
        line = self.lines[lineno - 1]
        return self.starts[lineno - 1] + len(line.encode()[:col].decode())

    def start(self, node: ast.AST) -> int:
        return self.offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]

    def end(self, node: ast.AST) -> int:
        return self.offset(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]


def _apply(source: str, edits: Iterable[Edit]) -> str:
    out = source
    last = len(source) + 1
    for start, end, new in sorted(edits, reverse=True):
        if end > last:
            raise SystemExit(f"async_to_sync: overlapping edits at offset {start}")
        out = out[:start] + new + out[end:]
        last = start
    return out


def _is_marker(node: ast.AST, text: _Text) -> bool:
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Constant)
        and node.test.value is True
        and bool(_MARKER.search(text.lines[node.lineno - 1]))
    )


def _resolve_async_blocks(source: str, path: str) -> str:
    """Replace each ``if True:  # ASYNC`` statement by its ``else`` body, outermost first."""
    while True:
        text = _Text(source)
        block = next((n for n in ast.walk(ast.parse(source)) if _is_marker(n, text)), None)
        if block is None:
            return source
        assert isinstance(block, ast.If)
        first = block.lineno - 1
        last = block.end_lineno or block.lineno  # 1-based, inclusive
        kept: list[str] = []
        if block.orelse:
            else_at = next(
                (
                    i
                    for i in range(block.body[-1].end_lineno or 0, block.orelse[0].lineno - 1)
                    if _ELSE.match(text.lines[i])
                ),
                None,
            )
            if else_at is None:
                raise SystemExit(f"{path}:{block.lineno}: an `if True:  # ASYNC` needs `else:`")
            outer = len(text.lines[first]) - len(text.lines[first].lstrip())
            inner = block.orelse[0].col_offset
            for line in text.lines[else_at + 1 : last]:
                prefix = line[: inner - outer]
                kept.append(line[inner - outer :] if not prefix.strip() else line)
        start, end = text.starts[first], text.starts[last]
        source = source[:start] + "".join(kept) + source[end:]


def _unwrap_awaitable(source: str) -> str:
    """``Awaitable[X]`` -> ``X``, innermost last (one at a time, re-parsing in between)."""
    while True:
        text = _Text(source)
        node = next(
            (
                n
                for n in ast.walk(ast.parse(source))
                if isinstance(n, ast.Subscript)
                and isinstance(n.value, ast.Name)
                and n.value.id == "Awaitable"
            ),
            None,
        )
        if node is None:
            return source
        inner = source[text.start(node.slice) : text.end(node.slice)]
        source = source[: text.start(node)] + inner + source[text.end(node) :]


def _union_members(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _union_members(node.left) + _union_members(node.right)
    return [node]


def _dedupe_unions(source: str) -> str:
    """``Iterable[Any] | Iterable[Any]`` (once ``AsyncIterable`` is renamed): one member."""
    while True:
        text = _Text(source)
        for node in ast.walk(ast.parse(source)):
            if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr)):
                continue
            members = _union_members(node)
            if not all(isinstance(m, ast.Name | ast.Attribute | ast.Subscript) for m in members):
                continue
            unique = {ast.dump(m): m for m in reversed(members)}
            if len(unique) == len(members):
                continue
            kept = [m for m in members if unique.get(ast.dump(m)) is m]
            joined = " | ".join(source[text.start(m) : text.end(m)] for m in kept)
            source = source[: text.start(node)] + joined + source[text.end(node) :]
            break
        else:
            return source


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _code_edits(source: str, path: str) -> list[Edit]:
    text = _Text(source)
    edits: list[Edit] = []

    def keyword(node: ast.expr | ast.stmt, word: str) -> None:
        start = text.start(node)
        match = _KEYWORD[word].match(source, start)
        if match is None:
            raise SystemExit(f"{path}:{node.lineno}: expected `{word}`")
        edits.append((start, match.end(), ""))

    def import_from(node: ast.ImportFrom) -> None:
        # Rewritten whole when anything in it is renamed: a rename may make two names one
        # (``AsyncIterator, Iterator``); ruff formats the result again.
        module = ".".join(RENAMES.get(p, p) for p in (node.module or "").split("."))
        names = [
            RENAMES.get(a.name, a.name) + (f" as {a.asname}" if a.asname else "")
            for a in node.names
        ]
        names = list(dict.fromkeys(names))
        if (
            module != (node.module or "")
            or len(names) != len(node.names)
            or any(a.name in RENAMES for a in node.names)
        ):
            edits.append(
                (
                    text.start(node),
                    text.end(node),
                    f"from {'.' * node.level}{module} import {', '.join(names)}",
                )
            )
        skip.update(id(a) for a in node.names)

    def unparenthesize(node: ast.Await) -> None:
        # ``(await cur.execute(q)).rowcount``: once ``await`` is gone the parentheses are noise.
        before = source.rindex("(", 0, text.start(node))
        after = source.index(")", text.end(node))
        if source[before + 1 : text.start(node)].strip() or source[text.end(node) : after].strip():
            raise SystemExit(f"{path}:{node.lineno}: cannot find the parentheses around `await`")
        edits.extend(((before, before + 1, ""), (after, after + 1, "")))

    tree = ast.parse(source)
    for parent in ast.walk(tree):
        if isinstance(parent, ast.Attribute | ast.Subscript) and isinstance(
            parent.value, ast.Await
        ):
            unparenthesize(parent.value)
        elif isinstance(parent, ast.Call) and isinstance(parent.func, ast.Await):
            unparenthesize(parent.func)

    skip: set[int] = set()  # nodes already replaced with an enclosing one
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Await):
            keyword(node, "await")
        elif isinstance(node, ast.AsyncFunctionDef | ast.AsyncWith | ast.AsyncFor):
            keyword(node, "async")
        elif isinstance(node, ast.comprehension) and node.is_async:
            raise SystemExit(f"{path}: `async for` in a comprehension is not supported")
        elif isinstance(node, ast.Attribute) and _dotted(node) in DOTTED:
            edits.append((text.start(node), text.end(node), DOTTED[_dotted(node) or ""]))
            skip.update(id(n) for n in ast.walk(node))
        elif isinstance(node, ast.Attribute) and node.attr in RENAMES:
            end = text.end(node)
            edits.append((end - len(node.attr), end, RENAMES[node.attr]))
        elif isinstance(node, ast.Name) and node.id in RENAMES:
            edits.append((text.start(node), text.end(node), RENAMES[node.id]))
        elif isinstance(node, ast.ImportFrom):
            import_from(node)
        elif isinstance(node, ast.alias) and node.name in RENAMES:
            start = text.start(node)
            edits.append((start, start + len(node.name), RENAMES[node.name]))
        if (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and node.name in RENAMES
        ):
            match = _DEFINITION.match(source, text.start(node))
            assert match is not None
            edits.append((match.start(1), match.end(1), RENAMES[node.name]))
    return edits


def _prose_edits(source: str) -> list[Edit]:
    """Renames inside strings and comments, whole words only."""
    text = _Text(source)
    kinds = {tokenize.STRING, tokenize.COMMENT}
    if sys.version_info >= (3, 12):
        kinds.add(tokenize.FSTRING_MIDDLE)
    edits: list[Edit] = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in kinds:
            continue
        # tokenize columns count characters, not bytes
        base = text.starts[tok.start[0] - 1] + tok.start[1]
        for match in _WORDS.finditer(tok.string):
            edits.append((base + match.start(), base + match.end(), RENAMES[match.group()]))
    return edits


def _ruff(source: str, target: Path, *args: str) -> str:
    done = subprocess.run(  # noqa: S603 - our own venv's ruff on our own source
        [sys.executable, "-m", "ruff", *args, "--stdin-filename", str(target), "-"],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"ruff {' '.join(args)} failed on {target}:\n{done.stderr}")
    return done.stdout


def convert(source: str, src: Path, target: Path) -> str:
    """The sync module for the async ``source`` (read from ``src``), formatted and linted."""
    path = str(src.relative_to(ROOT))
    source = _resolve_async_blocks(source, path)
    source = _unwrap_awaitable(source)
    source = _apply(source, _code_edits(source, path) + _prose_edits(source))
    source = _dedupe_unions(source)
    header = (
        f"# Generated from {path} by tools/async_to_sync.py: do not edit this file.\n"
        "# Edit the async source, then run `python tools/async_to_sync.py` (or `make generate`).\n"
    )
    source = header + source
    # unused imports (asyncio...) go; renamed imports and __all__ get sorted again
    source = _ruff(source, target, "check", "--fix", "--exit-zero", "--select", "F401,I001,RUF022")
    # A trailing comma the async line needed may be one the shorter sync line does not.
    return _ruff(source, target, "format", "--config", "format.skip-magic-trailing-comma = true")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--check", action="store_true", help="report stale generated files, change nothing"
    )
    args = parser.parse_args(argv)
    stale = 0
    for src, target in async_sources().items():
        new = convert(src.read_text(), src, target)
        old = target.read_text() if target.exists() else ""
        if new == old:
            continue
        if args.check:
            stale += 1
            rel = str(target.relative_to(ROOT))
            sys.stdout.writelines(
                difflib.unified_diff(
                    old.splitlines(keepends=True), new.splitlines(keepends=True), rel, rel
                )
            )
            print(f"{rel} is stale: run `python tools/async_to_sync.py`", file=sys.stderr)
        else:
            target.write_text(new)
            print(f"generated {target.relative_to(ROOT)}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
