"""pgkeel.integrations.fastapi over real HTTP (uvicorn on a free port, a real server)."""

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import psycopg
import pytest

pytest.importorskip("fastapi")

from fastapi import FastAPI, HTTPException
from prometheus_client.parser import text_string_to_metric_families

from fix_http import Client, serve_asgi
from pgkeel import AsyncDatabase, AsyncTransaction
from pgkeel.integrations.fastapi import Pgkeel

SCHEMA = """
CREATE TABLE item (
    k int PRIMARY KEY,
    qty int NOT NULL CHECK (qty >= 0) CONSTRAINT qty_nonneg CHECK (qty >= 0),
    code text CONSTRAINT item_code_key UNIQUE DEFERRABLE INITIALLY DEFERRED
);
"""


def _make_app(url: str, **options: Any) -> tuple[FastAPI, Pgkeel, dict[str, Any]]:
    pg = Pgkeel(url, **options)
    state: dict[str, Any] = {"hold": threading.Event(), "held": threading.Event()}

    @asynccontextmanager
    async def own(app: FastAPI) -> AsyncIterator[None]:
        # The app's own lifespan runs inside pgkeel's: the database is already open.
        state["startup_ping"] = await pg.db.fetch_val("SELECT 41 + 1")
        yield
        state["shutdown_ran"] = True

    app = FastAPI(lifespan=pg.lifespan_with(own))
    pg.init_app(app)
    Tx = Annotated[AsyncTransaction, pg.transaction_dependency]
    Db = Annotated[AsyncDatabase, pg.database_dependency]

    @app.post("/items")
    async def create(body: dict[str, Any], tx: Tx) -> Any:
        return await tx.fetch_one(
            "INSERT INTO item (k, qty, code) VALUES (%(k)s, %(qty)s, %(code)s) RETURNING *",
            {"k": body["k"], "qty": body.get("qty", 0), "code": body.get("code")},
        )

    @app.post("/items/pair")
    async def create_pair(body: dict[str, Any], tx: Tx) -> Any:
        # Two codes, equal: the deferred unique constraint fails at COMMIT only.
        for k in (body["k"], body["k"] + 1):
            await tx.execute(
                "INSERT INTO item (k, qty, code) VALUES (%s, 0, %s)", (k, body["code"])
            )
        return {"ok": True}

    @app.post("/items/then-fail")
    async def create_then_fail(body: dict[str, Any], tx: Tx) -> Any:
        await tx.execute("INSERT INTO item (k, qty) VALUES (%s, 0)", (body["k"],))
        raise HTTPException(400, "the route changed its mind")

    @app.get("/items/{k}")
    async def get(k: int, db: Db) -> Any:
        row = await db.fetch_one("SELECT * FROM item WHERE k = %s", (k,))
        if row is None:
            raise HTTPException(404, "no such item")
        return row

    @app.post("/items/{k}/adjust")
    async def adjust(k: int, body: dict[str, Any], tx: Tx) -> Any:
        return await tx.fetch_one(
            "UPDATE item SET qty = qty + %s WHERE k = %s RETURNING *", (body["delta"], k)
        )

    @app.get("/sleep")
    async def sleep(db: Db) -> Any:
        return await db.fetch_val("SELECT pg_sleep(30)::text")

    @app.get("/hold")
    async def hold(tx: Tx) -> Any:
        state["held"].set()
        await asyncio.to_thread(state["hold"].wait, 30)
        return {"held": True}

    return app, pg, state


@pytest.fixture
def url(pg_url: str) -> str:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(SCHEMA)
    return pg_url


def _count(url: str, sql: str, params: Any = None) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(sql, params).fetchone()
        assert row is not None
        return int(row[0])


def _families(c: Client) -> dict[str, Any]:
    answer = c.get("/metrics")
    assert answer.status == 200
    return {f.name: f for f in text_string_to_metric_families(answer.text)}


def _sample(families: dict[str, Any], name: str, **labels: str) -> float:
    for family in families.values():
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


def test_crud_and_health_routes(url: str) -> None:
    """A route gets a transaction and the database; /healthz and /readyz answer 200."""
    app, _, state = _make_app(url)
    with serve_asgi(app) as c:
        assert state["startup_ping"] == 42
        created = c.post("/items", {"k": 1, "qty": 5})
        assert created.status == 200, created.text
        assert created.json() == {"k": 1, "qty": 5, "code": None}
        assert c.get("/items/1").json()["qty"] == 5
        assert c.get("/healthz").json() == {"status": "ok"}
        ready = c.get("/readyz")
        assert ready.status == 200
        assert ready.json()["status"] == "ok"
    assert state["shutdown_ran"]


def test_unique_violation_is_409_with_constraint_and_no_sql(url: str) -> None:
    """A duplicate key answers 409 naming the constraint, with no SQL, value or host in it."""
    app, _, _ = _make_app(url)
    with serve_asgi(app) as c:
        assert c.post("/items", {"k": 7, "qty": 1, "code": "secret-value"}).status == 200
        dup = c.post("/items", {"k": 7, "qty": 1, "code": "other"})
    assert dup.status == 409
    body = dup.json()
    assert body["error"] == "conflict"
    assert body["constraint"] == "item_pkey"
    for leak in ("INSERT", "secret", "127.0.0.1", "Key (", "pgkeel_test_", "%("):
        assert leak not in dup.text


def test_deferred_violation_at_commit_is_409_not_200(url: str) -> None:
    """The transaction dependency commits before the response: a COMMIT failure is a 409."""
    app, _, _ = _make_app(url)
    with serve_asgi(app) as c:
        answer = c.post("/items/pair", {"k": 10, "code": "same"})
    assert answer.status == 409, answer.text
    assert answer.json()["constraint"] == "item_code_key"
    assert _count(url, "SELECT count(*) FROM item") == 0


def test_route_exception_rolls_back(url: str) -> None:
    """A route that raises after writing leaves nothing behind (the transaction rolls back)."""
    app, _, _ = _make_app(url)
    with serve_asgi(app) as c:
        answer = c.post("/items/then-fail", {"k": 3})
    assert answer.status == 400
    assert _count(url, "SELECT count(*) FROM item") == 0


def test_check_violation_is_422_and_data_unchanged(url: str) -> None:
    """Stock below zero breaks the CHECK: 422 naming the constraint, the row is unchanged."""
    app, _, _ = _make_app(url)
    with serve_asgi(app) as c:
        c.post("/items", {"k": 1, "qty": 2})
        answer = c.post("/items/1/adjust", {"delta": -3})
        assert answer.status == 422, answer.text
        assert answer.json()["constraint"] in {"qty_nonneg", "item_qty_check"}
        assert c.get("/items/1").json()["qty"] == 2


def test_pool_exhausted_is_503_with_retry_after(url: str) -> None:
    """With a pool of one held by another request, a request answers 503 + Retry-After."""
    app, _, state = _make_app(url, min_size=1, max_size=1, timeout=0.5, size_check="off")
    with serve_asgi(app) as c:
        holder = threading.Thread(target=c.get, args=("/hold",))
        holder.start()
        try:
            assert state["held"].wait(30)
            answer = c.get("/items/1")
        finally:
            state["hold"].set()
            holder.join(30)
        assert answer.status == 503, answer.text
        assert answer.headers["retry-after"] == "1"
        assert answer.json()["error"] == "unavailable"
        # The pool is whole again once the holder is done.
        assert c.get("/readyz").status == 200


def test_statement_timeout_is_504(url: str) -> None:
    """A query canceled by statement_timeout answers 504 and the pool keeps working."""
    app, _, _ = _make_app(url, statement_timeout="200ms")
    with serve_asgi(app) as c:
        answer = c.get("/sleep")
        assert answer.status == 504, answer.text
        assert answer.json()["error"] == "timeout"
        assert "pg_sleep" not in answer.text
        assert c.get("/readyz").status == 200


def test_lifespan_closes_the_pool(url: str) -> None:
    """While serving the app's connections show in pg_stat_activity; after shutdown none do."""
    name = "pgkeel-lifespan-test"
    app, _, _ = _make_app(url, application_name=name, min_size=2)
    sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
    with serve_asgi(app) as c:
        assert c.get("/readyz").status == 200
        assert _count(url, sql, (name,)) >= 1
    # Backends may take a moment to leave pg_stat_activity after the client closed them.
    deadline = time.monotonic() + 10
    while _count(url, sql, (name,)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _count(url, sql, (name,)) == 0


def test_db_outside_lifespan_says_what_to_do() -> None:
    """Using pg.db without the lifespan raises an error naming the fix."""
    pg = Pgkeel("postgresql://nowhere/x")
    with pytest.raises(RuntimeError, match=r"lifespan=pg\.lifespan"):
        _ = pg.db


def test_metrics_parse_and_move(url: str) -> None:
    """/metrics parses with prometheus_client's parser; request and pool counters move."""
    app, _, _ = _make_app(url)
    with serve_asgi(app) as c:
        c.post("/items", {"k": 1, "qty": 1})
        before = _families(c)
        for _ in range(3):
            assert c.get("/items/1").status == 200
        c.get("/no/such/path/12345")
        after = _families(c)
    route = {"route": "/items/{k}", "method": "GET", "status": "2xx"}
    assert _sample(after, "pgkeel_http_requests_total", **route) == (
        _sample(before, "pgkeel_http_requests_total", **route) + 3
    )
    assert _sample(after, "pgkeel_pool_checkouts_total") > _sample(
        before, "pgkeel_pool_checkouts_total"
    )
    assert _sample(after, "pgkeel_pool_checkout_wait_seconds_count") >= 1
    assert _sample(after, "pgkeel_pool_max_size") == 10
    labels = {s.labels.get("route") for f in after.values() for s in f.samples}
    # A path a client made up never becomes a label value.
    assert not any(label and "12345" in label for label in labels)
