"""No reading is lost: InfluxDB outage, broker restart, ingest SIGKILL, and shared subscriptions.

Each test runs its own Mosquitto and InfluxDB, because it stops or kills them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from core import topics
from core.influx import query_sync
from core.mqtt_settings import MqttSettings
from core.settings import InfluxSettings, Settings
from ingest.service import IngestService
from stocksense.devservices import LocalStack, local_stack, wait_until
from tests.conftest import RECENT_T0, until

pytestmark = pytest.mark.integration


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[LocalStack]:
    """A Mosquitto and InfluxDB pair for one test, free to be stopped and restarted."""
    with local_stack(tmp_path / "services") as running:
        yield running


def _settings(
    stack: LocalStack, tmp_path: Path, client_id: str = "ingest-1", share_group: str | None = None
) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        mqtt=MqttSettings(
            port=stack.mqtt_port, client_id=client_id, qos=1, share_group=share_group
        ),
        influx=InfluxSettings(
            url=stack.influx_url, database="loss", flush_interval_s=0.2, timeout_s=2
        ),
    )


class Stream:
    """Publishes ``total`` single-reading QoS 1 messages at ``rate`` msg/s from a thread.

    The paho session is persistent, so messages queued while the broker is down are sent after
    it returns, and unacknowledged ones are resent.
    """

    def __init__(self, port: int, *, total: int, rate: float, device: str = "probe-1") -> None:
        self.total, self.rate, self.device = total, rate, device
        self.sent = 0
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"stream-{device}", clean_session=False
        )
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def payload(self, i: int) -> str:
        reading = {"sensor": "t1", "celsius": round(2 + (i % 600) / 100, 2)}
        return json.dumps({"ts": RECENT_T0 + i, "seq": i, "readings": [reading]})

    def start(self) -> Stream:
        self._thread.start()
        return self

    def _run(self) -> None:
        topic = topics.build("wh1", "temp", self.device)
        started = time.monotonic()
        for i in range(self.total):
            self.client.publish(topic, self.payload(i), qos=1)
            self.sent = i + 1
            delay = started + (i + 1) / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the load generator, not synchronisation

    def join(self, timeout: float = 120) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "publisher did not finish"

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _count(settings: Settings, device: str = "probe-1") -> int:
    try:
        series = query_sync(
            settings.influx, f"SELECT count(celsius) FROM temperature WHERE device = '{device}'"
        )
    except Exception:  # noqa: BLE001 - InfluxDB may be down or the database not created yet
        return -1
    return int(series[0]["values"][0][1]) if series else 0


def _distinct_seqs(settings: Settings) -> int:
    series = query_sync(settings.influx, "SELECT count(distinct(seq)) FROM temperature")
    return int(series[0]["values"][0][1]) if series else 0


def test_influxdb_down_for_30_seconds_loses_nothing(own_stack: LocalStack, tmp_path: Path) -> None:
    settings = _settings(own_stack, tmp_path)
    total = 2000 * 40

    async def scenario() -> None:
        service = IngestService(settings)
        await service.start()
        stream = Stream(own_stack.mqtt_port, total=total, rate=2000).start()
        try:
            await until(lambda: stream.sent >= 5 * 2000, timeout=30, what="5 s of stream")
            own_stack.influx.stop()
            outage_started = time.monotonic()
            await until(
                lambda: service.metrics.value("stocksense_ingest_points_spooled_total") > 20_000,
                timeout=40,
                what="readings spooled during the outage",
            )
            remaining = 30 - (time.monotonic() - outage_started)
            await asyncio.sleep(max(0.0, remaining))  # the outage itself lasts 30 s
            own_stack.influx.start()
            await asyncio.to_thread(stream.join)
            await until(lambda: _count(settings) == total, timeout=90, what="every reading")
        finally:
            stream.close()
            await service.stop()
        assert _count(settings) == total
        assert _distinct_seqs(settings) == total
        assert len(service.writer.spool) == 0
        assert service.metrics.value("stocksense_ingest_deadlettered_total", {"reason": "x"}) == 0

    asyncio.run(scenario())


def test_broker_restart_mid_stream_loses_nothing(own_stack: LocalStack, tmp_path: Path) -> None:
    settings = _settings(own_stack, tmp_path)
    total = 2000 * 10

    async def scenario() -> None:
        service = IngestService(settings)
        await service.start()
        stream = Stream(own_stack.mqtt_port, total=total, rate=2000).start()
        try:
            await until(lambda: stream.sent >= total // 3, timeout=30, what="a third of the stream")
            await asyncio.to_thread(own_stack.broker.restart)
            await asyncio.to_thread(stream.join)
            await until(lambda: _count(settings) == total, timeout=90, what="every reading")
        finally:
            stream.close()
            await service.stop()
        assert _count(settings) == total
        assert _distinct_seqs(settings) == total

    asyncio.run(scenario())


def _ingest_process(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "STOCKSENSE_DATA_DIR": str(settings.data_dir),
        "STOCKSENSE_MQTT__PORT": str(settings.mqtt.port),
        "STOCKSENSE_MQTT__CLIENT_ID": settings.mqtt.client_id,
        "STOCKSENSE_INFLUX__URL": settings.influx.url,
        "STOCKSENSE_INFLUX__DATABASE": settings.influx.database,
        "STOCKSENSE_INFLUX__FLUSH_INTERVAL_S": "0.2",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "stocksense.cli", "ingest"], env=env, stdout=out, stderr=out
        )


def test_ingest_killed_with_sigkill_and_restarted_loses_and_doubles_nothing(
    own_stack: LocalStack, tmp_path: Path
) -> None:
    settings = _settings(own_stack, tmp_path, client_id="ingest-killable")
    total = 2000 * 10
    log = tmp_path / "ingest.log"
    worker = _ingest_process(settings, log)
    stream: Stream | None = None
    try:
        wait_until(lambda: _count(settings) >= 0, timeout=30, what="the worker's database")
        stream = Stream(own_stack.mqtt_port, total=total, rate=2000).start()
        wait_until(lambda: _count(settings) >= total // 3, timeout=60, what="a third written")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        before_restart = _count(settings)
        worker = _ingest_process(settings, log)
        stream.join()
        wait_until(lambda: _count(settings) == total, timeout=90, what="every reading")
    finally:
        if stream is not None:
            stream.close()
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert before_restart < total
    assert _count(settings) == total
    assert _distinct_seqs(settings) == total
    assert worker.returncode == 0, log.read_text()[-2000:]


def test_two_workers_share_a_subscription_without_loss_or_doubles(
    own_stack: LocalStack, tmp_path: Path
) -> None:
    first = _settings(own_stack, tmp_path / "a", client_id="worker-a", share_group="ingest")
    second = _settings(own_stack, tmp_path / "b", client_id="worker-b", share_group="ingest")
    total = 10_000

    async def scenario() -> tuple[float, float]:
        a, b = IngestService(first), IngestService(second)
        await a.start()
        await b.start()
        stream = Stream(own_stack.mqtt_port, total=total, rate=5000).start()
        try:
            await asyncio.to_thread(stream.join)
            await until(lambda: _count(first) == total, timeout=60, what="every reading")
        finally:
            stream.close()
            await a.stop()
            await b.stop()
        return (
            a.metrics.value("stocksense_ingest_messages_received_total"),
            b.metrics.value("stocksense_ingest_messages_received_total"),
        )

    got_a, got_b = asyncio.run(scenario())
    assert got_a + got_b == total
    assert got_a > total * 0.2
    assert got_b > total * 0.2
    assert _count(first) == total
    assert _distinct_seqs(first) == total
