"""Settling and recorded picks through the real broker, ingest, rules and API: no stock alert
before a SKU's shelves have counted it, a real shortage after they have, and picks recorded
through ``POST /inventory/picks`` or a WMS pick list explaining shelf drops without booking
them twice.

Time-based rules are driven with ``rules.tick(now_ms)`` on the readings' clock.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import httpx
import pytest

from api.app import create_app
from core import db
from core.alerts import Alert
from core.inventory import InventoryStores, LedgerEntry, LotIn, Shelf, Sku
from core.settings import InventorySettings, Settings
from rules.seed import Seed
from stocksense.pipeline import Pipeline
from tests.authutil import bearer
from tests.conftest import RECENT_T0, Publisher, until
from tests.integration.test_inventory_scenarios import SITE, Shelves

pytestmark = pytest.mark.integration

T0 = RECENT_T0
WINDOW_MS = 60_000
SKUS = [
    Sku(sku="COFFEE", unit_grams=250, min_qty=10, max_qty=40, pack_multiple=6),
    Sku(sku="TEA", unit_grams=500, min_qty=10, max_qty=40, pack_multiple=6),
    Sku(sku="SALT", min_qty=1, max_qty=20),  # no shelf: its picks are booked as they come
]
# COFFEE lies on two cells of two shelves; TEA on one.
SHELVES = [
    Shelf(site=SITE, device="shelf-1", cell="c1", sku="COFFEE", tare_grams=800, location="A1"),
    Shelf(site=SITE, device="shelf-1", cell="c2", sku="TEA", location="A2"),
    Shelf(site=SITE, device="shelf-2", cell="c1", sku="COFFEE", location="B1"),
]


class Run:
    """The pipeline, the API over its database, and the shelves' publisher."""

    def __init__(self, pipeline: Pipeline, api: httpx.AsyncClient, shelves: Shelves) -> None:
        self.pipeline = pipeline
        self.api = api
        self.shelves = shelves
        self.stores = InventoryStores.over(pipeline.conn)

    async def hold(self, device: str, levels: dict[str, tuple[float, float]], start_ms: int) -> int:
        end = self.shelves.hold(device, levels, start_ms=start_ms, spike_p=0.0)
        await until(
            lambda: self.pipeline.rules.processed >= self.shelves.sent, what="rules caught up"
        )
        return end

    def alerts(self, type_: str) -> list[Alert]:
        return self.pipeline.alerts.state.list(type_=type_, site=SITE)

    def moves(self, sku: str) -> list[LedgerEntry]:
        return self.stores.ledger.ledger(site=SITE, sku=sku)


def _running(
    settings: Settings,
    publisher: Publisher,
    body: Callable[[Run], Awaitable[None]],
    *,
    before: Callable[[InventoryStores], None] = lambda stores: None,
) -> None:
    cfg = settings.model_copy(
        update={
            # A sweep at every tick; the default settle time.
            "inventory": InventorySettings(evaluate_interval_s=0.001, loss_window_s=60),
            "mqtt": settings.mqtt.model_copy(update={"sites": (SITE,)}),
        }
    )
    conn = db.connect(cfg.database)
    stores = InventoryStores.over(conn)
    stores.load_catalog(skus=SKUS, shelves=SHELVES, ts_ms=T0)
    before(stores)
    conn.close()

    async def scenario() -> None:
        pipeline = Pipeline(cfg, seed=Seed(), anomaly_sites=(), tick_interval_s=3600)
        await pipeline.start()
        transport = httpx.ASGITransport(app=create_app(cfg))
        headers = bearer(cfg, role="operator", name="wms")
        try:
            async with httpx.AsyncClient(
                transport=transport, base_url="http://api", headers=headers
            ) as api:
                await body(Run(pipeline, api, Shelves(publisher, random.Random(9))))
        finally:
            await pipeline.stop()

    asyncio.run(scenario())


def _coffee(units: int, tare: float = 0.0) -> dict[str, tuple[float, float]]:
    return {"c1": (tare + units * 250.0, 250.0)}


def test_no_reorder_before_the_shelves_settle_and_a_real_shortage_after(
    settings: Settings, publisher: Publisher
) -> None:
    def last_run(stores: InventoryStores) -> None:
        # The ledger a previous run left: COFFEE at 3, below its minimum of 10.
        stores.ledger.record(
            ts_ms=T0 - 3_600_000, site=SITE, location="A1", sku="COFFEE", qty=3, kind="adjust",
            source="sensor", ref="shelf count",
        )  # fmt: skip

    async def body(run: Run) -> None:
        rules = run.pipeline.rules
        # Start-up: the first reading arrives, the sweep runs on the stale ledger.
        await run.hold("shelf-1", {"c1": (800 + 12 * 250.0, 250.0)}, T0 - 2_000)
        rules.tick(T0)
        assert run.stores.planning.suggestions(site=SITE) == []
        # shelf-1 settled: 12 of COFFEE on it; shelf-2, also holding COFFEE, is still settling.
        t = await run.hold("shelf-2", _coffee(20), T0)
        rules.tick(t)
        assert run.alerts("reorder") == []
        assert run.stores.planning.suggestions(site=SITE) == []
        assert run.stores.ledger.on_hand(SITE, "COFFEE") == 32.0

        # TEA counts 6, below its minimum after settling: one suggestion and one alert.
        t = await run.hold("shelf-1", {"c2": (6 * 500.0, 500.0)}, t)
        for now in (t, t + 60_000, t + 120_000):
            rules.tick(now)
        suggestions = run.stores.planning.suggestions(site=SITE)
        assert [(s.sku, s.qty, s.projected) for s in suggestions] == [("TEA", 36.0, 6.0)]
        assert [(a.source, a.state, a.value) for a in run.alerts("reorder")] == [
            (f"{SITE}/TEA", "active", 6.0)
        ]

    _running(settings, publisher, body, before=last_run)


def test_stock_not_known_until_every_cell_of_the_sku_counted(
    settings: Settings, publisher: Publisher
) -> None:
    async def body(run: Run) -> None:
        rules = run.pipeline.rules
        # shelf-1's COFFEE counts 4 (below 10) while shelf-2's is still settling: nothing yet.
        t = await run.hold("shelf-1", _coffee(4, tare=800), T0)
        run.shelves.hold("shelf-2", _coffee(20), start_ms=T0, n=3, spike_p=0.0)
        await until(lambda: rules.processed >= run.shelves.sent, what="rules caught up")
        rules.tick(t)
        processor = run.pipeline.inventory
        assert processor.stock_known(SITE, "COFFEE", t) is False
        assert run.stores.planning.suggestions(site=SITE) == []
        # shelf-2 counts 20: 24 in all, above the minimum; never a reorder.
        t = await run.hold("shelf-2", _coffee(20), T0 + 3_000)
        assert processor.stock_known(SITE, "COFFEE", t) is True
        for now in (t, t + 60_000):
            rules.tick(now)
        assert run.alerts("reorder") == []
        assert run.stores.planning.suggestions(site=SITE) == []
        # SALT has no shelf: known once the settle time (120 s) has passed since the start.
        assert processor.stock_known(SITE, "SALT", T0 + 119_999) is False
        assert processor.stock_known(SITE, "SALT", T0 + 120_000) is True

    _running(settings, publisher, body)


def _tea(units: int) -> dict[str, tuple[float, float]]:
    return {"c2": (units * 500.0, 500.0)}


def test_a_recorded_pick_explains_the_drop_and_is_booked_once(
    settings: Settings, publisher: Publisher
) -> None:
    async def body(run: Run) -> None:
        rules = run.pipeline.rules
        t = await run.hold("shelf-1", _tea(20), T0)
        rules.tick(t)
        pick = {"site": SITE, "sku": "TEA", "qty": 3, "ref": "PK-1", "ts": t + 500}
        recorded = await run.api.post("/inventory/picks", json=pick)
        assert recorded.status_code == 201, recorded.text
        t = await run.hold("shelf-1", _tea(17), t)  # the picker takes 3
        rules.tick(t)
        (drop,) = [m for m in run.moves("TEA") if m.kind == "pick"]
        rules.tick(drop.ts + WINDOW_MS)
        assert run.alerts("unexplained_loss") == []
        assert [(m.kind, m.qty, m.source) for m in run.moves("TEA")] == [
            ("adjust", 20.0, "sensor"),
            ("pick", -3.0, "sensor"),
        ]
        (stored,) = run.stores.picks.picks(site=SITE)
        assert (stored.status, stored.matched_qty, stored.ledger_id) == ("matched", 3.0, drop.id)

        # A pick recorded after its drop, within the window, explains it too.
        t = await run.hold("shelf-1", _tea(15), t + 1_000)
        second = [m for m in run.moves("TEA") if m.kind == "pick"][-1]
        rules.tick(second.ts + 1)
        late = {**pick, "qty": 2, "ref": "PK-2", "ts": second.ts + 30_000}
        assert (await run.api.post("/inventory/picks", json=late)).status_code == 201
        rules.tick(second.ts + WINDOW_MS)
        assert run.alerts("unexplained_loss") == []
        assert run.stores.ledger.qty_at(SITE, "A2", "TEA") == 15.0

    _running(settings, publisher, body)


def test_an_unrecorded_drop_is_an_unexplained_loss(
    settings: Settings, publisher: Publisher
) -> None:
    async def body(run: Run) -> None:
        rules = run.pipeline.rules
        t = await run.hold("shelf-1", _tea(20), T0)
        # A recorded pick of 1 covers one of the 4 units that leave.
        pick = {"site": SITE, "sku": "TEA", "qty": 1, "ref": "PK-9", "ts": t}
        assert (await run.api.post("/inventory/picks", json=pick)).status_code == 201
        t = await run.hold("shelf-1", _tea(16), t)
        (drop,) = [m for m in run.moves("TEA") if m.kind == "pick"]
        rules.tick(drop.ts + WINDOW_MS - 1)
        assert run.alerts("unexplained_loss") == []
        rules.tick(drop.ts + WINDOW_MS)
        (loss,) = run.alerts("unexplained_loss")
        assert (loss.source, loss.value, loss.title) == (
            f"{SITE}/shelf-1/c2",
            3.0,
            "Unexplained loss of 3 × TEA",
        )

    _running(settings, publisher, body)


def test_a_wms_pick_list_delivered_twice_is_booked_once(
    settings: Settings, publisher: Publisher
) -> None:
    def salt(stores: InventoryStores) -> None:
        stores.ledger.add_lot(
            LotIn(lot="S1", sku="SALT", site=SITE, location="C1", qty=10), ts_ms=T0
        )

    async def body(run: Run) -> None:
        rules = run.pipeline.rules
        t = await run.hold("shelf-1", _tea(20), T0)
        wave = {
            "ref": "WAVE-1", "site": SITE, "ts": t,
            "lines": [{"sku": "TEA", "qty": 2}, {"sku": "SALT", "qty": 4}],
        }  # fmt: skip
        for expected in (201, 200):  # the WMS retries its webhook
            answer = await run.api.post("/inventory/pick-lists", json=wave)
            assert answer.status_code == expected, answer.text
            rules.tick(t)
        t = await run.hold("shelf-1", _tea(18), t)
        (drop,) = [m for m in run.moves("TEA") if m.kind == "pick"]
        rules.tick(drop.ts + WINDOW_MS)
        assert run.alerts("unexplained_loss") == []
        # SALT has no shelf: the list's line is its outflow, booked once, from its lot.
        assert [(m.kind, m.qty, m.source, m.lot, m.ref) for m in run.moves("SALT")] == [
            ("receipt", 10.0, "api", "S1", "lot S1"),
            ("pick", -4.0, "api", "S1", "pick WAVE-1#2"),
        ]
        assert [m.kind for m in run.moves("TEA")] == ["adjust", "pick"]
        statuses = {p.ref: p.status for p in run.stores.picks.picks(site=SITE)}
        assert statuses == {"WAVE-1#1": "matched", "WAVE-1#2": "booked"}

    _running(settings, publisher, body, before=salt)
