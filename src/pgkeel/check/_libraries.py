"""What the checker knows of psycopg, psycopg2, asyncpg, pgkeel and the web frameworks: the
qualified names of connect functions, pools, types and query methods, and the words that matter."""

from __future__ import annotations

CONNECT = {
    "psycopg.connect": "psycopg",
    "psycopg.Connection.connect": "psycopg",
    "psycopg.AsyncConnection.connect": "psycopg",
    "psycopg2.connect": "psycopg2",
    "asyncpg.connect": "asyncpg",
    "asyncpg.connection.connect": "asyncpg",
}
POOLS = {
    "psycopg_pool.ConnectionPool": "psycopg",
    "psycopg_pool.AsyncConnectionPool": "psycopg",
    "psycopg_pool.NullConnectionPool": "psycopg",
    "psycopg_pool.AsyncNullConnectionPool": "psycopg",
    "psycopg2.pool.SimpleConnectionPool": "psycopg2",
    "psycopg2.pool.ThreadedConnectionPool": "psycopg2",
    "psycopg2.pool.PersistentConnectionPool": "psycopg2",
    "asyncpg.create_pool": "asyncpg",
    "asyncpg.pool.create_pool": "asyncpg",
    "pgkeel.Database": "pgkeel",
    "pgkeel.AsyncDatabase": "pgkeel",
    "pgkeel.database.Database": "pgkeel",
    "pgkeel.database_async.AsyncDatabase": "pgkeel",
}
TYPES = {
    "psycopg.Connection": ("psycopg", "conn"),
    "psycopg.AsyncConnection": ("psycopg", "conn"),
    "psycopg.Cursor": ("psycopg", "cursor"),
    "psycopg.AsyncCursor": ("psycopg", "cursor"),
    "psycopg.ServerCursor": ("psycopg", "cursor"),
    "psycopg.AsyncServerCursor": ("psycopg", "cursor"),
    "psycopg.extensions.connection": ("psycopg2", "conn"),
    "psycopg2.extensions.connection": ("psycopg2", "conn"),
    "psycopg2.extensions.cursor": ("psycopg2", "cursor"),
    "asyncpg.Connection": ("asyncpg", "conn"),
    "asyncpg.connection.Connection": ("asyncpg", "conn"),
    "asyncpg.Pool": ("asyncpg", "pool"),
    "asyncpg.pool.Pool": ("asyncpg", "pool"),
    "pgkeel.Transaction": ("pgkeel", "db"),
    "pgkeel.AsyncTransaction": ("pgkeel", "db"),
}
for _q, _lib in POOLS.items():
    TYPES[_q] = (_lib, "db" if _lib == "pgkeel" else "pool")
# method -> index of the query argument; the receiver is a connection, cursor, pool or Database
QUERY_METHODS = {
    "execute": 0,
    "executemany": 0,
    "execute_many": 0,
    "mogrify": 0,
    "fetch": 0,
    "fetchrow": 0,
    "fetchval": 0,
    "fetch_one": 0,
    "fetch_all": 0,
    "fetch_val": 0,
    "copy": 0,
    "copy_expert": 0,
    "copy_from_query": 0,
    "prepare": 0,
}
QUERY_FUNCTIONS = {
    "psycopg2.extras.execute_values": ("psycopg2", 1),
    "psycopg2.extras.execute_batch": ("psycopg2", 1),
    "pgkeel.copy_out": ("pgkeel", 1),
    "pgkeel.stream": ("pgkeel", 1),
    "pgkeel.copy.copy_out": ("pgkeel", 1),
    "pgkeel.copy.stream": ("pgkeel", 1),
    "pgkeel.bulk.copy.copy_out": ("pgkeel", 1),
    "pgkeel.bulk.stream.stream": ("pgkeel", 1),
    # the driver behind these is the caller's: SQL-looking text is required, as for an unknown
    # receiver
    "pandas.read_sql": ("", 0),
    "pandas.read_sql_query": ("", 0),
}
QUERY_KEYWORDS = ("query", "sql", "statement", "operation")
ROW_METHODS = frozenset(
    {"execute", "fetch", "fetchrow", "fetchval", "fetch_one", "fetch_all", "fetch_val"}
)
ASYNCPG_METHODS = frozenset({"fetch", "fetchrow", "fetchval", "copy_from_query", "prepare"})
COMPOSABLE = frozenset({"SQL", "Composed"})
COMPOSABLE_SAFE = frozenset({"Identifier", "Literal", "Placeholder", "DEFAULT", "NULL"})
SQL_MODULES = ("psycopg.sql.", "psycopg2.sql.")
PASS_THROUGH = frozenset({"sqlalchemy.text", "textwrap.dedent", "inspect.cleandoc"})
NUMERIC_CALLS = frozenset({"int", "float", "len", "bool", "round", "abs", "min", "max", "sum"})
NUMERIC_TYPES = frozenset({"int", "float", "bool"})
STR_METHODS = frozenset({"strip", "lstrip", "rstrip", "upper", "lower", "decode", "encode"})
SQL_START = frozenset(
    [
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "WITH",
        "CREATE",
        "ALTER",
        "DROP",
        "TRUNCATE",
        "GRANT",
        "REVOKE",
        "COPY",
        "LISTEN",
        "NOTIFY",
        "UNLISTEN",
        "SET",
        "SHOW",
        "EXPLAIN",
        "VACUUM",
        "ANALYZE",
        "CALL",
        "DO",
        "MERGE",
        "REFRESH",
        "COMMENT",
        "LOCK",
        "DECLARE",
        "VALUES",
        "TABLE",
        "REINDEX",
        "CLUSTER",
    ]
)
CLOSERS = frozenset({"close", "closeall", "terminate", "expire_connections"})
ROUTE_METHODS = frozenset(
    {"get", "post", "put", "patch", "delete", "route", "api_route", "websocket", "head", "options"}
)
WEB_MODULES = ("fastapi", "flask", "starlette", "quart", "sanic", "aiohttp", "litestar", "django")
REQUEST_HOOKS = frozenset({"before_request", "before_app_request", "middleware"})
TEARDOWNS = frozenset({"teardown_appcontext", "teardown_request", "teardown_app_request"})
WEAK_SSLMODES = frozenset({"disable", "allow", "prefer"})
LOCAL_HOSTS = frozenset({"", "localhost", "127.0.0.1", "::1", "[::1]", "localhost.localdomain"})
PSYCOPG_POOL_LIMITS = frozenset({"timeout", "max_lifetime"})
ASYNCPG_POOL_LIMITS = frozenset(
    {"timeout", "command_timeout", "max_inactive_connection_lifetime", "max_queries"}
)
