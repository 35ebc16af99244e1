"""Ingest on the real broker and the real InfluxDB: exact points, dead letters, recovery."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import generate_latest

from core import topics
from core.influx import query_sync, rows
from core.settings import Settings
from ingest.service import IngestService
from stocksense.devservices import LocalStack
from tests.conftest import RECENT_T0, Publisher, until

pytestmark = pytest.mark.integration

T0 = RECENT_T0


def only_sites(settings: Settings, *sites: str) -> Settings:
    """Subscribed to ``sites`` only: retained messages other tests leave on the session broker
    under other sites would otherwise be ingested too and counted."""
    return settings.model_copy(update={"mqtt": settings.mqtt.model_copy(update={"sites": sites})})


def _expected_and_publish(publisher: Publisher) -> dict[str, list[dict[str, Any]]]:
    """Publish 1,000 readings (400 temperature, 300 weight, 300 RFID) and return what to expect."""
    expected: dict[str, list[dict[str, Any]]] = {"temperature": [], "weight": [], "rfid": []}
    for i in range(400):
        ts = T0 + i * 500
        payload = {
            "ts": ts,
            "seq": i,
            "readings": [{"sensor": "t1", "celsius": round(2 + i * 0.01, 2)}],
        }
        publisher.publish(topics.build("wh1", "temp", "probe-7"), json.dumps(payload))
        expected["temperature"].append(
            {
                "time": ts * 1_000_000,
                "site": "wh1",
                "device": "probe-7",
                "sensor": "t1",
                "celsius": round(2 + i * 0.01, 2),
                "seq": i,
            }
        )
    for i in range(100):
        ts = T0 + i * 1000
        cells = [{"cell": f"c{c}", "grams": 100.0 * c + i, "stable": c != 2} for c in range(3)]
        publisher.publish(
            topics.build("wh2", "weight", "shelf-1"),
            json.dumps({"ts": ts, "seq": i, "readings": cells}),
        )
        for c in range(3):
            expected["weight"].append(
                {
                    "time": ts * 1_000_000 + c,
                    "site": "wh2",
                    "device": "shelf-1",
                    "cell": f"c{c}",
                    "grams": 100.0 * c + i,
                    "stable": c != 2,
                    "seq": i,
                }
            )
    for i in range(100):
        ts = T0 + i * 250
        reads = [
            {"epc": f"3034257BF7194E40000{i:02d}{r:03d}", "antenna": r + 1, "rssi": -50.5 - r}
            for r in range(3)
        ]
        publisher.publish(
            topics.build("wh1", "rfid", "dock-1"), json.dumps({"ts": ts, "seq": i, "reads": reads})
        )
        for r in range(3):
            expected["rfid"].append(
                {
                    "time": ts * 1_000_000 + r,
                    "site": "wh1",
                    "device": "dock-1",
                    "antenna": str(r + 1),
                    "epc": f"3034257BF7194E40000{i:02d}{r:03d}",
                    "rssi": -50.5 - r,
                    "count": 1,
                    "seq": i,
                }
            )
    publisher.flush()
    return expected


def test_thousand_readings_land_exactly(settings: Settings, publisher: Publisher) -> None:
    async def scenario() -> None:
        service = IngestService(only_sites(settings, "wh1", "wh2"))
        await service.start()
        try:
            expected = _expected_and_publish(publisher)
            await until(
                lambda: service.metrics.value("stocksense_ingest_points_written_total") >= 1000,
                what="1,000 points written",
            )
        finally:
            await service.stop()
        assert service.metrics.value("stocksense_ingest_points_written_total") == 1000
        assert service.metrics.value("stocksense_ingest_seq_gaps_total") == 0
        queries = {
            "temperature": "SELECT celsius, seq, device, sensor, site FROM temperature",
            "weight": "SELECT grams, stable, seq, cell, device, site FROM weight",
            "rfid": 'SELECT epc, rssi, "count", seq, antenna, device, site FROM rfid',
        }
        total = 0
        for measurement, influxql in queries.items():
            got = rows(query_sync(settings.influx, influxql))
            total += len(got)
            assert sorted(
                got, key=lambda r: (r["time"], str(r.get("cell") or r.get("antenna") or ""))
            ) == sorted(
                expected[measurement],
                key=lambda r: (r["time"], str(r.get("cell") or r.get("antenna") or "")),
            ), measurement
        assert total == 1000

    asyncio.run(scenario())


class DeadLetterListener:
    """Collects dead-letter envelopes from the broker."""

    def __init__(self, port: int) -> None:
        self.messages: list[dict[str, Any]] = []
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="dlq-listener")
        self.client.on_message = lambda _c, _u, msg: self.messages.append(json.loads(msg.payload))
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topics.DEADLETTER_TOPIC, qos=1)
        self.client.loop_start()
        assert self._subscribed.wait(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


BAD_MESSAGES: list[tuple[str, bytes, str]] = [
    (
        "stocksense/v1/wh1/temp/p1/data",
        b'{"ts": 1795309200000, "seq": 1, "readings": [',
        "invalid_json",
    ),
    ("stocksense/v1/wh1/temp/p1/data", b"\x00\xff\xfe binary", "invalid_json"),
    (
        "stocksense/v1/wh1/temp/p1/data",
        b'{"ts": 1795309200000, "seq": "one", "readings": [{"sensor": "t1", "celsius": 4.0}]}',
        "schema",
    ),
    (
        "stocksense/v1/wh1/temp/p1/data",
        b'{"seq": 2, "readings": [{"sensor": "t1", "celsius": 4.0}]}',
        "missing_field",
    ),
    (
        "stocksense/v1/wh1/temp/p1/data",
        b'{"ts": 1795309200000, "seq": 3, "readings": [{"sensor": "t1", "celsius": NaN}]}',
        "not_finite",
    ),
    (
        "stocksense/v1/wh1/temp/p1/data",
        b'{"ts": 1795309200000, "seq": 4, "readings": [{"sensor": "t1", "celsius": 277.15}]}',
        "out_of_range",
    ),
    ("stocksense/v1/wh1/pressure/p1/data", b'{"ts": 1795309200000, "seq": 5}', "bad_topic"),
    # deeper and shallower than the contract: received all the same, and refused
    ("stocksense/v1/wh1/temp/p1/data/extra", b'{"ts": 1795309200000, "seq": 6}', "bad_topic"),
    ("stocksense/v1/wh1/temp/p1", b'{"ts": 1795309200000, "seq": 7}', "bad_topic"),
    ("stocksense/v1/wh1/temp", b'{"ts": 1795309200000, "seq": 8}', "bad_topic"),
    ("stocksense/v1/wh1/temp/p1/data", b'{"pad": "' + b"x" * (300 * 1024) + b'"}', "oversize"),
]


def test_malformed_messages_are_dead_lettered_and_the_pipeline_goes_on(
    settings: Settings, publisher: Publisher, stack: LocalStack
) -> None:
    listener = DeadLetterListener(stack.mqtt_port)

    async def scenario() -> None:
        service = IngestService(only_sites(settings, "wh1"))
        await service.start()
        try:
            for topic, payload, _ in BAD_MESSAGES:
                publisher.publish(topic, payload)
            good = {"ts": T0, "seq": 10, "readings": [{"sensor": "t1", "celsius": 5.5}]}
            publisher.publish("stocksense/v1/wh1/temp/p1/data", json.dumps(good))
            publisher.flush()
            await until(lambda: len(listener.messages) >= len(BAD_MESSAGES), what="dead letters")
            await until(
                lambda: service.metrics.value("stocksense_ingest_points_written_total") >= 1,
                what="the good message written",
            )
        finally:
            await service.stop()
        reasons = sorted(m["reason"] for m in listener.messages)
        assert reasons == sorted(r for _, _, r in BAD_MESSAGES)
        for reason in {r for _, _, r in BAD_MESSAGES}:
            expected_count = sum(1 for _, _, r in BAD_MESSAGES if r == reason)
            assert (
                service.metrics.value("stocksense_ingest_deadlettered_total", {"reason": reason})
                == expected_count
            )
        by_reason = {m["reason"]: m for m in listener.messages}
        assert "finite" in by_reason["not_finite"]["detail"]
        assert by_reason["missing_field"]["detail"].startswith("ts: Field required")
        assert by_reason["oversize"]["payload_bytes"] > 256 * 1024
        assert by_reason["oversize"]["payload"] is None
        assert by_reason["schema"]["payload"].startswith('{"ts"')
        written = rows(query_sync(settings.influx, "SELECT celsius FROM temperature"))
        assert [r["celsius"] for r in written] == [5.5]

    try:
        asyncio.run(scenario())
    finally:
        listener.close()


def test_implausible_device_time_is_replaced_and_flagged(
    settings: Settings, publisher: Publisher
) -> None:
    year_ahead = T0 + 365 * 86_400_000
    ten_years_back = T0 - 10 * 365 * 86_400_000

    async def scenario() -> None:
        service = IngestService(only_sites(settings, "wh1"))
        await service.start()
        try:
            for seq, ts in enumerate([T0, year_ahead, ten_years_back]):
                payload = {"ts": ts, "seq": seq, "readings": [{"sensor": "t1", "celsius": 4.0}]}
                publisher.publish(topics.build("wh1", "temp", "p9"), json.dumps(payload))
            publisher.flush()
            await until(
                lambda: service.metrics.value("stocksense_ingest_points_written_total") >= 3,
                what="3 points",
            )
        finally:
            await service.stop()
        assert service.metrics.value("stocksense_ingest_clock_skew_total") == 2
        got = rows(query_sync(settings.influx, "SELECT celsius, seq, device_ts FROM temperature"))
        by_seq = {r["seq"]: r for r in got}
        assert by_seq[0]["time"] == T0 * 1_000_000
        assert by_seq[0]["device_ts"] is None
        assert by_seq[1]["device_ts"] == year_ahead
        assert by_seq[2]["device_ts"] == ten_years_back
        for seq in (1, 2):  # re-stamped with the receive time: within the last minute
            assert abs(by_seq[seq]["time"] / 1e9 - time.time()) < 60

    asyncio.run(scenario())


def test_seq_gaps_and_buffer_depth_are_exported(settings: Settings, publisher: Publisher) -> None:
    async def scenario() -> IngestService:
        service = IngestService(only_sites(settings, "wh1"))
        await service.start()
        try:
            for seq in (0, 1, 5, 6, 4, 10):  # 2-4 and 7-9 missing when they are counted
                payload = {
                    "ts": T0 + seq,
                    "seq": seq,
                    "readings": [{"sensor": "t", "celsius": 5.0}],
                }
                publisher.publish(topics.build("wh1", "temp", "gappy"), json.dumps(payload))
            publisher.flush()
            await until(
                lambda: service.metrics.value("stocksense_ingest_points_written_total") >= 6,
                what="six points",
            )
            assert service.metrics.value("stocksense_ingest_buffer_lines") == 0
            service.writer.add_nowait(["temperature,device=x,sensor=t,site=s celsius=1 1"])
            assert service.metrics.value("stocksense_ingest_buffer_lines") == 1
        finally:
            await service.stop()
        return service

    service = asyncio.run(scenario())
    # Counted when seen: 2-4 at seq 5 and 7-9 at seq 10. The late 4 neither rewinds the
    # device's position nor retracts the count (a counter never goes down).
    assert service.metrics.value("stocksense_ingest_seq_gaps_total") == 6
    exported = generate_latest(service.metrics.registry).decode()
    assert "stocksense_ingest_seq_gaps_total 6.0" in exported
    assert 'stocksense_ingest_deadlettered_total{reason="invalid_json"}' not in exported
