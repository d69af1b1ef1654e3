"""pgkeel.integrations.flask over real HTTP (werkzeug's threaded server, a real database)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from typing import Any

import psycopg
import pytest

pytest.importorskip("flask")

from flask import Flask, request
from prometheus_client.parser import text_string_to_metric_families

from fix_http import serve_wsgi
from pgkeel.integrations.flask import Pgkeel

SCHEMA = "CREATE TABLE item (k int PRIMARY KEY, qty int NOT NULL CHECK (qty >= 0))"


def _make_app(url: str, **options: Any) -> tuple[Flask, Pgkeel, dict[str, threading.Event]]:
    app = Flask(__name__)
    pg = Pgkeel(app, url, **options)
    events = {"hold": threading.Event(), "held": threading.Event()}

    @app.post("/items")
    def create() -> Any:
        body = request.get_json()
        with pg.db.transaction() as tx:
            return tx.fetch_one(
                "INSERT INTO item (k, qty) VALUES (%s, %s) RETURNING *", (body["k"], body["qty"])
            )

    @app.get("/items/<int:k>")
    def get(k: int) -> Any:
        return pg.db.fetch_one("SELECT * FROM item WHERE k = %s", (k,)) or ({}, 404)

    @app.get("/sleep")
    def sleep() -> Any:
        return {"v": pg.db.fetch_val("SELECT pg_sleep(30)::text")}

    @app.get("/hold")
    def hold() -> Any:
        with pg.db.transaction():
            events["held"].set()
            events["hold"].wait(30)
        return {"held": True}

    return app, pg, events


@pytest.fixture
def url(pg_url: str) -> str:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(SCHEMA)
    return pg_url


def test_mapping_and_routes(url: str) -> None:
    """Duplicate -> 409, CHECK -> 422 (constraint named, no SQL), health routes answer."""
    app, pg, _ = _make_app(url)
    try:
        with serve_wsgi(app) as c:
            assert c.post("/items", {"k": 1, "qty": 1}).json() == {"k": 1, "qty": 1}
            dup = c.post("/items", {"k": 1, "qty": 1})
            assert dup.status == 409
            assert dup.json()["constraint"] == "item_pkey"
            bad = c.post("/items", {"k": 2, "qty": -1})
            assert bad.status == 422
            assert bad.json()["constraint"] == "item_qty_check"
            for leak in ("INSERT", "127.0.0.1", "Failing row"):
                assert leak not in dup.text + bad.text
            assert c.get("/healthz").json() == {"status": "ok"}
            assert c.get("/readyz").json()["status"] == "ok"
    finally:
        pg.close()


def test_teardown_never_closes_the_pool(url: str) -> None:
    """Many requests (each with an app-context teardown) share one open Database."""
    app, pg, _ = _make_app(url)
    try:
        with serve_wsgi(app) as c:
            c.post("/items", {"k": 1, "qty": 1})
            first = pg.db
            for _ in range(5):
                assert c.get("/items/1").status == 200
            assert pg.db is first
            assert pg.db.stats()["checkouts"] >= 6
            assert pg.db.health()["status"] == "ok"
    finally:
        pg.close()


def test_pool_exhausted_503_and_timeout_504(url: str) -> None:
    """A held pool of one gives 503 + Retry-After; a statement past its timeout gives 504."""
    app, pg, events = _make_app(
        url, min_size=1, max_size=1, timeout=0.5, size_check="off", statement_timeout="200ms"
    )
    try:
        with serve_wsgi(app) as c:
            holder = threading.Thread(target=c.get, args=("/hold",))
            holder.start()
            try:
                assert events["held"].wait(30)
                busy = c.get("/items/1")
            finally:
                events["hold"].set()
                holder.join(30)
            assert busy.status == 503
            assert busy.headers["retry-after"] == "1"
            slow = c.get("/sleep")
            assert slow.status == 504
            assert "pg_sleep" not in slow.text
    finally:
        pg.close()


def test_metrics_parse_and_move(url: str) -> None:
    """/metrics parses with prometheus_client's parser and the request counter moves."""
    app, pg, _ = _make_app(url)

    def count(text: str) -> float:
        return sum(
            s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == "pgkeel_http_requests_total" and s.labels["route"] == "/items/<int:k>"
        )

    try:
        with serve_wsgi(app) as c:
            c.post("/items", {"k": 1, "qty": 1})
            before = count(c.get("/metrics").text)
            c.get("/items/1")
            c.get("/items/2")
            after = count(c.get("/metrics").text)
        assert after == before + 2
    finally:
        pg.close()


def test_pool_closed_at_process_exit(url: str) -> None:
    """A process that used the extension leaves no backend behind once it exits."""
    name = "pgkeel-flask-exit"
    code = textwrap.dedent(
        f"""
        from flask import Flask
        from pgkeel.integrations.flask import Pgkeel
        app = Flask("x")
        pg = Pgkeel(app, {url!r}, application_name={name!r}, min_size=2)
        with app.test_client() as c:
            assert c.get("/readyz").status_code == 200
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(200):
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
            ).fetchone()
            if row and row[0] == 0:
                break
            conn.execute("SELECT pg_sleep(0.05)")
        assert row is not None
        assert row[0] == 0
