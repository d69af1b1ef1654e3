"""Statement splitting with PostgreSQL's own parser (pglast wraps libpg_query), the
``-- pgkeel: ...`` directives in comments, and whether each statement can run inside a
transaction, read from the parse tree. Pure: no server involved.

Splitting on the parser's statement boundaries is what keeps ``$$`` bodies, ``E''`` strings,
quoted identifiers and comments with semicolons in one piece; comments come from the parser's
scanner too, so a ``--`` inside a string is never taken for a directive.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgkeel.errors import MigrationError
from pgkeel.migrate._rules import RULES

try:
    import pglast
    from pglast import ast
    from pglast.enums import (
        AlterTableType,
        ConstrType,
        NullTestType,
        ObjectType,
        TransactionStmtKind,
    )
    from pglast.parser import ParseError, scan
except ImportError as exc:
    raise ImportError(
        "pgkeel migrate needs pglast (PostgreSQL's parser): pip install 'pgkeel[migrate]'"
    ) from exc

__all__ = [
    # pglast's names, for _lint (so that a missing pglast gives the install hint above)
    "AlterTableType",
    "ConstrType",
    "NullTestType",
    "ObjectType",
    "ParsedFile",
    "Statement",
    "TransactionStmtKind",
    "ast",
    "check_runnable",
    "non_transactional",
    "parse",
]

_DIRECTIVE = "pgkeel:"


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of a migration file: its text, 1-based line, parse tree node, the lint
    rules a comment allows for it (rule -> reason), and why it cannot run in a transaction."""

    sql: str
    line: int
    node: Any
    allow: Mapping[str, str] = field(default_factory=dict)
    #: e.g. "CREATE INDEX CONCURRENTLY"; None when the statement can run in a transaction.
    no_transaction: str | None = None

    @property
    def head(self) -> str:
        """The statement's first line, shortened: how messages quote it."""
        first = self.sql.strip().splitlines()[0] if self.sql.strip() else ""
        return first if len(first) <= 60 else first[:57] + "..."


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """A migration file split into statements, with its header directives."""

    path: Path
    statements: tuple[Statement, ...]
    #: ``-- pgkeel: no-transaction`` before the first statement.
    declared_no_transaction: bool = False

    @property
    def transactional(self) -> bool:
        """Whether the migration runs as one transaction (see :func:`parse` for the rule)."""
        return not self.declared_no_transaction and not any(
            s.no_transaction for s in self.statements
        )


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, max(0, offset)) + 1


def non_transactional(node: Any, server_version: int | None = None) -> str | None:
    """What makes ``node`` impossible inside a transaction block, or None if nothing does."""
    match node:
        case ast.IndexStmt(concurrent=True):
            return "CREATE INDEX CONCURRENTLY"
        case ast.DropStmt(concurrent=True):
            return "DROP INDEX CONCURRENTLY"
        case ast.ReindexStmt(params=params) if any(
            getattr(p, "defname", None) == "concurrently" for p in params or ()
        ):
            return "REINDEX CONCURRENTLY"
        case ast.AlterTableStmt(cmds=cmds) if any(
            isinstance(c.def_, ast.PartitionCmd) and c.def_.concurrent for c in cmds or ()
        ):
            return "DETACH PARTITION CONCURRENTLY"
        case ast.VacuumStmt(is_vacuumcmd=True):
            return "VACUUM"
        case ast.CreatedbStmt():
            return "CREATE DATABASE"
        case ast.DropdbStmt():
            return "DROP DATABASE"
        case ast.CreateTableSpaceStmt():
            return "CREATE TABLESPACE"
        case ast.DropTableSpaceStmt():
            return "DROP TABLESPACE"
        case ast.AlterSystemStmt():
            return "ALTER SYSTEM"
        case ast.CreateSubscriptionStmt():
            return "CREATE SUBSCRIPTION"
        case ast.DropSubscriptionStmt():
            return "DROP SUBSCRIPTION"
        case ast.AlterEnumStmt(newVal=str()) if server_version is not None and (
            server_version < 120000
        ):
            # PostgreSQL 12 allows ADD VALUE in a transaction (the value is usable after
            # COMMIT); older servers refuse it.
            return "ALTER TYPE ... ADD VALUE"
    return None


def _directives(comment: str, path: Path, line: int) -> tuple[bool, dict[str, str]]:
    """Parse one comment's ``pgkeel: ...`` directive: (no-transaction?, allowed rules)."""
    body = comment.removeprefix("--").removeprefix("/*").removesuffix("*/").strip()
    if not body.lower().startswith(_DIRECTIVE):
        return False, {}
    words = body[len(_DIRECTIVE) :].split(None, 2)
    if words and words[0].lower() == "no-transaction" and len(words) == 1:
        return True, {}
    if len(words) >= 2 and words[0].lower() == "allow":
        rules = [r for r in words[1].split(",") if r]
        reason = words[2].strip() if len(words) > 2 else ""
        unknown = [r for r in rules if r not in RULES]
        if unknown:
            raise MigrationError(
                f"{path}:{line}: unknown lint rule {unknown[0]!r} in `-- pgkeel: allow`; "
                f"known rules: {', '.join(sorted(RULES))}"
            )
        return False, dict.fromkeys(rules, reason)
    raise MigrationError(
        f"{path}:{line}: unknown pgkeel directive {body!r}; write `-- pgkeel: no-transaction` "
        "(before the first statement) or `-- pgkeel: allow RULE reason`"
    )


def parse(text: str, path: Path, server_version: int | None = None) -> ParsedFile:
    """Split ``text`` (a migration file's SQL) into statements; raise :class:`MigrationError`
    naming the file, the line and the parser's message for SQL that does not parse, and for a
    file without a statement."""
    try:
        raw = pglast.parse_sql(text)
        tokens = scan(text)
    except ParseError as exc:
        message = exc.args[0] if exc.args else "syntax error"
        offset = exc.args[1] if len(exc.args) > 1 else 0
        raise MigrationError(
            f"{path}:{_line(text, int(offset))}: {message}; nothing was run"
        ) from None
    comments = [(t.start, t.end + 1) for t in tokens if t.name in ("SQL_COMMENT", "C_COMMENT")]
    statements: list[Statement] = []
    declared = False
    pending = list(comments)
    for item in raw:
        start = item.stmt_location or 0
        end = start + item.stmt_len if item.stmt_len else len(text)
        allow: dict[str, str] = {}
        # Comments before this statement (after the previous one) or inside it belong to it.
        while pending and pending[0][0] < end:
            c_start, c_end = pending.pop(0)
            no_tx, rules = _directives(text[c_start:c_end], path, _line(text, c_start))
            if no_tx:
                if statements:
                    raise MigrationError(
                        f"{path}:{_line(text, c_start)}: `-- pgkeel: no-transaction` must come "
                        "before the first statement"
                    )
                declared = True
            allow.update(rules)
        statements.append(
            Statement(
                sql=text[start:end],
                line=_line(text, start),
                node=item.stmt,
                allow=allow,
                no_transaction=non_transactional(item.stmt, server_version),
            )
        )
    for c_start, c_end in pending:  # comments after the last statement: still checked
        no_tx, _ = _directives(text[c_start:c_end], path, _line(text, c_start))
        if no_tx and statements:
            raise MigrationError(
                f"{path}:{_line(text, c_start)}: `-- pgkeel: no-transaction` must come "
                "before the first statement"
            )
    if not statements:
        raise MigrationError(f"{path}: no SQL statement in the file; write its SQL or delete it")
    return ParsedFile(path=path, statements=tuple(statements), declared_no_transaction=declared)


def check_runnable(parsed: ParsedFile) -> None:
    """Refuse what pgkeel cannot run safely: transaction control statements (pgkeel wraps each
    migration itself) and a file that mixes statements which need a transaction with ones that
    cannot run in one."""
    for stmt in parsed.statements:
        if isinstance(stmt.node, ast.TransactionStmt) and stmt.node.kind in (
            TransactionStmtKind.TRANS_STMT_BEGIN,
            TransactionStmtKind.TRANS_STMT_START,
            TransactionStmtKind.TRANS_STMT_COMMIT,
            TransactionStmtKind.TRANS_STMT_ROLLBACK,
            TransactionStmtKind.TRANS_STMT_COMMIT_PREPARED,
            TransactionStmtKind.TRANS_STMT_PREPARE,
        ):
            raise MigrationError(
                f"{parsed.path}:{stmt.line}: {stmt.head!r}: pgkeel runs each migration in its "
                "own transaction; remove BEGIN/COMMIT (for statements that cannot run in a "
                "transaction, put `-- pgkeel: no-transaction` at the top of the file)"
            )
    if parsed.declared_no_transaction:
        return
    blocking = [s for s in parsed.statements if s.no_transaction]
    if blocking and len(blocking) != len(parsed.statements):
        first = blocking[0]
        lines = ", ".join(str(s.line) for s in blocking)
        raise MigrationError(
            f"{parsed.path}:{first.line}: {first.no_transaction} cannot run inside a "
            "transaction, and the other statements of this migration need one; move "
            f"{'it' if len(blocking) == 1 else 'lines ' + lines} "
            "into a migration file of its own (`pgkeel migrate new NAME`), or put "
            "`-- pgkeel: no-transaction` at the top to run every statement on its own"
        )
