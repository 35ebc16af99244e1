"""Recorded picks and WMS pick lists through the API, over a real database (SQLite or
PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from api.app import create_app
from core import db
from core.audit import AuditLog
from core.inventory import InventoryStores, Shelf, Sku
from core.settings import Settings
from tests.authutil import bearer, store_settings

T0 = 1_795_309_200_000
Body = Callable[[httpx.AsyncClient, InventoryStores, Settings], Awaitable[None]]


def _run(database: db.Target, tmp_path: Path, body: Body, role: str = "operator") -> None:
    settings = store_settings(database, tmp_path)
    conn = db.connect(database)
    stores = InventoryStores.over(conn)
    stores.load_catalog(
        skus=[Sku(sku="TEA", unit_grams=500), Sku(sku="SALT")],
        shelves=[Shelf(site="wh1", device="s1", cell="c1", sku="TEA", location="A1")],
        ts_ms=T0,
    )

    async def main() -> None:
        transport = httpx.ASGITransport(app=create_app(settings))
        headers = bearer(settings, role=role, name=f"wms-{role}")
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api", headers=headers
        ) as client:
            await body(client, stores, settings)

    try:
        asyncio.run(main())
    finally:
        conn.close()


PICK = {"site": "wh1", "sku": "TEA", "qty": 2, "ref": "PK-1", "ts": T0}


def test_a_pick_is_recorded_once_and_audited(database: db.Target, tmp_path: Path) -> None:
    async def body(client: httpx.AsyncClient, stores: InventoryStores, _: Settings) -> None:
        first = await client.post("/inventory/picks", json=PICK)
        assert first.status_code == 201, first.text
        pick = first.json()
        assert (pick["status"], pick["matched_qty"], pick["recorded_by"]) == (
            "pending",
            0.0,
            "wms-operator",
        )
        again = await client.post("/inventory/picks", json=PICK)
        assert (again.status_code, again.json()["id"]) == (200, pick["id"])
        other = await client.post("/inventory/picks", json={**PICK, "qty": 3})
        assert other.status_code == 409
        assert other.json()["detail"] == "pick PK-1 at wh1 was recorded before with other content"
        listed = await client.get("/inventory/picks", params={"status": "pending"})
        assert [p["ref"] for p in listed.json()] == ["PK-1"]
        entries = [e for e in AuditLog(stores.ledger.conn).entries() if e.action == "pick.record"]
        assert [(e.target, e.actor) for e in entries] == [(f"pick {pick['id']}", "wms-operator")]

    _run(database, tmp_path, body)


def test_bad_picks_are_refused_naming_the_problem(database: db.Target, tmp_path: Path) -> None:
    async def body(client: httpx.AsyncClient, stores: InventoryStores, _: Settings) -> None:
        unknown = await client.post("/inventory/picks", json={**PICK, "sku": "RICE"})
        assert (unknown.status_code, unknown.json()["detail"]) == (404, "SKU RICE does not exist")
        for field, value in (("qty", 0), ("qty", "2"), ("ref", ""), ("ts", "yesterday")):
            refused = await client.post("/inventory/picks", json={**PICK, field: value})
            assert refused.status_code == 422, (field, value)
            assert refused.json()["detail"][0]["loc"] == ["body", field]
        assert stores.picks.picks() == []

    _run(database, tmp_path, body)


def test_a_viewer_may_not_record_picks(database: db.Target, tmp_path: Path) -> None:
    async def body(client: httpx.AsyncClient, stores: InventoryStores, _: Settings) -> None:
        refused = await client.post("/inventory/picks", json=PICK)
        assert refused.status_code == 403
        assert refused.json()["detail"].startswith("picks.record needs the role admin, approver")

    _run(database, tmp_path, body, role="viewer")


TEA_LINE = {"sku": "TEA", "qty": 2, "location": "A1"}
SALT_LINE = {"sku": "SALT", "qty": 5, "ts": T0 + 1000, "ref": "SALT-1"}
WAVE: dict[str, object] = {
    "ref": "WAVE-7",
    "site": "wh1",
    "ts": T0,
    "lines": [TEA_LINE, SALT_LINE],
}


def test_a_pick_list_replayed_is_recorded_once(database: db.Target, tmp_path: Path) -> None:
    async def body(client: httpx.AsyncClient, stores: InventoryStores, _: Settings) -> None:
        first = await client.post("/inventory/pick-lists", json=WAVE)
        assert first.status_code == 201, first.text
        picks = first.json()["picks"]
        assert [(p["ref"], p["sku"], p["qty"], p["ts"]) for p in picks] == [
            ("WAVE-7#1", "TEA", 2.0, T0),
            ("SALT-1", "SALT", 5.0, T0 + 1000),
        ]
        again = await client.post("/inventory/pick-lists", json=WAVE)
        assert again.status_code == 200
        assert [p["id"] for p in again.json()["picks"]] == [p["id"] for p in picks]
        assert len(stores.picks.picks()) == 2
        changed = {**WAVE, "lines": [TEA_LINE]}
        conflict = await client.post("/inventory/pick-lists", json=changed)
        assert conflict.status_code == 409
        assert conflict.json()["detail"] == (
            "pick list WAVE-7 at wh1 was delivered before with other lines"
        )
        audited = [e for e in AuditLog(stores.ledger.conn).entries() if e.action.startswith("pick")]
        assert [(e.action, e.after["lines"]) for e in audited] == [("pick_list.record", 2)]

    _run(database, tmp_path, body)


def test_a_pick_list_with_a_bad_line_records_nothing(database: db.Target, tmp_path: Path) -> None:
    async def body(client: httpx.AsyncClient, stores: InventoryStores, _: Settings) -> None:
        lines = [TEA_LINE, SALT_LINE, {"sku": "RICE", "qty": 1}]
        refused = await client.post("/inventory/pick-lists", json={**WAVE, "lines": lines})
        assert refused.status_code == 404
        assert refused.json()["detail"] == "line 3: SKU RICE does not exist"
        empty = await client.post("/inventory/pick-lists", json={**WAVE, "lines": []})
        assert (empty.status_code, empty.json()["detail"][0]["loc"]) == (422, ["body", "lines"])
        assert stores.picks.picks() == []

    _run(database, tmp_path, body)
