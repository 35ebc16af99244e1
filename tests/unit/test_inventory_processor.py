"""The inventory processor over a real database and alert store: shelves, lot dates,
dead stock, imbalance and purchase suggestions, through the code ``stocksense run`` runs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core import db
from core.alerts import Alert, AlertStores
from core.inventory import DAY_MS, DemandIn, InboundIn, InventoryStores, LotIn, Shelf, Sku
from core.readings import DeviceStatus, WeightSample
from core.settings import InventorySettings
from rules.inventory.service import InventoryProcessor

T0 = 1_795_309_200_000
SITE = "wh1"
UNIT = 250.0


@pytest.fixture
def conn(database: db.Target) -> Iterator[db.Connection]:
    connection = db.connect(database)
    yield connection
    connection.close()


def _processor(
    conn: db.Connection, *skus: Sku, shelves: tuple[Shelf, ...] = ()
) -> InventoryProcessor:
    stores = InventoryStores.over(conn)
    stores.load_catalog(skus=skus, shelves=shelves, ts_ms=T0)
    return InventoryProcessor(
        store=stores,
        alerts=AlertStores.over(conn, []).state,
        # No settle time: these tests are about the rules once stock is known (a shelf that
        # reports still settles first; tests/integration covers settling).
        config=InventorySettings(dead_after_days=90, settle_s=0),
    )


def _active(processor: InventoryProcessor, type_: str) -> list[Alert]:
    alerts = processor.alerts.list(limit=100)
    return [a for a in alerts if a.type == type_ and a.state != "cleared"]


def _weigh(processor: InventoryProcessor, cell: str, grams: float, start_ms: int) -> int:
    """Twelve steady readings of one cell (enough to settle); returns the time after them."""
    samples = [
        WeightSample(site=SITE, device="shelf-1", cell=cell, ts_ms=start_ms + i * 1000, grams=grams)
        for i in range(12)
    ]
    processor.process(samples)
    return start_ms + 12_000


# --------------------------------------------------------------------------- shelves


def test_readings_reach_their_cell_and_picks_draw_fefo_at_the_shelf(
    conn: db.Connection,
) -> None:
    coffee = Sku(sku="COFFEE", unit_grams=UNIT)
    tea = Sku(sku="TEA", unit_grams=500)
    shelves = (
        Shelf(site=SITE, device="shelf-1", cell="c1", sku="COFFEE", location="A1"),
        Shelf(site=SITE, device="shelf-1", cell="c2", sku="TEA", location="A2"),
    )
    processor = _processor(conn, coffee, tea, shelves=shelves)
    ledger = processor.store.ledger
    for name, qty, removal in (("OLD", 2, T0 - DAY_MS), ("NEW", 4, T0 + 30 * DAY_MS)):
        ledger.add_lot(
            LotIn(lot=name, sku="COFFEE", site=SITE, location="A1", qty=qty, removal_at=removal),
            ts_ms=T0 - 2 * DAY_MS,
        )
    # The first settled level is a count: 6 units match the 6 booked, so nothing is adjusted.
    t = _weigh(processor, "c1", 6 * UNIT, T0)
    t = _weigh(processor, "c1", 3 * UNIT, t)
    # A cell that is not bound changes nothing.
    processor.process([WeightSample(site=SITE, device="shelf-9", cell="c1", ts_ms=t, grams=1.0)])
    picks = ledger.ledger(site=SITE, sku="COFFEE", kinds=("pick",))
    # The fresh lot first; the expired one only once nothing else at the shelf covers the pick.
    assert [(e.lot, e.qty, e.drew_expired) for e in picks] == [("NEW", -3.0, False)]
    assert ledger.qty_at(SITE, "A1", "COFFEE") == 3.0
    assert ledger.qty_at(SITE, "A2", "TEA") == 0.0
    tracker = processor.cell(SITE, "shelf-1", "c1")
    assert tracker is not None
    assert tracker.units_on_shelf == 3
    assert processor.cell(SITE, "shelf-9", "c1") is None


def test_an_ambiguous_change_raises_an_alert_and_books_nothing(conn: db.Connection) -> None:
    shelf = Shelf(site=SITE, device="shelf-1", cell="c1", sku="COFFEE", location="A1")
    processor = _processor(conn, Sku(sku="COFFEE", unit_grams=UNIT), shelves=(shelf,))
    t = _weigh(processor, "c1", 4 * UNIT, T0)
    _weigh(processor, "c1", 2.5 * UNIT, t)
    (alert,) = _active(processor, "weight_ambiguous")
    assert alert.source == f"{SITE}/shelf-1/c1"
    assert alert.value == pytest.approx(-1.5)
    assert processor.store.ledger.qty_at(SITE, "A1", "COFFEE") == 4.0  # the shelf count only


# --------------------------------------------------------------------------- sweeps


def test_lot_dates_raise_alerts_that_clear_once_the_lot_is_empty(
    conn: db.Connection,
) -> None:
    processor = _processor(conn, Sku(sku="MILK"))
    ledger = processor.store.ledger
    lot = ledger.add_lot(
        LotIn(
            lot="L1",
            sku="MILK",
            site=SITE,
            location="cold",
            qty=12,
            alert_at=T0 + 3 * DAY_MS,
            removal_at=T0 + 5 * DAY_MS,
        ),
        ts_ms=T0,
    )
    processor.sweep(T0 + 3 * DAY_MS - 1)
    assert _active(processor, "expiry_alert") == []
    for day in (3, 4):  # seen on every sweep, raised once
        processor.sweep(T0 + day * DAY_MS)
        assert [(a.source, a.raised_at) for a in _active(processor, "expiry_alert")] == [
            (f"{SITE}/MILK/L1", T0 + 3 * DAY_MS)
        ]
    assert _active(processor, "expired_on_shelf") == []
    processor.sweep(T0 + 5 * DAY_MS + 7_200_000)  # a sweep two hours late (a backlog)
    (expired,) = _active(processor, "expired_on_shelf")
    # Raised when the date came, not when the late sweep saw it.
    assert (expired.severity, expired.value, expired.raised_at) == ("major", 12.0, T0 + 5 * DAY_MS)
    assert processor.store.ledger.available(SITE, "MILK", at_ms=T0 + 5 * DAY_MS) == 0.0
    ledger.record(
        ts_ms=T0 + 5 * DAY_MS + 1, site=SITE, location="cold", sku="MILK", qty=-12,
        kind="adjust", source="api", lot="L1",
    )  # fmt: skip
    assert ledger.get_lot(lot.id).qty == 0
    processor.sweep(T0 + 6 * DAY_MS)
    assert _active(processor, "expiry_alert") == []
    assert _active(processor, "expired_on_shelf") == []


def test_dead_stock_after_n_days_without_outflow_and_clears_when_it_moves(
    conn: db.Connection,
) -> None:
    processor = _processor(conn, Sku(sku="SLOW", unit_cost=3.0), Sku(sku="FAST"))
    ledger = processor.store.ledger
    for sku in ("SLOW", "FAST"):
        ledger.record(
            ts_ms=T0, site=SITE, location="A", sku=sku, qty=10, kind="receipt", source="api"
        )
    ledger.record(
        ts_ms=T0 + 80 * DAY_MS, site=SITE, location="A", sku="FAST", qty=-1, kind="issue",
        source="api",
    )  # fmt: skip
    processor.sweep(T0 + 90 * DAY_MS - 1)
    assert _active(processor, "dead_stock") == []
    processor.sweep(T0 + 90 * DAY_MS)
    (dead,) = _active(processor, "dead_stock")
    assert (dead.source, dead.value, dead.details["value"]) == (f"{SITE}/SLOW", 90.0, 30.0)
    ledger.record(
        ts_ms=T0 + 91 * DAY_MS, site=SITE, location="A", sku="SLOW", qty=-1, kind="issue",
        source="api",
    )  # fmt: skip
    processor.sweep(T0 + 91 * DAY_MS)
    assert _active(processor, "dead_stock") == []


def test_imbalances_rank_by_value_at_risk_and_clear_when_covered(
    conn: db.Connection,
) -> None:
    processor = _processor(conn, Sku(sku="A", unit_cost=2.0), Sku(sku="B", unit_cost=12.5))
    stores = processor.store
    stores.ledger.record(
        ts_ms=T0, site=SITE, location="A", sku="A", qty=25, kind="receipt", source="api"
    )
    for sku, qty, due_day in (("A", 30, 2), ("A", 20, 6), ("A", 99, 8), ("B", 10, 1)):
        stores.planning.add_demand(
            DemandIn(site=SITE, sku=sku, qty=qty, due_at=T0 + due_day * DAY_MS), ts_ms=T0
        )
    stores.planning.add_inbound(InboundIn(site=SITE, sku="A", qty=5, eta=T0 + 3 * DAY_MS), ts_ms=T0)
    processor.sweep(T0)
    found = {a.source: a for a in _active(processor, "supply_imbalance")}
    # B: 10 due - 0 = 10 short x 12.5 = 125; A: 50 due within 7 days - 25 - 5 = 20 x 2.0 = 40
    assert {s: (a.value, a.details["rank"]) for s, a in found.items()} == {
        f"{SITE}/B": (125.0, 1),
        f"{SITE}/A": (40.0, 2),
    }
    stores.planning.add_inbound(InboundIn(site=SITE, sku="B", qty=10), ts_ms=T0)
    processor.sweep(T0 + 1)
    assert [a.source for a in _active(processor, "supply_imbalance")] == [f"{SITE}/A"]


# --------------------------------------------------------------------------- suggestions


def test_suggestions_follow_the_purchase_lifecycle(conn: db.Connection) -> None:
    rice = Sku(sku="RICE", min_qty=10, max_qty=40, pack_multiple=6)
    processor = _processor(conn, rice)
    stores = processor.store
    stores.ledger.record(
        ts_ms=T0, site=SITE, location="A", sku="RICE", qty=8, kind="receipt", source="api"
    )
    first = processor.evaluate_reorder(SITE, "RICE", at_ms=T0)
    assert first is not None
    assert (first.qty, first.state) == (36.0, "suggested")  # 40 - 8 = 32 -> 36
    assert processor.evaluate_reorder(SITE, "RICE", at_ms=T0 + 1) is None  # covered
    (reorder,) = _active(processor, "reorder")
    assert (reorder.details["suggestion_id"], reorder.value) == (first.id, 8.0)
    # One more unit leaves: still covered by the suggestion, and the alert says so.
    stores.ledger.record(
        ts_ms=T0 + 1, site=SITE, location="A", sku="RICE", qty=-1, kind="issue", source="api"
    )
    assert processor.evaluate_reorder(SITE, "RICE", at_ms=T0 + 1) is None
    (reorder,) = _active(processor, "reorder")
    assert (reorder.value, reorder.peak_value, reorder.details["suggestion_id"]) == (
        7.0, 7.0, first.id
    )  # fmt: skip
    stores.ledger.record(
        ts_ms=T0 + 1, site=SITE, location="A", sku="RICE", qty=1, kind="adjust", source="api"
    )
    stores.planning.transition_suggestion(first.id, "ordered", ts_ms=T0 + 2)
    assert processor.evaluate_reorder(SITE, "RICE", at_ms=T0 + 3) is None  # 8 + 36 on order
    stores.planning.transition_suggestion(first.id, "received", ts_ms=T0 + 4, location="A")
    assert processor.evaluate_reorder(SITE, "RICE", at_ms=T0 + 5) is None  # 44 on hand
    assert _active(processor, "reorder") == []
    stores.ledger.record(
        ts_ms=T0 + 6, site=SITE, location="A", sku="RICE", qty=-35, kind="issue", source="api"
    )
    second = processor.evaluate_reorder(SITE, "RICE", at_ms=T0 + 7)
    assert second is not None
    assert (second.qty, second.id != first.id) == (36.0, True)  # 40 - 9 = 31 -> 36
    stores.planning.transition_suggestion(second.id, "cancelled", ts_ms=T0 + 8)
    third = processor.evaluate_reorder(SITE, "RICE", at_ms=T0 + 9)
    assert third is not None
    assert third.id not in {first.id, second.id}
    assert len(stores.planning.suggestions(site=SITE, sku="RICE")) == 3


def test_a_pending_suggestion_is_revised_when_the_gap_grows(conn: db.Connection) -> None:
    processor = _processor(conn, Sku(sku="RICE", min_qty=10, max_qty=40, pack_multiple=6))
    stores = processor.store
    first = processor.evaluate_reorder(SITE, "RICE", at_ms=T0)  # nothing on hand: 40 -> 42
    assert first is not None
    assert first.qty == 42.0
    stores.planning.add_demand(
        DemandIn(site=SITE, sku="RICE", qty=40, due_at=T0 + DAY_MS), ts_ms=T0
    )
    # -40 + 42 pending = 2 < 10: the pending suggestion grows to 40 + 40 = 80 -> 84
    revised = processor.evaluate_reorder(SITE, "RICE", at_ms=T0 + 1)
    assert revised is not None
    assert (revised.id, revised.qty) == (first.id, 84.0)
    assert [s.qty for s in stores.planning.suggestions(site=SITE)] == [84.0]


# --------------------------------------------------------------------------- loss checks


def test_a_lot_loaded_past_its_dates_is_raised_when_first_seen(
    conn: db.Connection,
) -> None:
    processor = _processor(conn, Sku(sku="MILK"))
    ledger = processor.store.ledger
    ledger.add_lot(
        LotIn(lot="L0", sku="MILK", site=SITE, location="cold", qty=3, alert_at=T0 - DAY_MS),
        ts_ms=T0,
    )
    processor.sweep(T0)  # the first sweep (a start): now is when anyone could know
    ledger.add_lot(
        LotIn(lot="L1", sku="MILK", site=SITE, location="cold", qty=3, alert_at=T0 - 1),
        ts_ms=T0,
    )
    processor.sweep(T0 + 60_000)  # its date passed before the previous sweep: now, too
    assert sorted((a.source, a.raised_at) for a in _active(processor, "expiry_alert")) == [
        (f"{SITE}/MILK/L0", T0),
        (f"{SITE}/MILK/L1", T0 + 60_000),
    ]


def test_a_reader_outage_excuses_only_the_drops_around_it(conn: db.Connection) -> None:
    # Judged by the times of the drop and of the outage, not by when the check runs: the rules
    # may check a drop late (a backlog) when the reader has gone offline since.
    coffee = Sku(sku="COFFEE", unit_grams=UNIT)
    processor = _processor(
        conn, coffee, shelves=(Shelf(site=SITE, device="shelf-1", cell="c1", sku="COFFEE"),)
    )
    window = round(processor.config.loss_window_s * 1000)

    def reader(online: bool, ts_ms: int) -> DeviceStatus:
        return DeviceStatus(site=SITE, kind="rfid", device="dock-1", ts_ms=ts_ms, online=online)

    def losses() -> list[float | None]:
        return [a.value for a in _active(processor, "unexplained_loss")]

    t = _weigh(processor, "c1", 20 * UNIT, T0)
    t = _weigh(processor, "c1", 19 * UNIT, t)  # a drop nothing explains...
    dropped = t
    # ...checked only after the reader went offline, later than the drop's window.
    processor.process([reader(False, dropped + window + 1_000)])
    processor.tick(dropped + 3 * window)
    assert losses() == [1.0]
    # A drop while the reader is offline cannot be judged.
    t = _weigh(processor, "c1", 17 * UNIT, dropped + 3 * window)
    processor.process([reader(True, t + 1_000)])
    processor.tick(t + 3 * window)
    assert losses() == [1.0]
    # Nor one just before an outage, inside its window; one well after it is judged again.
    t = _weigh(processor, "c1", 16 * UNIT, t + 3 * window)
    processor.process([reader(False, t + window - 1_000), reader(True, t + window)])
    processor.tick(t + 3 * window)
    assert losses() == [1.0]
    t = _weigh(processor, "c1", 16 * UNIT, t + 3 * window)  # still 16, long after the outage
    t = _weigh(processor, "c1", 14 * UNIT, t)
    processor.tick(t + 3 * window)
    assert losses() == [2.0]
