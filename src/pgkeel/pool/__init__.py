"""The connection pool's policy: what pgkeel adds to psycopg_pool, without I/O. When a
checked-out connection needs a round-trip check (``_liveness``), when one is reset before it goes
back and what a fresh session looks like (``_reset``), the leak watcher (``_leaks``), the counters
behind ``stats()`` and the last connection error (``_counters``), and whether ``max_size`` fits
the server (``_sizing``). Nothing here is public: the pool is reached through
:class:`~pgkeel.Database` / :class:`~pgkeel.AsyncDatabase`, which add the I/O; its log messages go
to the ``pgkeel.pool`` logger.
"""
