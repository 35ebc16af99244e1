"""Live inventory through the real broker, ingest and rules: shelves, RFID, reorder, dates,
dead stock, imbalance and stock anomalies, with InfluxDB receiving the stock points."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable, Sequence

import pytest

from core import db, topics
from core.alerts import Alert, AlertStores
from core.epc import encode_sgtin96
from core.influx import InfluxClient, query_sync, rows
from core.influx_writer import BatchWriter
from core.inventory import (
    DAY_MS,
    DemandIn,
    InboundIn,
    InventoryStores,
    LotIn,
    LotUpdate,
    RfidZone,
    Shelf,
    Sku,
)
from core.settings import InventorySettings, Settings
from rules.inventory.rfid import RfidEvent, TagRead, ZoneEnter, ZoneExit
from rules.inventory.service import InventoryProcessor
from rules.seed import Seed
from stocksense.pipeline import Pipeline
from tests.conftest import RECENT_T0, Publisher, until

pytestmark = pytest.mark.integration

T0 = RECENT_T0
SITE = "inv-scenarios"
GTIN_A = "80614141123458"
GTIN_B = "06901234567892"
CATALOG = [
    Sku(sku="COFFEE", gtin=GTIN_A, unit_grams=250, min_qty=10, max_qty=40, pack_multiple=6,
        unit_cost=4.0, home_zone="aisle-a"),
    Sku(sku="TEA", unit_grams=500, unit_cost=7.0),
    Sku(sku="RICE", gtin=GTIN_B, unit_grams=250, unit_cost=2.0, home_zone="aisle-a"),
]  # fmt: skip
SHELVES = [
    Shelf(site=SITE, device="shelf-1", cell="c1", sku="COFFEE", tare_grams=800, location="A1"),
    Shelf(site=SITE, device="shelf-1", cell="c2", sku="TEA", location="A2"),
    Shelf(site=SITE, device="shelf-2", cell="c1", sku="RICE", location="B1"),
]
ZONES = [
    RfidZone(site=SITE, device="rd-1", antenna=1, zone="aisle-a"),
    RfidZone(site=SITE, device="rd-1", antenna=2, zone="aisle-b"),
    RfidZone(site=SITE, device="dock-1", antenna=1, zone="dock-in", role="receiving"),
    RfidZone(site=SITE, device="dock-1", antenna=2, zone="dock-out", role="shipping"),
]


class Recorder(InventoryProcessor):
    """Keeps the RFID events the trackers produced, to count enters and exits."""

    def __init__(self, **kwargs: object) -> None:
        self.rfid_seen: list[RfidEvent] = []
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def _rfid_events(
        self, site: str, events: Sequence[RfidEvent], touched: dict[tuple[str, str], int]
    ) -> None:
        self.rfid_seen.extend(events)
        super()._rfid_events(site, events, touched)


def _processor(
    settings: Settings, conn: db.Connection, writer: BatchWriter | None = None
) -> Recorder:
    store = InventoryStores.over(conn)
    store.load_catalog(skus=CATALOG, shelves=SHELVES, rfid_zones=ZONES, ts_ms=T0)
    return Recorder(
        store=store,
        alerts=AlertStores.over(conn, []).state,
        writer=writer,
        # No settle time for SKUs without a reporting shelf: these tests are about the rules
        # once stock is known; the settling tests set their own.
        config=InventorySettings(loss_window_s=60, dead_after_days=90, settle_s=0),
    )


class Shelves:
    """Realistic load-cell readings: ±0.5 % of a unit of noise plus the odd spike."""

    def __init__(self, publisher: Publisher, rng: random.Random) -> None:
        self.publisher = publisher
        self.rng = rng
        self.seq = 0
        self.sent = 0

    def hold(
        self,
        device: str,
        levels: dict[str, tuple[float, float]],
        *,
        start_ms: int,
        n: int = 10,
        step_ms: int = 1000,
        drift_g_per_step: float = 0.0,
        spike_p: float = 0.03,
    ) -> int:
        """Publish ``n`` readings of every cell at its (grams, unit grams); returns the end time."""
        ts = start_ms
        for i in range(n):
            readings = []
            for cell, (grams, unit) in levels.items():
                value = grams + i * drift_g_per_step + self.rng.uniform(-0.005, 0.005) * unit
                if self.rng.random() < spike_p:
                    value += self.rng.choice([-1, 1]) * self.rng.uniform(1.0, 3.0) * unit
                readings.append({"cell": cell, "grams": round(value, 1)})
            payload = {"ts": ts, "seq": self.seq, "readings": readings}
            self.publisher.publish(topics.build(SITE, "weight", device), json.dumps(payload))
            self.seq += 1
            self.sent += len(readings)
            ts += step_ms
        self.publisher.flush()
        return ts


def _run(settings: Settings, body: Callable[[Pipeline, Recorder], Awaitable[None]]) -> None:
    # This site's topics only: retained status messages other tests leave on the session broker
    # would count as processed readings and end the "rules caught up" waits early.
    settings = settings.model_copy(
        update={"mqtt": settings.mqtt.model_copy(update={"sites": (SITE,)})}
    )
    conn = db.connect(settings.database)
    influx = InfluxClient(settings.influx)

    async def scenario() -> None:
        await influx.ensure_database()
        built: list[Recorder] = []

        def inventory(writer: BatchWriter) -> Recorder:
            built.append(_processor(settings, conn, writer))
            return built[0]

        # Ticks come from the test with explicit times, not from the wall clock.
        pipeline = Pipeline(settings, seed=Seed(), inventory=inventory, tick_interval_s=3600)
        processor = built[0]
        await pipeline.start()
        try:
            await body(pipeline, processor)
        finally:
            await pipeline.stop()
            await influx.aclose()

    try:
        asyncio.run(scenario())
    finally:
        conn.close()


def _alerts(processor: InventoryProcessor, type_: str) -> list[Alert]:
    return [a for a in processor.alerts.list(limit=1000) if a.type == type_]


def _moves(store: InventoryStores, sku: str) -> list[tuple[str, float]]:
    return [(e.kind, e.qty) for e in store.ledger.ledger(site=SITE, sku=sku)]


def test_shelves_give_exact_counts_flag_ambiguity_and_ignore_drift(
    settings: Settings, publisher: Publisher
) -> None:
    shelves = Shelves(publisher, random.Random(11))

    async def body(pipeline: Pipeline, processor: Recorder) -> None:
        store = processor.store

        def both(coffee: int, tea_g: float) -> dict[str, tuple[float, float]]:
            return {"c1": (800 + coffee * 250.0, 250.0), "c2": (tea_g, 500.0)}

        t = T0
        t = shelves.hold("shelf-1", both(40, 20 * 500), start_ms=t)
        t = shelves.hold("shelf-1", both(37, 20 * 500), start_ms=t)  # pick 3
        t = shelves.hold("shelf-1", both(39, 15 * 500), start_ms=t)  # put 2; pick 5 tea
        t = shelves.hold("shelf-1", both(38, 15 * 500 - 250), start_ms=t)  # pick 1; half a tea
        t = shelves.hold("shelf-1", both(33, 15 * 500 - 250), start_ms=t)  # pick 5
        # An idle shelf creeping 50 g over an hour (a reading every 10 s) must stay at 12.
        shelves.hold(
            "shelf-2",
            {"c1": (12 * 250.0, 250.0)},
            start_ms=T0,
            n=361,
            step_ms=10_000,
            drift_g_per_step=50 / 360,
            spike_p=0.0,
        )
        await until(lambda: pipeline.rules.processed >= shelves.sent, what="rules caught up")

        assert _moves(store, "COFFEE") == [
            ("adjust", 40.0),
            ("pick", -3.0),
            ("put", 2.0),
            ("pick", -1.0),
            ("pick", -5.0),
        ]
        assert store.ledger.qty_at(SITE, "A1", "COFFEE") == 33.0
        assert _moves(store, "TEA") == [("adjust", 20.0), ("pick", -5.0)]
        assert store.ledger.qty_at(SITE, "A2", "TEA") == 15.0
        ambiguous = _alerts(processor, "weight_ambiguous")
        assert [(a.source, a.state, a.details["sku"]) for a in ambiguous] == [
            (f"{SITE}/shelf-1/c2", "active", "TEA")
        ]
        assert ambiguous[0].value == pytest.approx(-0.5, abs=0.02)
        assert _moves(store, "RICE") == [("adjust", 12.0)]
        drifting = processor.cell(SITE, "shelf-2", "c1")
        assert drifting is not None
        assert drifting.drift_grams == pytest.approx(50, abs=8)

        await pipeline.writer.drain()
        moves = rows(query_sync(settings.influx, "SELECT qty, kind, sku FROM movements"))
        assert sorted((m["sku"], m["kind"], m["qty"]) for m in moves) == sorted(
            [("COFFEE", k, q) for k, q in _moves(store, "COFFEE")]
            + [("TEA", k, q) for k, q in _moves(store, "TEA")]
            + [("RICE", "adjust", 12.0)]
        )
        last = rows(
            query_sync(
                settings.influx,
                "SELECT last(qty) FROM stock WHERE basis = 'ledger' GROUP BY sku, location",
            )
        )
        assert {(r["sku"], r["location"], r["last"]) for r in last} == {
            ("COFFEE", "A1", 33.0),
            ("TEA", "A2", 15.0),
            ("RICE", "B1", 12.0),
        }

    _run(settings, body)


def _tags(publisher: Publisher, device: str, reads: list[tuple[int, str, int]]) -> int:
    for seq, (ts, epc, antenna) in enumerate(reads):
        payload = {"ts": ts, "seq": seq, "reads": [{"epc": epc, "antenna": antenna, "rssi": -50}]}
        publisher.publish(topics.build(SITE, "rfid", device), json.dumps(payload))
    publisher.flush()
    return len(reads)


def test_rfid_dedup_zone_moves_dock_movements_and_misplaced_item(
    settings: Settings, publisher: Publisher
) -> None:
    coffee = encode_sgtin96(GTIN_A, 1)
    rice_in = encode_sgtin96(GTIN_B, 7)
    rice_out = encode_sgtin96(GTIN_B, 8)

    async def body(pipeline: Pipeline, processor: Recorder) -> None:
        store = processor.store
        sent = _tags(
            publisher,
            "rd-1",
            [
                *[(T0, coffee, 1), (T0 + 400, coffee, 1), (T0 + 900, coffee, 1)],  # one read
                *[(T0 + 10_000, coffee, 2), (T0 + 10_500, coffee, 2)],  # moved to aisle-b
            ],
        )
        sent += _tags(
            publisher,
            "dock-1",
            [
                *[(T0 + 20_000, rice_in, 1), (T0 + 20_300, rice_in, 1), (T0 + 25_000, rice_in, 1)],
                (T0 + 26_000, rice_out, 2),
            ],
        )
        await until(lambda: pipeline.rules.processed >= sent, what="rules caught up")

        seen = processor.rfid_seen
        coffee_events = [e for e in seen if e.epc == coffee]
        assert [(type(e).__name__, e.zone) for e in coffee_events] == [
            ("TagRead", "aisle-a"),
            ("ZoneEnter", "aisle-a"),
            ("TagRead", "aisle-b"),
            ("ZoneExit", "aisle-a"),
            ("ZoneEnter", "aisle-b"),
        ]
        exit_event = coffee_events[3]
        assert isinstance(exit_event, ZoneExit)
        assert exit_event.reason == "moved"
        assert len([e for e in seen if isinstance(e, TagRead) and e.epc == rice_in]) == 2
        tracker = processor.rfid(SITE)
        assert tracker is not None
        assert tracker.counts() == {
            ("aisle-b", "COFFEE"): 1,
            ("dock-in", "RICE"): 1,
            ("dock-out", "RICE"): 1,
        }
        assert [
            (e.kind, e.qty, e.location) for e in store.ledger.ledger(site=SITE, sku="RICE")
        ] == [
            ("receipt", 1.0, "dock-in"),
            ("issue", -1.0, "dock-out"),
        ]

        # Settled in aisle-b while its home is aisle-a: one alert however often it is checked.
        processor.tick(T0 + 15_000)
        assert _alerts(processor, "misplaced_item") == []
        for now in (T0 + 21_000, T0 + 22_000):
            processor.tick(now)
        misplaced = _alerts(processor, "misplaced_item")
        assert [(a.source, a.state, a.details["epc"]) for a in misplaced] == [
            (f"{SITE}/aisle-b/COFFEE", "active", coffee)
        ]
        # Unseen for 30 s: the tag leaves (timeout) and the alert clears.
        processor.tick(T0 + 60_000)
        assert tracker.count("aisle-b", "COFFEE") == 0
        assert [a.state for a in _alerts(processor, "misplaced_item")] == ["cleared"]
        assert isinstance(seen[-1], ZoneExit | ZoneEnter)

    _run(settings, body)


def test_reorder_once_per_gap_and_unexplained_loss(
    settings: Settings, publisher: Publisher
) -> None:
    shelves = Shelves(publisher, random.Random(5))

    async def body(pipeline: Pipeline, processor: Recorder) -> None:
        store = processor.store
        t = T0

        def coffee(units: int) -> dict[str, tuple[float, float]]:
            return {"c1": (800 + units * 250.0, 250.0)}

        t = shelves.hold("shelf-1", coffee(12), start_ms=t)
        t = shelves.hold("shelf-1", coffee(9), start_ms=t)  # 9 < min 10: order 31 -> 36
        t = shelves.hold("shelf-1", coffee(8), start_ms=t)  # the pending 36 covers the gap
        await until(lambda: pipeline.rules.processed >= shelves.sent, what="rules caught up")
        suggestions = store.planning.suggestions(site=SITE, sku="COFFEE")
        assert [(s.qty, s.state, s.projected, s.trigger_level) for s in suggestions] == [
            (36.0, "suggested", 9.0, 10.0)
        ]
        for now in (t, t + 61_000, t + 122_000):  # repeated sweeps suggest nothing new
            processor.tick(now)
        assert len(store.planning.suggestions()) == 1
        # The open alert follows the stock: raised at 9, now at 8, the lowest so far.
        reorder = _alerts(processor, "reorder")
        assert [(a.source, a.state, a.value, a.peak_value, a.threshold) for a in reorder] == [
            (f"{SITE}/COFFEE", "active", 8.0, 8.0, 10.0)
        ]

        # Both picks (3 and 1) had no RFID exit and no recorded pick within 60 s: one alert,
        # showing the latest loss and the largest.
        loss = _alerts(processor, "unexplained_loss")[0]
        assert (loss.value, loss.peak_value, loss.title) == (
            1.0,
            3.0,
            "Unexplained loss of 1 × COFFEE",
        )
        assert len(_alerts(processor, "unexplained_loss")) == 1

        # The buyer orders: on order counts in projected, the reorder alert clears.
        store.planning.transition_suggestion(suggestions[0].id, "ordered", ts_ms=t + 130_000)
        processor.tick(t + 200_000)
        assert [a.state for a in _alerts(processor, "reorder")] == ["cleared"]
        assert len(store.planning.suggestions()) == 1

    _run(settings, body)


def test_loss_explained_or_suppressed(settings: Settings, publisher: Publisher) -> None:
    shelves = Shelves(publisher, random.Random(3))
    rice = encode_sgtin96(GTIN_B, 42)

    async def body(pipeline: Pipeline, processor: Recorder) -> None:
        def rice_shelf(units: int) -> dict[str, tuple[float, float]]:
            return {"c1": (units * 250.0, 250.0)}

        t = shelves.hold("shelf-2", rice_shelf(20), start_ms=T0)
        t = shelves.hold("shelf-2", rice_shelf(19), start_ms=t)  # explained: tag leaves
        sent = shelves.sent + _tags(publisher, "dock-1", [(t + 5_000, rice, 2)])
        await until(lambda: pipeline.rules.processed >= sent, what="rules caught up")
        processor.tick(t + 120_000)
        assert _alerts(processor, "unexplained_loss") == []

        # The reader goes offline (Last Will): a drop now cannot be judged.
        publisher.publish(
            topics.build(SITE, "rfid", "dock-1", "status"),
            json.dumps({"online": False, "reason": "lwt"}),
        )
        publisher.flush()
        await until(lambda: bool(processor.offline_readers), what="reader offline")
        t = shelves.hold("shelf-2", rice_shelf(17), start_ms=t + 130_000)
        await until(lambda: pipeline.rules.processed >= shelves.sent + 2, what="rules caught up")
        processor.tick(t + 120_000)
        assert _alerts(processor, "unexplained_loss") == []
        assert [(k, q) for k, q in _moves(processor.store, "RICE")] == [
            ("adjust", 20.0),
            ("pick", -1.0),  # shipped through the portal: not issued a second time
            ("pick", -2.0),
        ]

    _run(settings, body)


def test_a_unit_read_leaving_before_its_shelf_senses_the_pick_leaves_stock_once(
    settings: Settings, publisher: Publisher
) -> None:
    shelves = Shelves(publisher, random.Random(5))
    rice = encode_sgtin96(GTIN_B, 77)

    async def body(pipeline: Pipeline, processor: Recorder) -> None:
        store = processor.store
        t = shelves.hold("shelf-2", {"c1": (20 * 250.0, 250.0)}, start_ms=T0)
        await until(lambda: pipeline.rules.processed >= shelves.sent, what="shelf counted")
        # A fast picker: the bag passes the shipping antenna before the shelf has settled.
        sent = shelves.sent + _tags(publisher, "dock-1", [(t + 1_000, rice, 2)])
        await until(lambda: pipeline.rules.processed >= sent, what="portal read")
        assert store.ledger.qty_at(SITE, "dock-out", "RICE") == -1.0  # issued, not yet explained
        t = shelves.hold("shelf-2", {"c1": (19 * 250.0, 250.0)}, start_ms=t + 3_000)
        await until(lambda: pipeline.rules.processed >= shelves.sent + 1, what="pick sensed")
        processor.tick(t + 200_000)
        assert _moves(store, "RICE") == [
            ("adjust", 20.0),
            ("issue", -1.0),
            ("pick", -1.0),
            ("issue", 1.0),  # the portal's issue taken back: the unit left from its shelf
        ]
        assert (
            store.ledger.qty_at(SITE, "B1", "RICE"),
            store.ledger.qty_at(SITE, "dock-out", "RICE"),
        ) == (19.0, 0.0)
        assert store.ledger.daily_outflows(SITE, "RICE", end_ms=t + 1, days=1) == [1.0]
        assert _alerts(processor, "unexplained_loss") == []

    _run(settings, body)


def _bare(settings: Settings) -> tuple[db.Connection, Recorder]:
    conn = db.connect(settings.database)
    return conn, _processor(settings, conn)


def test_expiry_dead_stock_and_imbalance_raise_once_and_clear(settings: Settings) -> None:
    conn, processor = _bare(settings)
    store = processor.store
    try:
        day = DAY_MS
        lot = store.ledger.add_lot(
            LotIn(
                lot="L1", sku="RICE", site=SITE, location="B1", qty=10, received_at=T0,
                alert_at=T0 + 10 * day, removal_at=T0 + 20 * day, expiration_at=T0 + 30 * day,
            ),
            ts_ms=T0,
        )  # fmt: skip
        store.ledger.add_lot(
            LotIn(lot="L2", sku="TEA", site=SITE, location="A2", qty=5, received_at=T0),
            ts_ms=T0,
        )
        store.planning.add_demand(
            DemandIn(site=SITE, sku="TEA", qty=12, due_at=T0 + 3 * day), ts_ms=T0
        )
        store.planning.add_demand(
            DemandIn(site=SITE, sku="RICE", qty=4, due_at=T0 + 23 * day), ts_ms=T0
        )
        store.planning.add_demand(
            DemandIn(site=SITE, sku="COFFEE", qty=2, due_at=T0 + 60 * day), ts_ms=T0
        )  # beyond the horizon

        def types() -> list[tuple[str, str, str]]:
            return sorted((a.type, a.source, a.state) for a in processor.alerts.list(limit=100))

        for now in (T0 + day, T0 + day + 1, T0 + day + 60_000):
            processor.tick(now)
        # TEA: 12 due in 3 days, 5 available -> short 7 (value 49)
        assert types() == [("supply_imbalance", f"{SITE}/TEA", "active")]
        imbalance = _alerts(processor, "supply_imbalance")[0]
        assert imbalance.value == 49.0
        assert imbalance.details["rank"] == 1

        store.planning.add_inbound(
            InboundIn(site=SITE, sku="TEA", qty=7, eta=T0 + 2 * day), ts_ms=T0
        )
        for now in (T0 + 10 * day, T0 + 10 * day + 60_000):
            processor.tick(now)
        assert types() == [
            ("expiry_alert", f"{SITE}/RICE/L1", "active"),
            ("supply_imbalance", f"{SITE}/TEA", "cleared"),
        ]
        # Past removal: expired on the shelf, and no longer available for the RICE demand.
        for now in (T0 + 20 * day, T0 + 20 * day + 60_000):
            processor.tick(now)
        assert store.ledger.available(SITE, "RICE", at_ms=T0 + 20 * day) == 0.0
        assert types() == [
            ("expired_on_shelf", f"{SITE}/RICE/L1", "active"),
            ("expiry_alert", f"{SITE}/RICE/L1", "active"),
            ("supply_imbalance", f"{SITE}/RICE", "active"),
            ("supply_imbalance", f"{SITE}/TEA", "cleared"),
        ]
        # 90 days without outflow: both SKUs are dead stock, once each.
        for now in (T0 + 91 * day, T0 + 91 * day + 60_000):
            processor.tick(now)
        dead = sorted((a.source, a.state) for a in _alerts(processor, "dead_stock"))
        assert dead == [(f"{SITE}/RICE", "active"), (f"{SITE}/TEA", "active")]
        # The expired lot is scrapped and TEA moves again: their alerts clear.
        store.ledger.update_lot(lot.id, LotUpdate(qty=0), ts_ms=T0 + 92 * day)
        store.ledger.record(
            ts_ms=T0 + 92 * day, site=SITE, location="A2", sku="TEA", qty=-1, kind="pick",
            source="api",
        )  # fmt: skip
        processor.tick(T0 + 92 * day + 60_000)
        assert [(t, s) for t, src, s in types() if src.startswith(f"{SITE}/RICE/L1")] == [
            ("expired_on_shelf", "cleared"),
            ("expiry_alert", "cleared"),
        ]
        dead = sorted((a.source, a.state) for a in _alerts(processor, "dead_stock"))
        assert dead == [(f"{SITE}/RICE", "cleared"), (f"{SITE}/TEA", "cleared")]
        assert store.ledger.on_hand(SITE, "RICE") == 0.0
    finally:
        conn.close()


def test_shelf_picks_draw_fefo_lots_of_the_shelf_location_only(
    settings: Settings, publisher: Publisher
) -> None:
    shelves = Shelves(publisher, random.Random(5))

    async def body(pipeline: Pipeline, processor: Recorder) -> None:
        store = processor.store
        day = DAY_MS

        def lot(name: str, location: str, qty: float, removal_ms: int) -> int:
            added = store.ledger.add_lot(
                LotIn(
                    lot=name, sku="COFFEE", site=SITE, location=location, qty=qty,
                    received_at=T0 - 60 * day, removal_at=removal_ms,
                ),
                ts_ms=T0 - 60 * day,
            )  # fmt: skip
            return added.id

        old = lot("C-OLD", "A1", 5, T0 - day)  # past its removal date since yesterday
        new = lot("C-NEW", "A1", 10, T0 + 30 * day)
        far = lot("C-FAR", "dock-in", 10, T0 + 5 * day)  # earlier removal, other location

        def coffee(units: int) -> dict[str, tuple[float, float]]:
            return {"c1": (800 + units * 250.0, 250.0)}

        def picks() -> list[tuple[str | None, float, str, bool]]:
            return [
                (e.lot, e.qty, e.location, e.drew_expired)
                for e in store.ledger.ledger(site=SITE, sku="COFFEE", kinds=("pick",))
            ]

        t = shelves.hold("shelf-1", coffee(15), start_ms=T0)  # the count matches the lots
        t = shelves.hold("shelf-1", coffee(12), start_ms=t)  # 3 picked
        await until(lambda: pipeline.rules.processed >= shelves.sent, what="rules caught up")
        assert picks() == [("C-NEW", -3.0, "A1", False)]
        assert [store.ledger.get_lot(i).qty for i in (old, new, far)] == [5.0, 7.0, 10.0]
        assert store.ledger.qty_at(SITE, "A1", "COFFEE") == 12.0
        assert store.ledger.available(SITE, "COFFEE", at_ms=t) == 17.0

        # 8 more picked: the 7 fresh units first, then the shelf's expired lot, flagged.
        t = shelves.hold("shelf-1", coffee(4), start_ms=t)
        await until(lambda: pipeline.rules.processed >= shelves.sent, what="rules caught up")
        assert picks()[1:] == [("C-NEW", -7.0, "A1", False), ("C-OLD", -1.0, "A1", True)]
        assert [store.ledger.get_lot(i).qty for i in (old, new, far)] == [4.0, 0.0, 10.0]
        assert store.ledger.qty_at(SITE, "A1", "COFFEE") == 4.0
        assert store.ledger.qty_at(SITE, "dock-in", "COFFEE") == 10.0
        assert store.ledger.available(SITE, "COFFEE", at_ms=t) == 10.0

    _run(settings, body)


def test_min_max_orders_below_the_minimum_not_at_it(
    settings: Settings, publisher: Publisher
) -> None:
    shelves = Shelves(publisher, random.Random(5))

    async def body(pipeline: Pipeline, processor: Recorder) -> None:
        store = processor.store

        def coffee(units: int) -> dict[str, tuple[float, float]]:
            return {"c1": (800 + units * 250.0, 250.0)}

        t = shelves.hold("shelf-1", coffee(12), start_ms=T0)
        t = shelves.hold("shelf-1", coffee(10), start_ms=t)  # exactly min 10: Odoo waits
        await until(lambda: pipeline.rules.processed >= shelves.sent, what="rules caught up")
        assert store.ledger.qty_at(SITE, "A1", "COFFEE") == 10.0
        processor.tick(t)
        assert store.planning.suggestions(site=SITE, sku="COFFEE") == []
        assert _alerts(processor, "reorder") == []

        t = shelves.hold("shelf-1", coffee(9), start_ms=t)  # 9 < 10: up to 40 -> 31 -> 36
        await until(lambda: pipeline.rules.processed >= shelves.sent, what="rules caught up")
        suggestions = store.planning.suggestions(site=SITE, sku="COFFEE")
        assert [(s.qty, s.projected, s.trigger_level) for s in suggestions] == [(36.0, 9.0, 10.0)]
        (reorder,) = _alerts(processor, "reorder")
        assert (reorder.value, reorder.threshold) == (9.0, 10.0)
        assert "projected 9 < 10" in reorder.message

    _run(settings, body)
