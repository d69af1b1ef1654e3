"""The two benchmarked endpoints (GET a product by id, search by tag) written three ways, for
``bench/service.py``: the catalogue service itself (pgkeel), and FastAPI over raw
``psycopg_pool.AsyncConnectionPool`` with ``dict_row`` and over a raw ``asyncpg`` pool, as the
guides teach them. ``make()`` picks one from ``$BENCH_VARIANT``; ``$DATABASE_URL`` says where."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

from fastapi import FastAPI, HTTPException, Query

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from examples.catalogue.models import Page, Product

POOL = 10
BY_ID = "SELECT * FROM product WHERE id = %s"
BY_TAG = "SELECT * FROM product WHERE tags && %s ORDER BY id LIMIT %s"


def make() -> FastAPI:
    variant = os.environ["BENCH_VARIANT"]
    url = os.environ["DATABASE_URL"]
    if variant == "pgkeel":
        from examples.catalogue.app import create_app

        return create_app(url, migrate=False, min_size=POOL, max_size=POOL)
    if variant == "psycopg_pool":
        return _psycopg_pool(url)
    if variant == "asyncpg":
        return _asyncpg(url)
    raise SystemExit(f"unknown BENCH_VARIANT {variant!r}")


def _psycopg_pool(url: str) -> FastAPI:
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncConnectionPool(
            url, min_size=POOL, max_size=POOL, kwargs={"row_factory": dict_row}
        ) as pool:
            await pool.wait()
            state["pool"] = pool
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/api/products/{product_id}", response_model=Product)
    async def get(product_id: UUID) -> Any:
        async with state["pool"].connection() as conn:
            row = await (await conn.execute(BY_ID, (product_id,))).fetchone()
        if row is None:
            raise HTTPException(404)
        return row

    @app.get("/api/products", response_model=Page)
    async def search(
        tag: Annotated[list[str], Query()], limit: Annotated[int, Query(le=200)] = 50
    ) -> Any:
        async with state["pool"].connection() as conn:
            rows = await (await conn.execute(BY_TAG, (tag, limit + 1))).fetchall()
        return {"items": rows[:limit], "next": rows[limit - 1]["id"] if len(rows) > limit else None}

    return app


def _asyncpg(url: str) -> FastAPI:
    import asyncpg

    state: dict[str, Any] = {}

    async def init(conn: Any) -> None:
        await conn.set_type_codec(
            "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["pool"] = await asyncpg.create_pool(url, min_size=POOL, max_size=POOL, init=init)
        yield
        await state["pool"].close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/api/products/{product_id}", response_model=Product)
    async def get(product_id: UUID) -> Any:
        async with state["pool"].acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM product WHERE id = $1", product_id)
        if row is None:
            raise HTTPException(404)
        return dict(row)

    @app.get("/api/products", response_model=Page)
    async def search(
        tag: Annotated[list[str], Query()], limit: Annotated[int, Query(le=200)] = 50
    ) -> Any:
        async with state["pool"].acquire() as conn:
            rows = await conn.fetch(
                "SELECT * FROM product WHERE tags && $1 ORDER BY id LIMIT $2", tag, limit + 1
            )
        items = [dict(r) for r in rows[:limit]]
        return {"items": items, "next": items[-1]["id"] if len(rows) > limit else None}

    return app
