"""The pool sizing check: does ``max_size`` fit in the server's free connection slots?"""

from __future__ import annotations

SIZE_QUERY = """\
SELECT current_setting('max_connections')::int,
       current_setting('superuser_reserved_connections')::int
         + coalesce(current_setting('reserved_connections', true), '0')::int,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int"""


def pool_size_problem(
    *, max_size: int, max_connections: int, reserved: int, in_use: int, ours: int
) -> str | None:
    """Explain why ``max_size`` does not fit in the server's free slots, or return ``None``."""
    others = max(in_use - ours, 0)
    free = max_connections - reserved - others
    if max_size <= free:
        return None
    return (
        f"pool max_size={max_size} does not fit: the server has max_connections="
        f"{max_connections}, {reserved} reserved, {others} used by other clients, so {free} "
        f"free; lower max_size to at most {max(free, 0)} (less if other processes share the "
        "server), raise max_connections on the server, or put PgBouncer in front"
    )
