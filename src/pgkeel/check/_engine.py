"""Running the rules: one source text (``check_source``) or a tree of files (``check_paths``).

Files are found by walking the given paths (``.gitignore`` files respected, plus the configured
``exclude`` globs and the usual virtualenv/cache directories), parsed once with ``ast`` each, and
checked in worker processes when there are many. A file that does not parse is reported (code
``E999``) and the others are still checked. ``# noqa`` / ``# noqa: PGK001`` on a finding's first
or last line silences it.
"""

from __future__ import annotations

import ast
import multiprocessing
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

from pgkeel.check import _tstrings
from pgkeel.check._config import Config
from pgkeel.check._model import Finding, ModuleFacts
from pgkeel.check._rules import analyze

__all__ = ["SYNTAX_ERROR", "Report", "check_paths", "check_source", "iter_files"]

SYNTAX_ERROR = "E999"
# Directories nobody wants checked (ruff's defaults, roughly); a path named on the command
# line is checked even if it is one of these.
SKIP_DIRS = frozenset(
    {
        ".bzr", ".direnv", ".eggs", ".git", ".hg", ".mypy_cache", ".nox", ".pytest_cache",
        ".ruff_cache", ".svn", ".tox", ".venv", "__pycache__", "__pypackages__", "_build",
        "buck-out", "node_modules", "site-packages", "venv",
    }
)  # fmt: skip
PARALLEL_MIN_FILES = 64
# Every rule starts at a call or string that contains one of these words: a module without any
# of them has nothing to find.
_TRIGGERS = (
    "execute", "fetch", "copy", "mogrify", "prepare", "connect", "pool", "getconn", "acquire",
    "postgres", "stream", "database",
)  # fmt: skip
_CHUNK = 32


@dataclass(slots=True)
class Report:
    """The outcome of ``check_paths``: findings (sorted by path, line, col), files checked."""

    findings: list[Finding] = field(default_factory=list)
    files: int = 0
    lines: int = 0


def _noqa_codes(line: str) -> frozenset[str] | None:
    """None: no noqa; empty: a bare ``# noqa`` (all codes); else the codes named."""
    at = line.find("# noqa")
    if at < 0:
        at = line.find("#noqa")
        if at < 0:
            return None
    rest = line[at:].split("noqa", 1)[1]
    if not rest.startswith(":"):
        return frozenset()
    codes = set()
    for word in rest[1:].replace(",", " ").split():
        if not (word[:1].isalpha() and word[:1].isupper() and any(c.isdigit() for c in word)):
            break
        codes.add(word)
    return frozenset(codes)


def _suppressed(finding: Finding, lines: Sequence[str]) -> bool:
    for number in {finding.line, finding.end_line}:
        if 0 < number <= len(lines):
            codes = _noqa_codes(lines[number - 1])
            if codes is not None and (not codes or finding.code in codes):
                return True
    return False


def _char_col(lines: Sequence[str], line: int, byte_col: int) -> int:
    """ast's columns count UTF-8 bytes; report characters, as editors do."""
    if 0 < line <= len(lines):
        text = lines[line - 1]
        if not text.isascii():
            return len(text.encode("utf-8")[: byte_col - 1].decode("utf-8", "replace")) + 1
    return byte_col


def _check_text(
    text: str, path: str, codes: frozenset[str]
) -> tuple[list[Finding], ModuleFacts, int]:
    lines = text.splitlines()
    templates: frozenset[tuple[int, int]] = frozenset()
    try:
        try:
            tree = _parse(text, path)
        except SyntaxError:
            rewritten = _tstrings.rewrite(text)
            if rewritten is None:
                raise
            tree = _parse(rewritten[0], path)
            templates = rewritten[1]
    except RecursionError:
        message = "expressions nested too deeply to parse (file not checked)"
        return [Finding(path, 1, 1, SYNTAX_ERROR, message)], ModuleFacts(), len(lines)
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None) or 1
        col = getattr(exc, "offset", None) or 1
        message = getattr(exc, "msg", None) or str(exc)
        return (
            [Finding(path, line, col, SYNTAX_ERROR, f"SyntaxError: {message} (file not checked)")],
            ModuleFacts(),
            len(lines),
        )
    lowered = text.lower()
    if not any(word in lowered for word in _TRIGGERS):
        return [], ModuleFacts(), len(lines)  # parsed (syntax errors count), nothing to find
    try:
        found, facts = analyze(tree, path, templates)
    except RecursionError:
        message = "expressions nested too deeply for the checker (file not checked)"
        return [Finding(path, 1, 1, SYNTAX_ERROR, message)], ModuleFacts(), len(lines)
    out = []
    for f in found:
        if f.code not in codes or _suppressed(f, lines):
            continue
        col = _char_col(lines, f.line, f.col)
        end_col = _char_col(lines, f.end_line, f.end_col)
        if col != f.col or end_col != f.end_col:
            f = Finding(f.path, f.line, col, f.code, f.message, f.end_line, end_col)
        out.append(f)
    facts.unclosed = [(name, f) for name, f in facts.unclosed if f in out]
    return out, facts, len(lines)


def _parse(text: str, path: str) -> ast.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escape sequences in checked code
        return ast.parse(text, filename=path)


def check_source(text: str, path: str = "<string>", config: Config | None = None) -> list[Finding]:
    """Check one module's source text; return its findings (sorted by line, col).

    A pool that this module never closes is reported even if another module might close it;
    ``check_paths`` looks across all the files it checks.
    """
    config = config or Config()
    found, _facts, _lines = _check_text(text, path, config.enabled(path))
    return sorted(found, key=lambda f: (f.line, f.col, f.code))


def _read(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _check_file(path: str, codes: frozenset[str]) -> tuple[list[Finding], ModuleFacts, int]:
    try:
        text = _read(Path(path))
    except OSError as exc:
        return [Finding(path, 1, 1, SYNTAX_ERROR, f"cannot read: {exc.strerror}")], ModuleFacts(), 0
    return _check_text(text, path, codes)


def _check_chunk(
    chunk: list[tuple[str, frozenset[str]]],
) -> list[tuple[list[Finding], ModuleFacts, int]]:
    return [_check_file(path, codes) for path, codes in chunk]


# -- finding files ---------------------------------------------------------------------------


class _GitIgnore:
    """The patterns of one ``.gitignore`` (the common subset: globs, ``/`` anchors, ``!``
    negation, trailing ``/`` for directories), relative to its directory."""

    __slots__ = ("base", "rules")

    def __init__(self, base: Path, text: str) -> None:
        self.base = base
        self.rules: list[tuple[str, bool, bool, bool]] = []  # pattern, negate, dir_only, anchored
        for raw in text.splitlines():
            line = raw.rstrip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            if negate:
                line = line[1:]
            dir_only = line.endswith("/")
            line = line.rstrip("/")
            anchored = "/" in line
            self.rules.append((line.lstrip("/"), negate, dir_only, anchored))

    def ignored(self, path: Path, is_dir: bool) -> bool | None:
        try:
            rel = path.relative_to(self.base).as_posix()
        except ValueError:
            return None
        verdict: bool | None = None
        name = path.name
        for pattern, negate, dir_only, anchored in self.rules:
            if dir_only and not is_dir:
                continue
            target = rel if anchored else name
            if fnmatch(target, pattern) or (
                pattern.startswith("**/") and fnmatch(name, pattern[3:])
            ):
                verdict = not negate
        return verdict


def _excluded(path: Path, config: Config) -> bool:
    patterns = config.exclude
    if not patterns:
        return False
    rel = config.relative(path)
    return any(
        fnmatch(rel, p) or fnmatch(path.name, p) or fnmatch(rel, p.rstrip("/") + "/*")
        for p in patterns
    )


def iter_files(paths: Iterable[Path], config: Config) -> Iterator[Path]:
    """The Python files under ``paths``: ``.gitignore``, ``exclude`` and SKIP_DIRS respected."""
    seen: set[Path] = set()
    for root in paths:
        if root.is_file():
            if root not in seen and not _excluded(root, config):
                seen.add(root)
                yield root
            continue
        if not root.is_dir():
            raise FileNotFoundError(root)
        ignores = _parent_ignores(root)
        yield from _walk(root, ignores, config, seen)


def _parent_ignores(root: Path) -> list[_GitIgnore]:
    """The .gitignore files of ``root``'s ancestors up to the repository's top."""
    found: list[_GitIgnore] = []
    for directory in root.resolve().parents:
        gi = directory / ".gitignore"
        if gi.is_file():
            found.insert(0, _GitIgnore(directory, _read(gi)))
        if (directory / ".git").exists():
            break
    return found


def _walk(
    directory: Path, ignores: list[_GitIgnore], config: Config, seen: set[Path]
) -> Iterator[Path]:
    gi = directory / ".gitignore"
    if gi.is_file():
        ignores = [*ignores, _GitIgnore(directory.resolve(), _read(gi))]
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        path = Path(entry.path)
        is_dir = entry.is_dir()
        if is_dir and entry.name in SKIP_DIRS:
            continue
        if not is_dir and not entry.name.endswith((".py", ".pyi")):
            continue
        resolved = path.resolve()
        verdict = None
        for ignore in ignores:
            got = ignore.ignored(resolved, is_dir)
            if got is not None:
                verdict = got
        if verdict or _excluded(path, config):
            continue
        if is_dir:
            yield from _walk(path, ignores, config, seen)
        elif resolved not in seen:
            seen.add(resolved)
            yield path


def check_paths(
    paths: Iterable[str | Path], config: Config | None = None, jobs: int | None = None
) -> Report:
    """Check every Python file under ``paths``; files in parallel when there are many.

    ``jobs``: worker processes (default: the CPU count; 1 checks in this process).
    """
    config = config or Config()
    files = [str(p) for p in iter_files([Path(p) for p in paths], config)]
    work = [(f, config.enabled(f)) for f in files]
    jobs = jobs or os.cpu_count() or 1
    results: list[tuple[list[Finding], ModuleFacts, int]] = []
    if jobs > 1 and len(work) >= PARALLEL_MIN_FILES:
        chunks = [work[i : i + _CHUNK] for i in range(0, len(work), _CHUNK)]
        # forkserver: forking a process that has threads (an IDE, a test runner) can deadlock,
        # and Python 3.12+ warns about it; the server forks workers from a clean process.
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("forkserver" if "forkserver" in methods else None)
        workers = min(jobs, len(chunks))
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            for part in pool.map(_check_chunk, chunks):
                results.extend(part)
    else:
        results = _check_chunk(work)
    closed: set[str] = set()
    for _found, facts, _n in results:
        closed |= facts.closed
    report = Report(files=len(files))
    for found, facts, n in results:
        report.lines += n
        # a pool another module closes (`from app.db import pool; pool.close()`) is closed
        late = {id(f) for name, f in facts.unclosed if name in closed}
        report.findings.extend(f for f in found if id(f) not in late)
    report.findings.sort(key=lambda f: (f.path, f.line, f.col, f.code))
    return report
