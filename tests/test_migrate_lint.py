"""The migration linter: every rule with a statement it flags and a safe one it does not (no
server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgkeel.migrate import RULES
from pgkeel.migrate._lint import lint
from pgkeel.migrate._split import parse


def _rules(*files: str, lock_timeout_set: bool = True) -> list[str]:
    parsed = [parse(text, Path(f"{i + 1:04d}_m.sql")) for i, text in enumerate(files)]
    return [f.rule for f in lint(parsed, lock_timeout_set=lock_timeout_set)]


CASES = {
    "create-index": ("CREATE INDEX i ON t (a);", "CREATE INDEX CONCURRENTLY i ON t (a);"),
    "drop-index": ("DROP INDEX i;", "DROP INDEX CONCURRENTLY i;"),
    "add-column-not-null": (
        "ALTER TABLE t ADD COLUMN b int NOT NULL;",
        "ALTER TABLE t ADD COLUMN b int NOT NULL DEFAULT 0;",
    ),
    "add-column-volatile-default": (
        "ALTER TABLE t ADD COLUMN b uuid DEFAULT gen_random_uuid();",
        "ALTER TABLE t ADD COLUMN b timestamptz DEFAULT now();",
    ),
    "alter-column-type": (
        "ALTER TABLE t ALTER COLUMN a TYPE bigint;",
        "ALTER TABLE t ALTER COLUMN a SET DEFAULT 1;",
    ),
    "set-not-null": (
        "ALTER TABLE t ALTER COLUMN a SET NOT NULL;",
        "ALTER TABLE t ALTER COLUMN a DROP NOT NULL;",
    ),
    "constraint-not-valid": (
        "ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES u (id);",
        "ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES u (id) NOT VALID;",
    ),
    "unique-constraint": (
        "ALTER TABLE t ADD CONSTRAINT k UNIQUE (a);",
        "ALTER TABLE t ADD CONSTRAINT k UNIQUE USING INDEX t_a;",
    ),
    "rename-column": ("ALTER TABLE t RENAME COLUMN a TO b;", "ALTER INDEX i RENAME TO j;"),
    "rename-table": ("ALTER TABLE t RENAME TO u;", "ALTER SEQUENCE s RENAME TO s2;"),
    "drop-column": ("ALTER TABLE t DROP COLUMN a;", "ALTER TABLE t ALTER COLUMN a DROP DEFAULT;"),
    "drop-table": ("DROP TABLE t;", "DROP VIEW v;"),
    "vacuum-full": ("VACUUM FULL t;", "VACUUM t;"),
    "cluster": ("CLUSTER t USING i;", "ANALYZE t;"),
    "lock-table": ("LOCK TABLE t IN ACCESS EXCLUSIVE MODE;", "SELECT 1;"),
    "reindex": ("REINDEX INDEX i;", "REINDEX INDEX CONCURRENTLY i;"),
    "detach-partition": (
        "ALTER TABLE p DETACH PARTITION c;",
        "ALTER TABLE p DETACH PARTITION c CONCURRENTLY;",
    ),
}


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_flags_the_risky_statement_and_not_the_safe_one(rule: str) -> None:
    """Each rule fires on its statement (on an existing table) and not on the safe form."""
    risky, safe = CASES[rule]
    assert rule in _rules(risky)
    assert rule not in _rules(safe)


def test_every_rule_is_tested_here() -> None:
    """No rule ships without a case in this file."""
    others = {
        "missing-lock-timeout",
        "concurrently-in-transaction",
        "mixed-ddl-dml",
        "allow-without-reason",
    }
    assert set(RULES) == set(CASES) | others


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE t ADD COLUMN b int DEFAULT nextval('s');",
        "ALTER TABLE t ADD COLUMN b bigserial;",
        "ALTER TABLE t ADD COLUMN b int GENERATED ALWAYS AS (a * 2) STORED;",
        "ALTER TABLE t ADD COLUMN b float8 DEFAULT (random() * 10)::int;",
    ],
)
def test_rewriting_column_additions(sql: str) -> None:
    """Sequences, stored generated columns and volatile calls inside expressions all rewrite."""
    assert "add-column-volatile-default" in _rules(sql)


def test_column_level_unique_and_references() -> None:
    """ADD COLUMN ... UNIQUE / REFERENCES on an existing table are flagged like constraints."""
    assert _rules("ALTER TABLE t ADD COLUMN b int UNIQUE;") == ["unique-constraint"]
    assert _rules("ALTER TABLE t ADD COLUMN b int REFERENCES u (id);") == ["constraint-not-valid"]


def test_table_created_in_the_same_migration_is_not_flagged() -> None:
    """Locking rules skip a table created earlier in the same migration (new and empty)."""
    assert (
        _rules(
            "CREATE TABLE n (a int);\nCREATE INDEX ON n (a);\n"
            "ALTER TABLE n ADD COLUMN b int NOT NULL;\nALTER TABLE n ALTER COLUMN a TYPE bigint;\n"
            "ALTER TABLE n ADD CONSTRAINT k UNIQUE (a);\nALTER TABLE n RENAME COLUMN a TO c;\n"
            "DROP TABLE n;"
        )
        == []
    )
    # ...but the same statements on a table created by an earlier migration are.
    assert "create-index" in _rules("CREATE TABLE n (a int);", "CREATE INDEX ON n (a);")


def test_set_not_null_after_a_validated_check_in_an_earlier_migration() -> None:
    """SET NOT NULL passes once a CHECK (col IS NOT NULL) was validated, in any earlier file."""
    add = "ALTER TABLE t ADD CONSTRAINT a_nn CHECK (a IS NOT NULL) NOT VALID;"
    validate = "ALTER TABLE t VALIDATE CONSTRAINT a_nn;"
    set_nn = "ALTER TABLE t ALTER COLUMN a SET NOT NULL;"
    assert _rules(add, validate, set_nn) == []
    assert _rules(add, set_nn) == ["set-not-null"]  # not validated yet


def test_allow_comment_silences_one_statement() -> None:
    """`-- pgkeel: allow RULE reason` silences that statement only."""
    text = (
        "-- pgkeel: allow create-index lookup table of 12 rows\n"
        "CREATE INDEX i ON t (a);\nCREATE INDEX j ON t (b);"
    )
    assert _rules(text) == ["create-index"]


def test_allow_without_a_reason_is_a_warning() -> None:
    """An allow with no reason still silences, but warns that the reason is missing."""
    assert _rules("-- pgkeel: allow create-index\nCREATE INDEX i ON t (a);") == [
        "allow-without-reason"
    ]


def test_missing_lock_timeout_only_when_the_runner_does_not_set_it() -> None:
    """Strong locks without lock_timeout are flagged for other runners; SET lock_timeout fixes."""
    alter = "ALTER TABLE t ADD COLUMN b int;"
    assert _rules(alter) == []
    assert _rules(alter, lock_timeout_set=False) == ["missing-lock-timeout"]
    assert _rules(f"SET lock_timeout = '2s';\n{alter}", lock_timeout_set=False) == []


def test_concurrently_inside_an_explicit_transaction() -> None:
    """CREATE INDEX CONCURRENTLY between BEGIN and COMMIT is flagged; after COMMIT it is not."""
    assert "concurrently-in-transaction" in _rules(
        "BEGIN;\nCREATE INDEX CONCURRENTLY i ON t (a);\nCOMMIT;"
    )
    assert "concurrently-in-transaction" not in _rules(
        "BEGIN;\nCOMMIT;\nCREATE INDEX CONCURRENTLY i ON t (a);"
    )


def test_mixed_ddl_and_update_in_one_transaction() -> None:
    """DDL and a backfill UPDATE on existing tables in one transactional migration: flagged."""
    assert _rules("ALTER TABLE t ADD COLUMN b int;\nUPDATE t SET b = a;") == ["mixed-ddl-dml"]
    assert _rules("ALTER TABLE t ADD COLUMN b int;") == []
    assert _rules("UPDATE t SET a = 1;") == []


def test_findings_carry_file_line_severity_and_the_fix() -> None:
    """A finding names file:line, severity, rule, and the safe alternative."""
    [finding] = lint([parse("SELECT 1;\nCREATE INDEX i ON t (a);", Path("0007_idx.sql"))])
    assert str(finding).startswith("0007_idx.sql:2: error create-index: ")
    assert "CREATE INDEX CONCURRENTLY" in finding.message
    assert finding.as_dict()["line"] == 2
