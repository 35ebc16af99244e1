"""The ``forecast`` reorder policy in the inventory processor over a real database: which
rule a SKU gets, the daily batch off the rules thread, the stored levels, restarts, parameter
changes, the fallbacks of thin histories, and the migration that brought the policy in."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from core import db
from core.alerts import AlertStores
from core.inventory import DAY_MS, InventoryStores, LotIn, Shelf, Sku
from core.inventory.forecasts import ForecastStore
from core.migrations import HEAD
from core.migrations.legacy import inventory as inventory_schema
from core.settings import InventorySettings
from rules.inventory.forecast import ForecastLevels, plan_levels
from rules.inventory.reorder import SiteDays
from rules.inventory.replenishment import dynamic_levels
from rules.inventory.service import InventoryProcessor
from simulators.demand import RETAIL_WEEK, DemandProfile, daily_demand

DAY0 = 20_400 * DAY_MS  # a UTC midnight
SITE = "wh1"
HISTORY_DAYS = 120
WEEKLY = DemandProfile(
    sku="TEA", kind="seasonal", base_per_day=20.0, weekly=RETAIL_WEEK, season_amplitude=0.3
)


@pytest.fixture
def conn(database: db.Target) -> Iterator[db.Connection]:
    connection = db.connect(database)
    yield connection
    connection.close()


def _processor(
    conn: db.Connection, *skus: Sku, history_days: int = HISTORY_DAYS
) -> InventoryProcessor:
    stores = InventoryStores.over(conn)
    if skus:
        stores.load_catalog(skus=skus, ts_ms=DAY0 - 400 * DAY_MS)
    return InventoryProcessor(
        store=stores,
        alerts=AlertStores.over(conn, []).state,
        config=InventorySettings(settle_s=0, demand_history_days=history_days),
    )


def _book(conn: db.Connection, sku: str, daily: Sequence[float], *, on_hand: float) -> None:
    """``daily`` picks on the days before DAY0 (the last one the day before), leaving
    ``on_hand`` units; one pick a day at 10:00."""
    ledger = InventoryStores.over(conn).ledger
    start = DAY0 - len(daily) * DAY_MS
    ledger.record(
        ts_ms=start - DAY_MS, site=SITE, location="A1", sku=sku, qty=float(sum(daily)) + on_hand,
        kind="receipt", source="api",
    )  # fmt: skip
    for day, qty in enumerate(daily):
        if qty > 0:
            ledger.record(
                ts_ms=start + day * DAY_MS + 36_000_000, site=SITE, location="A1", sku=sku,
                qty=-float(qty), kind="pick", source="api",
            )  # fmt: skip


def _settle(processor: InventoryProcessor, at_ms: int) -> None:
    """A tick (the sweep evaluates every stocked SKU), the batch it started, the next tick."""
    processor.tick(at_ms)
    assert processor.forecasts.wait(30), "forecast batch still running after 30 s"
    processor.tick(at_ms + 1000)


def _seasonal(days: int, seed: int = 1) -> list[float]:
    return [float(v) for v in daily_demand(WEEKLY, days, np.random.default_rng(seed))]


def _expected(conn: db.Connection, sku: Sku, days: int = HISTORY_DAYS) -> ForecastLevels:
    history = InventoryStores.over(conn).ledger.daily_outflows(
        SITE, sku.sku, end_ms=DAY0, days=days
    )
    return plan_levels(
        history,
        lead_time_days=sku.lead_time_days,
        review_days=sku.review_days,
        service_level=sku.service_level,
        lead_time_sd_days=sku.lead_time_sigma_days,
    )


# --------------------------------------------------------------------------- the rule


def test_forecast_sku_orders_at_its_forecast_reorder_point(conn: db.Connection) -> None:
    tea = Sku(sku="TEA", policy="forecast", lead_time_days=5, lead_time_sigma_days=1.0,
              review_days=2, reorder_qty=100, pack_multiple=10)  # fmt: skip
    processor = _processor(conn, tea)
    _book(conn, "TEA", _seasonal(HISTORY_DAYS), on_hand=1000)
    expected = _expected(conn, tea)
    _settle(processor, DAY0 + 3_600_000)
    stored = ForecastStore(conn).get(SITE, "TEA")
    # What plan_levels makes of the ledger's daily outflows, field for field.
    same = {k: v for k, v in stored.model_dump().items() if hasattr(expected, k)}
    assert same == {
        k: pytest.approx(v, rel=1e-9) if isinstance(v, float) else v
        for k, v in ((k, getattr(expected, k)) for k in same)
    }
    assert expected.mase is not None  # backtested: 120 days cover warm-up, horizon and origins
    assert (stored.horizon_days, stored.history_end, stored.history_days) == (7, DAY0, 120)
    assert stored.computed_at == DAY0 + 3_600_000
    rop = stored.reorder_point
    planning = processor.store.planning
    assert planning.suggestions(site=SITE) == []  # 1000 on hand, far above the ROP

    # Down to exactly the reorder point: it fires (≤), ordering up to ROP + 100 in tens.
    ledger = processor.store.ledger
    at = DAY0 + 7_200_000
    ledger.record(ts_ms=at, site=SITE, location="A1", sku="TEA", qty=-(1000 - rop),
                  kind="adjust", source="api")  # fmt: skip
    suggestion = processor.evaluate_reorder(SITE, "TEA", at_ms=at)
    assert suggestion is not None
    assert suggestion.trigger_level == pytest.approx(rop)
    assert suggestion.qty == 100
    assert suggestion.reason.startswith(f"forecast ROP {rop:.1f} ({expected.reason}; ")
    assert f"MASE {expected.mase:.2f}" in suggestion.reason


def test_just_above_the_forecast_reorder_point_nothing_is_suggested(
    conn: db.Connection,
) -> None:
    tea = Sku(sku="TEA", policy="forecast", lead_time_days=5, reorder_qty=50)
    processor = _processor(conn, tea)
    _book(conn, "TEA", _seasonal(HISTORY_DAYS), on_hand=1000)
    rop = _expected(conn, tea).reorder_point
    _settle(processor, DAY0 + 60_000)
    at = DAY0 + 120_000
    processor.store.ledger.record(ts_ms=at, site=SITE, location="A1", sku="TEA",
                                  qty=-(1000 - rop - 0.5), kind="adjust", source="api")  # fmt: skip
    assert processor.evaluate_reorder(SITE, "TEA", at_ms=at) is None
    assert processor.store.planning.suggestions(site=SITE) == []


def test_policy_decides_the_rule_whatever_else_the_sku_sets(conn: db.Connection) -> None:
    history = _seasonal(HISTORY_DAYS)
    # A forecast SKU with an ERPNext reorder level and min/max set still orders at its forecast
    # ROP; a dynamic SKU with the same history gets the dynamic one; min_max gets no forecast.
    skus = [
        Sku(sku="F", policy="forecast", reorder_level=5, min_qty=1, max_qty=9),
        Sku(sku="D", policy="dynamic", reorder_level=5),
        Sku(sku="M", policy="min_max", min_qty=10, max_qty=40),
    ]
    processor = _processor(conn, *skus)
    for sku in skus:
        _book(conn, sku.sku, history, on_hand=0)  # out of stock: every rule fires
    _settle(processor, DAY0 + 60_000)
    found = {
        s.sku: (s.trigger_level, s.qty, s.reason.split(" ")[0])
        for s in processor.store.planning.suggestions(site=SITE)
    }
    _, _, _, dynamic_rop = dynamic_levels(
        np.array([history]), np.array([7.0]), np.array([0.0]), np.array([0.95])
    )
    forecast_rop = _expected(conn, skus[0]).reorder_point
    dynamic = float(dynamic_rop[0])
    assert found == {
        # The forecast rule orders up to ROP + the gap between min and max (8).
        "F": (pytest.approx(forecast_rop), math.ceil(forecast_rop + 8 - 1e-9), "forecast"),
        "D": (pytest.approx(dynamic), math.ceil(dynamic + 1 - 1e-9), "dynamic"),  # one pack
        "M": (10.0, 40.0, "below"),
    }
    assert forecast_rop != pytest.approx(dynamic, rel=0.01)
    assert set(ForecastStore(conn).for_site(SITE)) == {"F"}


def test_demand_history_is_counted_in_the_sites_local_days(conn: db.Connection) -> None:
    # Asia/Shanghai is UTC+8: its midnight is 16:00 UTC, and the evaluation at 00:30 there is
    # still the previous UTC day, whose UTC midnight would cut the history 16 h earlier.
    local_midnight = DAY0 - 8 * 3_600_000
    skus = [Sku(sku="F", policy="forecast"), Sku(sku="D", policy="dynamic")]
    stores = InventoryStores.over(conn)
    stores.load_catalog(skus=skus, ts_ms=DAY0 - 400 * DAY_MS)
    processor = InventoryProcessor(
        store=stores,
        alerts=AlertStores.over(conn, []).state,
        config=InventorySettings(settle_s=0, demand_history_days=HISTORY_DAYS),
        timezones={SITE: "Asia/Shanghai"},
    )
    history = _seasonal(HISTORY_DAYS)
    for sku in skus:
        _book(conn, sku.sku, history, on_hand=0)
    _settle(processor, local_midnight + 1_800_000)
    assert ForecastStore(conn).for_site(SITE)["F"].history_end == local_midnight

    def dynamic_rop(end_ms: int) -> float:
        days = stores.ledger.daily_outflows(SITE, "D", end_ms=end_ms, days=HISTORY_DAYS)
        rop = dynamic_levels(np.array([days]), np.array([7.0]), np.array([0.0]), np.array([0.95]))
        return float(rop[3][0])

    (dynamic,) = [s for s in stores.planning.suggestions(site=SITE) if s.sku == "D"]
    assert dynamic.trigger_level == pytest.approx(dynamic_rop(local_midnight))
    assert dynamic.trigger_level != pytest.approx(dynamic_rop(DAY0 - DAY_MS))  # UTC days


@pytest.mark.parametrize(
    ("zone", "at", "midnight"),
    [
        ("Asia/Shanghai", "2026-12-01T15:59:59.999+00:00", "2026-11-30T16:00:00+00:00"),
        ("Asia/Shanghai", "2026-12-01T16:00:00+00:00", "2026-12-01T16:00:00+00:00"),
        (None, "2026-12-01T23:59:59.999+00:00", "2026-12-01T00:00:00+00:00"),
        # The day daylight saving time starts in Berlin is 23 h long; its midnight is still +01.
        ("Europe/Berlin", "2026-03-29T21:59:59+00:00", "2026-03-28T23:00:00+00:00"),
        ("Europe/Berlin", "2026-03-29T22:00:00+00:00", "2026-03-29T22:00:00+00:00"),
    ],
)
def test_a_sites_day_ends_at_its_local_midnight(zone: str | None, at: str, midnight: str) -> None:
    days = SiteDays({SITE: zone} if zone else {})

    def ms(text: str) -> int:
        return round(datetime.fromisoformat(text).timestamp() * 1000)

    assert days.day_end(SITE, ms(at)) == ms(midnight)


def test_no_rule_until_the_first_batch_is_collected(conn: db.Connection) -> None:
    tea = Sku(sku="TEA", policy="forecast", reorder_qty=10)
    processor = _processor(conn, tea)
    _book(conn, "TEA", _seasonal(HISTORY_DAYS), on_hand=0)  # at 0: below any reorder point
    processor.tick(DAY0 + 60_000)
    assert processor.forecasts.refreshing == {SITE}
    assert processor.store.planning.suggestions(site=SITE) == []
    assert processor.forecasts.wait(30)
    processor.tick(DAY0 + 61_000)  # collected and evaluated at once, without a sweep
    assert processor.forecasts.refreshing == frozenset()
    (suggestion,) = processor.store.planning.suggestions(site=SITE)
    assert suggestion.trigger_level == pytest.approx(_expected(conn, tea).reorder_point)
    assert suggestion.qty == math.ceil(suggestion.trigger_level + 10 - 1e-9)


# --------------------------------------------------------------------------- refresh


def test_restart_reuses_the_days_forecast_and_the_next_day_recomputes(
    conn: db.Connection, database: db.Target
) -> None:
    tea = Sku(sku="TEA", policy="forecast")
    first = _processor(conn, tea)
    _book(conn, "TEA", _seasonal(HISTORY_DAYS), on_hand=1000)
    _settle(first, DAY0 + 60_000)
    stored = ForecastStore(conn).get(SITE, "TEA")

    again = db.connect(database)
    try:
        restarted = _processor(again)
        restarted.tick(DAY0 + 3_600_000)
        assert restarted.forecasts.refreshing == frozenset()  # nothing was due
        # Read, not recomputed: a plan would have stored this tick's time.
        assert ForecastStore(again).get(SITE, "TEA") == stored

        # Past the next UTC midnight: the day's batch runs, over a history one day later.
        _settle(restarted, DAY0 + DAY_MS + 60_000)
        refreshed = ForecastStore(again).get(SITE, "TEA")
        assert refreshed.history_end == DAY0 + DAY_MS
        assert refreshed.computed_at == DAY0 + DAY_MS + 60_000
    finally:
        again.close()


def test_a_changed_lead_time_is_planned_at_once_and_stored(conn: db.Connection) -> None:
    tea = Sku(sku="TEA", policy="forecast", lead_time_days=7)
    processor = _processor(conn, tea)
    _book(conn, "TEA", _seasonal(HISTORY_DAYS), on_hand=1000)
    _settle(processor, DAY0 + 60_000)
    slower = tea.model_copy(update={"lead_time_days": 14})
    processor.store.catalog.put_sku(slower)
    planned = processor.forecasts.levels(SITE, slower, at_ms=DAY0 + 120_000)
    assert processor.forecasts.refreshing == frozenset()  # one SKU: planned in line
    stored = ForecastStore(conn).get(SITE, "TEA")
    assert planned == stored
    assert (stored.lead_time_days, stored.horizon_days) == (14, 14)
    assert stored.reorder_point == pytest.approx(_expected(conn, slower).reorder_point, rel=1e-9)


def test_batch_histories_are_the_ledgers_daily_outflows(conn: db.Connection) -> None:
    _processor(conn, Sku(sku="TEA"), Sku(sku="RICE"))
    _book(conn, "TEA", _seasonal(30), on_hand=5)
    _book(conn, "RICE", [0, 3, 0, 1], on_hand=0)
    ledger = InventoryStores.over(conn).ledger
    for end, days in ((DAY0, 30), (DAY0 - 3 * DAY_MS, 10), (DAY0 + DAY_MS, 2)):
        batch = ForecastStore(conn).daily_outflows(
            SITE, ["TEA", "RICE", "NONE"], end_ms=end, days=days
        )
        assert batch == {
            sku: ledger.daily_outflows(SITE, sku, end_ms=end, days=days)
            for sku in ("TEA", "RICE", "NONE")
        }


# --------------------------------------------------------------------------- fallbacks


@pytest.mark.parametrize(
    ("daily", "history_days", "model", "reason", "rop"),
    [
        ([], HISTORY_DAYS, "none", "no demand in the history", 0.0),
        ([4.0] * HISTORY_DAYS, HISTORY_DAYS, "mean", "constant history", 4.0 * 7),
        (_seasonal(30), 30, "mean", "30 days of history, fewer than the 49", None),
        ([0.0] * 20 + [6.0, 0.0, 2.0], 23, "mean", "fewer than", None),
    ],
    ids=["no-outflows", "constant", "too-short", "sparse-and-short"],
)
def test_thin_histories_give_the_documented_fallback(
    conn: db.Connection,
    daily: list[float],
    history_days: int,
    model: str,
    reason: str,
    rop: float | None,
) -> None:
    sku = Sku(sku="TEA", policy="forecast", reorder_qty=5)
    processor = _processor(conn, sku, history_days=history_days)
    _book(conn, "TEA", daily, on_hand=1000)
    _settle(processor, DAY0 + 60_000)
    stored = ForecastStore(conn).get(SITE, "TEA")
    assert stored.model == model
    assert reason in stored.reason
    assert (stored.mase, stored.bias, stored.fell_back_to) == (None, None, None)
    assert math.isfinite(stored.reorder_point)
    assert stored.reorder_point == pytest.approx(_expected(conn, sku, history_days).reorder_point)
    if rop is not None:
        assert stored.reorder_point == pytest.approx(rop)


# --------------------------------------------------------------------------- migration


def test_migration_keeps_skus_and_what_refers_to_them(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    legacy = sqlite3.connect(path, isolation_level=None)
    legacy.execute("CREATE TABLE schema_versions (component TEXT PRIMARY KEY, version INTEGER)")
    for script in inventory_schema.MIGRATIONS[:2]:
        legacy.executescript(f"BEGIN;\n{script}\nCOMMIT;")
    legacy.execute("INSERT INTO schema_versions VALUES ('inventory', 2)")
    legacy.close()
    # The lot is added through today's store on the old tables, as the old code would have.
    old_conn = db.SqliteConnection(db.Target.parse(path))
    old = InventoryStores.over(old_conn)
    old_conn.execute(
        "INSERT INTO inv_skus (sku, policy, lead_time_days, created_at, updated_at)"
        " VALUES ('TEA', 'dynamic', 4, 1, 2)"
    )
    old_conn.execute(
        "INSERT INTO inv_shelves (site, device, cell, sku, location, updated_at)"
        " VALUES ('wh1', 's1', 'c1', 'TEA', 'A1', 1)"
    )
    old.ledger.add_lot(LotIn(lot="L1", sku="TEA", site=SITE, location="A1", qty=3), ts_ms=1)
    old_conn.close()

    conn = db.connect(path)
    assert db.schema_revision(conn) == HEAD
    legacy_table = "SELECT 1 FROM sqlite_master WHERE name = 'schema_versions'"
    assert conn.execute(legacy_table).fetchone() is None
    stores = InventoryStores.over(conn)
    assert stores.catalog.get_sku("TEA") == Sku(
        sku="TEA", policy="dynamic", lead_time_days=4, review_days=0
    )
    assert stores.catalog.shelves() == [
        Shelf(site=SITE, device="s1", cell="c1", sku="TEA", location="A1")
    ]
    assert [lot.qty for lot in stores.ledger.lots(site=SITE)] == [3]
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    # The references still hold: a shelf of an unknown SKU is refused, a bound SKU kept.
    with pytest.raises(db.IntegrityError):
        conn.execute(
            "INSERT INTO inv_shelves (site, device, cell, sku, location, updated_at)"
            " VALUES ('wh1', 's1', 'c2', 'NOPE', 'A2', 1)"
        )
    stores.catalog.put_sku(Sku(sku="TEA", policy="forecast", review_days=7))
    assert stores.catalog.get_sku("TEA").policy == "forecast"
    conn.close()
