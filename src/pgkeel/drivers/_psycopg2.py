"""psycopg2 under :class:`~pgkeel.Database` (``driver="psycopg2"``, ``pgkeel[psycopg2]``): not
built yet; choosing it says so and names the way out."""

from __future__ import annotations

from typing import Any

from pgkeel.errors import NotSupportedError


class Driver:
    name = "psycopg2"

    def __init__(self, config: Any) -> None:
        raise NotSupportedError(
            "driver='psycopg2' is not available in this version of pgkeel yet; use "
            "driver='psycopg' (the default, psycopg 3), which runs the same code on the sync face"
        )
