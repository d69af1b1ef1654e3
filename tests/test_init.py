"""The public surface: ``pgkeel.__all__``."""

from __future__ import annotations

import types

import pgkeel


def test_all_is_complete_and_sorted() -> None:
    """Every public name in the package namespace is in ``__all__``, which is sorted."""
    public = {
        name
        for name, value in vars(pgkeel).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(pgkeel.__all__) - {"__version__"}
    assert pgkeel.__all__ == sorted(pgkeel.__all__)
    assert all(hasattr(pgkeel, name) for name in pgkeel.__all__)
