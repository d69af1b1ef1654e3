"""The small psycopg-shaped objects every driver adapter hands to pgkeel's faces and to psycopg's
row factories: a cursor's column (``description``) and the part of a ``PGresult`` they read."""

from __future__ import annotations

import psycopg

__all__ = ["Column", "Result"]


class Column:
    """An entry of ``cursor.description``: the name, and the type OID where the driver has it."""

    __slots__ = ("name", "type_code")

    def __init__(self, name: str, type_code: int = 0) -> None:
        self.name = name
        self.type_code = type_code


class Result:
    """The part of a psycopg ``PGresult`` that psycopg's row factories read (column names), so
    ``row=SomeClass`` and psycopg's own factories build rows on every driver as on psycopg."""

    __slots__ = ("names", "nfields")

    status = psycopg.pq.ExecStatus.TUPLES_OK

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.nfields = len(names)

    def fname(self, i: int) -> bytes:
        return self.names[i].encode()
