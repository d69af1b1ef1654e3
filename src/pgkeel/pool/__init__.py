"""The connection pool: what pgkeel adds to psycopg_pool. How a connection is made and set up
(``_connect_async`` / ``_connect``), when a checked-out one needs a round-trip check
(``_liveness``), when one is reset before it goes back and what a fresh session looks like
(``_reset``), the leak watcher (``_leaks``), the counters behind ``stats()`` and the last
connection error (``_counters``), and whether ``max_size`` fits the server (``_sizing``); all but
``_connect`` without I/O. Nothing here is public: the pool is reached through
:class:`~pgkeel.Database` / :class:`~pgkeel.AsyncDatabase`, whose checkout, reset and retry loops
use these; its log messages go to the ``pgkeel.pool`` logger.
"""
