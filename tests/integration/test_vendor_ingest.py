"""Devices that speak MQTT natively, ingested as they are through configured routes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from core.influx import query_sync, rows
from core.settings import IngestSettings, Settings
from ingest.service import IngestService
from tests.conftest import Publisher, until
from tests.integration.test_ingest_pipeline import only_sites

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ROUTES: list[dict[str, Any]] = [
    {"pattern": "tele/+/SENSOR", "adapter": "tasmota", "site": "wh1", "timezone": "Asia/Shanghai"},
    {"pattern": "tele/+/LWT", "adapter": "tasmota", "site": "wh1"},
    {"pattern": "impinj/+/events", "adapter": "impinj", "site": "wh2", "device_segment": 1},
    {"pattern": "zebra/+/data", "adapter": "zebra", "site": "wh2", "device_segment": 1},
    {"pattern": "+/events/rpc", "adapter": "shelly", "site": "wh1"},
]


def _fixture(name: str) -> tuple[str, bytes]:
    doc = json.loads((FIXTURES / name).read_text())
    return doc["topic"], json.dumps(doc["payload"]).encode()


def test_vendor_payloads_land_in_influxdb(settings: Settings, publisher: Publisher) -> None:
    cfg = only_sites(settings, "wh1", "wh2").model_copy(
        update={"ingest": IngestSettings(adapters=ROUTES)}
    )

    async def scenario() -> IngestService:
        service = IngestService(cfg)
        await service.start()
        try:
            for name in (
                "tasmota-ds18b20.json",
                "impinj-r700-tagInventory.json",
                "zebra-iotc-simple-full.json",
                "shelly-plus-ht-fullstatus.json",
            ):
                publisher.publish(*_fixture(name))
            publisher.publish("tele/cold-room-1/LWT", b"Offline")
            publisher.publish("unrouted/device/data", b"{}")
            publisher.flush()
            await until(
                lambda: service.metrics.value("stocksense_ingest_points_written_total") >= 5,
                what="five vendor readings written",
            )
        finally:
            await service.stop()
        return service

    service = asyncio.run(scenario())
    temps = rows(query_sync(cfg.influx, "SELECT celsius, humidity, device, site FROM temperature"))
    by_device = {r["device"]: r for r in temps}
    assert by_device["cold-room-1"]["celsius"] == 49.7
    assert by_device["cold-room-1"]["site"] == "wh1"
    assert by_device["shellyplusht-b8d61a8b17cc"]["celsius"] == 19.8
    assert by_device["shellyplusht-b8d61a8b17cc"]["humidity"] == 42.2
    tags = rows(query_sync(cfg.influx, "SELECT epc, rssi, antenna, device, site FROM rfid"))
    assert sorted((t["device"], t["epc"], t["rssi"], t["antenna"], t["site"]) for t in tags) == [
        ("fx9600-1", "3005FB63AC1F3681EC880468", -39.0, "1", "wh2"),
        ("r700-1", "E2801191A5030065F26CCBFF", -73.0, "1", "wh2"),
    ]
    status = rows(query_sync(cfg.influx, "SELECT online, device FROM device_status"))
    assert [(s["device"], s["online"]) for s in status] == [("cold-room-1", False)]
    assert (
        service.metrics.value("stocksense_ingest_deadlettered_total", {"reason": "no_adapter"}) == 0
    )
    # the unrouted topic is not subscribed at all, so it never reaches the worker
    assert service.metrics.value("stocksense_ingest_messages_received_total") == 5
