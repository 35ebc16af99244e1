"""Inventory store over a real database: catalog, ledger, lots, suggestions, seed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from core import db
from core.errors import ConfigError, ConflictError, NotFoundError
from core.inventory import (
    DAY_MS,
    InventoryStores,
    LedgerEntry,
    LotIn,
    LotUpdate,
    Shelf,
    Sku,
)
from rules.inventory.bookings import Bookings
from rules.inventory.expiry import PickLine, PickPlan
from rules.seed import describe_errors, load_seed

T0 = 1_795_309_200_000
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def store(database: db.Target) -> Iterator[InventoryStores]:
    conn: db.Connection = db.connect(database)
    inv = InventoryStores.over(conn)
    inv.catalog.put_sku(Sku(sku="RICE", unit_grams=1000, min_qty=5, max_qty=20, unit_cost=2.0))
    yield inv
    conn.close()


def test_gtin_and_level_validation_say_what_is_wrong() -> None:
    with pytest.raises(ValidationError) as bad_digit:
        Sku(sku="X", gtin="80614141123453")
    assert describe_errors(bad_digit.value.errors()) == "gtin: check digit is 3, expected 8"
    with pytest.raises(ValidationError) as levels:
        Sku(sku="X", min_qty=10, max_qty=5)
    assert "max_qty (5.0) must not be below min_qty (10.0)" in str(levels.value)
    assert Sku(sku="X", gtin="6901234567892").gtin == "06901234567892"  # GTIN-13 padded


def test_seed_errors_name_the_item(tmp_path: Path) -> None:
    path = tmp_path / "seed.yaml"
    path.write_text(
        "skus:\n  - {sku: A}\n  - {sku: B, gtin: '80614141123458'}\n"
        "  - {sku: C, gtin: '80614141123453'}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"skus\.2\.gtin: check digit is 3, expected 8"):
        load_seed(path)
    path.write_text(
        "skus: [{sku: A}]\nshelves: [{site: wh1, device: s1, cell: c1, sku: B}]\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"shelves\.0\.sku: unknown SKU 'B'"):
        load_seed(path)


def test_demo_catalog_loads(database: db.Target) -> None:
    seed = load_seed(EXAMPLES / "demo-catalog.yaml")
    conn = db.connect(database)
    inv = InventoryStores.over(conn)
    counts = inv.load_catalog(
        skus=seed.skus, shelves=seed.shelves, rfid_zones=seed.rfid_zones, lots=seed.lots, ts_ms=T0
    )
    assert counts == {"skus": 4, "shelves": 4, "rfid_zones": 2, "lots": 1}
    assert {(s.device, s.cell, s.sku) for s in inv.catalog.shelves("wh1")} == {
        ("shelf-a1", "c1", "COFFEE-250"),
        ("shelf-a1", "c2", "TEA-500"),
        ("shelf-a2", "c1", "RICE-1KG"),
        ("shelf-a2", "c2", "SPICE-125"),
    }
    # Loading again changes nothing (lots already present are kept).
    assert inv.load_catalog(lots=seed.lots, ts_ms=T0)["lots"] == 0
    conn.close()


def test_ledger_sums_to_stock_and_picks_follow_fefo(store: InventoryStores) -> None:
    late = store.ledger.add_lot(
        LotIn(
            lot="L-late", sku="RICE", site="wh1", location="A1", qty=6, removal_at=T0 + 9 * DAY_MS
        ),
        ts_ms=T0,
    )
    early = store.ledger.add_lot(
        LotIn(lot="L-early", sku="RICE", site="wh1", location="A1", qty=4, removal_at=T0 + DAY_MS),
        ts_ms=T0,
    )
    points: list[str] = []
    entries = Bookings(store.ledger, points.extend).book(
        "wh1", "A1", "RICE", -5, "pick", ts_ms=T0 + 1000, ref="shelf-1/c1"
    )
    assert [(e.lot, e.qty) for e in entries] == [("L-early", -4.0), ("L-late", -1.0)]
    assert store.ledger.get_lot(early.id).qty == 0
    assert store.ledger.get_lot(late.id).qty == 5
    assert store.ledger.on_hand("wh1", "RICE") == 5.0
    assert sum(e.qty for e in store.ledger.ledger(site="wh1", sku="RICE")) == 5.0
    assert store.ledger.daily_outflows("wh1", "RICE", end_ms=T0 + DAY_MS, days=2) == [0.0, 5.0]
    assert store.ledger.available("wh1", "RICE", at_ms=T0 + 10 * DAY_MS) == 0.0  # past removal
    with pytest.raises(ConflictError, match="still holds 5"):
        store.ledger.delete_lot(late.id)
    store.ledger.update_lot(late.id, LotUpdate(qty=2), ts_ms=T0 + 2000)
    assert store.ledger.ledger(kinds=("adjust",))[-1].qty == -3.0
    assert store.ledger.on_hand("wh1", "RICE") == 2.0


def test_suggestion_lifecycle_and_on_order(store: InventoryStores) -> None:
    s = store.planning.add_suggestion(
        site="wh1", sku="RICE", qty=12, reason="min", projected=4, trigger_level=5, ts_ms=T0
    )
    ordered = store.planning.transition_suggestion(s.id, "ordered", ts_ms=T0 + 1)
    assert ordered.state == "ordered"
    assert store.planning.on_order("wh1", "RICE") == 12.0
    assert store.planning.inbound(status="open")[0].eta == T0 + 1 + 7 * DAY_MS
    with pytest.raises(ConflictError, match="cannot go from ordered to ordered"):
        store.planning.transition_suggestion(s.id, "ordered", ts_ms=T0 + 2)
    store.planning.transition_suggestion(s.id, "received", ts_ms=T0 + 3, location="dock")
    assert store.planning.on_order("wh1", "RICE") == 0.0
    assert store.ledger.qty_at("wh1", "dock", "RICE") == 12.0
    with pytest.raises(NotFoundError, match="suggestion 99 does not exist"):
        store.planning.transition_suggestion(99, "cancelled", ts_ms=T0)


def test_shelf_needs_a_known_sku(store: InventoryStores) -> None:
    with pytest.raises(NotFoundError, match="SKU NOPE does not exist"):
        store.catalog.put_shelf(Shelf(site="wh1", device="s1", cell="c1", sku="NOPE"))
    shelf = store.catalog.put_shelf(Shelf(site="wh1", device="s1", cell="c1", sku="RICE"))
    assert shelf.location == "s1/c1"
    with pytest.raises(ConflictError, match="still bound"):
        store.catalog.delete_sku("RICE")


def test_a_gtin_belongs_to_one_sku_and_a_lot_is_added_once(store: InventoryStores) -> None:
    store.catalog.put_sku(Sku(sku="TEA", gtin="06901234567892"))
    with pytest.raises(ConflictError) as taken:
        store.catalog.put_sku(Sku(sku="COFFEE", gtin="06901234567892"))
    assert str(taken.value) == "SKU COFFEE: GTIN already belongs to another SKU"
    assert [s.sku for s in store.catalog.skus()] == ["RICE", "TEA"]
    store.ledger.add_lot(LotIn(lot="L1", sku="RICE", site="wh1", location="A", qty=2), ts_ms=T0)
    with pytest.raises(ConflictError, match="lot L1 of RICE already exists at wh1"):
        store.ledger.add_lot(LotIn(lot="L1", sku="RICE", site="wh1", location="A", qty=3), ts_ms=T0)
    # Nothing of the refused lot was booked.
    assert [lot.qty for lot in store.ledger.lots(site="wh1")] == [2]
    assert store.ledger.on_hand("wh1", "RICE") == 2


def test_lots_in_fefo_order_put_an_undated_receipt_first_among_equal_dates(
    store: InventoryStores,
) -> None:
    removal = T0 + 10 * DAY_MS
    for lot, received in (("L1", T0 - DAY_MS), ("L2", None), ("L3", None)):
        store.ledger.add_lot(
            LotIn(lot=lot, sku="RICE", site="wh1", location="A", qty=1, removal_at=removal,
                  received_at=received),
            ts_ms=T0,
        )  # fmt: skip
    store.ledger.add_lot(LotIn(lot="L0", sku="RICE", site="wh1", location="A", qty=1), ts_ms=T0)
    assert [lot.lot for lot in store.ledger.lots(site="wh1")] == ["L2", "L3", "L1", "L0"]


# --------------------------------------------------------------------------- outflows


def _lot(store: InventoryStores, lot: str, location: str, qty: float, removal: int | None) -> int:
    added = store.ledger.add_lot(
        LotIn(lot=lot, sku="RICE", site="wh1", location=location, qty=qty, removal_at=removal),
        ts_ms=T0 - 2 * DAY_MS,
    )
    return added.id


def _pick(store: InventoryStores, location: str, qty: float, at_ms: int = T0) -> list[LedgerEntry]:
    # As the processor books a shelf pick: planned FEFO at the location, booked by the ledger.
    points: list[str] = []
    bookings = Bookings(store.ledger, points.extend)
    return bookings.book("wh1", location, "RICE", -qty, "pick", ts_ms=at_ms, ref="shelf-1/c1")


def test_outflow_books_the_plan_it_is_given(store: InventoryStores) -> None:
    _lot(store, "EARLY", "A", 4, T0 + DAY_MS)
    _lot(store, "LATE", "A", 6, T0 + 9 * DAY_MS)
    plan = PickPlan(
        location="A",
        lines=(PickLine(lot="LATE", qty=2), PickLine(lot="EARLY", qty=1, drew_expired=True)),
        unlotted=3,
        shortfall=3,
    )
    entries = store.ledger.record_outflow(
        plan, ts_ms=T0, site="wh1", sku="RICE", kind="issue", source="api", ref="order 7"
    )
    # The ledger does not plan: the rows follow the plan as given, not FEFO.
    assert [(e.lot, e.qty, e.kind, e.ref) for e in entries] == [
        ("LATE", -2.0, "issue", "order 7"),
        ("EARLY", -1.0, "issue", "order 7; drew_expired"),
        (None, -3.0, "issue", "order 7"),
    ]
    assert store.ledger.qty_at("wh1", "A", "RICE") == 4.0


def test_outflow_skips_a_lot_past_removal_while_fresh_stock_covers_it(
    store: InventoryStores,
) -> None:
    old = _lot(store, "OLD", "A", 5, T0 - DAY_MS)  # removal date was yesterday
    new = _lot(store, "NEW", "A", 10, T0 + 30 * DAY_MS)
    assert store.ledger.available("wh1", "RICE", at_ms=T0) == 10.0
    entries = _pick(store, "A", 3)
    assert [(e.lot, e.qty, e.drew_expired) for e in entries] == [("NEW", -3.0, False)]
    assert store.ledger.get_lot(new).qty == 7.0
    assert store.ledger.get_lot(old).qty == 5.0
    assert store.ledger.available("wh1", "RICE", at_ms=T0) == 7.0
    assert store.ledger.qty_at("wh1", "A", "RICE") == 12.0


def test_outflow_at_exactly_the_removal_date_treats_the_lot_as_past_it(
    store: InventoryStores,
) -> None:
    edge = _lot(store, "EDGE", "A", 5, T0)
    later = _lot(store, "LATER", "A", 5, T0 + DAY_MS)
    # One millisecond before removal the earlier lot goes first (FEFO) ...
    assert [e.lot for e in _pick(store, "A", 1, at_ms=T0 - 1)] == ["EDGE"]
    # ... from its removal date on it is no longer drawn while another lot covers the pick.
    assert [e.lot for e in _pick(store, "A", 1, at_ms=T0)] == ["LATER"]
    assert (store.ledger.get_lot(edge).qty, store.ledger.get_lot(later).qty) == (4.0, 4.0)
    assert store.ledger.available("wh1", "RICE", at_ms=T0) == 4.0


def test_outflow_draws_expired_stock_last_and_says_so(store: InventoryStores) -> None:
    old = _lot(store, "OLD", "A", 5, T0 - DAY_MS)
    new = _lot(store, "NEW", "A", 2, T0 + 30 * DAY_MS)
    store.ledger.record(
        ts_ms=T0 - DAY_MS, site="wh1", location="A", sku="RICE", qty=1, kind="adjust",
        source="sensor", ref="shelf count",
    )  # fmt: skip
    entries = _pick(store, "A", 6)
    # Fresh lot first, then the unit held in no lot, and only then the expired lot.
    assert [(e.lot, e.qty, e.ref, e.drew_expired) for e in entries] == [
        ("NEW", -2.0, "shelf-1/c1", False),
        ("OLD", -3.0, "shelf-1/c1; drew_expired", True),
        (None, -1.0, "shelf-1/c1", False),
    ]
    assert (store.ledger.get_lot(new).qty, store.ledger.get_lot(old).qty) == (0.0, 2.0)
    assert store.ledger.qty_at("wh1", "A", "RICE") == 2.0
    assert store.ledger.available("wh1", "RICE", at_ms=T0) == 0.0
    stored = store.ledger.ledger(site="wh1", sku="RICE", kinds=("pick",))
    assert [e.drew_expired for e in stored] == [False, True, False]


def test_outflow_never_draws_another_locations_lot(store: InventoryStores) -> None:
    at_b = _lot(store, "LB", "B", 10, T0 + 30 * DAY_MS)
    entries = _pick(store, "A", 2)
    assert [(e.lot, e.qty, e.location) for e in entries] == [(None, -2.0, "A")]
    assert store.ledger.get_lot(at_b).qty == 10.0
    assert store.ledger.qty_at("wh1", "B", "RICE") == 10.0
    assert store.ledger.qty_at("wh1", "A", "RICE") == -2.0  # the shortfall stays visible at A
    assert store.ledger.on_hand("wh1", "RICE") == 8.0
    assert sum(e.qty for e in store.ledger.ledger(site="wh1", sku="RICE")) == 8.0


def test_outflow_beyond_the_locations_lots_books_the_rest_without_a_lot(
    store: InventoryStores,
) -> None:
    at_a = _lot(store, "LA", "A", 3, T0 + 30 * DAY_MS)
    at_b = _lot(store, "LB", "B", 10, T0 + 5 * DAY_MS)  # earlier expiry, but elsewhere
    entries = _pick(store, "A", 5)
    assert [(e.lot, e.qty) for e in entries] == [("LA", -3.0), (None, -2.0)]
    assert (store.ledger.get_lot(at_a).qty, store.ledger.get_lot(at_b).qty) == (0.0, 10.0)
    assert store.ledger.qty_at("wh1", "A", "RICE") == -2.0
    assert store.ledger.qty_at("wh1", "B", "RICE") == 10.0
    # Every lot stays within its location's stock.
    for lot in store.ledger.lots(site="wh1", sku="RICE"):
        assert lot.qty <= max(store.ledger.qty_at("wh1", lot.location, "RICE"), 0.0)


def test_available_caps_expired_lots_at_their_locations_stock(store: InventoryStores) -> None:
    _lot(store, "OLD", "A", 5, T0 - DAY_MS)
    _lot(store, "NEW", "B", 10, T0 + 30 * DAY_MS)
    # A count at A finds only 2 of the 5 expired units; booked without a lot (an API adjust).
    store.ledger.record(
        ts_ms=T0, site="wh1", location="A", sku="RICE", qty=-3, kind="adjust", source="api"
    )
    assert store.ledger.unavailable("wh1", "RICE", at_ms=T0) == 2.0
    assert store.ledger.available("wh1", "RICE", at_ms=T0) == 10.0  # B's good stock is untouched
