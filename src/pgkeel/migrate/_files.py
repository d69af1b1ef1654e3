"""Migration files: discovery, the ``NNNN_name.sql|py`` naming rule, checksums, the next file's
name. Pure (reads files, never talks to a server)."""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pgkeel.errors import MigrationError

__all__ = ["Migration", "checksum", "discover", "new_file", "normalise"]

#: A file name, not SQL: a version number, an underscore, a name, then .sql or .py.
_NAME = re.compile(r"(?P<version>[0-9]+)_(?P<name>[A-Za-z0-9][A-Za-z0-9_\-]*)\.(?P<ext>sql|py)")
_PATTERN = "NNNN_name.sql or NNNN_name.py (digits, an underscore, letters/digits/_/-)"


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file: its version, name, kind, text (line endings normalised), checksum."""

    version: int
    name: str
    path: Path
    kind: Literal["sql", "python"]
    text: str
    checksum: str

    @property
    def label(self) -> str:
        """``0003_add_tags`` style: how messages name this migration."""
        return self.path.stem


def normalise(raw: bytes, path: Path) -> str:
    """The file's text with a BOM dropped and CRLF/CR line endings made LF, so that a checkout
    on Windows does not look like an edit."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MigrationError(
            f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def checksum(text: str) -> str:
    """SHA-256 (hex) of a migration's normalised text."""
    return hashlib.sha256(text.encode()).hexdigest()


def discover(directory: str | Path) -> list[Migration]:
    """Every migration in ``directory``, in version order; raise :class:`MigrationError` for a
    missing directory, a misnamed file, a duplicate or missing version (a gap), an empty file.

    Files that are neither ``.sql`` nor ``.py`` (a README), hidden files and ``__init__.py`` are
    ignored; a ``.sql``/``.py`` file that does not fit the pattern is an error rather than
    silently skipped, since a typo in a name would otherwise drop a migration.
    """
    root = Path(directory)
    if not root.is_dir():
        raise MigrationError(
            f"migrations directory {str(root)!r} not found; create it (`pgkeel migrate new NAME`) "
            "or point --dir / PGKEEL_MIGRATIONS at it"
        )
    found: dict[int, Migration] = {}
    for path in sorted(root.iterdir()):
        if path.name.startswith(".") or path.name == "__init__.py" or not path.is_file():
            continue
        if path.suffix not in (".sql", ".py"):
            continue
        match = _NAME.fullmatch(path.name)
        if match is None:
            raise MigrationError(f"{path}: file name does not fit {_PATTERN}; rename it")
        version = int(match["version"])
        text = normalise(path.read_bytes(), path)
        if not text.strip():
            raise MigrationError(f"{path}: empty migration; write its SQL or delete the file")
        migration = Migration(
            version=version,
            name=match["name"],
            path=path,
            kind="sql" if match["ext"] == "sql" else "python",
            text=text,
            checksum=checksum(text),
        )
        if version in found:
            raise MigrationError(
                f"duplicate migration version {version}: {found[version].path.name} and "
                f"{path.name}; renumber one of them"
            )
        found[version] = migration
    ordered = [found[v] for v in sorted(found)]
    for before, after in itertools.pairwise(ordered):
        if after.version != before.version + 1:
            raise MigrationError(
                f"gap in migration versions: {before.path.name} is followed by "
                f"{after.path.name} (expected version {before.version + 1}); renumber the files "
                "so that versions follow each other"
            )
    return ordered


def new_file(directory: str | Path, name: str, *, kind: Literal["sql", "python"] = "sql") -> Path:
    """Create the next numbered migration file (``0004_add_index.sql``) and return its path."""
    root = Path(directory)
    slug = "_".join(name.strip().lower().replace("-", " ").split())
    if not slug or _NAME.fullmatch(f"1_{slug}.sql") is None:
        raise MigrationError(
            f"migration name {name!r} must be letters, digits, spaces, '_' or '-'; "
            "e.g. `pgkeel migrate new add_tags`"
        )
    root.mkdir(parents=True, exist_ok=True)
    existing = discover(root)
    version = existing[-1].version + 1 if existing else 1
    width = max(4, *(len(m.path.name.split("_", 1)[0]) for m in existing)) if existing else 4
    path = root / f"{version:0{width}d}_{slug}.{'sql' if kind == 'sql' else 'py'}"
    if kind == "sql":
        body = f"-- {slug}\n"
    else:
        body = (
            f'"""{slug}"""\n\n\ndef up(tx):\n'
            "    # tx is a pgkeel.Transaction: tx.execute(...), tx.fetch_all(...).\n"
            "    pass\n"
        )
    with path.open("x", encoding="utf-8") as out:
        out.write(body)
    return path
