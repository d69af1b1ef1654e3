"""Behind a transaction pooler, without I/O: the ``SET LOCAL`` statement that gives one
transaction the server settings the server itself lacks, and the warning that names the fix."""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

#: Each setting's value now, and the value it takes once set (set_config returns the server's
#: own spelling, so '1000ms' and '1s' compare equal). Run in a transaction that is rolled back.
CHECK_QUERY = (
    "SELECT n, current_setting(n), set_config(n, v, true) "
    "FROM unnest(%s::text[], %s::text[]) AS s(n, v)"
)

LocalStatement = tuple[sql.Composed, list[str]]


def local_settings(settings: Sequence[tuple[str, str]]) -> LocalStatement | None:
    """``SELECT set_config(name, value, true), ...`` for ``settings`` (None if there are none):
    the values last until the end of the transaction, on whatever server connection the pooler
    gave it."""
    if not settings:
        return None
    calls = sql.SQL(", ").join(
        sql.SQL("set_config({}, {}, true)").format(sql.Placeholder(), sql.Placeholder())
        for _ in settings
    )
    return sql.SQL("SELECT ") + calls, [part for pair in settings for part in pair]


def missing_settings(
    settings: Sequence[tuple[str, str]], rows: Sequence[tuple[str, str, str]]
) -> list[tuple[str, str]]:
    """The settings whose value on the server (``rows`` from :data:`CHECK_QUERY`) differs from
    the one wanted."""
    wrong = {name for name, now, wanted in rows if now != wanted}
    return [(name, value) for name, value in settings if name in wrong]


def missing_message(pooler: str, missing: Sequence[tuple[str, str]]) -> str:
    shown = ", ".join(f"{name} = '{value}'" for name, value in missing)
    statements = "; ".join(
        f"ALTER ROLE current_user SET {name} = '{value}'" for name, value in missing
    )
    return (
        f"behind {pooler} the server does not give this role and database {shown}: pgkeel "
        "sets them at the start of each transaction() (SET LOCAL), but single statements "
        "outside a transaction run without them. Set them on the server (e.g. "
        f"{statements}; or ALTER DATABASE ... SET) so that every server connection the "
        "pooler opens has them"
    )
