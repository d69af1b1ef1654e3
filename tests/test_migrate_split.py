"""Statement splitting, directives and transaction-ability from pglast's parse tree (no
server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgkeel.errors import MigrationError
from pgkeel.migrate._split import check_runnable, non_transactional, parse

P = Path("0001_x.sql")


def _sql(text: str) -> list[str]:
    return [s.sql for s in parse(text, P).statements]


def test_dollar_quoted_bodies_stay_whole() -> None:
    """$$ and $tag$ bodies with semicolons (and a nested tag) are one statement each."""
    text = (
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$\n"
        "BEGIN PERFORM 1; RETURN 2; END $$;\n"
        "DO $body$ BEGIN EXECUTE $q$SELECT ';'$q$; END $body$;\n"
        "SELECT 1"
    )
    assert _sql(text) == [
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$\nBEGIN PERFORM 1; RETURN 2; END $$",
        "DO $body$ BEGIN EXECUTE $q$SELECT ';'$q$; END $body$",
        "SELECT 1",
    ]


def test_strings_comments_and_identifiers_with_semicolons() -> None:
    """Semicolons in '', E'' (with \\'), quoted identifiers and comments never split."""
    text = (
        "SELECT 'a;b', E'it\\'s; fine';  -- trailing; comment\n"
        "/* block; comment */ CREATE TABLE \"we;ird\" (x text DEFAULT '--not a comment');\n"
    )
    assert _sql(text) == [
        "SELECT 'a;b', E'it\\'s; fine'",
        "CREATE TABLE \"we;ird\" (x text DEFAULT '--not a comment')",
    ]


def test_line_numbers_are_the_statements_first_line() -> None:
    """Each statement knows its 1-based line, counting comments and blank lines before it."""
    parsed = parse("-- header\n\nSELECT 1;\n/* two\nlines */ SELECT\n2;", P)
    assert [s.line for s in parsed.statements] == [3, 5]


def test_unparseable_sql_names_file_and_line() -> None:
    """A syntax error is a MigrationError with the file, the line and the parser's message."""
    with pytest.raises(MigrationError, match=r'0001_x\.sql:3: syntax error at or near "TABLEE"'):
        parse("SELECT 1;\n\nCREATE TABLEE t (a int);", P)


def test_comment_only_file_is_an_error() -> None:
    """A file with comments but no statement is refused."""
    with pytest.raises(MigrationError, match="no SQL statement"):
        parse("-- nothing here\n/* nor here */\n", P)


def test_allow_directive_attaches_to_the_next_statement() -> None:
    """`-- pgkeel: allow RULE reason` silences that rule for the statement after it only."""
    parsed = parse(
        "-- pgkeel: allow create-index,lock-table the table has 10 rows\n"
        "CREATE INDEX i ON t (a);\nCREATE INDEX j ON t (b);",
        P,
    )
    first, second = parsed.statements
    assert first.allow == {
        "create-index": "the table has 10 rows",
        "lock-table": "the table has 10 rows",
    }
    assert second.allow == {}


def test_directive_inside_a_string_is_not_a_directive() -> None:
    """A '-- pgkeel:' inside a string literal is data, not a comment."""
    parsed = parse("SELECT '-- pgkeel: allow create-index x';", P)
    assert parsed.statements[0].allow == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-- pgkeel: allow no-such-rule why\nSELECT 1;", "unknown lint rule 'no-such-rule'"),
        ("-- pgkeel: alow create-index\nSELECT 1;", "unknown pgkeel directive"),
        ("SELECT 1;\n-- pgkeel: no-transaction\nSELECT 2;", "must come before the first"),
        ("SELECT 1;\n-- pgkeel: no-transaction\n", "must come before the first"),
    ],
)
def test_bad_directives_are_errors(text: str, message: str) -> None:
    """A misspelt directive or rule, or a misplaced no-transaction, is an error with the line."""
    with pytest.raises(MigrationError, match=message):
        parse(text, P)


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        ("CREATE INDEX CONCURRENTLY i ON t (a)", "CREATE INDEX CONCURRENTLY"),
        ("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a)", "CREATE INDEX CONCURRENTLY"),
        ("DROP INDEX CONCURRENTLY i", "DROP INDEX CONCURRENTLY"),
        ("REINDEX INDEX CONCURRENTLY i", "REINDEX CONCURRENTLY"),
        ("ALTER TABLE p DETACH PARTITION c CONCURRENTLY", "DETACH PARTITION CONCURRENTLY"),
        ("ALTER TABLE p DETACH PARTITION c", None),
        ("VACUUM t", "VACUUM"),
        ("VACUUM (ANALYZE) t", "VACUUM"),
        ("CREATE DATABASE d", "CREATE DATABASE"),
        ("DROP DATABASE d", "DROP DATABASE"),
        ("ALTER SYSTEM SET work_mem = '8MB'", "ALTER SYSTEM"),
        ("CREATE TABLESPACE s LOCATION '/x'", "CREATE TABLESPACE"),
        ("CREATE INDEX i ON t (a)", None),
        ("DROP INDEX i", None),
        ("REINDEX INDEX i", None),
        ("ANALYZE t", None),
        ("ALTER TYPE e ADD VALUE 'x'", None),
        ("SELECT 'CREATE INDEX CONCURRENTLY'", None),
    ],
)
def test_non_transactional_statements_come_from_the_parse_tree(
    statement: str, reason: str | None
) -> None:
    """Each statement that cannot run in a transaction is recognised; lookalikes are not."""
    assert parse(statement, P).statements[0].no_transaction == reason


def test_alter_type_add_value_needs_no_transaction_only_before_12() -> None:
    """ALTER TYPE ... ADD VALUE is non-transactional on servers older than PostgreSQL 12."""
    node = parse("ALTER TYPE e ADD VALUE 'x'", P).statements[0].node
    assert non_transactional(node, 110000) == "ALTER TYPE ... ADD VALUE"
    assert non_transactional(node, 150000) is None


def test_transactional_mode_of_a_file() -> None:
    """A file is transactional unless declared otherwise or made only of such statements."""
    assert parse("CREATE TABLE a (x int); SELECT 1;", P).transactional
    assert not parse("CREATE INDEX CONCURRENTLY i ON t (a);", P).transactional
    declared = parse("-- pgkeel: no-transaction\nCREATE TABLE a (x int);", P)
    assert declared.declared_no_transaction
    assert not declared.transactional
    check_runnable(declared)


def test_mixed_file_is_refused_with_how_to_split() -> None:
    """Transactional statements mixed with CONCURRENTLY: refused, naming the lines to move."""
    parsed = parse(
        "CREATE TABLE a (x int);\nCREATE INDEX CONCURRENTLY i ON t (a);\nDROP INDEX "
        "CONCURRENTLY j;",
        P,
    )
    with pytest.raises(MigrationError, match=r"0001_x\.sql:2: .*move lines 2, 3 into a migration"):
        check_runnable(parsed)


@pytest.mark.parametrize("control", ["BEGIN", "START TRANSACTION", "COMMIT", "ROLLBACK"])
def test_transaction_control_is_refused(control: str) -> None:
    """BEGIN/COMMIT in a file is refused: pgkeel wraps each migration itself."""
    with pytest.raises(MigrationError, match=r"runs each migration in its\s+own transaction"):
        check_runnable(parse(f"SELECT 1;\n{control};", P))
