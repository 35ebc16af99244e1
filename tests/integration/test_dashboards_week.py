"""Every dashboard after a simulated week (examples/scenario-week.yaml) through the real broker,
ingest, rules, KPIs and InfluxDB on the scenario's accelerated clock: each panel, annotation
and variable query, rendered as Grafana would, returns rows.

The week is the one of ``test_simulated_week`` with what the inventory and alert-response
dashboards need besides: unit costs and a min/max level on the SKUs, order lines for each day,
an ops team that acknowledges alerts and ships most order lines on the simulation's clock,
and a device offline when the week ends.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from core import db
from core.alerts.state import AlertStateStore
from core.influx import query_sync, rows
from core.inventory import DemandIn, InventoryStores
from core.inventory.planning import PlanningStore
from core.readings import Sample
from core.settings import RouteSettings, Settings
from rules.engine import RulesEngine
from rules.kpi.formulas import local_midnight_ms
from simulators.scenario import load_scenario
from simulators.warehouse import ScenarioWarehouse
from stocksense.devservices import LocalStack
from stocksense.pipeline import Pipeline
from tests.conftest import until
from tests.integration.test_dashboards import dashboards, panel_queries, render
from tests.integration.test_simulated_week import SCENARIO, SPEED

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000
ESCALATE_AFTER_S = 1800.0
# Every other alert is acknowledged within the escalation time, the others after it.
ACK_AFTER_MS = (600_000, 3_000_000)
COSTS = {"COFFEE-250": 4.5, "TEA-500": 6.0, "RICE-1KG": 2.0, "SPICE-125": 3.0}
ORDERED = ("COFFEE-250", "TEA-500", "RICE-1KG")
ALL_OF = ("device", "sensor", "sku", "shelf", "reader", "severity", "type")  # variables at All


class Ops:
    """The ops team on the simulation's clock: acknowledges each alert of the site a while
    after it is raised (what ``POST /alerts/{id}/ack`` records) and ships every due order
    line but each fourth (``POST /demand/{id}/fulfilled``)."""

    def __init__(self, site: str) -> None:
        self._site = site
        self._alerts: AlertStateStore | None = None
        self._planning: PlanningStore | None = None
        self.acked = 0

    def bind(self, alerts: AlertStateStore, planning: PlanningStore) -> None:
        """The pipeline's stores (built with it, after this processor)."""
        self._alerts, self._planning = alerts, planning

    def process(self, samples: Sequence[Sample]) -> None:
        """The team reacts to alerts and orders, not to readings."""
        del samples

    def tick(self, now_ms: int) -> None:
        """Acknowledge what is due, ship what is due."""
        if self._alerts is None or self._planning is None:
            return
        for alert in self._alerts.list(site=self._site, limit=1000):
            delay = ACK_AFTER_MS[alert.id % 2]
            if alert.acked_at is None and now_ms - alert.raised_at >= delay:
                self._alerts.ack(alert.id, by="ops", at_ms=now_ms)
                self.acked += 1
        for line in self._planning.demand(site=self._site, status="confirmed"):
            if line.due_at <= now_ms and line.id % 4:
                self._planning.set_demand_status(line.id, "fulfilled", ts_ms=now_ms)


def week_scenario(site: str, tmp_path: Path) -> Path:
    """The example week for ``site``, with costs, a coffee min/max level and a device that
    goes offline (Last Will) three hours before the end and is still offline at it."""
    text = SCENARIO.read_text(encoding="utf-8").replace("sim1", site)
    for sku, cost in COSTS.items():
        levels = ", min_qty: 40, max_qty: 150" if sku == "COFFEE-250" else ""
        text = text.replace(f"{{sku: {sku}, ", f"{{sku: {sku}, unit_cost: {cost}{levels}, ", 1)
    text += "  - {kind: device_offline, at: 6d 21h, for: 6h, device: ambient-1, lwt: true}\n"
    path = tmp_path / "week.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_dashboard_panel_has_data_after_a_simulated_week(
    settings: Settings, stack: LocalStack, tmp_path: Path
) -> None:
    site = f"dw{uuid.uuid4().hex[:6]}"  # retained births of its own
    scenario = load_scenario(week_scenario(site, tmp_path)).model_copy(update={"speed": SPEED})
    route = RouteSettings(name="ops", sites=(site,), escalate_after_s=ESCALATE_AFTER_S)
    cfg = settings.model_copy(
        update={
            "mqtt": settings.mqtt.model_copy(update={"sites": (site,)}),
            "alerting": settings.alerting.model_copy(update={"routes": (route,)}),
        }
    )
    warehouse = ScenarioWarehouse(scenario, host="127.0.0.1", port=stack.mqtt_port)
    start_ms = warehouse.start_ms
    catalog = scenario.catalog(start_ms)
    conn = db.connect(cfg.database)
    try:
        stores = InventoryStores.over(conn)
        stores.load_catalog(
            skus=catalog.skus,
            shelves=catalog.shelves,
            rfid_zones=catalog.rfid_zones,
            lots=catalog.lots,
            ts_ms=start_ms,
        )
        for day in range(7):  # an order line per SKU and day, due at 13:00 local
            for sku in ORDERED:
                due = start_ms + day * DAY_MS + 13 * 3_600_000
                line = DemandIn(site=site, sku=sku, qty=2, due_at=due)
                stores.planning.add_demand(line, ts_ms=start_ms)
    finally:
        conn.close()
    ops = Ops(site)
    results: dict[str, list[dict[str, Any]]] = {}

    async def week() -> None:
        engine: list[RulesEngine] = []
        clock = warehouse.caught_up_clock(lambda: engine[0].processed if engine else 0)
        pipeline = Pipeline(
            cfg,
            seed=catalog,
            anomaly_sites={site},
            tick_interval_s=0.05,
            clock=clock,
            processors=[ops],
        )
        ops.bind(pipeline.alerts.state, InventoryStores.over(pipeline.conn).planning)
        engine.append(pipeline.rules)
        await pipeline.start()
        started = time.monotonic()
        warehouse.start()
        try:
            await until(warehouse.finished.is_set, timeout=90, what="the week published")
            await until(
                lambda: pipeline.rules.processed >= warehouse.samples,
                timeout=60,
                what="rules caught up with the week",
            )
            assert clock() * 1000 == warehouse.sim_ms() == start_ms + 7 * DAY_MS
            pipeline.rules.tick(start_ms + 7 * DAY_MS)
            print(f"simulated week with KPIs in {time.monotonic() - started:.1f} s")
            ledger = InventoryStores.over(pipeline.conn).ledger
            results["value"] = [
                {"sku": sku, "value": ledger.on_hand(site, sku) * cost}
                for sku, cost in COSTS.items()
            ]
        finally:
            warehouse.stop()
            await pipeline.stop()  # flushes the writer: every point is in InfluxDB

    asyncio.run(week())
    assert ops.acked >= 6
    _check_day_rollups(cfg, site, scenario.sites[0].timezone, start_ms)
    _check_stock_value(cfg, site, sum(r["value"] for r in results["value"]))
    empty = [key for key, series in _run_every_query(cfg, site).items() if not rows(series)]
    assert empty == [], f"panels without data after the week: {empty}"


def _check_day_rollups(cfg: Settings, site: str, timezone: str, start_ms: int) -> None:
    """A day roll-up at each local midnight of the week: the day before the start (rolled up
    at the first tick), then each simulated day."""
    tz = ZoneInfo(timezone)
    series = query_sync(
        cfg.influx,
        f'SELECT "stock_value" FROM "kpi_site" WHERE "site" = \'{site}\' AND "period" = \'day\'',
    )
    start_day = datetime.fromtimestamp(start_ms / 1000, tz).date()
    midnights = [local_midnight_ms(start_day + timedelta(days=k), tz) for k in range(8)]
    assert midnights[0] == start_ms
    assert [_ms(r["time"]) for r in rows(series)] == midnights


def _ms(stamp: Any) -> int:
    """An InfluxDB time (RFC 3339 text or epoch ns) as epoch ms."""
    if isinstance(stamp, int):
        return stamp // 1_000_000
    return round(datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp() * 1000)


def _check_stock_value(cfg: Settings, site: str, expected: float) -> None:
    """The last rolling snapshot values the ledger's stock at the SKUs' unit costs."""
    series = query_sync(
        cfg.influx,
        f'SELECT last("stock_value") FROM "kpi_site" WHERE "site" = \'{site}\''
        " AND \"period\" = 'rolling'",
    )
    (row,) = rows(series)
    assert expected > 0
    assert row["last"] == pytest.approx(expected)


def _run_every_query(cfg: Settings, site: str) -> dict[str, list[dict[str, Any]]]:
    """Every panel, annotation and variable query of every dashboard over the week."""
    now_ms = time.time_ns() // 1_000_000
    week = (now_ms - 8 * DAY_MS, now_ms + 60_000)
    values: dict[str, str | list[str]] = {
        "site": site,
        "band_low": "2",
        "band_high": "8",
        **dict.fromkeys(ALL_OF, "$__all"),
    }
    out: dict[str, list[dict[str, Any]]] = {}
    for uid, model in dashboards().items():
        panels = {p["title"]: p for p in model["panels"]}
        for key, target in panel_queries(model):
            time_from = panels[key.split("#")[0]].get("timeFrom")
            # A panel's relative time (timeFrom "7d") replaces the dashboard's range.
            span = (now_ms - int(time_from[:-1]) * DAY_MS, now_ms) if time_from else week
            query = render(target["query"], values, range_ms=span, interval="10m")
            out[f"{uid}: {key}"] = query_sync(cfg.influx, query)
        for annotation in model["annotations"]["list"]:
            if "target" in annotation:
                query = render(annotation["target"]["query"], values, range_ms=week)
                out[f"{uid}: @{annotation['name']}"] = query_sync(cfg.influx, query)
        for variable in model["templating"]["list"]:
            if variable["type"] == "query":
                query = render(variable["query"], values, range_ms=week)
                out[f"{uid}: ${variable['name']}"] = query_sync(cfg.influx, query)
    return out
