"""KPIs as `stocksense run` computes them: the pipeline's own KPI schedule over the ledger,
lots, demand and alerts, stored for the API (read through it) and written to InfluxDB."""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest

from api.app import create_app
from core import db
from core.alerts import AlertCondition
from core.influx import query_sync, rows
from core.inventory import DemandIn, InventoryStores, LotIn, Sku
from core.kpi import KpiStore
from core.settings import KpiSettings, Settings
from rules.seed import Seed, Site
from stocksense.pipeline import Pipeline
from tests.authutil import bearer
from tests.conftest import until

pytestmark = pytest.mark.integration

SITE = "kpi-wh"
TZ = ZoneInfo("Asia/Shanghai")
DAY = 86_400_000
HOUR = 3_600_000


def _midnight_today() -> int:
    today = datetime.now(TZ).date()
    return int(datetime(today.year, today.month, today.day, tzinfo=TZ).timestamp() * 1000)


def test_the_pipeline_computes_stores_serves_and_writes_site_kpis(settings: Settings) -> None:
    midnight = _midnight_today()  # the day roll-up covers the local day before it
    yesterday = midnight - DAY
    now = midnight + 10 * 60_000  # ten minutes past local midnight
    cfg = settings.model_copy(
        update={
            "kpi": KpiSettings(period_days=2, interval_s=300),
            "mqtt": settings.mqtt.model_copy(update={"sites": (SITE,)}),
        }
    )
    seed = Seed(sites=[Site(id=SITE, timezone="Asia/Shanghai")])
    conn = db.connect(cfg.database)
    stores = InventoryStores.over(conn)
    stores.load_catalog(
        skus=[Sku(sku="TEA", unit_cost=2.5, min_qty=1, max_qty=40)],
        lots=[
            LotIn(
                lot="T-1",
                sku="TEA",
                site=SITE,
                location="A1",
                qty=0,
                received_at=now - 45 * DAY,
                expiration_at=now + 5 * DAY,
            )
        ],
        ts_ms=now - 2 * DAY,
    )

    def book(ts: int, qty: float, kind: str) -> None:
        stores.ledger.record(
            ts_ms=ts, site=SITE, location="A1", sku="TEA", qty=qty, kind=kind,  # type: ignore[arg-type]
            source="api", lot="T-1",
        )  # fmt: skip

    book(now - 2 * DAY, 20, "receipt")  # the rolling window opens with these 20
    book(yesterday + 8 * HOUR, -20, "pick")  # yesterday 08:00 local: empty
    book(yesterday + 20 * HOUR, 8, "receipt")  # yesterday 20:00 local: 8 back
    stores.planning.add_demand(
        DemandIn(site=SITE, sku="TEA", qty=4, due_at=yesterday + 9 * HOUR), ts_ms=yesterday
    )
    conn.close()

    async def scenario() -> Pipeline:
        pipeline = Pipeline(cfg, seed=seed, anomaly_sites=(), tick_interval_s=3600)
        await pipeline.start()
        try:
            alert = pipeline.lifecycle.report(
                AlertCondition(
                    source=f"{SITE}/TEA",
                    type="dead_stock",
                    severity="minor",
                    site=SITE,
                    title="t",
                    message="m",
                    at_ms=now - HOUR,
                )
            )
            assert alert is not None
            pipeline.alerts.state.ack(alert.id, by="li.wei", at_ms=now - HOUR + 90_000)
            pipeline.rules.tick(now)
            await pipeline.writer.drain()
            await until(
                lambda: bool(rows(query_sync(cfg.influx, "SELECT * FROM kpi_site"))),
                what="KPI points in InfluxDB",
            )
        finally:
            await pipeline.stop()
        return pipeline

    asyncio.run(scenario())

    conn = db.connect(cfg.database)
    try:
        kpis = KpiStore(conn)
        day = kpis.latest(SITE, "day")
        rolling = kpis.latest(SITE, "rolling")
    finally:
        conn.close()
    assert day is not None
    assert rolling is not None
    assert (day.start_ms, day.end_ms, day.timezone) == (yesterday, midnight, "Asia/Shanghai")
    (tea_day,) = day.skus
    # Yesterday: 20 on hand for 8 h, 0 for 12 h, 8 for 4 h; 20 picked; demand while empty.
    assert tea_day.on_hand == 8
    assert tea_day.outflow == 20
    assert tea_day.avg_on_hand == pytest.approx((20 * 8 + 8 * 4) / 24)
    assert tea_day.turnover == pytest.approx(20 / ((20 * 8 + 8 * 4) / 24))
    assert (tea_day.days, tea_day.days_with_demand, tea_day.stockout_days) == (1, 1, 1)
    assert tea_day.fill_rate == 0  # the 4 units due at 09:00 were never delivered
    assert day.stockout_rate == 1

    assert (rolling.start_ms, rolling.end_ms) == (now - 2 * DAY, now)
    (tea,) = rolling.skus
    assert (tea.on_hand, tea.value, tea.outflow) == (8, 20, 20)
    assert tea.days == 3  # the window's start day, yesterday, and ten minutes of today
    assert tea.avg_daily_demand == pytest.approx(10)
    assert tea.days_of_supply == pytest.approx(0.8)
    assert tea.movement == "active"
    assert [(b.label, b.qty, b.value) for b in rolling.ageing] == [
        ("0-30", 0, 0),
        ("31-60", 8, 20),
        ("61-90", 0, 0),
        ("90+", 0, 0),
    ]
    due = {(d.date, d.horizon_days): d.lots for d in rolling.lots_due}
    assert due[("expiration", 7)] == 1
    assert due[("alert", 30)] == 0
    (response,) = rolling.alerts
    assert (response.type, response.count, response.acked, response.ack_mean_s) == (
        "dead_stock",
        1,
        1,
        90,
    )

    influx_sku = rows(
        query_sync(cfg.influx, "SELECT turnover, on_hand FROM kpi_sku WHERE period = 'day'")
    )
    assert [(r["on_hand"], r["turnover"]) for r in influx_sku] == [(8, tea_day.turnover)]
    buckets = rows(query_sync(cfg.influx, "SELECT qty FROM kpi_ageing WHERE bucket = '31-60'"))
    assert [r["qty"] for r in buckets] == [8, 8]  # the day and the rolling snapshot

    async def read_api() -> None:
        transport = httpx.ASGITransport(app=create_app(cfg))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            viewer = bearer(cfg, "viewer", "wang.fang", sites=[SITE])
            other = bearer(cfg, "viewer", "zhao.lei", sites=["elsewhere"])
            got = await client.get(f"/kpi/{SITE}", headers=viewer)
            assert got.status_code == 200
            assert got.json()["skus"][0]["days_of_supply"] == pytest.approx(0.8)
            one = await client.get(f"/kpi/{SITE}/skus/TEA", headers=viewer)
            assert one.json()["outflow"] == 20
            days = await client.get(f"/kpi/{SITE}/days", headers=viewer)
            assert [d["end_ms"] for d in days.json()] == [midnight]
            assert (await client.get(f"/kpi/{SITE}", headers=other)).status_code == 403
            assert (await client.get(f"/kpi/{SITE}")).status_code == 401
            missing = await client.get(f"/kpi/{SITE}/skus/RICE", headers=viewer)
            assert missing.status_code == 404
            assert "RICE" in missing.json()["detail"]
            listed = await client.get("/kpi", headers=other)
            assert listed.json() == []

    asyncio.run(read_api())
