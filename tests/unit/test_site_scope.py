"""Workers partitioned by site on one database (``STOCKSENSE_MQTT__SITES``): each sweeps,
reorders and computes KPIs for its own sites only, and adopts only its own open alerts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core import db
from core.alerts import AlertStores
from core.inventory import DAY_MS, InventoryStores, LotIn, Sku
from core.kpi import KpiStore
from core.mqtt_settings import MqttSettings
from core.settings import InventorySettings, Settings
from rules.inventory.service import InventoryProcessor, build_inventory_processor
from rules.kpi.service import build_kpi_processor
from rules.lifecycle import AlertLifecycle
from rules.seed import Seed

T0 = 1_795_309_200_000


@pytest.fixture
def conn(database: db.Target) -> Iterator[db.Connection]:
    connection = db.connect(database)
    stores = InventoryStores.over(connection)
    stores.load_catalog(skus=[Sku(sku="MILK", unit_cost=2.0)], ts_ms=T0)
    for site in ("wa", "wb"):
        stores.ledger.add_lot(
            LotIn(lot=f"L-{site}", sku="MILK", site=site, location="cold", qty=5,
                  alert_at=T0 + DAY_MS),
            ts_ms=T0,
        )  # fmt: skip
    yield connection
    connection.close()


def _worker(conn: db.Connection, *sites: str) -> tuple[Settings, InventoryProcessor]:
    settings = Settings(mqtt=MqttSettings(sites=sites), inventory=InventorySettings(settle_s=0))
    state = AlertStores.over(conn, []).state
    lifecycle = AlertLifecycle(state, settings.alerting, sites=settings.mqtt.sites)
    return settings, build_inventory_processor(settings, conn, state, None, lifecycle=lifecycle)


def _expiry_alerts(conn: db.Connection) -> list[tuple[str, str]]:
    alerts = AlertStores.over(conn, []).state.list(state="active", limit=100)
    return sorted((a.site, a.source) for a in alerts if a.type == "expiry_alert")


def test_each_worker_sweeps_its_own_sites_and_leaves_the_others_alerts(
    conn: db.Connection,
) -> None:
    _, worker_b = _worker(conn, "wb")
    worker_b.sweep(T0 + 2 * DAY_MS)
    assert _expiry_alerts(conn) == [("wb", "wb/MILK/L-wb")]
    # A worker of site wa starting now adopts none of wb's open alerts...
    _, worker_a = _worker(conn, "wa")
    assert worker_a.lifecycle.tracked({"expiry_alert"}) == set()
    worker_a.sweep(T0 + 2 * DAY_MS)
    assert _expiry_alerts(conn) == [("wa", "wa/MILK/L-wa"), ("wb", "wb/MILK/L-wb")]
    assert worker_a.lifecycle.tracked({"expiry_alert"}) == {("wa/MILK/L-wa", "expiry_alert")}
    # ...and its sweeps never clear them: wb's lot is empty for wb's worker to see.
    InventoryStores.over(conn).ledger.record(
        ts_ms=T0 + 2 * DAY_MS, site="wb", location="cold", sku="MILK", qty=-5,
        kind="adjust", source="api", lot="L-wb",
    )  # fmt: skip
    worker_a.sweep(T0 + 3 * DAY_MS)
    assert _expiry_alerts(conn) == [("wa", "wa/MILK/L-wa"), ("wb", "wb/MILK/L-wb")]
    worker_b.sweep(T0 + 3 * DAY_MS)
    assert _expiry_alerts(conn) == [("wa", "wa/MILK/L-wa")]


@pytest.mark.parametrize(("sites", "computed"), [(("wa",), ["wa"]), ((), ["wa", "wb"])])
def test_a_worker_computes_the_kpis_of_its_sites(
    conn: db.Connection, sites: tuple[str, ...], computed: list[str]
) -> None:
    settings, _ = _worker(conn, *sites)
    raised = AlertStores.over(conn, []).state.raised_between
    kpi = build_kpi_processor(settings, conn, raised, None, Seed())
    try:
        kpi.tick(T0 + DAY_MS)
        assert kpi.wait(30)
        kpi.collect()
    finally:
        kpi.close()
    store = KpiStore(conn)
    assert [s for s in ("wa", "wb") if store.latest(s, "rolling") is not None] == computed
