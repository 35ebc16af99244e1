"""Poison messages and device floods on the real broker: every message gets one outcome.

A message whose handler raised was never acknowledged, so the broker redelivered it forever and
RECEIVE_MAXIMUM of them filled the in-flight window: nothing good landed after them.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

import pytest

from core import topics
from core.influx import query_sync
from core.settings import IngestSettings, Settings
from ingest.service import RECEIVE_MAXIMUM, IngestService
from stocksense.devservices import LocalStack, find_binary
from tests.conftest import RECENT_T0, Publisher, until
from tests.integration.test_ingest_pipeline import DeadLetterListener, only_sites

pytestmark = pytest.mark.integration

ROUTES = [
    {"pattern": "tele/+/SENSOR", "adapter": "tasmota", "site": "wh1"},
    {"pattern": "+/events/rpc", "adapter": "shelly", "site": "wh1"},
]
# (topic, payload, dead-letter reason): each used to raise out of the decoder.
POISON = [
    ("tele/poison-1/SENSOR", b'{"DS18B20":{"Temperature":' + b"1" * 4301 + b"}}", "invalid_json"),
    (
        "shelly-poison/events/rpc",
        b'{"method":"NotifyStatus","params":{"ts":1e308,"temperature:0":{"tC":4.0}}}',
        "out_of_range",
    ),
]
POISON_EACH = RECEIVE_MAXIMUM  # one kind alone used to fill the in-flight window
GOOD_EACH = 500


def _flood(port: int, topic: str, payload: bytes, count: int) -> None:
    """QoS 1 at full speed: one mosquitto_pub, one message per line."""
    subprocess.run(
        [find_binary("mosquitto_pub"), "-p", str(port), "-t", topic, "-q", "1", "-l"],
        input=(payload + b"\n") * count,
        check=True,
        timeout=120,
    )


def _good(publisher: Publisher) -> None:
    """500 Tasmota and 500 Shelly readings, each at its own second."""
    t0_s = RECENT_T0 // 1000
    for i in range(GOOD_EACH):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0_s + i))
        body = {"Time": stamp, "DS18B20": {"Temperature": 4.0 + i % 10 / 10}}
        publisher.publish("tele/good-1/SENSOR", json.dumps(body))
        note = {
            "src": "shelly-good",
            "method": "NotifyStatus",
            "params": {"ts": t0_s + i + 0.5, "temperature:0": {"tC": 5.0}},
        }
        publisher.publish("shelly-good/events/rpc", json.dumps(note))
    publisher.flush()


def _count(settings: Settings) -> int:
    series = query_sync(settings.influx, "SELECT count(celsius) FROM temperature")
    return int(series[0]["values"][0][1]) if series else 0


def test_poison_floods_are_dead_lettered_and_good_messages_still_land(
    settings: Settings, publisher: Publisher, stack: LocalStack
) -> None:
    cfg = only_sites(settings, "wh1").model_copy(update={"ingest": IngestSettings(adapters=ROUTES)})

    async def scenario() -> IngestService:
        service = IngestService(cfg)
        await service.start()
        try:
            await asyncio.gather(
                *(
                    asyncio.to_thread(_flood, stack.mqtt_port, topic, payload, POISON_EACH)
                    for topic, payload, _ in POISON
                )
            )
            await asyncio.to_thread(_good, publisher)
            await until(
                lambda: (
                    service.metrics.value("stocksense_ingest_points_written_total") >= 2 * GOOD_EACH
                ),
                timeout=60,
                what="the good readings written behind the poison",
            )
            await until(
                lambda: all(
                    service.metrics.value("stocksense_ingest_deadlettered_total", {"reason": r})
                    >= POISON_EACH
                    for _, _, r in POISON
                ),
                timeout=30,
                what="every poison message dead-lettered",
            )
        finally:
            await service.stop()
        return service

    service = asyncio.run(scenario())
    for _, _, reason in POISON:
        assert (
            service.metrics.value("stocksense_ingest_deadlettered_total", {"reason": reason})
            == POISON_EACH
        )
    assert (
        service.metrics.value("stocksense_ingest_deadlettered_total", {"reason": "internal_error"})
        == 0
    )
    assert service.metrics.value("stocksense_ingest_messages_received_total") == (
        2 * POISON_EACH + 2 * GOOD_EACH
    )
    assert service.metrics.value("stocksense_ingest_points_written_total") == 2 * GOOD_EACH
    assert _count(cfg) == 2 * GOOD_EACH


def test_device_limit_and_seq_tracking_bounds_through_the_broker(
    settings: Settings, publisher: Publisher, stack: LocalStack
) -> None:
    limits = IngestSettings(max_devices_per_site=3, max_tracked_devices=2)
    cfg = only_sites(settings, "wh1").model_copy(update={"ingest": limits})
    listener = DeadLetterListener(stack.mqtt_port)

    def temp(device: str, seq: int) -> None:
        payload = {"ts": RECENT_T0 + seq, "seq": seq, "readings": [{"sensor": "t", "celsius": 4.0}]}
        publisher.publish(topics.build("wh1", "temp", device), json.dumps(payload))

    async def scenario() -> IngestService:
        service = IngestService(cfg)
        await service.start()
        try:
            # The limit, then one more; p2 pushes p0's seq out of the two tracked.
            for device in ("p0", "p1", "p2", "p3"):
                temp(device, 0)
            temp("p0", 5)  # known: accepted; forgotten: a new sequence, no gap (p1 goes)
            temp("p2", 3)  # still tracked: 1 and 2 are missing
            publisher.flush()
            await until(lambda: len(listener.messages) >= 1, what="the dead letter")
            await until(
                lambda: service.metrics.value("stocksense_ingest_points_written_total") >= 5,
                what="five points",
            )
        finally:
            await service.stop()
        return service

    try:
        service = asyncio.run(scenario())
    finally:
        listener.close()
    (letter,) = listener.messages
    assert letter["reason"] == "too_many_devices"
    assert letter["topic"] == "stocksense/v1/wh1/temp/p3/data"
    assert "'p3'" in letter["detail"]
    assert (
        service.metrics.value(
            "stocksense_ingest_deadlettered_total", {"reason": "too_many_devices"}
        )
        == 1
    )
    assert service.metrics.value("stocksense_ingest_points_written_total") == 5
    assert service.metrics.value("stocksense_ingest_seq_gaps_total") == 2
    assert service.tracked_devices == 2
    got = query_sync(cfg.influx, "SELECT count(celsius) FROM temperature GROUP BY device")
    assert sorted((s["tags"]["device"], s["values"][0][1]) for s in got) == [
        ("p0", 2),
        ("p1", 1),
        ("p2", 2),
    ]
