"""The edge agent feeding live inventory: a simulated Modbus shelf and a serial scale, scripted
picks, the real broker, ingest and the rules pipeline — the ledger holds exactly the stock left
on them. The agent runs with its default filter (deadband, heartbeat, settled repeats), as
users run it, and the pipeline with the default inventory settings."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from core import db
from core.inventory import InventoryStores, Shelf, Sku
from core.settings import Settings
from rules.seed import Seed
from simulators.modbus_devices import ThreadedDevices
from simulators.serial_scale import SerialScale
from stocksense.devservices import free_port
from stocksense.pipeline import Pipeline
from tests.conftest import RECENT_T0, until
from tests.integration.test_edge_agent import Agent, _site, only_site

pytestmark = pytest.mark.integration


def run_pipeline(
    settings: Settings,
    site: str,
    skus: list[Sku],
    shelves: list[Shelf],
    body: Callable[[InventoryStores], Awaitable[None]],
) -> None:
    """The whole pipeline for ``site`` alone, with the catalog loaded, around ``body``."""
    settings = only_site(settings, site)
    conn = db.connect(settings.database)
    store = InventoryStores.over(conn)
    store.load_catalog(skus=skus, shelves=shelves, ts_ms=RECENT_T0)

    async def scenario() -> None:
        pipeline = Pipeline(settings, seed=Seed())
        await pipeline.start()
        try:
            await body(store)
        finally:
            await pipeline.stop()

    try:
        asyncio.run(scenario())
    finally:
        conn.close()


def moves(store: InventoryStores, site: str, sku: str) -> list[tuple[str, float]]:
    return [(e.kind, e.qty) for e in store.ledger.ledger(site=site, sku=sku)]


async def stock(store: InventoryStores, site: str, location: str, sku: str, qty: float) -> None:
    await until(
        lambda: store.ledger.qty_at(site, location, sku) == qty,
        timeout=30,
        what=f"{qty:g} {sku} at {location}",
    )


def test_shelf_picks_give_the_exact_ledger(settings: Settings, tmp_path: Path) -> None:
    site = _site()
    modbus = ThreadedDevices(free_port()).start()
    shelf = modbus.devices.shelf
    shelf.set_kg(0, 10.0, unstable_reads=0)  # 20 bolts of 500 g
    shelf.set_kg(1, 3.0, unstable_reads=0)  # 12 nuts of 250 g
    config: dict[str, Any] = {
        "site": site,
        "agent_id": "gw",
        "broker": {"port": settings.mqtt.port},
        "queue": {"path": str(tmp_path / "q.sqlite")},
        "devices": [
            {
                "name": "shelf-1",
                "protocol": "modbus_tcp",
                "kind": "weight",
                "host": "127.0.0.1",
                "port": modbus.port,
                "unit_id": 1,
                "poll_interval_s": 0.1,
                "batch_interval_s": 0.2,
                "registers": {
                    f"c{n + 1}": {
                        "address": 2 * n,
                        "type": "float32",
                        "unit": "kg",
                        "stable_register": 8,
                        "stable_bit": n,
                    }
                    for n in range(2)
                },
            }
        ],
    }
    agent = Agent(tmp_path, config)
    skus = [Sku(sku="BOLTS", unit_grams=500), Sku(sku="NUTS", unit_grams=250)]
    shelves = [
        Shelf(site=site, device="shelf-1", cell="c1", sku="BOLTS", location="A1"),
        Shelf(site=site, device="shelf-1", cell="c2", sku="NUTS", location="A2"),
    ]

    async def body(store: InventoryStores) -> None:
        agent.start()
        await stock(store, site, "A1", "BOLTS", 20)  # the first settled level counts the shelf
        await stock(store, site, "A2", "NUTS", 12)
        shelf.pick(0, 1.5)  # 3 bolts
        await stock(store, site, "A1", "BOLTS", 17)
        shelf.pick(1, 0.75)  # 3 nuts
        await stock(store, site, "A2", "NUTS", 9)
        shelf.pick(0, -0.5)  # one bolt put back
        await stock(store, site, "A1", "BOLTS", 18)
        shelf.pick(0, 3.0)  # 6 bolts
        await stock(store, site, "A1", "BOLTS", 12)
        assert moves(store, site, "BOLTS") == [
            ("adjust", 20.0),
            ("pick", -3.0),
            ("put", 1.0),
            ("pick", -6.0),
        ]
        assert moves(store, site, "NUTS") == [("adjust", 12.0), ("pick", -3.0)]

    try:
        run_pipeline(settings, site, skus, shelves, body)
    finally:
        agent.stop()
        modbus.stop()


def test_serial_scale_picks_give_the_exact_ledger(settings: Settings, tmp_path: Path) -> None:
    site = _site()
    scale = SerialScale(10.0).start()  # 40 packs of 250 g
    config: dict[str, Any] = {
        "site": site,
        "agent_id": "gw",
        "broker": {"port": settings.mqtt.port},
        "queue": {"path": str(tmp_path / "q.sqlite")},
        "devices": [
            {
                "name": "scale-1",
                "protocol": "serial_scale",
                "serial_port": scale.device,
                "command": "SI",
                "poll_interval_s": 0.1,
                "timeout_s": 0.3,
                "batch_interval_s": 0.2,
            }
        ],
    }
    agent = Agent(tmp_path, config)
    skus = [Sku(sku="COFFEE", unit_grams=250)]
    shelves = [Shelf(site=site, device="scale-1", cell="c1", sku="COFFEE", location="S1")]

    async def body(store: InventoryStores) -> None:
        agent.start()
        await stock(store, site, "S1", "COFFEE", 40)
        scale.pick(2.0)  # 8 packs
        await stock(store, site, "S1", "COFFEE", 32)
        scale.pick(-0.5)  # 2 back
        await stock(store, site, "S1", "COFFEE", 34)
        scale.pick(0.25)  # one
        await stock(store, site, "S1", "COFFEE", 33)
        assert moves(store, site, "COFFEE") == [
            ("adjust", 40.0),
            ("pick", -8.0),
            ("put", 2.0),
            ("pick", -1.0),
        ]

    try:
        run_pipeline(settings, site, skus, shelves, body)
    finally:
        agent.stop()
        scale.stop()
