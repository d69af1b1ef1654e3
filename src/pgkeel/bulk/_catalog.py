"""Table names and column types for the bulk operations: the checks and the catalog query.

Names are checked before they reach the server (PostgreSQL would silently truncate a name longer
than 63 bytes), and one catalog query per call gives a table's columns with the types binary COPY
needs (a domain's base type, text for an enum); the faces run the query, this module reads the
answer. Nothing here talks to the server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from psycopg import pq, sql
from psycopg.adapt import AdaptersMap

from pgkeel.errors import ColumnNotFoundError, IdentifierError, RowError, TableNotFoundError

Table: TypeAlias = "str | tuple[str, str]"
"""A table name: one identifier (never split on dots), or a ``(schema, name)`` pair."""

# PostgreSQL truncates longer names silently (NAMEDATALEN - 1), so two long names could collide.
MAX_IDENTIFIER_BYTES = 63
_TEXT_OID = 25
_BINARY = pq.Format.BINARY


def check_identifier(name: str, what: str = "name") -> str:
    """Return ``name`` if PostgreSQL would keep it as it is, else raise :class:`IdentifierError`."""
    if not isinstance(name, str):
        raise IdentifierError(f"{what} must be a str, got {type(name).__name__}")
    if not name:
        raise IdentifierError(f"{what} is empty")
    if "\x00" in name:
        raise IdentifierError(f"{what} {name!r} contains a NUL character")
    size = len(name.encode())
    if size > MAX_IDENTIFIER_BYTES:
        raise IdentifierError(
            f"{what} {name!r} is {size} bytes long; PostgreSQL would silently truncate it to"
            f" {MAX_IDENTIFIER_BYTES} bytes: use a shorter name"
        )
    return name


def table_identifier(table: Table) -> sql.Identifier:
    """Quote a table name (``"name"`` or ``("schema", "name")``) after checking its parts."""
    if isinstance(table, tuple):
        if len(table) != 2:
            raise IdentifierError(
                f"a qualified table name is a (schema, name) pair, got {len(table)} parts"
            )
        return sql.Identifier(
            check_identifier(table[0], "schema name"), check_identifier(table[1], "table name")
        )
    return sql.Identifier(check_identifier(table, "table name"))


def table_label(table: Table) -> str:
    """The table as a human reads it in an error message."""
    return ".".join(table) if isinstance(table, tuple) else table


# One round trip gives the table's oid (NULL if it does not exist) and its live columns. Domains
# are resolved to their base type here: binary COPY sends the base type's representation. The
# declared type (a domain, varchar(3)...) is kept for error messages.
CATALOG_QUERY = sql.SQL(
    """\
WITH RECURSIVE rel AS (SELECT to_regclass(%s) AS oid),
col AS (
    SELECT a.attnum, a.attname, a.attgenerated, a.atttypid AS typid, 0 AS depth,
        format_type(a.atttypid, a.atttypmod) AS declared
    FROM rel JOIN pg_attribute a ON a.attrelid = rel.oid
    WHERE a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
    SELECT col.attnum, col.attname, col.attgenerated, t.typbasetype, col.depth + 1, col.declared
    FROM col JOIN pg_type t ON t.oid = col.typid
    WHERE t.typtype = 'd'
)
SELECT rel.oid::int8, c.attname, c.attgenerated <> '', c.typid::int8, t.typtype,
    t.typname, t.typelem::int8, c.declared
FROM rel
LEFT JOIN LATERAL (
    SELECT DISTINCT ON (attnum) * FROM col ORDER BY attnum, depth DESC
) c ON true
LEFT JOIN pg_type t ON t.oid = c.typid
ORDER BY c.attnum"""
)


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    oid: int  # the oid binary COPY must be given (a domain's base type, text for an enum)
    type_name: str
    generated: bool
    declared: str = ""  # the column's SQL type as declared (a domain, varchar(3)...)


@dataclass(frozen=True, slots=True)
class TableInfo:
    """What the catalog says about a table: enough to COPY into it in binary without guessing."""

    identifier: sql.Identifier
    label: str
    columns: tuple[Column, ...]

    def column_map(self) -> dict[str, Column]:
        return {c.name: c for c in self.columns}

    def writable(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if not c.generated)


def parse_catalog(
    table: Table, identifier: sql.Identifier, records: Sequence[Sequence[Any]]
) -> TableInfo:
    """Turn :data:`CATALOG_QUERY`'s records into a :class:`TableInfo`, or raise if no table."""
    label = table_label(table)
    if not records or records[0][0] is None:
        hint = ""
        if isinstance(table, str) and "." in table:
            schema, _, name = table.partition(".")
            hint = f"; for table {name!r} in schema {schema!r} pass ({schema!r}, {name!r})"
        raise TableNotFoundError(
            f"table {label!r} does not exist (or is not on the search_path){hint}: create it,"
            " or pass the schema as (schema, name)"
        )
    columns = []
    for _, name, generated, oid, typtype, typname, _typelem, declared in records:
        if name is None:
            continue
        # An enum's binary form is its label's text, and COPY sends no type oid per field.
        send_oid = _TEXT_OID if typtype == "e" else oid
        columns.append(Column(name, send_oid, typname, bool(generated), declared or typname))
    return TableInfo(identifier, label, tuple(columns))


def select_columns(
    info: TableInfo, columns: Sequence[str] | None, first: object
) -> tuple[str, ...]:
    """The columns a COPY will fill, checked against the catalog before any data is sent.

    With ``columns=None`` a dict row names its own columns (its keys, in order); a tuple row fills
    every column that is not generated, in table order.
    """
    if columns is None:
        columns = tuple(first.keys()) if isinstance(first, Mapping) else info.writable()
        if not columns:
            raise RowError(f"no columns to copy into table {info.label!r}")
    elif isinstance(columns, str):
        raise TypeError("columns must be a sequence of names, not a str")
    cols = tuple(check_identifier(c, "column name") for c in columns)
    known = info.column_map()
    unknown = [c for c in cols if c not in known]
    if unknown:
        raise ColumnNotFoundError(
            f"table {info.label!r} has no column {', '.join(map(repr, unknown))};"
            f" its columns are {', '.join(map(repr, known))}: fix the dict keys or columns="
        )
    generated = [c for c in cols if known[c].generated]
    if generated:
        raise RowError(
            f"column {', '.join(map(repr, generated))} of table {info.label!r} is generated"
            " and cannot be written: leave it out"
        )
    if len(set(cols)) != len(cols):
        raise RowError(f"a column is named twice in {list(cols)!r}")
    return cols


def column_oids(info: TableInfo, cols: Sequence[str], adapters: AdaptersMap) -> list[int] | None:
    """The oids to give ``Copy.set_types()`` for a binary COPY, or None if one cannot be dumped.

    A type psycopg has no binary dumper for (an array of enums, a type from an extension that was
    not registered) makes the whole COPY fall back to the text format, where the server parses
    each value and no oid is needed.
    """
    known = info.column_map()
    oids = [known[c].oid for c in cols]
    for oid in oids:
        try:
            adapters.get_dumper_by_oid(oid, _BINARY)
        except Exception:  # psycopg raises ProgrammingError, or KeyError for a bad format
            return None
    return oids
