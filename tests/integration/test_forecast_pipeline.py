"""The ``forecast`` reorder policy as ``stocksense run`` runs it: a seasonal demand history in the
ledger, shelf readings through the real broker and ingest, the pipeline's own inventory
processor planning the site in its daily batch, a purchase suggestion at the forecast's reorder
point, the stored levels through the API, and a restart that reuses them."""

from __future__ import annotations

import asyncio
import math
import random

import httpx
import numpy as np
import pytest

from api.app import create_app
from core import db
from core.alerts import Alert
from core.inventory import DAY_MS, InventoryStores, Shelf, Sku
from core.inventory.forecasts import ForecastStore, StoredForecast
from core.settings import InventorySettings, Settings
from rules.inventory.forecast import ForecastLevels, plan_levels
from rules.inventory.replenishment import dynamic_levels
from rules.seed import Seed
from simulators.demand import RETAIL_WEEK, DemandProfile, daily_demand
from stocksense.pipeline import Pipeline
from tests.authutil import bearer
from tests.conftest import RECENT_T0, Publisher, until
from tests.integration.test_inventory_scenarios import SITE, Shelves

pytestmark = pytest.mark.integration

T0 = RECENT_T0
DAY_END = T0 // DAY_MS * DAY_MS  # the UTC midnight the day's history ends at
HISTORY_DAYS = 120
UNIT_G = 250.0
TARE_G = 800.0
ON_HAND = 300
TEA = Sku(sku="TEA", unit_grams=UNIT_G, policy="forecast", lead_time_days=5,
          lead_time_sigma_days=1.0, review_days=2, reorder_qty=60, pack_multiple=6)  # fmt: skip
# No outflow ever: the documented "none" fallback, planned in the same batch.
IDLE = Sku(sku="IDLE", policy="forecast")
SEASONAL = DemandProfile(
    sku="TEA", kind="seasonal", base_per_day=20.0, weekly=RETAIL_WEEK, season_amplitude=0.4,
    season_peak_day=60, dispersion=15.0,
)  # fmt: skip


def _history() -> list[float]:
    return [float(v) for v in daily_demand(SEASONAL, HISTORY_DAYS, np.random.default_rng(11))]


def _load(settings: Settings, history: list[float]) -> None:
    conn = db.connect(settings.database)
    try:
        stores = InventoryStores.over(conn)
        start = DAY_END - HISTORY_DAYS * DAY_MS
        stores.load_catalog(
            skus=[TEA, IDLE],
            shelves=[
                Shelf(
                    site=SITE,
                    device="shelf-1",
                    cell="c1",
                    sku="TEA",
                    tare_grams=TARE_G,
                    location="A1",
                ),
            ],
            ts_ms=start - DAY_MS,
        )
        ledger = stores.ledger
        ledger.record(ts_ms=start - DAY_MS, site=SITE, location="A1", sku="TEA",
                      qty=sum(history) + ON_HAND, kind="receipt", source="api")  # fmt: skip
        ledger.record(ts_ms=start - DAY_MS, site=SITE, location="B1", sku="IDLE", qty=12,
                      kind="receipt", source="api")  # fmt: skip
        for day, qty in enumerate(history):
            for wave, part in enumerate((qty // 2, qty - qty // 2)):  # two waves a day
                if part > 0:
                    ledger.record(
                        ts_ms=start + day * DAY_MS + (9 + 6 * wave) * 3_600_000, site=SITE,
                        location="A1", sku="TEA", qty=-part, kind="pick", source="api",
                    )  # fmt: skip
    finally:
        conn.close()


def _plan(history: list[float], sku: Sku) -> ForecastLevels:
    return plan_levels(
        history,
        lead_time_days=sku.lead_time_days,
        review_days=sku.review_days,
        service_level=sku.service_level,
        lead_time_sd_days=sku.lead_time_sigma_days,
    )


def test_forecast_sku_is_planned_nightly_suggested_at_its_rop_served_and_reused(
    settings: Settings, publisher: Publisher
) -> None:
    cfg = settings.model_copy(
        update={
            "inventory": InventorySettings(demand_history_days=HISTORY_DAYS, loss_window_s=60),
            "mqtt": settings.mqtt.model_copy(update={"sites": (SITE,)}),
        }
    )
    history = _history()
    _load(cfg, history)
    expected = _plan(history, TEA)
    _, _, _, dynamic_rop = dynamic_levels(
        np.array([history]),
        np.array([TEA.lead_time_days]),
        np.array([TEA.lead_time_sigma_days]),
        np.array([TEA.service_level]),
    )
    rop = expected.reorder_point
    assert math.isfinite(rop)
    assert rop < ON_HAND
    # Not the dynamic policy's level: the forecast covers lead time + review and the season.
    assert abs(rop - float(dynamic_rop[0])) > 5
    shelves = Shelves(publisher, random.Random(5))
    stored: list[StoredForecast] = []

    async def first_run() -> None:
        pipeline = Pipeline(cfg, seed=Seed(), anomaly_sites=(), tick_interval_s=3600)
        await pipeline.start()
        inventory = pipeline.inventory
        planning = inventory.store.planning

        async def hold(units: int, start_ms: int) -> int:
            grams = {"c1": (TARE_G + units * UNIT_G, UNIT_G)}
            end = shelves.hold("shelf-1", grams, start_ms=start_ms, n=12, spike_p=0.0)
            await until(lambda: pipeline.rules.processed >= shelves.sent, what="rules caught up")
            return end

        def reorder_alerts() -> list[Alert]:
            return pipeline.alerts.state.list(type_="reorder", site=SITE)

        try:
            t = await hold(ON_HAND, T0)  # the shelf counts what the ledger holds
            assert inventory.store.ledger.on_hand(SITE, "TEA") == ON_HAND
            # The first evaluation of the day (the count, else this sweep) starts the site's
            # batch off the rules thread; a later tick stores it.
            pipeline.rules.tick(t)
            assert await asyncio.to_thread(inventory.forecasts.wait, 60)
            pipeline.rules.tick(t + 1000)  # collected, stored, TEA evaluated again
            assert inventory.forecasts.refreshing == frozenset()
            forecasts = ForecastStore(pipeline.conn)
            tea = forecasts.get(SITE, "TEA")
            stored.append(tea)
            assert tea.reorder_point == pytest.approx(rop, rel=1e-9)
            assert (tea.model, tea.demand_class, tea.horizon_days) == (
                expected.model,
                expected.demand_class,
                7,
            )
            assert tea.history_end == DAY_END
            assert T0 <= tea.computed_at <= t
            assert planning.suggestions(site=SITE) == []  # 300 on hand, above the ROP
            idle = forecasts.get(SITE, "IDLE")
            assert (idle.model, idle.reorder_point, idle.safety_stock) == ("none", 0.0, 0.0)

            # Picked down to the whole unit at or below the ROP: a suggestion at that level.
            level = math.floor(rop)
            await hold(level, t + 60_000)
            assert inventory.store.ledger.on_hand(SITE, "TEA") == level
            (suggestion,) = planning.suggestions(site=SITE)
            assert suggestion.trigger_level == pytest.approx(rop)
            assert suggestion.projected == level
            assert suggestion.qty == math.ceil((rop + 60 - level) / 6 - 1e-9) * 6
            assert suggestion.reason.startswith(f"forecast ROP {rop:.1f} ({expected.reason};")
            assert [a.source for a in reorder_alerts()] == [f"{SITE}/TEA"]
        finally:
            await pipeline.stop()

    asyncio.run(first_run())

    async def read_api() -> None:
        transport = httpx.ASGITransport(app=create_app(cfg))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            viewer = bearer(cfg, "viewer", "wang.fang", sites=[SITE])
            other = bearer(cfg, "viewer", "zhao.lei", sites=["elsewhere"])
            got = await client.get("/inventory/skus/TEA/forecast", params={"site": SITE},
                                   headers=viewer)  # fmt: skip
            assert got.status_code == 200
            body = got.json()
            assert body == stored[0].model_dump()
            assert body["reorder_point"] == pytest.approx(rop, rel=1e-9)
            assert body["mase"] == pytest.approx(expected.mase)
            assert body["fell_back_to"] == expected.fell_back_to
            denied = await client.get("/inventory/skus/TEA/forecast", params={"site": SITE},
                                      headers=other)  # fmt: skip
            assert denied.status_code == 403
            missing = await client.get("/inventory/skus/TEA/forecast", params={"site": "wh9"},
                                       headers=bearer(cfg, "viewer", "li.wei"))  # fmt: skip
            assert missing.status_code == 404
            assert missing.json()["detail"] == "no forecast is stored for SKU TEA at site wh9"
            unknown = await client.get("/inventory/skus/NOPE/forecast", params={"site": SITE},
                                       headers=viewer)  # fmt: skip
            assert unknown.status_code == 404
            assert "NOPE" in unknown.json()["detail"]

    asyncio.run(read_api())

    async def restarted() -> None:
        pipeline = Pipeline(cfg, seed=Seed(), anomaly_sites=(), tick_interval_s=3600)
        await pipeline.start()
        try:
            # The first tick starts the processor's clock; past the settle time the sweep
            # evaluates TEA (its cell silent since the restart) and IDLE (no shelf).
            first = T0 + 600_000
            pipeline.rules.tick(first)
            pipeline.rules.tick(first + round(cfg.inventory.settle_s * 1000) + 60_000)
            forecasts = pipeline.inventory.forecasts
            assert forecasts.refreshing == frozenset()  # nothing was due: the day's are stored
            assert ForecastStore(pipeline.conn).get(SITE, "TEA") == stored[0]
            assert forecasts.levels(SITE, TEA, at_ms=first + 240_000) == stored[0]
            assert forecasts.refreshing == frozenset()
            # The pending suggestion still covers the gap: nothing new, nothing revised.
            (suggestion,) = pipeline.inventory.store.planning.suggestions(site=SITE)
            assert suggestion.trigger_level == pytest.approx(rop)
        finally:
            await pipeline.stop()

    asyncio.run(restarted())
