"""``[tool.pgkeel.check]`` in pyproject.toml, merged with the command line's options."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from pgkeel.check._model import RULES
from pgkeel.errors import ConfigError

__all__ = ["Config", "find_pyproject", "load_config"]

_KEYS = frozenset({"select", "ignore", "exclude", "extend-exclude", "per-file-ignores"})


@dataclass(frozen=True, slots=True)
class Config:
    """Which rules run, and which files are skipped (glob patterns, like ruff's ``exclude``)."""

    select: frozenset[str] = frozenset(RULES)
    ignore: frozenset[str] = frozenset()
    exclude: tuple[str, ...] = ()
    per_file_ignores: tuple[tuple[str, frozenset[str]], ...] = ()
    root: Path = field(default_factory=Path.cwd)

    def enabled(self, path: str = "") -> frozenset[str]:
        """The codes that run on ``path``."""
        codes = self.select - self.ignore
        if self.per_file_ignores:
            rel = self.relative(path)
            for pattern, ignored in self.per_file_ignores:
                if _glob_match(rel, pattern):
                    codes -= ignored
        return codes

    def relative(self, path: str | Path) -> str:
        """``path`` relative to the configuration's directory (posix), else as given."""
        p = Path(path)
        try:
            return p.resolve().relative_to(self.root.resolve()).as_posix()
        except (ValueError, OSError):
            return p.as_posix()

    def with_options(
        self,
        select: Iterable[str] = (),
        ignore: Iterable[str] = (),
        exclude: Iterable[str] = (),
    ) -> Config:
        """This configuration with the command line's ``--select/--ignore/--exclude`` on top."""
        sel = _codes(select, "--select")
        return replace(
            self,
            select=sel if sel else self.select,
            ignore=self.ignore | _codes(ignore, "--ignore"),
            exclude=(*self.exclude, *exclude),
        )


def _glob_match(path: str, pattern: str) -> bool:
    from fnmatch import fnmatch

    return fnmatch(path, pattern) or fnmatch(path, pattern.rstrip("/") + "/*")


def _codes(values: Iterable[str], where: str) -> frozenset[str]:
    out: set[str] = set()
    for raw in values:
        for item in str(raw).split(","):
            code = item.strip().upper()
            if not code:
                continue
            matches = {c for c in RULES if c.startswith(code)} if code.startswith("PGK") else set()
            if not matches:
                raise ConfigError(
                    f"{where}: unknown rule {item.strip()!r}; the rules are "
                    + ", ".join(sorted(RULES))
                )
            out |= matches
    return frozenset(out)


def find_pyproject(start: Path) -> Path | None:
    """The nearest pyproject.toml at or above ``start``."""
    start = start.resolve()
    for directory in (start, *start.parents) if start.is_dir() else start.parents:
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load_config(pyproject: Path | None) -> Config:
    """Read ``[tool.pgkeel.check]``; defaults when the file or the table is absent."""
    if pyproject is None:
        return Config()
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {pyproject}: {exc}") from exc
    table = data.get("tool", {}).get("pgkeel", {}).get("check", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{pyproject}: [tool.pgkeel.check] must be a table")
    unknown = set(table) - _KEYS
    if unknown:
        raise ConfigError(
            f"{pyproject}: unknown key(s) in [tool.pgkeel.check]: {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(_KEYS))}"
        )
    where = f"{pyproject} [tool.pgkeel.check]"

    def strings(key: str) -> list[str]:
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: {key} must be a list of strings")
        return value

    per_file = table.get("per-file-ignores", {})
    if not isinstance(per_file, dict):
        raise ConfigError(f"{where}: per-file-ignores must be a table of glob = [codes]")
    select = _codes(strings("select"), f"{where} select")
    return Config(
        select=select or frozenset(RULES),
        ignore=_codes(strings("ignore"), f"{where} ignore"),
        exclude=(*strings("exclude"), *strings("extend-exclude")),
        per_file_ignores=tuple(
            (str(glob), _codes(codes if isinstance(codes, list) else [codes], where))
            for glob, codes in per_file.items()
        ),
        root=pyproject.parent,
    )
