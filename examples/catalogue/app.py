"""The catalogue service: ``create_app()`` builds the FastAPI app (JSON API under ``/api``, the
web page at ``/``, health and metrics from pgkeel's integration).

Only pgkeel's public API is used for the database: ``pgkeel.integrations.fastapi`` for the
lifespan, dependencies and error mapping, ``pgkeel.migrate.up`` for the schema, ``fetch_*`` /
``execute`` with ``RETURNING`` for one-round-trip writes, ``upsert`` for the CSV import and
``copy_out`` for the CSV export, and ``tx.publish`` for a ``product.changed`` event on every
write, stored in the write's own transaction (so it exists exactly when the write does;
subscribe with ``db.subscribe(PRODUCT_CHANGED, consumer=...)``). Queries are composed with
``psycopg.sql`` (never by formatting strings), and every value travels as a parameter.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import psycopg.errors
from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from psycopg import sql
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import pgkeel
import pgkeel.migrate
from pgkeel import AsyncDatabase
from pgkeel.integrations.fastapi import DatabaseDep as Db
from pgkeel.integrations.fastapi import Pgkeel

from .models import (
    MAX_BODY,
    MAX_CSV,
    Imported,
    LowStock,
    Page,
    Product,
    ProductIn,
    ProductPatch,
    StockChange,
)

HERE = Path(__file__).parent
MIGRATIONS = HERE / "migrations"
#: The CSV columns of the import and the export, in order.
CSV_COLUMNS = ("sku", "name", "category", "price", "stock", "tags", "metadata")
#: The durable topic every write publishes to: {"op", "id", "sku"} (an import: {"op", "skus"}).
PRODUCT_CHANGED = "product.changed"
_PATCHABLE = ("sku", "name", "category", "price", "tags", "metadata", "available_from")


def create_app(url: str | None = None, *, migrate: bool = True, **options: Any) -> FastAPI:
    """The service; ``url`` and ``options`` go to :class:`pgkeel.AsyncDatabase` (``url``
    defaults to ``DATABASE_URL``). With ``migrate``, the schema is brought up to date at
    startup."""
    options.setdefault("application_name", "pgkeel-catalogue")
    pg = Pgkeel(url, **options)

    @asynccontextmanager
    async def schema(app: FastAPI) -> AsyncIterator[None]:
        if migrate:
            # migrate.up is synchronous (one dedicated connection, an advisory lock).
            await asyncio.to_thread(pgkeel.migrate.up, url, MIGRATIONS)
        yield

    app = FastAPI(
        title="pgkeel product catalogue",
        description="A reference service built on pgkeel's public API.",
        lifespan=pg.lifespan_with(schema),
    )
    pg.init_app(app)
    app.add_middleware(_BodyLimit, limit=MAX_BODY, limits={"/api/import": MAX_CSV + 64 * 1024})
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")

    # --- JSON API ---------------------------------------------------------------------------

    @app.post("/api/products", status_code=201, response_model=Product, tags=["products"])
    async def create_product(product: ProductIn, db: Db) -> Any:
        """Create a product (INSERT ... RETURNING, and its event, in one transaction)."""
        async with db.transaction() as tx:
            row = await tx.fetch_one(
                "INSERT INTO product (sku, name, category, price, stock, tags, metadata,"
                " available_from) VALUES (%(sku)s, %(name)s, %(category)s, %(price)s,"
                " %(stock)s, %(tags)s, %(metadata)s::jsonb, %(available_from)s) RETURNING *",
                _params(product.model_dump()),
            )
            await _changed(tx, "created", row)
        return row

    @app.get("/api/products/{product_id}", response_model=Product, tags=["products"])
    async def get_product(product_id: UUID, db: Db) -> Any:
        """One product by id."""
        return _found(await db.fetch_one("SELECT * FROM product WHERE id = %s", (product_id,)))

    @app.patch("/api/products/{product_id}", response_model=Product, tags=["products"])
    async def update_product(product_id: UUID, patch: ProductPatch, db: Db) -> Any:
        """Change the fields given (one round trip: UPDATE ... RETURNING)."""
        given = patch.model_dump(exclude_unset=True)
        if not given:
            raise HTTPException(422, "give at least one field to change")
        sets = [
            sql.SQL("{} = {}").format(
                sql.Identifier(name),
                sql.SQL("%({})s::jsonb" if name == "metadata" else "%({})s").format(sql.SQL(name)),
            )
            for name in _PATCHABLE
            if name in given
        ]
        query = sql.SQL(
            "UPDATE product SET {}, updated_at = now() WHERE id = %(id)s RETURNING *"
        ).format(sql.SQL(", ").join(sets))
        async with db.transaction() as tx:
            row = _found(await tx.fetch_one(query, {**_params(given), "id": product_id}))
            await _changed(tx, "updated", row)
        return row

    @app.delete("/api/products/{product_id}", status_code=204, tags=["products"])
    async def delete_product(product_id: UUID, db: Db) -> Response:
        """Delete a product."""
        async with db.transaction() as tx:
            row = _found(
                await tx.fetch_one(
                    "DELETE FROM product WHERE id = %s RETURNING id, sku", (product_id,)
                )
            )
            await _changed(tx, "deleted", row)
        return Response(status_code=204)

    @app.get("/api/products", response_model=Page, tags=["products"])
    async def list_products(
        db: Db,
        category: Annotated[str | None, Query(max_length=64)] = None,
        min_price: Annotated[Decimal | None, Query(ge=0)] = None,
        max_price: Annotated[Decimal | None, Query(ge=0)] = None,
        in_stock: bool | None = None,
        tag: Annotated[list[str] | None, Query(max_length=32)] = None,
        match: Annotated[str, Query(pattern="^(any|all)$")] = "any",
        metadata: Annotated[str | None, Query(max_length=4096)] = None,
        q: Annotated[str | None, Query(max_length=200)] = None,
        after: UUID | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> Any:
        """Products in id order, ``limit`` at a time (keyset pagination: pass ``next`` as
        ``after``), filtered by category, price range, stock, tags (``match=any`` uses ``&&``,
        ``all`` uses ``@>``, both served by the GIN index), metadata containment (``@>``) and a
        name substring."""
        where, params = _filters(category, min_price, max_price, in_stock, tag, match, metadata, q)
        if after is not None:
            where.append(sql.SQL("id > %(after)s"))
            params["after"] = after
        params["limit"] = limit + 1
        query = sql.SQL("SELECT * FROM product WHERE {} ORDER BY id LIMIT %(limit)s").format(
            sql.SQL(" AND ").join(where)
        )
        rows = await db.fetch_all(query, params)
        more = len(rows) > limit
        rows = rows[:limit]
        return {"items": rows, "next": rows[-1]["id"] if more else None}

    @app.post("/api/products/{product_id}/stock", response_model=Product, tags=["stock"])
    async def adjust_stock(product_id: UUID, change: StockChange, db: Db) -> Any:
        """Add ``delta`` (negative to take out) to the stock; the CHECK constraint refuses a
        negative stock, answered as 409."""
        try:
            async with db.transaction() as tx:
                row = _found(
                    await tx.fetch_one(
                        "UPDATE product SET stock = stock + %s, updated_at = now() WHERE id = %s"
                        " RETURNING *",
                        (change.delta, product_id),
                    )
                )
                await _changed(tx, "stock", row)
        except psycopg.errors.CheckViolation as exc:
            if exc.diag.constraint_name != "product_stock_nonnegative":
                raise
            raise HTTPException(
                409, f"not enough stock: taking {-change.delta} would leave less than zero"
            ) from None
        except psycopg.errors.NumericValueOutOfRange:
            raise HTTPException(409, "the stock would exceed its maximum") from None
        return row

    @app.get("/api/reports/low-stock", response_model=list[LowStock], tags=["reports"])
    async def low_stock(db: Db, threshold: Annotated[int, Query(ge=1, le=1_000_000)] = 10) -> Any:
        """Per category: products, how many are below ``threshold``, how many are out of
        stock, and the five lowest (one query, with CTEs)."""
        return await db.fetch_all(LOW_STOCK, {"threshold": threshold})

    @app.post("/api/import", response_model=Imported, tags=["bulk"])
    async def import_csv(db: Db, file: Annotated[UploadFile, File()]) -> Any:
        """Upsert a CSV file (columns: sku, name, category, price[, stock, tags, metadata];
        tags separated by ``|``, metadata as JSON) by sku: every row or none."""
        data = await file.read(MAX_CSV + 1)
        if len(data) > MAX_CSV:
            raise HTTPException(413, f"the CSV file is larger than {MAX_CSV} bytes")
        rows = _parse_csv(data)
        if not rows:
            raise HTTPException(422, "the CSV file has no rows")
        try:
            async with db.transaction() as tx:
                count = await tx.upsert("product", rows, key="sku")
                await tx.publish(
                    PRODUCT_CHANGED, {"op": "imported", "skus": [r["sku"] for r in rows]}
                )
        except pgkeel.DuplicateKeyError as exc:
            raise HTTPException(422, f"sku {exc.key!r} appears more than once") from None
        return {"rows": count}

    @app.get("/api/export.csv", tags=["bulk"])
    async def export_csv(db: Db) -> StreamingResponse:
        """Every product as CSV (the import's format), streamed by COPY ... TO STDOUT."""
        return StreamingResponse(
            _copy_stream(db),
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="products.csv"'},
        )

    # --- the web page ------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index(
        request: Request,
        db: Db,
        tag: Annotated[str | None, Query(max_length=40)] = None,
        q: Annotated[str | None, Query(max_length=200)] = None,
        category: Annotated[str | None, Query(max_length=64)] = None,
        after: UUID | None = None,
    ) -> Any:
        tags = [tag] if tag else None
        where, params = _filters(category or None, None, None, None, tags, "any", None, q or None)
        if after is not None:
            where.append(sql.SQL("id > %(after)s"))
            params["after"] = after
        query = sql.SQL("SELECT * FROM product WHERE {} ORDER BY id LIMIT 51").format(
            sql.SQL(" AND ").join(where)
        )
        rows = await db.fetch_all(query, params)
        total = await db.fetch_val("SELECT count(*) FROM product")
        nxt = rows[49]["id"] if len(rows) > 50 else None
        return templates.TemplateResponse(
            request,
            "index.html",
            {
                "products": rows[:50],
                "next": nxt,
                "tag": tag or "",
                "q": q or "",
                "category": category or "",
                "total": total,
            },
        )

    @app.get("/products/{product_id}", response_class=HTMLResponse, include_in_schema=False)
    async def product_page(request: Request, product_id: UUID, db: Db) -> Any:
        row = await db.fetch_one("SELECT * FROM product WHERE id = %s", (product_id,))
        if row is None:
            return templates.TemplateResponse(
                request, "missing.html", {"id": product_id}, status_code=404
            )
        return templates.TemplateResponse(
            request,
            "product.html",
            {"p": row, "metadata": json.dumps(row["metadata"], ensure_ascii=False, indent=2)},
        )

    return app


# --- helpers ---------------------------------------------------------------------------------

LOW_STOCK = """
WITH per_category AS (
    SELECT category,
           count(*) AS products,
           count(*) FILTER (WHERE stock < %(threshold)s) AS low,
           count(*) FILTER (WHERE stock = 0) AS out_of_stock
    FROM product
    GROUP BY category
), ranked AS (
    SELECT category, id, sku, name, stock,
           row_number() OVER (PARTITION BY category ORDER BY stock, sku) AS rank
    FROM product
    WHERE stock < %(threshold)s
)
SELECT c.category, c.products, c.low, c.out_of_stock,
       coalesce(
           jsonb_agg(jsonb_build_object('id', r.id, 'sku', r.sku, 'name', r.name,
                                        'stock', r.stock) ORDER BY r.rank)
               FILTER (WHERE r.id IS NOT NULL),
           '[]'::jsonb) AS lowest
FROM per_category c
LEFT JOIN ranked r ON r.category = c.category AND r.rank <= 5
WHERE c.low > 0
GROUP BY c.category, c.products, c.low, c.out_of_stock
ORDER BY c.low DESC, c.category
"""


async def _changed(tx: pgkeel.AsyncTransaction, op: str, row: Any) -> None:
    """Publish the write's ``product.changed`` event in its transaction."""
    await tx.publish(PRODUCT_CHANGED, {"op": op, "id": str(row["id"]), "sku": row["sku"]})


def _found(row: Any) -> Any:
    if row is None:
        raise HTTPException(404, "no product with this id")
    return row


def _params(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    if "metadata" in out and out["metadata"] is not None:
        out["metadata"] = json.dumps(out["metadata"])
    return out


def _filters(
    category: str | None,
    min_price: Decimal | None,
    max_price: Decimal | None,
    in_stock: bool | None,
    tags: list[str] | None,
    match: str,
    metadata: str | None,
    q: str | None,
) -> tuple[list[sql.Composable], dict[str, Any]]:
    where: list[sql.Composable] = [sql.SQL("TRUE")]
    params: dict[str, Any] = {}
    for text in (category, q, metadata, *(tags or ())):
        if text is not None and "\x00" in text:
            raise HTTPException(422, "a search value must not contain a NUL character")
    if category is not None:
        where.append(sql.SQL("category = %(category)s"))
        params["category"] = category
    if min_price is not None:
        where.append(sql.SQL("price >= %(min_price)s"))
        params["min_price"] = min_price
    if max_price is not None:
        where.append(sql.SQL("price <= %(max_price)s"))
        params["max_price"] = max_price
    if in_stock is not None:
        where.append(sql.SQL("stock > 0" if in_stock else "stock = 0"))
    if tags:
        where.append(sql.SQL("tags @> %(tags)s" if match == "all" else "tags && %(tags)s"))
        params["tags"] = tags
    if metadata is not None:
        try:
            contained = json.loads(metadata)
        except ValueError:
            raise HTTPException(422, "metadata must be a JSON object") from None
        if not isinstance(contained, dict):
            raise HTTPException(422, "metadata must be a JSON object")
        where.append(sql.SQL("metadata @> %(metadata)s::jsonb"))
        params["metadata"] = json.dumps(contained)
    if q is not None:
        # strpos, not LIKE: the user's text is never a pattern.
        where.append(sql.SQL("strpos(lower(name), lower(%(q)s)) > 0"))
        params["q"] = q
    return where, params


def _parse_csv(data: bytes) -> list[dict[str, Any]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise HTTPException(422, "the CSV file is not UTF-8") from None
    if "\x00" in text:
        raise HTTPException(422, "the CSV file contains a NUL character")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    unknown = [c for c in header if c not in CSV_COLUMNS]
    missing = [c for c in ("sku", "name", "category", "price") if c not in header]
    if unknown or missing:
        raise HTTPException(
            422,
            f"the CSV header must name the columns {', '.join(CSV_COLUMNS)} "
            f"(missing: {missing or 'none'}, unknown: {unknown or 'none'})",
        )
    rows: list[dict[str, Any]] = []
    now = datetime.now(UTC)
    try:
        for line, raw in enumerate(reader, start=2):
            if None in raw or any(v is None for v in raw.values()):
                raise HTTPException(422, f"line {line}: wrong number of fields")
            fields: dict[str, Any] = {k: v for k, v in raw.items() if v != "" or k == "tags"}
            fields["tags"] = [t for t in (raw.get("tags") or "").split("|") if t]
            if "metadata" in fields:
                try:
                    fields["metadata"] = json.loads(fields["metadata"])
                except ValueError:
                    raise HTTPException(422, f"line {line}: metadata is not JSON") from None
            try:
                product = ProductIn.model_validate(fields)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise HTTPException(422, f"line {line}: {where}: {first['msg']}") from None
            row = product.model_dump()
            row["updated_at"] = now
            rows.append(row)
    except csv.Error as exc:
        raise HTTPException(422, f"the CSV file is malformed: {exc}") from None
    return rows


async def _copy_stream(db: AsyncDatabase) -> AsyncIterator[bytes]:
    """COPY's output as it comes: copy_out writes ~1 MiB at a time from a worker thread into a
    bounded queue that this generator drains (so a slow client slows the COPY down)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=4)

    class Sink(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data: Any) -> int:
            chunk = bytes(data)
            asyncio.run_coroutine_threadsafe(queue.put(chunk), loop).result()
            return len(chunk)

    async def produce() -> None:
        try:
            await db.copy_out(
                "SELECT sku, name, category, price, stock, array_to_string(tags, '|') AS tags,"
                " metadata FROM product ORDER BY sku",
                Sink(),
            )
        finally:
            await queue.put(None)

    task = asyncio.create_task(produce())
    try:
        while (chunk := await queue.get()) is not None:
            yield chunk
        await task
    finally:
        if not task.done():
            task.cancel()
            # Unblock a writer waiting on a full queue, then let the task end.
            while not queue.empty():
                queue.get_nowait()
            await asyncio.gather(task, return_exceptions=True)


class _BodyLimit:
    """Refuse request bodies larger than ``limit`` bytes (``limits`` per path) with 413,
    whether or not the client announced the length."""

    def __init__(self, app: ASGIApp, limit: int, limits: dict[str, int]) -> None:
        self.app = app
        self.limit = limit
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.limit)
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _too_large(limit)(scope, receive, send)
                return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(413, f"the request body is larger than {limit} bytes")
            return message

        await self.app(scope, counted, send)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(
        {"detail": f"the request body is larger than {limit} bytes"}, status_code=413
    )
