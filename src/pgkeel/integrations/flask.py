"""pgkeel in a Flask application: one :class:`~pgkeel.Database` per process, the database
error mapping as JSON error handlers, and the ``/healthz``, ``/readyz``, ``/metrics`` routes.

::

    pg = Pgkeel()                     # DATABASE_URL, or Pgkeel(url, max_size=10)
    app = Flask(__name__)
    pg.init_app(app)

    @app.post("/items")
    def create():
        with pg.db.transaction() as tx:
            return tx.fetch_one("INSERT ... RETURNING *", ...)

The pool lives as long as the process: it is opened on first use in each process (so a
pre-forking server's workers each get their own, never one inherited across ``fork()``) and
closed at interpreter exit, never on app-context teardown, which runs after every request.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from typing import Any

from flask import Flask, Response, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pgkeel.database import Database
from pgkeel.integrations._errors import HANDLED, map_error, unmapped
from pgkeel.integrations._metrics import UNMATCHED, Metrics

__all__ = ["Pgkeel"]


class Pgkeel:
    """The Flask extension. ``url`` and ``options`` are :class:`~pgkeel.Database`'s."""

    def __init__(
        self,
        app: Flask | None = None,
        url: str | None = None,
        *,
        readiness_timeout: float = 2.0,
        **options: Any,
    ) -> None:
        self._url = url
        self._options = options
        self._db: Database | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()
        self.readiness_timeout = readiness_timeout
        self.metrics = Metrics(lambda: self._db.stats() if self._db is not None else {})
        if app is not None:
            self.init_app(app)

    @property
    def db(self) -> Database:
        """This process's open Database (opened on first use)."""
        db = self._db
        if db is not None and self._pid == os.getpid():
            return db
        with self._lock:
            if self._db is None or self._pid != os.getpid():
                # A pool inherited through fork() shares sockets with the parent: never use
                # it; the parent closes its own.
                fresh = Database(self._url, **self._options)
                fresh.open()
                self._db, self._pid = fresh, os.getpid()
                atexit.register(fresh.close)
            return self._db

    def close(self) -> None:
        """Close this process's pool now (it is also closed at interpreter exit)."""
        with self._lock:
            if self._db is not None and self._pid == os.getpid():
                self._db.close()
            self._db = None

    def init_app(self, app: Flask, *, routes: bool = True, metrics: bool = True) -> None:
        """Register the error handlers, and (unless turned off) the routes and the timing."""
        app.extensions["pgkeel"] = self
        for cls in HANDLED:
            app.register_error_handler(cls, self._handle)
        if metrics:
            app.before_request(self._start_timer)
            app.after_request(self._observe)
        if routes:
            app.add_url_rule("/healthz", "pgkeel_healthz", self._healthz)
            app.add_url_rule("/readyz", "pgkeel_readyz", self._readyz)
            if metrics:
                app.add_url_rule("/metrics", "pgkeel_metrics", self._metrics)

    def _handle(self, exc: Exception) -> tuple[Response, int, dict[str, str]]:
        answer = map_error(exc)
        if answer is None:
            answer = unmapped(exc, request.method, _rule())
            return jsonify(answer.body), answer.status, {}
        self.metrics.db_errors.labels(str(answer.status)).inc()
        return jsonify(answer.body), answer.status, answer.headers

    def _start_timer(self) -> None:
        g.pgkeel_t0 = time.perf_counter()

    def _observe(self, response: Response) -> Response:
        t0 = g.get("pgkeel_t0")
        if t0 is not None:
            self.metrics.observe(
                _rule(), request.method, response.status_code, time.perf_counter() - t0
            )
        return response

    def _healthz(self) -> Response:
        return jsonify({"status": "ok"})

    def _readyz(self) -> tuple[Response, int]:
        health = self.db.health(timeout=self.readiness_timeout)
        return jsonify(health), 200 if health["status"] == "ok" else 503

    def _metrics(self) -> Response:
        return Response(generate_latest(self.metrics.registry), content_type=CONTENT_TYPE_LATEST)


def _rule() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else UNMATCHED
