"""Approved requisitions reach the ERP exactly once, through the real API app, the real pusher
and local receivers that enforce the webhook's, ERPNext's and Odoo's contracts: the receiver
fails twice (a 5xx, then a timeout after it made the document), the pusher is restarted in
the middle of its retries, and the ERP still holds one document, whose id the requisition
records; the goods are then received into stock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from api.app import create_app
from core import db
from core.errors import ConfigError
from core.inventory import InventoryStores, Sku
from core.requisitions import RequisitionStore
from core.settings import ErpSettings, PurchasingSettings
from simulators.erp import MATERIAL_REQUEST, ErpNext, ErpReceiver, Odoo, WebhookErp
from stocksense.erp import SENDING_STALE_S, ErpPusher, build_erp_client, build_pusher
from tests.authutil import bearer, store_settings

pytestmark = pytest.mark.integration

SECRET = "whk-9Qe2"
ERPNEXT_KEY, ERPNEXT_SECRET = "5e1f0a", "b7c9d2e4"
ODOO_DB, ODOO_USER, ODOO_PASSWORD = "wh-prod", "stocksense", "Op4-xz81"
TIMEOUT_S = 2.0  # the pusher's per-request timeout
HANG_S = 8.0  # how long a "timeout" failure holds its answer: beyond TIMEOUT_S


class Clock:
    """Simulated wall clock for the pusher's backoff: tests move it instead of waiting."""

    def __init__(self) -> None:
        self.now = 4_000_000_000.0

    def __call__(self) -> float:
        return self.now

    def skip(self, seconds: float) -> None:
        self.now += seconds


def _receiver(kind: str) -> tuple[ErpReceiver, ErpSettings]:
    if kind == "webhook":
        hook = WebhookErp(SECRET, hang_s=HANG_S)
        return hook, ErpSettings(kind="webhook", url=hook.url, secret=SECRET, timeout_s=TIMEOUT_S)
    if kind == "erpnext":
        erpnext = ErpNext(
            ERPNEXT_KEY, ERPNEXT_SECRET, items={"RICE"}, warehouses={"Stores - WH1"},
            hang_s=HANG_S, year=2026,
        )  # fmt: skip
        return erpnext, ErpSettings(
            kind="erpnext", url=erpnext.base_url, api_key=ERPNEXT_KEY, api_secret=ERPNEXT_SECRET,
            warehouses={"wh1": "Stores - WH1"}, company="StockSense Ltd", timeout_s=TIMEOUT_S,
        )  # fmt: skip
    odoo = Odoo(
        ODOO_DB, ODOO_USER, ODOO_PASSWORD, partners={"Acme Rice": 7}, products={"RICE": 41},
        hang_s=HANG_S,
    )  # fmt: skip
    return odoo, ErpSettings(
        kind="odoo", url=odoo.url, database=ODOO_DB, username=ODOO_USER, password=ODOO_PASSWORD,
        timeout_s=TIMEOUT_S,
    )  # fmt: skip


class World:
    """The API app over a fresh database, users, a suggestion, and the ERP receiver."""

    def __init__(self, database: db.Target, tmp_path: Path, kind: str) -> None:
        self.receiver, erp = _receiver(kind)
        self.receiver.start()
        purchasing = PurchasingSettings(erp=erp)
        self.settings = store_settings(database, tmp_path, purchasing=purchasing)
        self.conn = db.connect(database)
        self.inventory = InventoryStores.over(self.conn)
        self.inventory.catalog.put_sku(
            Sku(sku="RICE", unit_cost=25.0, supplier="Acme Rice", lead_time_days=3)
        )
        self.suggestion_id = self.inventory.planning.add_suggestion(
            site="wh1", sku="RICE", qty=400, reason="min", projected=1, trigger_level=5, ts_ms=1
        ).id  # 400 x 25.00 = 10,000.00: one approver
        self.buyer = bearer(self.settings, "buyer", "ana", ["wh1"])
        self.approver = bearer(self.settings, "approver", "bo", ["wh1"])
        self.clock = Clock()

    def requisitions(self) -> RequisitionStore:
        return RequisitionStore(self.conn)

    def pusher(self) -> ErpPusher:
        """A pusher as a process builds it: its own connection, the settings' ERP client."""
        pusher = build_pusher(self.settings, clock=self.clock)
        assert pusher is not None
        return pusher

    def close(self) -> None:
        self.receiver.stop()
        self.conn.close()


Scenario = Callable[[World, httpx.AsyncClient], Awaitable[None]]


def _run(database: db.Target, tmp_path: Path, kind: str, scenario: Scenario) -> None:
    world = World(database, tmp_path, kind)

    async def main() -> None:
        transport = httpx.ASGITransport(app=create_app(world.settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            await scenario(world, client)

    try:
        asyncio.run(main())
    finally:
        world.close()


async def _approved(world: World, client: httpx.AsyncClient) -> int:
    """A requisition drafted from the suggestion, submitted and approved through the API."""
    created = await client.post(
        "/requisitions", json={"suggestion_id": world.suggestion_id}, headers=world.buyer
    )
    assert created.status_code == 201, created.text
    rid = int(created.json()["id"])
    submitted = await client.post(f"/requisitions/{rid}/submit", headers=world.buyer)
    assert submitted.json()["state"] == "submitted"
    approved = await client.post(f"/requisitions/{rid}/approve", headers=world.approver)
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert (body["state"], body["push"]["status"]) == ("approved", "pending")
    return rid


def _creates(receiver: ErpReceiver) -> int:
    """Requests that asked for a document to be made (lookups excluded)."""
    return sum(1 for r in receiver.log.requests if receiver.creates(r))


@pytest.mark.parametrize("kind", ["webhook", "erpnext", "odoo"])
def test_one_document_despite_two_failures_and_a_restart(
    database: db.Target, tmp_path: Path, kind: str
) -> None:
    async def scenario(world: World, client: httpx.AsyncClient) -> None:
        rid = await _approved(world, client)
        world.receiver.fail_next("503", "timeout")

        first = world.pusher()
        assert await first.push_due() == 0  # 503: nothing was made
        push = world.requisitions().get(rid).push
        assert push is not None
        assert (push.status, push.attempts) == ("pending", 1)
        assert push.last_error is not None
        assert "HTTP 503" in push.last_error
        assert await first.push_due() == 0  # not due yet: backing off
        world.clock.skip(60)
        assert await first.push_due() == 0  # timeout: the ERP made it, the answer was lost
        assert len(world.receiver.log.documents) == 1
        push = world.requisitions().get(rid).push
        assert push is not None
        assert (push.status, push.attempts) == ("pending", 2)
        assert world.requisitions().get(rid).state == "approved"
        await first.aclose()  # the process stops in the middle of its retries

        second = world.pusher()
        assert second.recover() == 0
        world.clock.skip(60)
        assert await second.push_due() == 1
        await second.aclose()

        documents = list(world.receiver.log.documents)
        assert len(documents) == 1
        # The webhook is sent again and deduplicates; ERPNext and Odoo are asked first.
        assert _creates(world.receiver) == (3 if kind == "webhook" else 2)
        after = world.requisitions().get(rid)
        assert after.state == "ordered"
        assert after.erp_document == documents[0]
        assert after.push is not None
        assert (after.push.status, after.push.document, after.push.attempts) == (
            "done",
            documents[0],
            3,
        )
        suggestion = world.inventory.planning.get_suggestion(world.suggestion_id)
        assert suggestion.state == "ordered"
        (inbound,) = world.inventory.planning.inbound(status="open")
        assert (inbound.qty, inbound.eta) == (400.0, after.required_by)

        received = await client.post(
            f"/requisitions/{rid}/receipts", json={"qty": 400}, headers=world.buyer
        )
        assert received.json()["state"] == "received"
        assert world.inventory.ledger.qty_at("wh1", "receiving", "RICE") == 400.0
        assert world.inventory.planning.get_suggestion(world.suggestion_id).state == "received"
        assert world.inventory.planning.on_order("wh1", "RICE") == 0.0
        audit = await client.get(
            "/audit", params={"action": "requisition.ordered"},
            headers=bearer(world.settings, "admin", "root"),
        )  # fmt: skip
        (entry,) = audit.json()
        assert (entry["actor"], entry["before"]["state"], entry["after"]["erp_document"]) == (
            "erp-pusher",
            "approved",
            documents[0],
        )
        _check_shape(kind, world.receiver, after.push.idempotency_key)

    _run(database, tmp_path, kind, scenario)


def _check_shape(kind: str, receiver: ErpReceiver, key: str) -> None:
    """What the ERP holds is what its documentation asks for, carrying the key."""
    (doc,) = receiver.log.documents.values()
    if kind == "webhook":
        posts = [r for r in receiver.log.requests if r.method == "POST"]
        assert {r.headers["idempotency-key"] for r in posts} == {key}
        assert all(r.headers["x-stocksense-signature"].startswith("sha256=") for r in posts)
        req = doc["requisition"]
        assert (req["sku"], req["qty"], req["amount"], req["currency"]) == (
            "RICE",
            400.0,
            10_000.0,
            "CNY",
        )
        assert (req["requested_by"], req["approved_by"]) == ("ana", ["bo"])
    elif kind == "erpnext":
        assert doc["name"] == "MAT-MR-2026-00001"
        assert (doc["material_request_type"], doc["title"], doc["company"]) == (
            "Purchase",
            key,
            "StockSense Ltd",
        )
        (item,) = doc["items"]
        assert (item["item_code"], item["qty"], item["warehouse"]) == (
            "RICE",
            400.0,
            "Stores - WH1",
        )
        assert item["schedule_date"] == doc["schedule_date"]
        assert all(r.path == MATERIAL_REQUEST for r in receiver.log.requests)
    else:
        assert doc["partner_id"] == 7
        assert doc["origin"] == key
        assert doc["order_line"][0][:2] == [0, 0]
        line = doc["order_line"][0][2]
        assert (line["product_id"], line["product_qty"], line["price_unit"]) == (41, 400.0, 25.0)


def test_a_stop_mid_request_resends_with_the_same_key(database: db.Target, tmp_path: Path) -> None:
    async def scenario(world: World, client: httpx.AsyncClient) -> None:
        rid = await _approved(world, client)
        world.receiver.fail_next("timeout")
        first = world.pusher()
        flight = asyncio.create_task(first.push_due())
        made = await asyncio.to_thread(
            world.receiver.wait_for, lambda log: len(log.documents) == 1, 10.0
        )
        assert made
        flight.cancel()  # the process dies while the request is out
        with pytest.raises(asyncio.CancelledError):
            await flight
        push = world.requisitions().get(rid).push
        assert push is not None
        assert push.status == "sending"
        await first.aclose()

        second = world.pusher()
        assert second.recover() == 1
        assert await second.push_due() == 1
        await second.aclose()
        after = world.requisitions().get(rid)
        assert (after.state, after.erp_document) == ("ordered", "PR-00001")
        assert list(world.receiver.log.documents) == ["PR-00001"]
        keys = [r.headers["idempotency-key"] for r in world.receiver.log.requests]
        assert keys == [push.idempotency_key, push.idempotency_key]

    _run(database, tmp_path, "webhook", scenario)


def test_another_pusher_leaves_a_push_in_flight_until_it_is_stale(
    database: db.Target, tmp_path: Path
) -> None:
    """Two pushers on one database: the second takes over a push the first was sending only
    once that has been going on for longer than any request can last."""

    async def scenario(world: World, client: httpx.AsyncClient) -> None:
        rid = await _approved(world, client)
        world.receiver.fail_next("timeout")
        first = world.pusher()
        client_b = build_erp_client(world.settings.purchasing.erp)
        assert client_b is not None
        other = ErpPusher(
            db.connect(world.settings.database), client_b, worker="worker-b",
            clock=world.clock, owns_conn=True,
        )  # fmt: skip
        flight = asyncio.create_task(first.push_due())
        made = await asyncio.to_thread(
            world.receiver.wait_for, lambda log: len(log.documents) == 1, 10.0
        )
        assert made
        assert other.recover() == 0  # the first is alive and sending it
        assert await other.push_due() == 0
        flight.cancel()  # the first process dies while the request is out
        with pytest.raises(asyncio.CancelledError):
            await flight
        await first.aclose()
        world.clock.skip(SENDING_STALE_S)
        assert await other.push_due() == 0  # exactly the stale time: not yet
        push = world.requisitions().get(rid).push
        assert push is not None
        assert push.status == "sending"
        world.clock.skip(0.001)
        assert await other.push_due() == 1
        await other.aclose()
        after = world.requisitions().get(rid)
        assert (after.state, after.erp_document) == ("ordered", "PR-00001")
        keys = {r.headers["idempotency-key"] for r in world.receiver.log.requests}
        assert len(keys) == 1  # sent again under its key: the ERP made one document
        assert list(world.receiver.log.documents) == ["PR-00001"]

    _run(database, tmp_path, "webhook", scenario)


def test_a_refused_document_is_given_up_and_pushed_again_after_a_fix(
    database: db.Target, tmp_path: Path
) -> None:
    async def scenario(world: World, client: httpx.AsyncClient) -> None:
        assert isinstance(world.receiver, ErpNext)
        world.receiver.items.clear()  # RICE is not in the ERP's item master yet
        rid = await _approved(world, client)
        pusher = world.pusher()
        assert await pusher.push_due() == 0
        dead = world.requisitions().get(rid)
        assert dead.push is not None
        assert (dead.state, dead.push.status, dead.push.attempts) == ("approved", "dead", 1)
        assert dead.push.last_error is not None
        assert "LinkValidationError: Could not find Item Code: RICE" in dead.push.last_error
        world.clock.skip(3600)
        assert await pusher.push_due() == 0  # given up: no retries by itself

        world.receiver.items.add("RICE")
        buyer_retry = await client.post(f"/requisitions/{rid}/push", headers=world.buyer)
        assert buyer_retry.status_code == 403
        again = await client.post(f"/requisitions/{rid}/push", headers=world.approver)
        assert again.json()["push"]["status"] == "pending"
        world.clock.skip(1)
        assert await pusher.push_due() == 1
        await pusher.aclose()
        assert world.requisitions().get(rid).erp_document == "MAT-MR-2026-00001"

    _run(database, tmp_path, "erpnext", scenario)


@pytest.mark.parametrize("kind", ["erpnext", "odoo"])
def test_refused_credentials_stop_at_once(database: db.Target, tmp_path: Path, kind: str) -> None:
    async def scenario(world: World, client: httpx.AsyncClient) -> None:
        rid = await _approved(world, client)
        erp = world.settings.purchasing.erp
        wrong = erp.model_copy(
            update={"api_secret": SecretStr("nope"), "password": SecretStr("nope")}
        )
        refused = build_erp_client(wrong)
        assert refused is not None
        pusher = ErpPusher(world.conn, refused, clock=world.clock)
        assert await pusher.push_due() == 0
        await pusher.aclose()
        push = world.requisitions().get(rid).push
        assert push is not None
        assert push.status == "dead"
        assert push.last_error is not None
        expected = "HTTP 401" if kind == "erpnext" else "login refused"
        assert expected in push.last_error
        assert "nope" not in push.last_error
        assert world.receiver.log.documents == {}

    _run(database, tmp_path, kind, scenario)


def test_an_erp_without_its_settings_is_refused_at_start() -> None:
    with pytest.raises(ConfigError, match="__API_KEY, STOCKSENSE_PURCHASING__ERP__API_SECRET"):
        build_erp_client(ErpSettings(kind="erpnext", url="https://erp.wh1.internal"))
    with pytest.raises(ConfigError, match="STOCKSENSE_PURCHASING__ERP__SECRET"):
        build_erp_client(ErpSettings(kind="webhook", url="https://hooks.wh1.internal/req"))
    assert build_erp_client(ErpSettings()) is None


def test_the_running_pusher_orders_what_is_approved(database: db.Target, tmp_path: Path) -> None:
    """``run`` as the pipeline starts it: recovers, then drains the queue as approvals come."""

    async def scenario(world: World, client: httpx.AsyncClient) -> None:
        erp = world.settings.purchasing.erp.model_copy(update={"poll_interval_s": 0.05})
        settings = world.settings.model_copy(update={"purchasing": PurchasingSettings(erp=erp)})
        pusher = build_pusher(settings)
        assert pusher is not None
        task = asyncio.create_task(pusher.run(), name="erp-pusher")
        try:
            rid = await _approved(world, client)
            ordered = await asyncio.wait_for(_until_ordered(world, rid), timeout=20)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await pusher.aclose()
        assert ordered == "PR-00001"
        assert list(world.receiver.log.documents) == ["PR-00001"]

    _run(database, tmp_path, "webhook", scenario)


async def _until_ordered(world: World, rid: int) -> str:
    """The requisition's ERP document once it is ordered (the caller bounds the wait)."""
    while True:
        found = world.requisitions().get(rid)
        if found.state == "ordered" and found.erp_document is not None:
            return found.erp_document
        await asyncio.sleep(0.02)  # poll the shared database: the pusher has its own connection
