"""The KPI schedule: snapshots computed in a worker over a read-only connection, stored once
done, one batch at a time; the day roll-up at local midnight."""

from __future__ import annotations

import threading

from core import db
from core.inventory import InventoryStores, Sku
from core.kpi import KpiStore
from core.settings import KpiSettings
from rules.kpi.service import KpiCalculator, KpiProcessor

T0 = 1_795_309_200_000  # 2026-11-21 08:20 UTC
HOUR_MS = 3_600_000
SETTINGS = KpiSettings()
INTERVAL_MS = round(SETTINGS.interval_s * 1000)


def _calculator(conn: db.Connection) -> KpiCalculator:
    return KpiCalculator(
        InventoryStores.over(conn), lambda *_: [], [], SETTINGS, dead_after_days=90
    )


def test_snapshots_are_computed_off_the_loop_and_stored_once_done(database: db.Target) -> None:
    conn = db.connect(database)
    stores = InventoryStores.over(conn)
    stores.load_catalog(skus=[Sku(sku="TEA", unit_cost=2.0)], ts_ms=T0)
    stores.ledger.record(
        ts_ms=T0, site="wh1", location="A", sku="TEA", qty=5, kind="receipt", source="api"
    )
    release = threading.Event()
    workers: list[str] = []

    def calculator_on(worker_conn: db.Connection) -> KpiCalculator:
        workers.append(threading.current_thread().name)
        release.wait(10)  # held until the test has looked at the store
        return _calculator(worker_conn)

    kpi = KpiProcessor(_calculator(conn), KpiStore(conn), None, SETTINGS,
                       calculator_on=calculator_on, database=conn.target)  # fmt: skip
    store = KpiStore(conn)
    try:
        now = T0 + HOUR_MS
        kpi.tick(now)
        assert store.latest("wh1", "rolling") is None  # computing, not stored yet
        kpi.tick(now + INTERVAL_MS)  # due again, but one batch at a time
        release.set()
        assert kpi.wait(10)
        assert kpi.collect() == 2  # yesterday's roll-up and the rolling snapshot
        rolling, day = store.latest("wh1", "rolling"), store.latest("wh1", "day")
        assert rolling is not None
        assert day is not None
        assert (rolling.end_ms, [(s.sku, s.on_hand) for s in rolling.skus]) == (
            now, [("TEA", 5.0)]
        )  # fmt: skip
        assert day.end_ms == T0 - T0 % (24 * HOUR_MS)  # the last UTC midnight
        assert workers == ["kpi_0"]
        assert kpi.collect() == 0
        # The next tick starts the batch the busy one held back.
        kpi.tick(now + INTERVAL_MS)
        assert kpi.wait(10)
        assert kpi.collect() == 1
        latest = store.latest("wh1", "rolling")
        assert latest is not None
        assert latest.end_ms == now + INTERVAL_MS
    finally:
        kpi.close()
        conn.close()


def test_without_a_database_for_workers_snapshots_are_computed_at_the_tick(
    database: db.Target,
) -> None:
    conn = db.connect(database)
    try:
        kpi = KpiProcessor(_calculator(conn), KpiStore(conn), None, SETTINGS,
                           calculator_on=_calculator, database=None)  # fmt: skip
        InventoryStores.over(conn).load_catalog(skus=[Sku(sku="TEA")], ts_ms=T0)
        InventoryStores.over(conn).ledger.record(
            ts_ms=T0, site="wh1", location="A", sku="TEA", qty=1, kind="receipt", source="api"
        )
        kpi.tick(T0 + HOUR_MS)
        latest = KpiStore(conn).latest("wh1", "rolling")
        assert latest is not None
        assert latest.end_ms == T0 + HOUR_MS
    finally:
        conn.close()
