"""pgkeel in a FastAPI (or Starlette) application: lifespan, dependencies, error handlers, and
the ``/healthz``, ``/readyz`` and ``/metrics`` routes.

::

    pg = Pgkeel(max_size=10)                        # DATABASE_URL, or pass a URL
    app = FastAPI(lifespan=pg.lifespan)              # or pg.lifespan_with(app_lifespan)
    pg.init_app(app)                                 # error handlers, routes, metrics

    @app.post("/items")
    async def create(item: Item, tx: TransactionDep) -> dict[str, Any]:
        return await tx.fetch_one("INSERT ... RETURNING *", ...)

The transaction dependency commits when the route returns normally and rolls back when it
raises, *before* the response is sent (FastAPI's ``scope="function"``): a client never sees a
200 for a commit that failed. ``DatabaseDep`` and ``TransactionDep`` find the app's ``Pgkeel``
through ``request.app``, so they can be imported at module level (and work under
``from __future__ import annotations``); ``pg.database_dependency`` and
``pg.transaction_dependency`` name one instance explicitly.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pgkeel.database_async import AsyncDatabase
from pgkeel.integrations._errors import HANDLED, map_error, unmapped
from pgkeel.integrations._metrics import UNMATCHED, Metrics
from pgkeel.transaction_async import AsyncTransaction

__all__ = ["DatabaseDep", "Pgkeel", "TransactionDep"]


Lifespan = Callable[[Any], AbstractAsyncContextManager[Mapping[str, Any] | None]]


class Pgkeel:
    """One AsyncDatabase for one FastAPI app, opened by the app's lifespan.

    ``url`` and ``options`` are :class:`~pgkeel.AsyncDatabase`'s; the database is built when
    the app starts (so importing the app module reads no environment and connects nowhere).
    ``readiness_timeout`` bounds ``/readyz``'s round trip.
    """

    def __init__(
        self, url: str | None = None, *, readiness_timeout: float = 2.0, **options: Any
    ) -> None:
        self._url = url
        self._options = options
        self._db: AsyncDatabase | None = None
        self.readiness_timeout = readiness_timeout
        self.metrics = Metrics(lambda: self.db.stats())
        #: ``Annotated[AsyncDatabase, pg.database_dependency]`` hands a route the database.
        self.database_dependency: Any = Depends(self._database)
        #: ``Annotated[AsyncTransaction, pg.transaction_dependency]`` hands a route a
        #: transaction, committed before the response when the route returns, rolled back if
        #: it raises.
        self.transaction_dependency: Any = Depends(self._transaction, scope="function")

    @property
    def db(self) -> AsyncDatabase:
        """The open database (between the lifespan's start and its end)."""
        if self._db is None:
            raise RuntimeError(
                "the pgkeel database is not open: pass `lifespan=pg.lifespan` (or "
                "`pg.lifespan_with(your_lifespan)`) to FastAPI(), and serve the app"
            )
        return self._db

    # --- lifespan -----------------------------------------------------------------------------

    @asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        """Open the database at startup, close it (and its connections) at shutdown."""
        db = AsyncDatabase(self._url, **self._options)
        await db.open()
        self._db = db
        try:
            yield
        finally:
            self._db = None
            await db.close()

    def lifespan_with(self, inner: Lifespan) -> Lifespan:
        """A lifespan that opens the database, then runs the app's own ``inner`` lifespan
        inside it (so ``inner`` can use ``pg.db``), and closes both in reverse order."""

        @asynccontextmanager
        async def combined(app: Any) -> AsyncIterator[Mapping[str, Any] | None]:
            async with self.lifespan(app), inner(app) as state:
                yield state

        return combined

    # --- dependencies -------------------------------------------------------------------------

    async def _database(self) -> AsyncDatabase:
        return self.db

    async def _transaction(self) -> AsyncIterator[AsyncTransaction]:
        t0 = time.perf_counter()
        async with self.db.transaction() as tx:
            self.metrics.checkout_wait.observe(time.perf_counter() - t0)
            yield tx

    # --- the app --------------------------------------------------------------------------------

    def init_app(self, app: FastAPI, *, routes: bool = True, metrics: bool = True) -> None:
        """Install the error handlers, and (unless turned off) the ``/healthz``, ``/readyz``,
        ``/metrics`` routes and the request-timing middleware."""
        app.state.pgkeel = self
        for cls in HANDLED:
            app.add_exception_handler(cls, self._handle)
        if metrics:
            app.add_middleware(_TimingMiddleware, metrics=self.metrics)
        if routes:
            app.add_api_route("/healthz", self._healthz, methods=["GET"], include_in_schema=False)
            app.add_api_route("/readyz", self._readyz, methods=["GET"], include_in_schema=False)
            if metrics:
                app.add_api_route(
                    "/metrics", self._metrics, methods=["GET"], include_in_schema=False
                )

    async def _handle(self, request: Request, exc: Exception) -> Response:
        answer = map_error(exc)
        if answer is None:
            answer = unmapped(exc, request.method, _route(request.scope))
            return JSONResponse(answer.body, status_code=answer.status)
        self.metrics.db_errors.labels(str(answer.status)).inc()
        return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)

    async def _healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    async def _readyz(self) -> Response:
        health = await self.db.health(timeout=self.readiness_timeout)
        status = 200 if health["status"] == "ok" else 503
        return JSONResponse(health, status_code=status)

    async def _metrics(self) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _installed(request: Request) -> Pgkeel:
    pg = getattr(request.app.state, "pgkeel", None)
    if isinstance(pg, Pgkeel):
        return pg
    raise RuntimeError("call pg.init_app(app) before using DatabaseDep or TransactionDep")


async def _request_database(request: Request) -> AsyncDatabase:
    return _installed(request).db


async def _request_transaction(request: Request) -> AsyncIterator[AsyncTransaction]:
    async for tx in _installed(request)._transaction():
        yield tx


#: A route parameter typed ``DatabaseDep`` receives the app's open AsyncDatabase.
DatabaseDep = Annotated[AsyncDatabase, Depends(_request_database)]
#: A route parameter typed ``TransactionDep`` receives a transaction, committed before the
#: response when the route returns normally, rolled back if it raises.
TransactionDep = Annotated[AsyncTransaction, Depends(_request_transaction, scope="function")]


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class _TimingMiddleware:
    """Pure ASGI middleware (no BaseHTTPMiddleware: it would buffer streamed responses)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        t0 = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.observe(_route(scope), scope["method"], status, time.perf_counter() - t0)
