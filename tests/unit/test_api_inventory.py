"""Inventory API over a real database (SQLite or PostgreSQL), served in-process through httpx."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from api.app import create_app
from core import db
from core.inventory import InventoryStores
from tests.authutil import bearer, store_settings

Scenario = Callable[[httpx.AsyncClient, InventoryStores], Awaitable[None]]

RICE = {"sku": "RICE", "gtin": "06901234567892", "unit_grams": 1000, "min_qty": 5, "max_qty": 20}


def _run(database: db.Target, tmp_path: Path, scenario: Scenario) -> None:
    settings = store_settings(database, tmp_path)
    conn = db.connect(database)

    async def main() -> None:
        transport = httpx.ASGITransport(app=create_app(settings))
        headers = bearer(settings)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api", headers=headers
        ) as client:
            await scenario(client, InventoryStores.over(conn))

    try:
        asyncio.run(main())
    finally:
        conn.close()


def test_catalog_crud(database: db.Target, tmp_path: Path) -> None:
    _run(database, tmp_path, _catalog_crud)


async def _catalog_crud(client: httpx.AsyncClient, store: InventoryStores) -> None:
    created = await client.post("/inventory/skus", json=RICE)
    assert created.status_code == 201
    assert created.json()["gtin"] == "06901234567892"
    assert (await client.post("/inventory/skus", json=RICE)).status_code == 409
    changed = await client.put("/inventory/skus/RICE", json={**RICE, "max_qty": 30})
    assert changed.json()["max_qty"] == 30
    assert [s["sku"] for s in (await client.get("/inventory/skus")).json()] == ["RICE"]

    shelf = {"site": "wh1", "device": "s1", "cell": "c1", "sku": "RICE", "tare_grams": 500}
    put = await client.put("/inventory/shelves/wh1/s1/c1", json=shelf)
    assert put.status_code == 200
    assert put.json()["location"] == "s1/c1"
    assert store.catalog.get_shelf("wh1", "s1", "c1").tare_grams == 500
    zone = {"site": "wh1", "device": "dock-1", "antenna": 1, "zone": "in", "role": "receiving"}
    assert (await client.put("/inventory/rfid-zones/wh1/dock-1/1", json=zone)).status_code == 200
    assert (await client.get("/inventory/rfid-zones/wh1/dock-1/1")).json()["role"] == "receiving"

    in_use = await client.delete("/inventory/skus/RICE")
    assert in_use.status_code == 409
    assert in_use.json()["detail"] == "SKU RICE is still bound to shelves or lots"
    assert (await client.delete("/inventory/shelves/wh1/s1/c1")).status_code == 204
    assert (await client.delete("/inventory/rfid-zones/wh1/dock-1/1")).status_code == 204
    assert (await client.delete("/inventory/skus/RICE")).status_code == 204
    assert (await client.get("/inventory/skus/RICE")).status_code == 404


def test_lots_stock_movements_and_report(database: db.Target, tmp_path: Path) -> None:
    _run(database, tmp_path, _lots_and_stock)


async def _lots_and_stock(client: httpx.AsyncClient, store: InventoryStores) -> None:
    await client.post("/inventory/skus", json=RICE)
    lot = {
        "lot": "L1", "sku": "RICE", "site": "wh1", "location": "A1", "qty": 8,
        "expiration_at": "2030-01-31", "removal_at": "2030-01-15T00:00:00Z",
    }  # fmt: skip
    created = await client.post("/inventory/lots", json=lot)
    assert created.status_code == 201
    body = created.json()
    assert body["expiration_at"] == 1896048000000
    assert body["removal_at"] == 1894665600000
    stock = (await client.get("/inventory/stock", params={"site": "wh1"})).json()
    assert [(s["location"], s["sku"], s["qty"]) for s in stock] == [("A1", "RICE", 8.0)]
    patched = await client.patch(f"/inventory/lots/{body['id']}", json={"qty": 6})
    assert patched.json()["qty"] == 6.0
    moves = (await client.get("/inventory/movements", params={"sku": "RICE"})).json()
    assert [(m["kind"], m["qty"], m["source"]) for m in moves] == [
        ("receipt", 8.0, "api"),
        ("adjust", -2.0, "api"),
    ]
    assert (await client.delete(f"/inventory/lots/{body['id']}")).status_code == 409
    assert store.ledger.on_hand("wh1", "RICE") == 6.0
    assert (await client.get("/inventory/report")).status_code == 404  # KPIs: GET /kpi


def test_suggestions_demand_and_inbound(database: db.Target, tmp_path: Path) -> None:
    _run(database, tmp_path, _planning)


async def _planning(client: httpx.AsyncClient, store: InventoryStores) -> None:
    await client.post("/inventory/skus", json=RICE)
    s = store.planning.add_suggestion(
        site="wh1", sku="RICE", qty=20, reason="min", projected=2, trigger_level=5, ts_ms=1
    )
    ordered = await client.post(
        f"/inventory/suggestions/{s.id}/ordered", json={"eta": "2030-01-01"}
    )
    assert ordered.json()["state"] == "ordered"
    inbound = (await client.get("/inventory/inbound", params={"status": "open"})).json()
    assert [(i["qty"], i["eta"], i["suggestion_id"]) for i in inbound] == [
        (20.0, 1893456000000, s.id)
    ]
    again = await client.post(f"/inventory/suggestions/{s.id}/ordered")
    assert again.status_code == 409
    assert again.json()["detail"] == f"suggestion {s.id} cannot go from ordered to ordered"
    received = await client.post(f"/inventory/suggestions/{s.id}/received")
    assert received.json()["state"] == "received"
    assert store.ledger.qty_at("wh1", "receiving", "RICE") == 20.0
    assert (await client.post("/inventory/suggestions/999/cancelled")).status_code == 404
    assert (await client.post(f"/inventory/suggestions/{s.id}/shipped")).status_code == 422

    demand = await client.post(
        "/inventory/demand", json={"site": "wh1", "sku": "RICE", "qty": 3, "due_at": 1_900_000}
    )
    assert demand.status_code == 201
    assert demand.json()["status"] == "confirmed"
    assert store.planning.reserved("wh1", "RICE") == 3.0
    done = await client.post(f"/inventory/demand/{demand.json()['id']}/fulfilled")
    assert done.json()["status"] == "fulfilled"
    assert (
        await client.post(f"/inventory/demand/{demand.json()['id']}/cancelled")
    ).status_code == 409
    po = await client.post("/inventory/inbound", json={"site": "wh1", "sku": "RICE", "qty": 5})
    assert po.status_code == 201
    assert store.planning.on_order("wh1", "RICE") == 5.0


def test_bad_input_gets_a_clear_4xx(database: db.Target, tmp_path: Path) -> None:
    _run(database, tmp_path, _bad_input)


async def _bad_input(client: httpx.AsyncClient, store: InventoryStores) -> None:
    del store
    bad = await client.post("/inventory/skus", json={**RICE, "gtin": "06901234567893"})
    assert bad.status_code == 422
    (error,) = bad.json()["detail"]
    assert (error["loc"], error["msg"]) == (["body", "gtin"], "check digit is 3, expected 2")
    extra = await client.post("/inventory/skus", json={**RICE, "colour": "red"})
    assert extra.status_code == 422
    mismatch = await client.put("/inventory/skus/TEA", json=RICE)
    assert mismatch.status_code == 422
    (error,) = mismatch.json()["detail"]
    assert (error["loc"], error["msg"]) == (
        ["body", "sku"],
        "sku in the body (RICE) differs from the path (TEA)",
    )
    unknown = await client.post(
        "/inventory/demand", json={"site": "wh1", "sku": "NOPE", "qty": 1, "due_at": 1}
    )
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == "SKU NOPE does not exist"
    zero = await client.post(
        "/inventory/demand", json={"site": "wh1", "sku": "RICE", "qty": 0, "due_at": 1}
    )
    assert zero.status_code == 422
    assert (await client.get("/inventory/lots/7")).status_code == 404
    bad_date = await client.post(
        "/inventory/lots",
        json={"lot": "L", "sku": "RICE", "site": "wh1", "location": "A", "alert_at": "soon"},
    )
    assert bad_date.status_code == 422
    assert "not an ISO 8601 date/time or epoch ms: 'soon'" in bad_date.text
    # PostgreSQL text cannot hold U+0000: a 422 naming the field on both engines, not a 500.
    for path, body, field in [
        ("/inventory/skus", {**RICE, "sku": "RICE2", "name": "ri\x00ce"}, "name"),
        ("/inventory/skus", {**RICE, "sku": "RICE3", "supplier": "a\x00b"}, "supplier"),
        ("/inventory/demand", {"site": "wh1", "sku": "RICE", "qty": 1, "due_at": 1,
                               "ref": "SO\x001"}, "ref"),
        ("/inventory/picks", {"site": "wh1", "sku": "RICE", "qty": 1, "ref": "P\x001",
                              "ts": 1_900_000}, "ref"),
    ]:  # fmt: skip
        refused = await client.post(path, json=body)
        assert refused.status_code == 422, (path, refused.text)
        assert [e["loc"][-1] for e in refused.json()["detail"]] == [field]


def test_lot_changes_refuse_null_where_it_means_nothing(
    database: db.Target, tmp_path: Path
) -> None:
    _run(database, tmp_path, _lot_nulls)


async def _lot_nulls(client: httpx.AsyncClient, store: InventoryStores) -> None:
    await client.post("/inventory/skus", json=RICE)
    lot = {"lot": "L1", "sku": "RICE", "site": "wh1", "location": "A1", "qty": 8}
    lot_id = (await client.post("/inventory/lots", json={**lot, "alert_at": 5})).json()["id"]
    for field in ("location", "qty"):
        cleared = await client.patch(f"/inventory/lots/{lot_id}", json={field: None})
        assert cleared.status_code == 422
        (error,) = cleared.json()["detail"]
        assert (error["loc"], error["msg"]) == (
            ["body", field],
            f"{field} cannot be null; leave it out to keep the current value",
        )
    unchanged = store.ledger.get_lot(lot_id)
    assert (unchanged.location, unchanged.qty, unchanged.alert_at) == ("A1", 8.0, 5)
    # A date set to null is cleared: that null means something.
    dated = await client.patch(f"/inventory/lots/{lot_id}", json={"alert_at": None})
    assert dated.status_code == 200
    assert store.ledger.get_lot(lot_id).alert_at is None


def test_numbers_are_json_numbers_within_bounds(database: db.Target, tmp_path: Path) -> None:
    _run(database, tmp_path, _numbers)


async def _numbers(client: httpx.AsyncClient, store: InventoryStores) -> None:
    await client.post("/inventory/skus", json=RICE)
    lot = {"lot": "L1", "sku": "RICE", "site": "wh1", "location": "A1"}
    for bad in ({"qty": False}, {"qty": "5"}, {"qty": 1e10}, {"received_at": 2**63}):
        refused = await client.post("/inventory/lots", json={**lot, **bad})
        assert refused.status_code == 422, bad
        assert refused.json()["detail"][0]["loc"] == ["body", next(iter(bad))]
    whole = await client.post("/inventory/lots", json={**lot, "qty": 8, "received_at": 1000.0})
    assert whole.status_code == 201
    assert (whole.json()["qty"], whole.json()["received_at"]) == (8.0, 1000)
    assert store.ledger.on_hand("wh1", "RICE") == 8.0
    for path in ("/inventory/lots/9223372036854775808", "/inventory/suggestions/0"):
        assert (await client.get(path)).status_code == 422
    undecodable = await client.post(
        "/inventory/skus", content=b"\xff{", headers={"content-type": "application/json"}
    )
    assert undecodable.status_code == 400
    assert undecodable.json() == {"detail": "There was an error parsing the body"}
