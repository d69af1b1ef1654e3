"""The catalogue service publishes ``product.changed`` on every write, in the write's own
transaction: a subscriber (public API only) receives one event per successful write, none for
a write that failed."""

from __future__ import annotations

import pgkeel
from fix_http import Client
from test_catalogue import WIDGET, _create, _csv_upload

pytest_plugins = ["fix_catalogue"]


def test_every_write_publishes_product_changed(catalogue: Client, pg_url: str) -> None:
    """create, patch, stock, import and delete each give one event with the product; a refused
    write (duplicate sku, negative stock) gives none."""
    from examples.catalogue.app import PRODUCT_CHANGED

    with (
        pgkeel.Database(pg_url, size_check="off") as db,
        db.subscribe(PRODUCT_CHANGED, consumer="test", start="earliest") as sub,
    ):
        made = _create(catalogue)
        path = f"/api/products/{made['id']}"
        assert catalogue.post("/api/products", WIDGET).status == 409
        assert catalogue.request("PATCH", path, body={"name": "Gadget"}).status == 200
        assert catalogue.post(f"{path}/stock", {"delta": -2}).status == 200
        assert catalogue.post(f"{path}/stock", {"delta": -100}).status == 409
        imported = _csv_upload(catalogue, "sku,name,category,price\nI-1,a,c,1\nI-2,b,c,2\n")
        assert imported.status == 200, imported.text
        assert catalogue.request("DELETE", path).status == 204
        events = []
        for _ in range(5):
            event = sub.get(10)
            assert event is not None, f"only {len(events)} events"
            events.append(event.payload)
            sub.ack(event)
        assert sub.get(0.5) is None
    one = {"id": made["id"], "sku": "W-1"}
    assert events == [
        {"op": "created", **one},
        {"op": "updated", **one},
        {"op": "stock", **one},
        {"op": "imported", "skus": ["I-1", "I-2"]},
        {"op": "deleted", **one},
    ]
