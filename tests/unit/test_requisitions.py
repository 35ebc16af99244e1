"""Purchase requisitions: the approval rules at their band edges, the state machine, roles
and sites, the audit trail and receipts into stock, through the app as ``create_app`` builds
it over a real database, SQLite or PostgreSQL (no ERP configured: orders are recorded by hand)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.fields import MAX_QTY
from core import db
from core.audit import AuditLog
from core.errors import ConfigError
from core.inventory import InventoryStores, Sku
from core.requisitions import (
    TRANSITIONS,
    ApprovalRefusedError,
    Draft,
    RequisitionConflictError,
    RequisitionStore,
    amount_of,
)
from core.settings import ApprovalRule, PurchasingSettings, Settings, load_settings
from tests.authutil import bearer, store_settings
from tests.conftest import wait_for

# -- the approval rules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "approvals"),
    [
        (0.0, 0),
        (0.01, 0),
        (4_999.99, 0),
        (5_000.0, 1),  # "below 5,000" is auto-approved: 5,000 itself is not
        (5_000.01, 1),
        (50_000.0, 1),  # "up to 50,000" takes one approver: 50,000 itself included
        (50_000.01, 2),
        (MAX_QTY * MAX_QTY, 2),  # the largest amount the API can make (qty x unit cost)
    ],
)
def test_default_rules_at_the_band_edges(amount: float, approvals: int) -> None:
    assert PurchasingSettings().approvals_required(amount, "wh1", None) == approvals


def test_amounts_are_counted_to_the_cent_so_edges_are_exact() -> None:
    assert amount_of(1_000, 5.0) == 5_000.0
    assert amount_of(3, 1_666.67) == 5_000.01
    assert amount_of(0.1 * 3, 10) == 3.0  # 0.30000000000000004 x 10 is 3.00


def test_rules_by_site_and_category_come_first_when_listed_first() -> None:
    purchasing = PurchasingSettings(
        approval_rules=[
            ApprovalRule(categories=("pharma",), approvals=2),
            ApprovalRule(sites=("wh2",), below=20_000, approvals=0),
            ApprovalRule(below=5_000, approvals=0),
            ApprovalRule(approvals=1),
        ]
    )
    assert purchasing.approvals_required(10.0, "wh1", "pharma") == 2
    assert purchasing.approvals_required(19_999.99, "wh2", None) == 0
    assert purchasing.approvals_required(20_000.0, "wh2", None) == 1
    assert purchasing.approvals_required(19_999.99, "wh1", None) == 1
    assert purchasing.approvals_required(4_000.0, "wh1", "food") == 0


def test_amounts_no_rule_covers_need_the_most_any_rule_asks() -> None:
    gap = PurchasingSettings(
        approval_rules=[ApprovalRule(below=100, approvals=0), ApprovalRule(up_to=10, approvals=3)]
    )
    assert gap.approvals_required(100.0, "wh1", None) == 3
    assert PurchasingSettings(approval_rules=[]).approvals_required(1.0, "wh1", None) == 1
    only_auto = PurchasingSettings(approval_rules=[ApprovalRule(below=100, approvals=0)])
    assert only_auto.approvals_required(100.0, "wh1", None) == 1


def test_rules_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "STOCKSENSE_PURCHASING__APPROVAL_RULES",
        '[{"below": 1000, "approvals": 0}, {"approvals": 3}]',
    )
    purchasing = load_settings().purchasing
    assert [purchasing.approvals_required(a, "wh1", None) for a in (999.99, 1000)] == [0, 3]
    monkeypatch.setenv(
        "STOCKSENSE_PURCHASING__APPROVAL_RULES", '[{"below": 1000, "up_to": 10, "approvals": 0}]'
    )
    with pytest.raises(ConfigError, match="either below or up_to"):
        load_settings()


# -- the store's state machine ------------------------------------------------------------------

STATES = list(TRANSITIONS)


@pytest.fixture
def store(database: db.Target) -> Iterator[RequisitionStore]:
    """The requisition store over the test's database, with a RICE SKU in the catalog."""
    conn = db.connect(database)
    try:
        found = RequisitionStore(conn)
        found.inventory.catalog.put_sku(Sku(sku="RICE", unit_cost=2.5, supplier="Acme"))
        yield found
    finally:
        conn.close()


def _in_state(store: RequisitionStore, state: str) -> int:
    """A requisition brought to ``state`` by the store's own steps."""
    draft = Draft(site="wh1", sku="RICE", qty=10, unit_cost=2.5)
    r = store.create(draft, currency="CNY", requested_by="ana", ts_ms=1)
    if state == "draft":
        return r.id
    if state == "cancelled":
        return store.cancel(r.id, ts_ms=2).id
    store.submit(r.id, approvals_required=1, erp_target=None, ts_ms=2)
    if state == "submitted":
        return r.id
    if state == "rejected":
        return store.decide(r.id, "rejected", approver="bo", erp_target=None, ts_ms=3).id
    store.decide(r.id, "approved", approver="bo", erp_target=None, ts_ms=3)
    if state == "approved":
        return r.id
    store.mark_ordered(r.id, document="PO-1", ts_ms=4)
    if state == "ordered":
        return r.id
    assert state == "received"
    return store.receive(r.id, 10, ts_ms=5).id


def _step(store: RequisitionStore, rid: int, to: str) -> None:
    if to == "submitted":
        store.submit(rid, approvals_required=1, erp_target=None, ts_ms=9)
    elif to in ("approved", "rejected"):
        store.decide(rid, to, approver="cy", erp_target=None, ts_ms=9)  # type: ignore[arg-type]
    elif to == "ordered":
        store.mark_ordered(rid, document="PO-9", ts_ms=9)
    elif to == "received":
        store.receive(rid, 10, ts_ms=9)
    else:
        store.cancel(rid, ts_ms=9)


@pytest.mark.parametrize("to", STATES[1:])
@pytest.mark.parametrize("start", STATES)
def test_the_state_machine_allows_exactly_its_transitions(
    store: RequisitionStore, start: str, to: str
) -> None:
    rid = _in_state(store, start)
    assert store.get(rid).state == start
    if to in TRANSITIONS[start]:
        _step(store, rid, to)
        assert store.get(rid).state == to
    else:
        with pytest.raises(RequisitionConflictError):
            _step(store, rid, to)
        assert store.get(rid).state == start


def test_terminal_states_have_no_way_out() -> None:
    assert [s for s, nexts in TRANSITIONS.items() if not nexts] == [
        "rejected",
        "received",
        "cancelled",
    ]


def test_approvals_need_distinct_people_other_than_the_requester(store: RequisitionStore) -> None:
    r = store.create(
        Draft(site="wh1", sku="RICE", qty=10), currency="CNY", requested_by="ana", ts_ms=1
    )
    store.submit(r.id, approvals_required=2, erp_target="webhook", ts_ms=2)
    with pytest.raises(ApprovalRefusedError, match="requested by ana"):
        store.decide(r.id, "approved", approver="ana", erp_target="webhook", ts_ms=3)
    once = store.decide(r.id, "approved", approver="bo", erp_target="webhook", ts_ms=3)
    assert (once.state, once.approved_by, once.push) == ("submitted", ["bo"], None)
    with pytest.raises(RequisitionConflictError, match="bo has already decided"):
        store.decide(r.id, "approved", approver="bo", erp_target="webhook", ts_ms=4)
    twice = store.decide(r.id, "approved", approver="cy", erp_target="webhook", ts_ms=5)
    assert (twice.state, twice.approved_by) == ("approved", ["bo", "cy"])
    assert twice.push is not None
    assert (twice.push.status, twice.push.target, twice.push.attempts) == ("pending", "webhook", 0)
    assert twice.push.idempotency_key.startswith(f"stocksense-req-{r.id}-")


def _waiting_for_the_write_lock(conn: db.Connection) -> bool:
    """Whether another PostgreSQL session waits for the write transactions' advisory lock."""
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    ).fetchone()
    return int(row[0]) > 0


def test_a_claim_waits_for_a_cancellation_that_read_the_push_pending(
    database: db.Target, store: RequisitionStore
) -> None:
    r = store.create(
        Draft(site="wh1", sku="RICE", qty=10), currency="CNY", requested_by="ana", ts_ms=1
    )
    push = store.submit(r.id, approvals_required=0, erp_target="webhook", ts_ms=2).push
    assert push is not None
    pusher = RequisitionStore(db.connect(database))
    try:
        with ThreadPoolExecutor(max_workers=1) as pool, store.transaction():
            assert store.get(r.id).push == push  # the cancellation has read it pending ...
            claim = pool.submit(pusher.mark_sending, push.id, owner="erp#1", at_ms=3)
            if database.engine is db.Engine.POSTGRESQL:
                # ... and the pusher's claim waits for it (SQLite's write lock makes it wait).
                other = db.connect(database)
                try:
                    wait_for(lambda: _waiting_for_the_write_lock(other), what="a waiting claim")
                finally:
                    other.close()
            store.cancel(r.id, ts_ms=4)
        assert claim.result(timeout=30) is False
    finally:
        pusher.conn.close()
    after = store.get(r.id)
    assert (after.state, after.push is not None and after.push.status) == ("cancelled", "cancelled")


# -- through the API ----------------------------------------------------------------------------

Scenario = Callable[["Api"], Awaitable[None]]
RICE = {"sku": "RICE", "unit_cost": 25.0, "supplier": "Acme Rice", "lead_time_days": 3}


class Api:
    """A client per user of the scenario, and the stores over the same database."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client
        self.conn = db.connect(settings.database)
        self.inventory = InventoryStores.over(self.conn)
        self.headers: dict[str, dict[str, str]] = {}
        for name, role, sites in (
            ("ana", "buyer", ["wh1"]),
            ("bo", "approver", ["wh1"]),
            ("cy", "approver", []),
            ("dee", "approver", ["wh2"]),
            ("vic", "viewer", []),
            ("root", "admin", []),
        ):
            self.headers[name] = bearer(settings, role, name, sites)

    async def call(self, who: str, method: str, path: str, body: Any = None) -> httpx.Response:
        return await self.client.request(method, path, json=body, headers=self.headers[who])

    async def ok(self, who: str, method: str, path: str, body: Any = None) -> dict[str, Any]:
        response = await self.call(who, method, path, body)
        assert response.status_code in (200, 201), response.text
        found: dict[str, Any] = response.json()
        return found

    def suggestion(self, qty: float) -> int:
        return self.inventory.planning.add_suggestion(
            site="wh1", sku="RICE", qty=qty, reason="min", projected=1, trigger_level=5, ts_ms=1
        ).id


def _run(database: db.Target, tmp_path: Path, scenario: Scenario, **purchasing: Any) -> None:
    settings = store_settings(database, tmp_path, purchasing=PurchasingSettings(**purchasing))
    conn = db.connect(database)
    InventoryStores.over(conn).catalog.put_sku(Sku.model_validate(RICE))
    conn.close()

    async def main() -> None:
        transport = httpx.ASGITransport(app=create_app(settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            api = Api(settings, client)
            try:
                await scenario(api)
            finally:
                api.conn.close()

    asyncio.run(main())


def test_a_suggestion_becomes_a_prefilled_draft(database: db.Target, tmp_path: Path) -> None:
    _run(database, tmp_path, _prefilled, categories={"RICE": "food"})


async def _prefilled(api: Api) -> None:
    sid = api.suggestion(200)
    created = await api.call("ana", "POST", "/requisitions", {"suggestion_id": sid})
    assert created.status_code == 201
    r = created.json()
    expected = {
        "site": "wh1", "sku": "RICE", "qty": 200.0, "supplier": "Acme Rice", "unit_cost": 25.0,
        "currency": "CNY", "amount": 5_000.0, "category": "food", "suggestion_id": sid,
        "state": "draft", "requested_by": "ana", "received_qty": 0.0, "erp_document": None,
    }  # fmt: skip
    assert {k: r[k] for k in expected} == expected
    assert r["required_by"] - r["created_at"] == 3 * 86_400_000  # the SKU's lead time
    again = await api.call("ana", "POST", "/requisitions", {"suggestion_id": sid})
    assert again.status_code == 409
    assert again.json()["detail"] == f"suggestion {sid} already has requisition {r['id']}"
    missing = await api.call("ana", "POST", "/requisitions", {"suggestion_id": 999})
    assert (missing.status_code, missing.json()["detail"]) == (404, "suggestion 999 does not exist")
    override = await api.ok(
        "ana", "POST", "/requisitions",
        {"site": "wh1", "sku": "RICE", "qty": 4, "unit_cost": 30, "supplier": "Other", "note": "x"},
    )  # fmt: skip
    assert (override["amount"], override["supplier"], override["suggestion_id"]) == (
        120.0,
        "Other",
        None,
    )


def test_bad_input_is_refused_with_a_message(database: db.Target, tmp_path: Path) -> None:
    _run(database, tmp_path, _bad_input)


async def _bad_input(api: Api) -> None:
    sid = api.suggestion(10)
    bad = [
        {"suggestion_id": sid, "site": "wh1"},  # one kind or the other
        {"site": "wh1", "sku": "RICE", "qty": 0},
        {"site": "wh1", "sku": "RICE", "qty": MAX_QTY * 10},
        {"site": "wh1", "sku": "RICE", "qty": 1, "unit_cost": -1},
        {"site": "wh1", "sku": "RICE", "qty": "5"},
        {"suggestion_id": 0},
        {},
    ]
    for body in bad:
        response = await api.call("ana", "POST", "/requisitions", body)
        assert response.status_code == 422, body
        assert response.json()["detail"], body
    unknown = await api.call(
        "ana", "POST", "/requisitions", {"site": "wh1", "sku": "TEA", "qty": 1}
    )
    assert (unknown.status_code, unknown.json()["detail"]) == (404, "SKU TEA does not exist")
    r = await api.ok("ana", "POST", "/requisitions", {"site": "wh1", "sku": "RICE", "qty": 1})
    for path, body in (
        (f"/requisitions/{r['id']}/receipts", {"qty": -1}),
        (f"/requisitions/{r['id']}/approve", {"comment": 5}),
        (f"/requisitions/{r['id']}/ordered", {"document": ""}),
    ):
        assert (await api.call("root", "POST", path, body)).status_code == 422, path
    assert (await api.call("ana", "GET", "/requisitions/0")).status_code == 422
    assert (await api.call("ana", "GET", "/requisitions/12345")).status_code == 404


@pytest.mark.parametrize(
    ("qty", "approvals"),
    # At 25.00 each: 4,999.00 / 5,000.00 / 50,000.00 / 50,001.00
    [(199.96, 0), (200, 1), (2_000, 1), (2_000.04, 2)],
)
def test_submission_applies_the_rules(
    database: db.Target, tmp_path: Path, qty: float, approvals: int
) -> None:
    async def scenario(api: Api) -> None:
        r = await api.ok("ana", "POST", "/requisitions", {"site": "wh1", "sku": "RICE", "qty": qty})
        submitted = await api.ok("ana", "POST", f"/requisitions/{r['id']}/submit")
        assert submitted["approvals_required"] == approvals
        assert submitted["state"] == ("approved" if approvals == 0 else "submitted")
        for n, approver in enumerate(["bo", "cy"][:approvals], start=1):
            after = await api.ok("root" if n > 2 else approver, "POST",
                                 f"/requisitions/{r['id']}/approve", {"comment": "ok"})  # fmt: skip
            assert after["state"] == ("approved" if n == approvals else "submitted")
        assert (await api.ok("vic", "GET", f"/requisitions/{r['id']}"))["state"] == "approved"

    _run(database, tmp_path, scenario)


def test_roles_sites_and_the_requester(database: db.Target, tmp_path: Path) -> None:
    _run(database, tmp_path, _roles_and_sites)


async def _roles_and_sites(api: Api) -> None:
    body = {"site": "wh1", "sku": "RICE", "qty": 400}  # 10,000: one approver
    assert (await api.client.post("/requisitions", json=body)).status_code == 401
    assert (await api.call("vic", "POST", "/requisitions", body)).status_code == 403
    outside = await api.call("dee", "POST", "/requisitions", {**body, "site": "wh3"})
    assert outside.status_code == 403
    r = await api.ok("ana", "POST", "/requisitions", body)
    rid = r["id"]
    draft = await api.call("cy", "POST", f"/requisitions/{rid}/approve")
    assert (draft.status_code, draft.json()["detail"]) == (
        409,
        f"requisition {rid} is draft: only a submitted one is decided",
    )
    await api.ok("ana", "POST", f"/requisitions/{rid}/submit")
    buyer = await api.call("ana", "POST", f"/requisitions/{rid}/approve")
    assert buyer.status_code == 403
    assert "requisitions.approve needs the role" in buyer.json()["detail"]
    elsewhere = await api.call("dee", "POST", f"/requisitions/{rid}/approve")
    assert elsewhere.status_code == 403
    assert (
        elsewhere.json()["detail"] == f"requisition {rid} belongs to site wh1, outside your sites"
    )
    assert (await api.call("dee", "GET", f"/requisitions/{rid}")).status_code == 403
    assert (await api.ok("dee", "GET", "/requisitions")) == []  # type: ignore[comparison-overlap]
    assert (await api.call("dee", "GET", "/requisitions?site=wh1")).status_code == 403
    assert (await api.call("vic", "POST", f"/requisitions/{rid}/cancel")).status_code == 403

    # An approver who requested it may not approve it, however senior.
    own = await api.ok("bo", "POST", "/requisitions", body)
    await api.ok("bo", "POST", f"/requisitions/{own['id']}/submit")
    refused = await api.call("bo", "POST", f"/requisitions/{own['id']}/approve")
    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        f"requisition {own['id']} was requested by bo: someone else must decide it"
    )
    rejected = await api.ok("cy", "POST", f"/requisitions/{own['id']}/reject", {"comment": "no"})
    assert rejected["state"] == "rejected"
    late = await api.call("root", "POST", f"/requisitions/{own['id']}/approve")
    assert late.status_code == 409
    assert late.json()["detail"] == (
        f"requisition {own['id']} is rejected: only a submitted one is decided"
    )

    approved = await api.ok("bo", "POST", f"/requisitions/{rid}/approve", {"comment": "fine"})
    assert approved["approvals"][0]["approver"] == "bo"
    assert approved["approvals"][0]["comment"] == "fine"
    listed = await api.client.get("/requisitions", params={"state": "approved"},
                                  headers=api.headers["vic"])  # fmt: skip
    assert [x["id"] for x in listed.json()] == [rid]


def test_each_step_is_audited_with_before_and_after(database: db.Target, tmp_path: Path) -> None:
    _run(database, tmp_path, _audited)


async def _audited(api: Api) -> None:
    sid = api.suggestion(400)
    r = await api.ok("ana", "POST", "/requisitions", {"suggestion_id": sid})
    await api.ok("ana", "POST", f"/requisitions/{r['id']}/submit")
    await api.ok("bo", "POST", f"/requisitions/{r['id']}/approve")
    entries = AuditLog(api.conn).entries(action="requisition.approve")
    assert len(entries) == 1
    entry = entries[0]
    assert (entry.actor, entry.role, entry.via, entry.site) == ("bo", "approver", "token", "wh1")
    assert entry.target == f"requisition {r['id']}"
    assert (entry.before["state"], entry.after["state"]) == ("submitted", "approved")
    assert entry.before["approvals"] == []
    assert [a["approver"] for a in entry.after["approvals"]] == ["bo"]
    actions = [e.action for e in AuditLog(api.conn).entries() if e.action.startswith("req")]
    assert actions == ["requisition.create", "requisition.submit", "requisition.approve"]


def test_ordered_by_hand_then_received_in_one_go_closes_the_suggestion(
    database: db.Target, tmp_path: Path
) -> None:
    _run(database, tmp_path, _received_whole)


async def _received_whole(api: Api) -> None:
    sid = api.suggestion(100)  # 2,500: approved at submission
    r = await api.ok("ana", "POST", "/requisitions", {"suggestion_id": sid})
    rid = r["id"]
    assert (await api.ok("ana", "POST", f"/requisitions/{rid}/submit"))["state"] == "approved"
    early = await api.call("ana", "POST", f"/requisitions/{rid}/receipts", {"qty": 100})
    assert early.status_code == 409
    ordered = await api.ok("ana", "POST", f"/requisitions/{rid}/ordered", {"document": "PO-77"})
    assert (ordered["state"], ordered["erp_document"]) == ("ordered", "PO-77")
    suggestion = api.inventory.planning.get_suggestion(sid)
    assert suggestion.state == "ordered"
    assert api.inventory.planning.on_order("wh1", "RICE") == 100.0
    # The open requisition receives it: the suggestion's own step would book the stock twice.
    direct = await api.call("ana", "POST", f"/inventory/suggestions/{sid}/received", {})
    assert (direct.status_code, direct.json()["detail"]) == (
        409,
        f"suggestion {sid} is handled by requisition {rid}: move the requisition instead",
    )
    assert api.inventory.ledger.ledger(sku="RICE") == []
    too_much = await api.call("ana", "POST", f"/requisitions/{rid}/receipts", {"qty": 100.5})
    assert too_much.status_code == 409
    assert too_much.json()["detail"] == f"requisition {rid} has 100 left to receive, not 100.5"
    received = await api.ok("ana", "POST", f"/requisitions/{rid}/receipts",
                            {"qty": 100, "location": "dock-1"})  # fmt: skip
    assert (received["state"], received["received_qty"]) == ("received", 100.0)
    assert api.inventory.planning.get_suggestion(sid).state == "received"
    assert api.inventory.planning.on_order("wh1", "RICE") == 0.0
    assert api.inventory.ledger.qty_at("wh1", "dock-1", "RICE") == 100.0
    moves = api.inventory.ledger.ledger(sku="RICE")
    assert [(m.kind, m.qty, m.ref) for m in moves] == [("receipt", 100.0, f"requisition {rid}")]
    again = await api.call("ana", "POST", f"/requisitions/{rid}/receipts", {"qty": 1})
    assert again.status_code == 409


def test_received_in_parts_books_each_part_once(database: db.Target, tmp_path: Path) -> None:
    _run(database, tmp_path, _received_in_parts)


async def _received_in_parts(api: Api) -> None:
    sid = api.suggestion(100)
    rid = (await api.ok("ana", "POST", "/requisitions", {"suggestion_id": sid}))["id"]
    await api.ok("ana", "POST", f"/requisitions/{rid}/submit")
    await api.ok("ana", "POST", f"/requisitions/{rid}/ordered", {"document": "PO-78"})
    part = await api.ok("ana", "POST", f"/requisitions/{rid}/receipts", {"qty": 60})
    assert (part["state"], part["received_qty"]) == ("ordered", 60.0)
    assert api.inventory.planning.get_suggestion(sid).state == "ordered"
    # What came is on hand, and only the rest is still on order: projected counts it once.
    assert (
        api.inventory.ledger.on_hand("wh1", "RICE"),
        api.inventory.planning.on_order("wh1", "RICE"),
    ) == (60.0, 40.0)
    rest = await api.ok("ana", "POST", f"/requisitions/{rid}/receipts", {"qty": 40})
    assert (rest["state"], rest["received_qty"]) == ("received", 100.0)
    assert api.inventory.planning.get_suggestion(sid).state == "received"
    assert api.inventory.planning.on_order("wh1", "RICE") == 0.0
    assert api.inventory.ledger.on_hand("wh1", "RICE") == 100.0
    moves = api.inventory.ledger.ledger(sku="RICE")
    assert [(m.kind, m.qty, m.ref) for m in moves] == [
        ("receipt", 60.0, f"requisition {rid}"),
        ("receipt", 40.0, f"requisition {rid}"),
    ]

    # A short delivery closed with `final`: what came is booked, the rest will not come.
    manual = await api.ok("ana", "POST", "/requisitions", {"site": "wh1", "sku": "RICE", "qty": 50})
    await api.ok("ana", "POST", f"/requisitions/{manual['id']}/submit")
    await api.ok("ana", "POST", f"/requisitions/{manual['id']}/ordered", {"document": "PO-79"})
    short = await api.ok("ana", "POST", f"/requisitions/{manual['id']}/receipts",
                         {"qty": 30, "final": True})  # fmt: skip
    assert (short["state"], short["received_qty"]) == ("received", 30.0)
    assert api.inventory.ledger.on_hand("wh1", "RICE") == 130.0


def test_cancelling_an_order_closes_its_suggestion(database: db.Target, tmp_path: Path) -> None:
    _run(database, tmp_path, _cancelled)


async def _cancelled(api: Api) -> None:
    sid = api.suggestion(100)
    rid = (await api.ok("ana", "POST", "/requisitions", {"suggestion_id": sid}))["id"]
    await api.ok("ana", "POST", f"/requisitions/{rid}/submit")
    await api.ok("ana", "POST", f"/requisitions/{rid}/ordered", {"document": "PO-80"})
    cancelled = await api.ok("ana", "POST", f"/requisitions/{rid}/cancel")
    assert cancelled["state"] == "cancelled"
    assert api.inventory.planning.get_suggestion(sid).state == "cancelled"
    assert api.inventory.planning.on_order("wh1", "RICE") == 0.0
    assert (await api.call("ana", "POST", f"/requisitions/{rid}/cancel")).status_code == 409
    # A requisition that was cancelled before ordering leaves its suggestion to a new one.
    sid2 = api.suggestion(10)
    first = await api.ok("ana", "POST", "/requisitions", {"suggestion_id": sid2})
    await api.ok("ana", "POST", f"/requisitions/{first['id']}/cancel")
    assert api.inventory.planning.get_suggestion(sid2).state == "suggested"
    second = await api.call("ana", "POST", "/requisitions", {"suggestion_id": sid2})
    assert second.status_code == 201


def test_with_an_erp_configured_orders_are_not_recorded_by_hand(
    database: db.Target, tmp_path: Path
) -> None:
    async def scenario(api: Api) -> None:
        rid = (await api.ok("ana", "POST", "/requisitions", {"site": "wh1", "sku": "RICE",
                                                             "qty": 1}))["id"]  # fmt: skip
        approved = await api.ok("ana", "POST", f"/requisitions/{rid}/submit")
        assert approved["push"]["status"] == "pending"
        assert approved["erp_target"] == "webhook"
        by_hand = await api.call("ana", "POST", f"/requisitions/{rid}/ordered", {"document": "X"})
        assert by_hand.status_code == 409
        not_dead = await api.call("cy", "POST", f"/requisitions/{rid}/push")
        assert not_dead.status_code == 409
        cancelled = await api.ok("ana", "POST", f"/requisitions/{rid}/cancel")
        assert cancelled["push"]["status"] == "cancelled"

    _run(
        database, tmp_path, scenario, erp={"kind": "webhook", "url": "http://erp", "secret": "k3y"}
    )


def test_production_refuses_placeholder_erp_secrets() -> None:
    with pytest.raises(ConfigError, match="STOCKSENSE_PURCHASING__ERP__API_SECRET looks like a"):
        load_settings(
            environment="production",
            purchasing={"erp": {"kind": "erpnext", "api_key": "k1", "api_secret": "<secret>"}},
        )


# -- docs/purchasing.md -------------------------------------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "purchasing.md"


def _blocks(tag: str) -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    return dict(re.findall(rf"```\w+ {tag}:([\w-]+)\n(.*?)```", text, flags=re.S))


def test_the_documented_rules_are_valid_and_mean_what_the_doc_says() -> None:
    rules = _blocks("rules")
    assert sorted(rules) == ["by-site-and-category", "default"]
    default = PurchasingSettings(approval_rules=json.loads(rules["default"]))
    assert default == PurchasingSettings()
    table = [(0.0, 0), (4_999.99, 0), (5_000.0, 1), (50_000.0, 1), (50_000.01, 2)]
    assert [(a, default.approvals_required(a, "wh1", None)) for a, _ in table] == table
    strict = PurchasingSettings(
        approval_rules=json.loads(rules["by-site-and-category"]),
        categories={"AMOX-500": "pharma"},
    )
    assert strict.approvals_required(100.0, "wh3", "pharma") == 1
    assert strict.approvals_required(20_000.01, "wh1", "pharma") == 2
    assert strict.approvals_required(9_999.99, "wh3", None) == 0
    assert strict.approvals_required(9_999.99, "wh1", None) == 1


@pytest.mark.parametrize("name", ["categories", "webhook", "erpnext", "odoo"])
def test_the_documented_environments_load(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    lines = [line for line in _blocks("env")[name].splitlines() if line.strip()]
    for line in lines:
        variable, _, value = line.partition("=")
        monkeypatch.setenv(variable, value.strip("'"))
    purchasing = load_settings().purchasing
    if name == "categories":
        assert purchasing.categories == {"AMOX-500": "pharma", "RICE": "food"}
    else:
        assert purchasing.erp.kind == name
        assert len(lines) >= 3
