"""The virtual warehouse with one shelf, the cold room's probes and one cell of the other shelf
behind the real edge agent (``stocksense edge --config``, reading the simulated Modbus devices
and serial scale), the rest of the scenario over MQTT, through the real broker, pipeline and
InfluxDB at speed 1: demand, a theft and a receipt on the agent's shelf, a receipt on the
scale and one on the other shelf's cell left on MQTT, and a cold-room excursion on the
agent's probes. The ledger holds exactly what the simulation left on every cell."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from core import db
from core.influx import query_sync, rows
from core.inventory import InventoryStores
from core.settings import Settings
from simulators.edge_warehouse import EdgeBinding, EdgeWarehouse, ScaleCell
from simulators.modbus_devices import ThreadedDevices
from simulators.scenario import Scenario
from simulators.serial_scale import SerialScale
from stocksense.devservices import LocalStack, free_port
from stocksense.pipeline import Pipeline
from tests.conftest import until
from tests.integration.test_edge_agent import Agent, only_site

pytestmark = pytest.mark.integration


def _scenario(site: str) -> Scenario:
    every_hour = dict.fromkeys(range(24), 1.0)  # picks whatever the wall clock's hour
    return Scenario.model_validate(
        {
            "seed": 11,
            "speed": 1,
            "interval_s": 2,
            "duration": 40,
            "pick_wave": 10,
            "sites": [
                {
                    "id": site,
                    "zones": [
                        {
                            "id": "cold-room",
                            "temp_band": {"low": 2.0, "high": 8.0},
                            "allowance_s": 6,
                            "sensors": [{"device": "cold-1"}, {"device": "cold-2"}],
                            "celsius": 4.5,
                            "noise_c": 0,
                        },
                        {
                            "id": "ambient",
                            "temp_band": {"low": 5.0, "high": 30.0},
                            "allowance_s": 3600,
                            "sensors": [{"device": "ambient-1"}],
                            "celsius": 19.0,
                        },
                    ],
                    "shelves": [
                        {
                            "device": "shelf-e1",
                            "cells": [
                                {"cell": "c1", "sku": "COFFEE-250", "units": 60, "location": "E1"},
                                {"cell": "c2", "sku": "TEA-500", "units": 20, "location": "E2"},
                                {"cell": "c3", "sku": "SPICE-125", "units": 10, "location": "E3",
                                 "tare_grams": 300},
                            ],
                        },
                        {
                            "device": "shelf-m1",
                            "cells": [
                                {"cell": "c1", "sku": "RICE-1KG", "units": 30, "location": "M1"},
                                {"cell": "c2", "sku": "SUGAR-1KG", "units": 12, "location": "M2"},
                            ],
                        },
                    ],
                    "portals": [{"device": "dock-1"}],
                }
            ],
            "skus": [
                {"sku": "COFFEE-250", "gtin": "80614141123458", "unit_grams": 250},
                {"sku": "TEA-500", "unit_grams": 500},
                {"sku": "SPICE-125", "unit_grams": 125},
                {"sku": "RICE-1KG", "unit_grams": 1000},
                {"sku": "SUGAR-1KG", "unit_grams": 1000},
            ],
            "demand": {"COFFEE-250": {"base_per_day": 34_560, "pick_hours": every_hour}},
            "receipts": [
                {"at": 4, "sku": "RICE-1KG", "units": 5},
                {"at": 20, "sku": "SPICE-125", "units": 6},
                {"at": 16, "sku": "SUGAR-1KG", "units": 4},
            ],
            "faults": [
                {"kind": "theft", "at": 12, "device": "shelf-e1", "cell": "c2", "units": 3},
                {"kind": "cold_room_excursion", "at": 10, "for": 14, "zone": "cold-room"},
            ],
        }
    )  # fmt: skip


def _celsius(settings: Settings, site: str, device: str) -> set[float]:
    query = f"SELECT celsius FROM temperature WHERE site='{site}' AND device='{device}'"
    return {r["celsius"] for r in rows(query_sync(settings.influx, query))}


def _weights(settings: Settings, site: str, device: str, cell: str) -> list[dict[str, Any]]:
    where = f"site='{site}' AND device='{device}' AND cell='{cell}'"
    return rows(query_sync(settings.influx, f"SELECT grams, stable FROM weight WHERE {where}"))


def test_a_scenario_through_the_edge_agent_keeps_the_ledger_on_the_shelves(
    settings: Settings, stack: LocalStack, tmp_path: Path
) -> None:
    site = f"ew{uuid.uuid4().hex[:8]}"
    scenario = _scenario(site)
    rice = ScaleCell(shelf="shelf-m1", cell="c1")
    edge = EdgeBinding(shelf="shelf-e1", probes=["cold-1", "cold-2"], scale=rice)
    cfg = only_site(settings, site)
    catalog = scenario.catalog(time.time_ns() // 1_000_000)
    conn = db.connect(cfg.database)
    try:
        InventoryStores.over(conn).load_catalog(
            skus=catalog.skus, shelves=catalog.shelves, rfid_zones=catalog.rfid_zones,
            ts_ms=time.time_ns() // 1_000_000,
        )  # fmt: skip
    finally:
        conn.close()
    modbus = ThreadedDevices(free_port()).start()
    scale = SerialScale().start()

    async def run() -> None:
        pipeline = Pipeline(cfg, seed=catalog, tick_interval_s=0.2)
        await pipeline.start()
        # Built once everything else is up: at speed 1 its clock starts now.
        warehouse = EdgeWarehouse(
            scenario, edge, modbus.devices, host="127.0.0.1", port=stack.mqtt_port, scale=scale
        )
        config: dict[str, Any] = {
            "site": site,
            "agent_id": "gw",
            "broker": {"port": stack.mqtt_port},
            "queue": {"path": str(tmp_path / "q.sqlite")},
            "devices": warehouse.agent_devices("127.0.0.1", modbus.port),
        }
        agent = Agent(tmp_path, config)
        sim = warehouse.simulation
        ledger = InventoryStores.over(pipeline.conn).ledger
        cells = list(scenario.sites[0].cells())

        def books() -> list[tuple[str, float]]:
            return [(c.sku, ledger.qty_at(site, c.location or "", c.sku)) for _, c in cells]

        def truth() -> list[tuple[str, float]]:
            return [(c.sku, float(sim.units(site, s.device, c.cell))) for s, c in cells]

        started = time.monotonic()
        try:
            agent.start()
            warehouse.start()
            await until(warehouse.finished.is_set, timeout=70, what="the scenario published")
            await until(lambda: books() == truth(), timeout=30, what="the ledger on the shelves")
            booked = books()
            wall_s = time.monotonic() - started
            alerts = pipeline.alerts.state.list(site=site, limit=100)
        finally:
            warehouse.stop()
            agent.stop()
            await pipeline.stop()
        assert booked == truth()
        # The simulation moved stock on both shelves: demand, a theft and a receipt on the
        # agent's, a receipt on the scale and one on the other cell.
        coffee, tea, spice = (
            sim.truth[(site, sku)] for sku in ("COFFEE-250", "TEA-500", "SPICE-125")
        )
        assert coffee.picked == coffee.demanded - coffee.short > 0
        assert sim.units(site, "shelf-e1", "c1") == 60 - coffee.picked
        assert (sim.units(site, "shelf-e1", "c2"), tea.stolen) == (17, 3)
        assert (sim.units(site, "shelf-e1", "c3"), spice.put) == (16, 6)
        assert sim.units(site, "shelf-m1", "c1") == 35
        assert sim.units(site, "shelf-m1", "c2") == 16
        # The agent read the rice off the scale (the warehouse's noisy grams, without a
        # stable flag, never went out); it may have started after the receipt.
        rice = _weights(cfg, site, "shelf-m1", "c1")
        assert all(r["stable"] is not None for r in rice)
        stable = {r["grams"] for r in rice if r["stable"]}
        assert 35_000.0 in stable
        assert stable <= {30_000.0, 35_000.0}
        # The agent read the excursion off the transmitter, and the rules raised it.
        for probe in ("cold-1", "cold-2"):
            assert _celsius(cfg, site, probe) == {4.5, 11.5}
        assert ("cold_chain_excursion", f"{site}/cold-room") in {(a.type, a.source) for a in alerts}
        print(
            f"edge warehouse: {coffee.picked} units picked, ledger on the shelves {wall_s:.1f} s"
            " after the start"
        )

    try:
        asyncio.run(run())
    finally:
        scale.stop()
        modbus.stop()
