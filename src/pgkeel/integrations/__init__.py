"""Web framework integration: pgkeel in a FastAPI (Starlette) or Flask application.

``pgkeel.integrations.fastapi`` opens an :class:`~pgkeel.AsyncDatabase` in the app's lifespan and
hands routes the database or a transaction as dependencies; ``pgkeel.integrations.flask`` keeps
one :class:`~pgkeel.Database` per process for a Flask app. Both map database errors to HTTP
answers a client can act on (409, 422, 503 with ``Retry-After``, 504) with bodies that never
carry SQL, parameters or connection details, and serve ``/healthz``, ``/readyz`` and
``/metrics`` (Prometheus). They need the extras ``pgkeel[fastapi]`` or ``pgkeel[flask]``; this
package imports neither framework until one of its modules is imported.
"""
