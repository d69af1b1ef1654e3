"""The ``row=`` argument: how each fetched row is built (dict, tuple, or a class by column name).

One function, :func:`row_factory`, maps what users pass (``dict``, the default the guides
recommend; ``tuple``; a dataclass or any class built from keyword arguments; or a psycopg row
factory) to the psycopg row factory that builds it, so every method that fetches rows (queries,
streaming, bulk ``RETURNING``) accepts the same thing.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, TypeAlias

from psycopg.rows import RowFactory, dict_row, kwargs_row, tuple_row

__all__ = ["RowSpec", "row_factory"]

#: What ``row=`` accepts: ``dict``, ``tuple``, a class taking the columns as keyword arguments,
#: or a psycopg row factory (``psycopg.rows.namedtuple_row``...).
RowSpec: TypeAlias = type[Any] | RowFactory[Any]


def row_factory(row: RowSpec) -> RowFactory[Any]:
    """Return the psycopg row factory for a ``row=`` argument."""
    # The common cases first, without a cache lookup: this runs on every query.
    if row is dict:
        return dict_row
    if row is tuple:
        return tuple_row
    return _row_factory_for(row)  # type: ignore[arg-type]  # classes and functions hash


@lru_cache(maxsize=256)
def _row_factory_for(row: RowSpec) -> RowFactory[Any]:
    if isinstance(row, type):
        # Dataclasses, attrs, pydantic models, NamedTuples, plain classes: all take the
        # columns as keyword arguments, so one factory serves them all.
        return kwargs_row(row)
    if callable(row):
        return row
    raise TypeError(
        f"row= takes dict, tuple, a class built from keyword arguments, or a psycopg row "
        f"factory; got {row!r}"
    )
