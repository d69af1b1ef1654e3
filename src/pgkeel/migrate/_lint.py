"""The migration linter: rules that catch statements which lock a busy table for long, rewrite
it, or break the code still running against it, each naming the safe alternative. Pure: works
on parse trees from ``_split``, no server involved.

A statement on a table created earlier in the same migration is not checked by the locking
rules (the table is new and empty). ``-- pgkeel: allow RULE reason`` before (or inside) a
statement silences one rule for that statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pgkeel.migrate import _split
from pgkeel.migrate._rules import RULES, Finding

# pglast through _split, which turns a missing pglast into the one-line install hint.
ast = _split.ast
AlterTableType = _split.AlterTableType
ConstrType = _split.ConstrType
NullTestType = _split.NullTestType
ObjectType = _split.ObjectType
TransactionStmtKind = _split.TransactionStmtKind

__all__ = ["lint"]

#: Functions whose result changes per row: as a column default they force a table rewrite.
_VOLATILE = frozenset(
    {
        "random",
        "gen_random_uuid",
        "uuid_generate_v1",
        "uuid_generate_v1mc",
        "uuid_generate_v4",
        "uuidv4",
        "uuidv7",
        "clock_timestamp",
        "timeofday",
        "nextval",
        "txid_current",
        "setseed",
        "random_normal",
    }
)
_SERIAL = frozenset({"serial", "bigserial", "smallserial", "serial4", "serial8", "serial2"})


@dataclass
class _Context:
    """What the linter knows across files (read in version order)."""

    #: (table, column) pairs with a validated ``CHECK (col IS NOT NULL)``.
    validated: set[tuple[str, str]] = field(default_factory=set)
    #: (table, constraint) -> column for CHECK (col IS NOT NULL) constraints seen.
    not_null_checks: dict[tuple[str, str], str] = field(default_factory=dict)


def _rel(node: Any) -> str:
    return str(getattr(node, "relname", "") or "")


def _strong_lock(node: Any) -> str | None:
    """The table a statement takes a strong (write-blocking) lock on, if any."""
    match node:
        case ast.AlterTableStmt(relation=rel) | ast.LockStmt(relations=(rel, *_)):
            return _rel(rel)
        case ast.IndexStmt(concurrent=False, relation=rel):
            return _rel(rel)
        case ast.RenameStmt(relation=rel) if rel is not None:
            return _rel(rel)
        case ast.ClusterStmt(relation=rel) if rel is not None:
            return _rel(rel)
        case ast.DropStmt(removeType=ObjectType.OBJECT_TABLE, objects=objects):
            return _qualified_last(objects[0]) if objects else None
        case ast.VacuumStmt(is_vacuumcmd=True, options=options) if _has_option(options, "full"):
            return "(vacuum full)"
    return None


def _has_option(options: Iterable[Any] | None, name: str) -> bool:
    return any(getattr(o, "defname", None) == name for o in options or ())


def _qualified_last(names: Any) -> str:
    parts = [getattr(n, "sval", "") for n in names or ()]
    return str(parts[-1]) if parts else ""


def _volatile(expr: Any) -> str | None:
    """The volatile function in ``expr``, if any (a walk over the expression's tree)."""
    if isinstance(expr, ast.FuncCall):
        name = _qualified_last(expr.funcname).lower()
        if name in _VOLATILE:
            return name
    if isinstance(expr, ast.Node):
        for value in (getattr(expr, f, None) for f in expr):
            found = _walk_volatile(value)
            if found:
                return found
    return None


def _walk_volatile(value: Any) -> str | None:
    if isinstance(value, tuple | list):
        for item in value:
            found = _walk_volatile(item)
            if found:
                return found
        return None
    if isinstance(value, ast.Node):
        return _volatile(value)
    return None


def _not_null_column(expr: Any) -> str | None:
    """``col`` when ``expr`` is ``col IS NOT NULL``."""
    if (
        isinstance(expr, ast.NullTest)
        and isinstance(expr.arg, ast.ColumnRef)
        and expr.nulltesttype == NullTestType.IS_NOT_NULL
    ):
        return _qualified_last(expr.arg.fields)
    return None


class _FileLinter:
    def __init__(self, parsed: _split.ParsedFile, ctx: _Context, lock_timeout_set: bool):
        self.parsed = parsed
        self.ctx = ctx
        self.lock_timeout_set = lock_timeout_set
        self.created: set[str] = set()
        self.created_indexes: set[str] = set()
        self.in_explicit_tx = False
        self.findings: list[Finding] = []
        self.ddl_line: int | None = None
        self.dml_line: int | None = None

    def report(self, stmt: _split.Statement, rule: str, message: str) -> None:
        if rule in stmt.allow:
            return
        self.findings.append(
            Finding(str(self.parsed.path), stmt.line, rule, RULES[rule].severity, message)
        )

    def existing(self, table: str | None) -> bool:
        return bool(table) and table not in self.created

    def run(self) -> list[Finding]:
        for stmt in self.parsed.statements:
            for rule, reason in stmt.allow.items():
                if not reason:
                    self.findings.append(
                        Finding(
                            str(self.parsed.path),
                            stmt.line,
                            "allow-without-reason",
                            "warning",
                            f"say why {rule} is safe here: `-- pgkeel: allow {rule} <reason>`",
                        )
                    )
            self.statement(stmt)
        if (
            self.parsed.transactional
            and self.ddl_line is not None
            and self.dml_line is not None
            and not self.in_explicit_tx
        ):
            first = min(self.ddl_line, self.dml_line)
            stmt = next(s for s in self.parsed.statements if s.line == first)
            self.report(
                stmt,
                "mixed-ddl-dml",
                f"this migration changes an existing table's schema (line {self.ddl_line}) and "
                f"rewrites its rows (line {self.dml_line}) in one transaction: the DDL's lock is "
                "held until the UPDATE ends; backfill in a migration of its own, in batches",
            )
        return self.findings

    def statement(self, stmt: _split.Statement) -> None:
        node = stmt.node
        table = _strong_lock(node)
        if (
            table
            and not self.lock_timeout_set
            and self.existing(table)
            and not isinstance(node, ast.LockStmt)
        ):
            self.report(
                stmt,
                "missing-lock-timeout",
                f"takes a strong lock on {table} with no lock_timeout: behind a long query it "
                "queues every other query on the table; `SET lock_timeout = '5s';` first",
            )
        if stmt.no_transaction and self.in_explicit_tx and stmt.no_transaction != "VACUUM":
            self.report(
                stmt,
                "concurrently-in-transaction",
                f"{stmt.no_transaction} cannot run inside BEGIN ... COMMIT; move it out of the "
                "transaction (a migration of its own)",
            )
        match node:
            case ast.TransactionStmt(kind=kind):
                if kind in (
                    TransactionStmtKind.TRANS_STMT_BEGIN,
                    TransactionStmtKind.TRANS_STMT_START,
                ):
                    self.in_explicit_tx = True
                elif kind in (
                    TransactionStmtKind.TRANS_STMT_COMMIT,
                    TransactionStmtKind.TRANS_STMT_ROLLBACK,
                ):
                    self.in_explicit_tx = False
            case ast.VariableSetStmt(name="lock_timeout"):
                self.lock_timeout_set = True
            case ast.CreateStmt(relation=rel):
                self.created.add(_rel(rel))
            case ast.CreateTableAsStmt(into=ast.IntoClause(rel=rel)):
                self.created.add(_rel(rel))
            case ast.IndexStmt(concurrent=concurrent, relation=rel, idxname=idxname):
                if idxname:
                    self.created_indexes.add(idxname)
                if not concurrent and self.existing(_rel(rel)):
                    self.report(
                        stmt,
                        "create-index",
                        f"CREATE INDEX blocks writes to {_rel(rel)} for the whole build; use "
                        "CREATE INDEX CONCURRENTLY (pgkeel runs it outside a transaction; keep "
                        "it in a migration of its own)",
                    )
            case ast.DropStmt(removeType=ObjectType.OBJECT_INDEX, concurrent=False, objects=objs):
                names = [_qualified_last(o) for o in objs or ()]
                if any(n not in self.created_indexes for n in names):
                    self.report(
                        stmt,
                        "drop-index",
                        "DROP INDEX blocks reads and writes on its table; use DROP INDEX "
                        "CONCURRENTLY (in a migration of its own)",
                    )
            case ast.DropStmt(removeType=ObjectType.OBJECT_TABLE, objects=objs):
                names = [_qualified_last(o) for o in objs or ()]
                if any(self.existing(n) for n in names):
                    self.report(
                        stmt,
                        "drop-table",
                        f"running code may still read {', '.join(names)}; drop it in a release "
                        "after the code stopped using it",
                    )
            case ast.RenameStmt(renameType=ObjectType.OBJECT_COLUMN, relation=rel, subname=col):
                if self.existing(_rel(rel)):
                    self.report(
                        stmt,
                        "rename-column",
                        f"running code still uses {_rel(rel)}.{col}; add the new column, write "
                        "both, backfill, switch reads, then drop the old one (expand/contract)",
                    )
            case ast.RenameStmt(renameType=ObjectType.OBJECT_TABLE, relation=rel):
                if self.existing(_rel(rel)):
                    self.report(
                        stmt,
                        "rename-table",
                        f"running code still uses {_rel(rel)}; rename in steps (e.g. a view "
                        "with the old name) or after the code moved to the new name",
                    )
            case ast.AlterTableStmt(relation=rel, cmds=cmds):
                name = _rel(rel)
                for cmd in cmds or ():
                    self.alter(stmt, name, cmd)
            case ast.VacuumStmt(is_vacuumcmd=True, options=options) if _has_option(options, "full"):
                self.report(
                    stmt,
                    "vacuum-full",
                    "VACUUM FULL rewrites the table under ACCESS EXCLUSIVE (no reads, no "
                    "writes); use pg_repack or plain VACUUM",
                )
            case ast.ClusterStmt():
                self.report(
                    stmt,
                    "cluster",
                    "CLUSTER rewrites the table under ACCESS EXCLUSIVE (no reads, no writes); "
                    "use pg_repack",
                )
            case ast.ReindexStmt(params=params) if not _has_option(params, "concurrently"):
                self.report(
                    stmt,
                    "reindex",
                    "REINDEX blocks writes to the table (and reads that would use the index) "
                    "until it ends; use REINDEX ... CONCURRENTLY (in a migration of its own)",
                )
            case ast.LockStmt():
                self.report(
                    stmt,
                    "lock-table",
                    "LOCK TABLE holds the lock until the migration commits and queues every "
                    "query behind it; drop it, or keep the migration tiny with a short "
                    "lock_timeout",
                )
            case ast.UpdateStmt(relation=rel) | ast.DeleteStmt(relation=rel):
                if self.existing(_rel(rel)) and self.dml_line is None:
                    self.dml_line = stmt.line

    def alter(self, stmt: _split.Statement, table: str, cmd: Any) -> None:
        subtype = cmd.subtype
        existing = self.existing(table)
        if existing and subtype not in (
            AlterTableType.AT_ValidateConstraint,
            AlterTableType.AT_ColumnDefault,
        ):
            self.ddl_line = self.ddl_line or stmt.line
        if subtype == AlterTableType.AT_AddColumn:
            self.add_column(stmt, table, cmd.def_, existing)
        elif subtype == AlterTableType.AT_AlterColumnType and existing:
            self.report(
                stmt,
                "alter-column-type",
                f"changing {table}.{cmd.name}'s type rewrites the table and its indexes under "
                "ACCESS EXCLUSIVE; add a new column, backfill it in batches, then switch "
                "(allow it for a change PostgreSQL does without a rewrite, e.g. varchar(n) -> "
                "text)",
            )
        elif subtype == AlterTableType.AT_SetNotNull and existing:
            if (table, cmd.name) not in self.ctx.validated:
                self.report(
                    stmt,
                    "set-not-null",
                    f"SET NOT NULL scans all of {table} under ACCESS EXCLUSIVE; first ADD "
                    f"CONSTRAINT ... CHECK ({cmd.name} IS NOT NULL) NOT VALID, VALIDATE it in "
                    "the next migration, then SET NOT NULL (no scan)",
                )
        elif subtype == AlterTableType.AT_DropColumn and existing:
            self.report(
                stmt,
                "drop-column",
                f"running code may still read {table}.{cmd.name}; stop using it in the code "
                "first, and drop it in a later release",
            )
        elif subtype == AlterTableType.AT_AddConstraint:
            self.add_constraint(stmt, table, cmd.def_, existing)
        elif (
            subtype == AlterTableType.AT_DetachPartition
            and existing
            and not getattr(cmd.def_, "concurrent", False)
        ):
            self.report(
                stmt,
                "detach-partition",
                f"DETACH PARTITION takes ACCESS EXCLUSIVE on {table}; use DETACH PARTITION "
                "... CONCURRENTLY (PostgreSQL 14+, a migration of its own)",
            )
        elif subtype == AlterTableType.AT_ValidateConstraint:
            column = self.ctx.not_null_checks.get((table, cmd.name))
            if column:
                self.ctx.validated.add((table, column))

    def add_column(self, stmt: _split.Statement, table: str, col: Any, existing: bool) -> None:
        constraints = list(col.constraints or ())
        kinds = {c.contype for c in constraints}
        type_name = _qualified_last(col.typeName.names if col.typeName else ()).lower()
        if not existing:
            return
        default = next((c for c in constraints if c.contype == ConstrType.CONSTR_DEFAULT), None)
        if (
            ConstrType.CONSTR_NOTNULL in kinds
            and default is None
            and not kinds & {ConstrType.CONSTR_IDENTITY, ConstrType.CONSTR_GENERATED}
            and type_name not in _SERIAL
        ):
            self.report(
                stmt,
                "add-column-not-null",
                f"adding NOT NULL column {col.colname} with no default fails on a table with "
                "rows; give it a constant DEFAULT, or add it nullable, backfill, then SET NOT "
                "NULL after a validated CHECK",
            )
        volatile = _volatile(default.raw_expr) if default is not None else None
        why = (
            f"its default calls {volatile}()"
            if volatile
            else f"{type_name} fills it from a sequence"
            if type_name in _SERIAL
            else "a stored generated column is computed for every row"
            if ConstrType.CONSTR_GENERATED in kinds
            else "an identity column is filled for every row"
            if ConstrType.CONSTR_IDENTITY in kinds
            else None
        )
        if why:
            self.report(
                stmt,
                "add-column-volatile-default",
                f"adding {col.colname} rewrites all of {table} under ACCESS EXCLUSIVE ({why}); "
                "add the column with no default, SET DEFAULT in a separate statement, and "
                "backfill existing rows in batches",
            )
        if kinds & {ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY}:
            self.report(
                stmt,
                "unique-constraint",
                f"a UNIQUE/PRIMARY KEY column builds its index on {table} while blocking "
                "writes; add the column, CREATE UNIQUE INDEX CONCURRENTLY, then ADD "
                "CONSTRAINT ... USING INDEX",
            )
        if ConstrType.CONSTR_FOREIGN in kinds:
            self.report(
                stmt,
                "constraint-not-valid",
                f"a REFERENCES column on {table} locks the referenced table too; add the "
                "column, then ADD CONSTRAINT ... FOREIGN KEY ... NOT VALID and VALIDATE it in "
                "the next migration",
            )

    def add_constraint(self, stmt: _split.Statement, table: str, con: Any, existing: bool) -> None:
        if con.contype == ConstrType.CONSTR_CHECK:
            column = _not_null_column(con.raw_expr)
            if column and con.conname:
                self.ctx.not_null_checks[(table, con.conname)] = column
            if column and (not con.skip_validation or not existing):
                self.ctx.validated.add((table, column))
        if not existing:
            return
        if con.contype in (ConstrType.CONSTR_FOREIGN, ConstrType.CONSTR_CHECK) and not (
            con.skip_validation
        ):
            kind = "FOREIGN KEY" if con.contype == ConstrType.CONSTR_FOREIGN else "CHECK"
            self.report(
                stmt,
                "constraint-not-valid",
                f"adding a {kind} checks every row of {table} while blocking writes; add it "
                "with NOT VALID, then `ALTER TABLE ... VALIDATE CONSTRAINT` in the next "
                "migration (which does not block writes)",
            )
        elif con.contype in (ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY) and not (
            con.indexname
        ):
            kind = "UNIQUE" if con.contype == ConstrType.CONSTR_UNIQUE else "PRIMARY KEY"
            self.report(
                stmt,
                "unique-constraint",
                f"adding {kind} builds its index on {table} while blocking writes; CREATE "
                f"UNIQUE INDEX CONCURRENTLY first (its own migration), then ADD CONSTRAINT ... "
                f"{kind} USING INDEX name",
            )


def lint(files: Sequence[_split.ParsedFile], *, lock_timeout_set: bool = True) -> list[Finding]:
    """Lint parsed migration files, read in order (a constraint validated in one file counts
    for the next). ``lock_timeout_set``: the runner sets lock_timeout itself (pgkeel does), so
    ``missing-lock-timeout`` is off; pass False to lint files another tool will run."""
    ctx = _Context()
    findings: list[Finding] = []
    for parsed in files:
        findings.extend(_FileLinter(parsed, ctx, lock_timeout_set).run())
    return findings
