"""The catalogue example service over real HTTP: endpoints, error mapping, hostile input."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import psycopg
import pytest

from fix_http import Client

pytest_plugins = ["fix_catalogue"]

WIDGET = {"sku": "W-1", "name": "Widget", "category": "tools", "price": "9.99", "stock": 5}


def _create(c: Client, **fields: Any) -> dict[str, Any]:
    answer = c.post("/api/products", {**WIDGET, **fields})
    assert answer.status == 201, answer.text
    return dict(answer.json())


def _csv_upload(c: Client, text: str) -> Any:
    boundary = "pgkeelboundary42"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\n{text}\r\n--{boundary}--\r\n"
    ).encode()
    return c.request(
        "POST",
        "/api/import",
        raw=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )


def test_crud_round_trip(catalogue: Client) -> None:
    """Create, get, patch, delete a product; each answers with the stored row."""
    c = catalogue
    p = _create(c, tags=["a", "b"], metadata={"color": "red"})
    assert p["price"] == "9.99"
    assert p["tags"] == ["a", "b"]
    assert c.get(f"/api/products/{p['id']}").json() == p
    patched = c.request("PATCH", f"/api/products/{p['id']}", {"price": "12.50", "tags": ["z"]})
    assert patched.status == 200, patched.text
    assert patched.json()["price"] == "12.50"
    assert patched.json()["tags"] == ["z"]
    assert patched.json()["name"] == "Widget"
    assert c.request("DELETE", f"/api/products/{p['id']}").status == 204
    assert c.get(f"/api/products/{p['id']}").status == 404
    assert c.request("DELETE", f"/api/products/{p['id']}").status == 404


def test_duplicate_sku_is_409(catalogue: Client) -> None:
    """A second product with the same SKU answers 409 naming the constraint."""
    _create(catalogue)
    dup = catalogue.post("/api/products", WIDGET)
    assert dup.status == 409
    assert dup.json()["constraint"] == "product_sku_key"


def test_keyset_pagination_and_filters(catalogue: Client) -> None:
    """Pages follow `next` without gaps or repeats; filters combine."""
    c = catalogue
    for i in range(7):
        _create(
            c,
            sku=f"S-{i}",
            category="even" if i % 2 == 0 else "odd",
            price=str(i),
            stock=i % 3,
            tags=[f"t{i % 2}", "all"],
            metadata={"n": i, "kind": "even" if i % 2 == 0 else "odd"},
        )
    seen: list[str] = []
    after = ""
    while True:
        page = c.get(f"/api/products?limit=3{after}").json()
        seen += [p["sku"] for p in page["items"]]
        if page["next"] is None:
            break
        after = f"&after={page['next']}"
    assert sorted(seen) == [f"S-{i}" for i in range(7)]
    assert len(seen) == 7

    def skus(query: str) -> list[str]:
        answer = c.get(f"/api/products?{query}")
        assert answer.status == 200, answer.text
        return sorted(p["sku"] for p in answer.json()["items"])

    assert skus("category=even&min_price=2&max_price=5") == ["S-2", "S-4"]
    assert skus("in_stock=false") == ["S-0", "S-3", "S-6"]
    assert skus("tag=t1") == ["S-1", "S-3", "S-5"]
    assert skus("tag=t1&tag=t0&match=all") == []
    assert skus("tag=t1&tag=t0&match=any") == [f"S-{i}" for i in range(7)]
    meta = urllib.parse.quote(json.dumps({"kind": "odd"}))
    assert skus(f"metadata={meta}") == ["S-1", "S-3", "S-5"]
    assert c.get("/api/products?metadata=%5B1%5D").status == 422


def test_stock_adjustment_check_is_409(catalogue: Client, pg_url: str) -> None:
    """Taking more than the stock answers 409 with a clear message; the stock is unchanged."""
    c = catalogue
    p = _create(c, stock=2)
    ok = c.post(f"/api/products/{p['id']}/stock", {"delta": -2})
    assert ok.status == 200
    assert ok.json()["stock"] == 0
    refused = c.post(f"/api/products/{p['id']}/stock", {"delta": -1})
    assert refused.status == 409
    assert "not enough stock" in refused.json()["detail"]
    assert c.get(f"/api/products/{p['id']}").json()["stock"] == 0


def test_low_stock_report(catalogue: Client) -> None:
    """The report counts low and empty stock per category and lists the lowest first."""
    c = catalogue
    for i, (cat, stock) in enumerate([("a", 0), ("a", 3), ("a", 50), ("b", 1), ("c", 99)]):
        _create(c, sku=f"L-{i}", category=cat, stock=stock)
    report = c.get("/api/reports/low-stock?threshold=10").json()
    assert [r["category"] for r in report] == ["a", "b"]
    a = report[0]
    assert (a["products"], a["low"], a["out_of_stock"]) == (3, 2, 1)
    assert [x["sku"] for x in a["lowest"]] == ["L-0", "L-1"]


def test_csv_import_export_all_or_nothing(catalogue: Client) -> None:
    """A good CSV upserts every row and says how many; a bad row imports nothing; export
    gives the rows back in the same format."""
    c = catalogue
    _create(c, sku="K-1", stock=1)
    good = (
        "sku,name,category,price,stock,tags,metadata\n"
        'K-1,Updated,tools,1.00,4,x|y,"{""a"": 1}"\n'
        "K-2,Second,toys,2.50,0,,\n"
    )
    answer = _csv_upload(c, good)
    assert answer.status == 200, answer.text
    assert answer.json() == {"rows": 2}
    bad = "sku,name,category,price\nK-3,Third,toys,1.00\nK-4,Fourth,toys,-1\n"
    refused = _csv_upload(c, bad)
    assert refused.status == 422
    assert "line 3" in refused.json()["detail"]
    dup = _csv_upload(c, "sku,name,category,price\nK-5,A,t,1\nK-5,B,t,1\n")
    assert dup.status == 422
    exported = c.get("/api/export.csv")
    assert exported.status == 200
    assert exported.headers["content-type"].startswith("text/csv")
    lines = exported.text.splitlines()
    assert lines[0] == "sku,name,category,price,stock,tags,metadata"
    assert lines[1] == 'K-1,Updated,tools,1.00,4,x|y,"{""a"": 1}"'
    assert lines[2] == 'K-2,Second,toys,2.50,0,"",{}'
    assert len(lines) == 3


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/products", {**WIDGET, "price": "-1"}, 422),
        ("/api/products", {**WIDGET, "colour": "red"}, 422),
        ("/api/products", {**WIDGET, "tags": ["x" * 41]}, 422),
        ("/api/products", {**WIDGET, "name": "nul\x00byte"}, 422),
        ("/api/products", {**WIDGET, "tags": ["nul\x00"]}, 422),
        ("/api/products", {**WIDGET, "metadata": {"k": "nul\x00"}}, 422),
        ("/api/products", {**WIDGET, "available_from": "2026-01-01T00:00:00"}, 422),
        ("/api/products", {**WIDGET, "price": "1e400"}, 422),
        ("/api/products", {**WIDGET, "stock": 2**40}, 422),
        ("/api/products", {**WIDGET, "name": "x" * 100_000}, 413),
        ("/api/products/not-a-uuid/stock", {"delta": 1}, 422),
    ],
)
def test_bad_input_is_4xx_and_changes_nothing(
    catalogue: Client, pg_url: str, path: str, body: Any, status: int
) -> None:
    """Each bad input answers its 4xx; no row is written and the pool stays healthy."""
    answer = catalogue.post(path, body)
    assert answer.status == status, answer.text
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT count(*) FROM product").fetchone()
    assert row == (0,)
    assert catalogue.get("/readyz").status == 200


def test_bad_uuid_in_get_is_422(catalogue: Client) -> None:
    """A malformed id in the path answers 422, not 500."""
    assert catalogue.get("/api/products/1;DROP").status == 422


@pytest.mark.parametrize(
    "text",
    [
        "'; DROP TABLE product; --",
        "Ünïcödé — ∑ 日本語",
        "emoji 🚀👩‍💻",
        "quotes \"double\" 'single' `back`",
        "back\\slash %s %(x)s {} $1",
    ],
)
def test_hostile_strings_stored_exactly(catalogue: Client, text: str) -> None:
    """Hostile names, tags and searches are stored and found exactly, never executed."""
    c = catalogue
    p = _create(c, sku=text[:60], name=text, tags=[text[:40]], category=text[:60])
    got = c.get(f"/api/products/{p['id']}").json()
    assert (got["name"], got["tags"], got["sku"]) == (text, [text[:40]], text[:60])
    q = urllib.parse.urlencode({"tag": text[:40], "q": text})
    found = c.get(f"/api/products?{q}").json()["items"]
    assert [x["id"] for x in found] == [p["id"]]
    page = c.get(f"/?{q}")
    assert page.status == 200
    assert "<script" not in text or "<script" not in page.text
    assert c.get("/api/products").json()["items"][0]["name"] == text
