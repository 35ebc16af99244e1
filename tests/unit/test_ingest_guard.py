"""The ingest worker's per-message outcomes: last-resort guard, device limits, bounded state.

Messages go in as the PUBLISH packets gmqtt's reader hands over, with no broker: a refused
message is counted and dead-lettered (and acknowledged at once at QoS 1), an accepted one is
buffered for InfluxDB.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from core import topics
from core.settings import IngestSettings, Settings
from ingest import adapters
from ingest.adapters import AdapterContext
from ingest.decode import Decoded
from ingest.service import IngestService

TS = 1_767_225_600_000
TASMOTA_ROUTE = {"pattern": "tele/+/SENSOR", "adapter": "tasmota", "site": "wh1"}
SHELLY_ROUTE = {"pattern": "+/events/rpc", "adapter": "shelly", "site": "wh1"}
HUGE_INT_TASMOTA = b'{"DS18B20":{"Temperature":' + b"1" * 4301 + b"}}"
SHELLY_1E308 = b'{"method":"NotifyStatus","params":{"ts":1e308,"temperature:0":{"tC":4.0}}}'


class _Connection:
    """The part of gmqtt's client the service uses: PUBACK writes and dead-letter publishes."""

    is_connected = True

    def __init__(self) -> None:
        self._connection = self
        self.sent = b""
        self.published: list[tuple[str, bytes]] = []

    def send_package(self, data: bytes) -> None:
        self.sent += data

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        assert (qos, retain) == (1, False)
        self.published.append((topic, payload))


def _service(tmp_path: Path, **ingest: Any) -> IngestService:
    service = IngestService(Settings(data_dir=tmp_path, ingest=IngestSettings(**ingest)))
    service._mqtt = _Connection()
    return service


# A property block a broker may add: message expiry interval (id 2, four bytes).
EXPIRY = bytes([5, 0x02]) + (60).to_bytes(4, "big")


def _user_properties(size: int) -> bytes:
    """A property block of one user property (id 0x26) of about ``size`` bytes."""
    key, value = b"origin", b"x" * (size - 11)
    body = bytes([0x26]) + len(key).to_bytes(2, "big") + key + len(value).to_bytes(2, "big") + value
    length, varint = len(body), b""
    while True:
        byte, length = length & 0x7F, length >> 7
        varint += bytes([byte | (0x80 if length else 0)])
        if not length:
            return varint + body


def _packet(
    topic: str | bytes, payload: bytes, mid: int | None = None, properties: bytes = b""
) -> bytes:
    """A PUBLISH packet after its fixed header: topic, packet id (QoS 1), properties, payload."""
    name = topic.encode() if isinstance(topic, str) else topic
    head = len(name).to_bytes(2, "big") + name
    if mid is not None:
        head += mid.to_bytes(2, "big")
    return head + properties + payload


def _temp(site: str, device: str, seq: int = 0, ts: int = TS) -> tuple[str, bytes]:
    payload = {"ts": ts, "seq": seq, "readings": [{"sensor": "t1", "celsius": 4.5}]}
    return topics.build(site, "temp", device), json.dumps(payload).encode()


def _send(service: IngestService, topic: str | bytes, payload: bytes) -> None:
    service.on_publish(0x30, _packet(topic, payload))


def _send_qos1(
    service: IngestService,
    topic: str | bytes,
    payload: bytes,
    mid: int = 7,
    properties: bytes = EXPIRY,
) -> bytes:
    """Send at QoS 1 (MQTT 5) and return the PUBACKs written for it."""
    connection = service._mqtt
    before = len(connection.sent)
    service._mqtt5 = True
    service.on_publish(0x32, _packet(topic, payload, mid, properties))
    service._mqtt5 = False
    sent: bytes = connection.sent[before:]
    return sent


def _puback(mid: int) -> bytes:
    return bytes([0x40, 0x02]) + mid.to_bytes(2, "big")


def _dead(service: IngestService, reason: str) -> float:
    return service.metrics.value("stocksense_ingest_deadlettered_total", {"reason": reason})


def _readings(service: IngestService) -> float:
    return service.metrics.value("stocksense_ingest_readings_total")


# --- the last-resort guard --------------------------------------------------------------------


def _broken_adapter(topic: str, payload: bytes, received_ms: int, ctx: AdapterContext) -> Decoded:
    """An adapter with a bug: it fails on its input with an exception nobody maps."""
    del topic, received_ms, ctx
    return Decoded([], None, str(int(payload) // 0))


def test_a_decoder_bug_is_dead_lettered_acknowledged_and_logged_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(adapters.ADAPTERS, "tasmota", _broken_adapter)
    service = _service(tmp_path, adapters=[TASMOTA_ROUTE])
    with caplog.at_level(logging.ERROR, logger="ingest.service"):
        for mid in (1, 2, 0xFFFF):
            assert _send_qos1(service, "tele/d1/SENSOR", b"7", mid) == _puback(mid)
        _send(service, "tele/d1/SENSOR", b"8")
    assert _dead(service, "internal_error") == 4
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1  # once per exception type, with the traceback
    assert "ZeroDivisionError" in errors[0].getMessage()
    assert errors[0].exc_info is not None
    # The canonical path is untouched and goes on.
    _send(service, *_temp("wh1", "p1"))
    assert _readings(service) == 1
    assert service.writer.buffered == 1


def test_a_topic_that_is_not_utf8_is_a_bad_topic(tmp_path: Path) -> None:
    service = _service(tmp_path, adapters=[TASMOTA_ROUTE])
    _send(service, b"tele/\xff/SENSOR", b"{}")
    assert _dead(service, "bad_topic") == 1
    dead_topic, envelope = service._mqtt.published[-1]
    assert dead_topic == topics.DEADLETTER_TOPIC
    assert json.loads(envelope)["topic"] == "tele/\\xff/SENSOR"
    assert _send_qos1(service, b"tele/\xfe/SENSOR", b"{}", 9) == _puback(9)
    assert _dead(service, "bad_topic") == 2
    assert _dead(service, "internal_error") == 0


@pytest.mark.parametrize(
    ("route", "topic", "payload", "reason"),
    [
        (TASMOTA_ROUTE, "tele/cold-room-1/SENSOR", HUGE_INT_TASMOTA, "invalid_json"),
        (SHELLY_ROUTE, "shelly-1/events/rpc", SHELLY_1E308, "out_of_range"),
    ],
)
def test_poison_payloads_are_acknowledged_with_their_reason(
    tmp_path: Path, route: dict[str, Any], topic: str, payload: bytes, reason: str
) -> None:
    service = _service(tmp_path, adapters=[route])
    assert _send_qos1(service, topic, payload) == _puback(7)
    assert _dead(service, reason) == 1
    assert _dead(service, "internal_error") == 0


@pytest.mark.parametrize("size", [0, 6, 127, 128, 200, 16_383, 16_384, 65_000])
def test_qos1_readings_wait_for_durability_whatever_the_properties(
    tmp_path: Path, size: int
) -> None:
    """A property block of any size (one- to three-byte length) is skipped, the payload is
    read whole, and the PUBACK of a stored message waits for its batch to be durable."""
    service = _service(tmp_path)
    properties = b"\x00" if size == 0 else EXPIRY if size == 6 else _user_properties(size)
    topic, payload = _temp("wh1", "p1", ts=time.time_ns() // 1_000_000)  # not re-stamped
    assert _send_qos1(service, topic, payload, 0x1234, properties) == b""
    assert service.writer.buffered == 1
    assert _readings(service) == 1
    assert _dead(service, "invalid_json") == 0
    service._acknowledge([0x1234, 0x10001])  # the writer's callback; the second is stale
    assert service._mqtt.sent == _puback(0x1234)


def test_a_deeper_canonical_topic_is_a_bad_topic(tmp_path: Path) -> None:
    service = _service(tmp_path)
    topic, payload = _temp("wh1", "p1")
    _send(service, f"{topic}/extra", payload)
    _send(service, topic.replace("/p1/", "/p1\n/"), payload)
    assert _dead(service, "bad_topic") == 2
    assert _readings(service) == 0


# --- the subscription -------------------------------------------------------------------------


@pytest.mark.parametrize("sites", [(), ("wh1",)])
def test_subscription_takes_every_wrong_depth_once_and_never_dead_letters(
    sites: tuple[str, ...],
) -> None:
    filters = topics.subscription(None, sites)
    for depth in range(4, 10):
        topic = "/".join(["stocksense", "v1", "wh1", *[f"l{i}" for i in range(depth - 3)]])
        assert sum(topics.matches(f, topic) for f in filters) == 1, topic
    assert not any(topics.matches(f, topics.DEADLETTER_TOPIC) for f in filters)
    if sites:
        assert not any(topics.matches(f, "stocksense/v1/wh2/temp/p1/data") for f in filters)
    shared = topics.subscription("g", sites, ("tele/+/SENSOR", "stocksense/v1/#"))
    assert shared == [f"$share/g/{f}" for f in [*filters, "tele/+/SENSOR"]]


# --- devices per site -------------------------------------------------------------------------


def test_devices_per_site_limit_boundary(tmp_path: Path) -> None:
    service = _service(tmp_path, max_devices_per_site=3)
    for device in ("p0", "p1", "p2"):  # exactly the limit: accepted
        _send(service, *_temp("wh1", device))
    assert _readings(service) == 3
    _send(service, *_temp("wh1", "p3"))  # limit + 1: refused
    assert _dead(service, "too_many_devices") == 1
    status = topics.build("wh1", "temp", "p4", "status")
    _send(service, status, b'{"online": true}')
    assert _dead(service, "too_many_devices") == 2
    _send(service, *_temp("wh1", "p0", seq=1))  # known devices keep being accepted
    _send(service, *_temp("wh1", "p2", seq=1))
    _send(service, topics.build("wh1", "temp", "p1", "status"), b'{"online": true}')
    _send(service, *_temp("wh2", "p3"))  # the limit is per site
    assert _readings(service) == 7
    assert service.writer.buffered == 7
    assert _dead(service, "too_many_devices") == 2


def test_a_vendor_batch_naming_several_devices_is_admitted_whole_or_not_at_all(
    tmp_path: Path,
) -> None:
    route = {"pattern": "impinj/+/events", "adapter": "impinj", "site": "wh1"}
    service = _service(tmp_path, adapters=[route], max_devices_per_site=2)

    def heartbeat(host: str) -> dict[str, Any]:
        return {"timestamp": "2026-01-01T00:00:00Z", "hostname": host, "eventType": "heartbeat"}

    _send(service, "impinj/r1/events", json.dumps([heartbeat("r1"), heartbeat("r1")]).encode())
    _send(service, "impinj/r1/events", json.dumps([heartbeat("r1"), heartbeat("r2")]).encode())
    assert _readings(service) == 4
    three = [heartbeat("r1"), heartbeat("r3"), heartbeat("r4")]
    _send(service, "impinj/r1/events", json.dumps(three).encode())
    assert _dead(service, "too_many_devices") == 1
    _send(service, "impinj/r3/events", json.dumps(heartbeat("r3")).encode())
    assert _dead(service, "too_many_devices") == 2  # r3 was not admitted by the refused batch
    assert _readings(service) == 4


def test_zero_means_no_device_limit(tmp_path: Path) -> None:
    service = _service(tmp_path, max_devices_per_site=0)
    for index in range(200):
        _send(service, *_temp("wh1", f"p{index}"))
    assert _readings(service) == 200
    assert _dead(service, "too_many_devices") == 0


# --- bounded per-device state -----------------------------------------------------------------


def test_last_seq_is_an_lru_of_bounded_size(tmp_path: Path) -> None:
    service = _service(tmp_path, max_tracked_devices=2, max_devices_per_site=0)
    _send(service, *_temp("wh1", "d1", seq=0))
    _send(service, *_temp("wh1", "d2", seq=0))
    _send(service, *_temp("wh1", "d1", seq=1))  # d1 is now the most recently seen
    _send(service, *_temp("wh1", "d3", seq=0))  # evicts d2
    assert service.tracked_devices == 2
    _send(service, *_temp("wh1", "d2", seq=5))  # forgotten: a new sequence, no gap (evicts d1)
    assert service.metrics.value("stocksense_ingest_seq_gaps_total") == 0
    _send(service, *_temp("wh1", "d3", seq=3))  # still tracked: 1 and 2 are missing
    assert service.metrics.value("stocksense_ingest_seq_gaps_total") == 2
    for index in range(1000):
        _send(service, *_temp("wh1", f"x{index}"))
    assert service.tracked_devices == 2
    assert _readings(service) == 1006
