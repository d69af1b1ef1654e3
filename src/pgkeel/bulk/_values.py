"""Values in a binary COPY: the dumpers it registers and, when one refuses, the row and column.

:func:`speed_up_dumpers` registers the strict dumpers of :mod:`pgkeel.bulk._dumpers` (and a fast
one for flat ``text[]``) on the COPY's cursor. When a dumper or the server refuses a value,
:func:`locate_bad_value` and :func:`note_server_refusal` name its row, column and types; a dict
row missing a column gets a :class:`pgkeel.errors.RowError` naming it. Nothing here talks to the
server.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Collection, Mapping, Sequence
from operator import itemgetter
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import AdaptersMap

from pgkeel.bulk._catalog import TableInfo
from pgkeel.bulk._dumpers import describe_refusal, register_strict_dumpers, strict_dumper
from pgkeel.errors import BadValueError, RowError

_TEXT_OID = 25
_BINARY = pq.Format.BINARY


_TEXT_ARRAY_OID = 1009
_ARRAY_HEAD = struct.Struct("!iiIii")  # ndim, has nulls, element oid, length, lower bound
_EMPTY_TEXT_ARRAY = struct.pack("!iiI", 0, 0, _TEXT_OID)  # what psycopg sends for []
_ITEM_LEN = struct.Struct("!i")


def speed_up_dumpers(
    adapters: AdaptersMap, oids: Sequence[int], encoding: str, batch_checked: Collection[int] = ()
) -> None:
    """Register the COPY's binary dumpers on ``adapters`` (a cursor's): strict and fast ones.

    The strict dumpers (:mod:`pgkeel.bulk._dumpers`) store each value exactly as an INSERT
    would, or refuse it. psycopg dumps a list with a general, Python-level array dumper (any
    depth, any element type, NULLs); a flat list of str for a ``text[]`` column, by far the
    common case, is packed here in one pass. ``timestamptz`` keeps psycopg's dumper (in C),
    which refuses a naive datetime with a TypeError the COPY turns into a BadValueError.
    Anything else goes to psycopg's dumper, unchanged.
    """
    register_strict_dumpers(adapters, batch_checked)
    if _TEXT_ARRAY_OID in oids and encoding in ("utf-8", "utf8"):
        adapters.register_dumper(None, _flat_text_array_dumper(adapters))


def _flat_text_array_dumper(adapters: AdaptersMap) -> type[Any]:
    general: Any = adapters.get_dumper_by_oid(_TEXT_ARRAY_OID, _BINARY)

    class FlatTextArrayBinaryDumper(general):  # type: ignore[misc]
        def dump(self, obj: Any, pack: Any = _ITEM_LEN.pack, head: Any = _ARRAY_HEAD.pack) -> Any:
            if not obj:
                return _EMPTY_TEXT_ARRAY if type(obj) is list else super().dump(obj)
            # A list joined once is ~2x faster than growing a bytearray item by item.
            out = [head(1, 0, _TEXT_OID, len(obj), 1)]
            try:
                for item in obj:
                    data = item.encode()
                    out.append(pack(len(data)))
                    out.append(data)
            except AttributeError:  # None, a nested list, a non-str element
                return super().dump(obj)
            return b"".join(out)

    return FlatTextArrayBinaryDumper


def _value_error(
    info: TableInfo,
    what: str,
    row: int,
    column: str,
    value_type: str | None,
    reason: str,
) -> BadValueError:
    col = info.column_map().get(column)
    declared = col.declared if col is not None else "?"
    vt = f"a value of type {value_type}" if value_type else "the value"
    return BadValueError(
        f"{what}: row {row}, column {column!r} ({declared}): {vt} was refused: {reason};"
        f" nothing was written to {info.label!r}",
        row=row,
        column=column,
        column_type=declared,
        value_type=value_type,
    )


def locate_bad_value(
    info: TableInfo,
    what: str,
    cols: Sequence[str],
    oids: Sequence[int],
    adapters: AdaptersMap,
    context: Any,
    batch: Sequence[Any],
    getter: Callable[[Any], Sequence[Any]] | None,
    start: int,
) -> BadValueError | None:
    """After a dumper raised while formatting ``batch``, find the first value it refuses.

    Each value is dumped again, alone, by its column's dumper; the first that raises names the
    row (``start`` rows came before the batch) and the column. None if none raises again.
    """
    dumpers = [
        (strict_dumper(oid, adapters) or adapters.get_dumper_by_oid(oid, _BINARY))(
            type(None), context
        )
        for oid in oids
    ]
    for i, raw in enumerate(batch):
        record = raw if getter is None else getter(raw)
        for col, oid, dumper, value in zip(cols, oids, dumpers, record, strict=False):
            if value is None:
                continue
            try:
                dumper.dump(value)
            except Exception as exc:
                reason = describe_refusal(oid, value, exc)
                return _value_error(info, what, start + i + 1, col, type(value).__name__, reason)
    return None


def note_server_refusal(
    exc: psycopg.Error,
    info: TableInfo,
    what: str,
    cols: Sequence[str],
    batch: Sequence[Any],
    getter: Callable[[Any], Sequence[Any]] | None,
    start: int,
) -> None:
    """Add to a server error raised by a COPY a note naming the row, the column and the types.

    The server refuses what only it can check (numeric precision, varchar(n), a domain's CHECK,
    an enum label) exactly as an INSERT would; its error context says ``line N, column c``,
    where line N is the Nth row sent. The value's Python type is known while its row is still
    in the current batch.
    """
    # The context's last line is the COPY's ("COPY t, line 3, column c: ..."); lines above it
    # come from the type's input function ("JSON data, line 1: ...").
    lines = [ln for ln in (exc.diag.context or "").splitlines() if ln.startswith("COPY ")]
    context = lines[-1] if lines else ""
    marker = ", line "
    at = context.find(marker)
    if at < 0:
        return
    number, _, rest = context[at + len(marker) :].partition(",")
    if not number.strip().isdigit():
        return
    row = int(number)
    rest = rest.strip()
    column = None
    if rest.startswith("column "):
        named = rest[len("column ") :]
        matches = [c for c in cols if named == c or named.startswith(c + ":")]
        column = max(matches, key=len) if matches else None
    if column is None:
        exc.add_note(f"{what}: the server refused row {row} of the rows given")
        return
    value_type = None
    if start < row <= start + len(batch):
        raw = batch[row - start - 1]
        record = raw if getter is None else getter(raw)
        value_type = type(record[list(cols).index(column)]).__name__
    error = _value_error(info, what, row, column, value_type, exc.diag.message_primary or "")
    exc.add_note(str(error))


def row_getter(first: object, cols: Sequence[str]) -> Callable[[Any], Sequence[Any]] | None:
    """A function turning one row into the tuple COPY writes, or None if rows are already tuples.

    Dict rows go through :func:`operator.itemgetter`, a single C call per row.
    """
    if not isinstance(first, Mapping):
        return None
    if len(cols) == 1:
        (col,) = cols
        return lambda row: (row[col],)
    return itemgetter(*cols)


def missing_key_error(exc: KeyError, row: object, cols: Sequence[str], number: int) -> RowError:
    key = exc.args[0] if exc.args else None
    return RowError(
        f"row {number} has no value for column {key!r}; every dict row needs the keys"
        f" {list(cols)!r} (pass columns= to choose them)"
    )


def is_missing_key(exc: KeyError, row: object, cols: Sequence[str]) -> bool:
    """Whether ``exc`` came from looking up a column in a dict row (not from the user's code)."""
    return (
        isinstance(row, Mapping)
        and bool(exc.args)
        and exc.args[0] in cols
        and exc.args[0] not in row
    )
