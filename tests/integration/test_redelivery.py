"""Redelivered messages overwrite their own points, also when their device time was replaced.

A reading whose device clock is implausible is stored at the first receipt time of its
message; these tests deliver such messages again (published twice, after a restart, and the
broker's redelivery after a SIGKILL between the write and the PUBACK) on a real Mosquitto and
InfluxDB and count the points.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core import topics
from core.influx import query_sync, rows
from core.mqtt_settings import MqttSettings
from core.settings import InfluxSettings, Settings
from ingest.service import IngestService
from stocksense.devservices import LocalStack, free_port, local_stack, wait_until
from tests.conftest import RECENT_T0, Publisher, until

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000
# Sixty days back: past the 30-day bound, so every reading below is re-stamped.
STALE_T0 = RECENT_T0 - 60 * DAY_MS


def _payload(seq: int, ts: int, readings: int = 1) -> str:
    cells = [
        {"sensor": f"t{r}", "celsius": round(2 + seq % 50 / 10 + r, 1)} for r in range(readings)
    ]
    return json.dumps({"ts": ts, "seq": seq, "readings": cells})


def _points(influx: InfluxSettings, device: str) -> list[dict[str, object]]:
    return rows(
        query_sync(
            influx,
            f"SELECT celsius, seq, device_ts, sensor FROM temperature WHERE device = '{device}'",
        )
    )


def test_restamped_message_published_twice_and_after_restart_keeps_its_points(
    settings: Settings, publisher: Publisher
) -> None:
    settings = settings.model_copy(
        update={"mqtt": settings.mqtt.model_copy(update={"sites": ("wh-redo",)})}
    )
    topic = topics.build("wh-redo", "temp", "stale-1")
    # Two readings per message; seq 2 and 3 share their device time with seq 1 (a stuck clock):
    # different readings must not collapse into one point.
    messages = [_payload(1, STALE_T0, 2), _payload(2, STALE_T0, 2), _payload(3, STALE_T0, 2)]
    messages.append(_payload(4, RECENT_T0, 2))  # a plausible one, for contrast

    broker_port = settings.mqtt.port

    async def deliver(copies: int) -> int:
        """Publish ``copies`` of every message to a fresh worker; its re-stamped readings."""
        service = IngestService(settings)
        before = _own_connections_to(broker_port)
        await service.start()
        (worker_port,) = _own_connections_to(broker_port) - before
        try:
            for _ in range(copies):
                for payload in messages:
                    publisher.publish(topic, payload)
            publisher.flush()
            goal = copies * 8
            await until(
                lambda: service.metrics.value("stocksense_ingest_points_written_total") >= goal,
                what=f"{goal} lines written",
            )
        finally:
            await service.stop()
        # A worker connecting with the same client id takes the session over at once, and the
        # broker would drop PUBACKs of the old connection it has not read yet: the restart
        # below waits for the broker to have closed its end, so read everything on it.
        await until(
            lambda: not _broker_side_open(broker_port, worker_port),
            what="the broker closing the worker's connection",
        )
        return int(service.metrics.value("stocksense_ingest_clock_skew_total"))

    assert asyncio.run(deliver(2)) == 12
    first = _points(settings.influx, "stale-1")
    assert len(first) == 8
    assert sorted((p["seq"], p["sensor"]) for p in first) == [
        (s, f"t{r}") for s in (1, 2, 3, 4) for r in (0, 1)
    ]
    stale = [p for p in first if p["seq"] != 4]
    assert {p["device_ts"] for p in stale} == {STALE_T0}
    assert len({p["time"] for p in stale}) == 6
    fresh = sorted((p for p in first if p["seq"] == 4), key=lambda p: str(p["sensor"]))
    assert [(p["time"], p["device_ts"]) for p in fresh] == [
        (RECENT_T0 * 1_000_000, None),
        (RECENT_T0 * 1_000_000 + 1, None),
    ]

    # A new worker with the same client id (a restart) gets the same messages once more.
    assert asyncio.run(deliver(1)) == 6
    again = _points(settings.influx, "stale-1")
    assert again == first


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[LocalStack]:
    """A Mosquitto and InfluxDB pair for this test alone (it pauses InfluxDB)."""
    with local_stack(tmp_path / "services") as running:
        yield running


def _metrics(port: int) -> dict[str, float]:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return {}
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


def _worker(settings: Settings, metrics_port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "STOCKSENSE_DATA_DIR": str(settings.data_dir),
        "STOCKSENSE_MQTT__PORT": str(settings.mqtt.port),
        "STOCKSENSE_MQTT__CLIENT_ID": settings.mqtt.client_id,
        "STOCKSENSE_INFLUX__URL": settings.influx.url,
        "STOCKSENSE_INFLUX__DATABASE": settings.influx.database,
        # Each batch of the test below is one write of exactly 1,000 lines, never cut by the
        # flush timer: the write left in flight at the SIGKILL then holds the whole batch.
        "STOCKSENSE_INFLUX__BATCH_LINES": "1000",
        "STOCKSENSE_INFLUX__FLUSH_INTERVAL_S": "60",
        # Longer than InfluxDB stays paused below: the write must stay in flight, not spool.
        "STOCKSENSE_INFLUX__TIMEOUT_S": "120",
        "STOCKSENSE_INGEST__METRICS_PORT": str(metrics_port),
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "stocksense.cli", "ingest"], env=env, stdout=out, stderr=out
        )


def _queued_at(port: int) -> int:
    """Bytes received by the kernel for the sockets of ``port`` and not yet read."""
    return sum(
        int(fields[4].split(":")[1], 16)
        for fields in _tcp_table()
        if _port(fields[1]) == port and fields[3] == "01"  # ESTABLISHED
    )


def _tcp_table() -> Iterator[list[str]]:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with Path(table).open() as fh:
            next(fh)
            for line in fh:
                yield line.split()


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1], 16)


def _own_connections_to(port: int) -> set[int]:
    """Local ports of this process's established connections to ``port``."""
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            target = str(fd.readlink())
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return {
        _port(fields[1])
        for fields in _tcp_table()
        if _port(fields[2]) == port and fields[3] == "01" and fields[9] in inodes
    }


def _broker_side_open(port: int, peer_port: int) -> bool:
    """Whether the broker's socket of a connection from ``peer_port`` is still open
    (established, or closed by the peer and not yet by the broker)."""
    return any(
        _port(fields[1]) == port and _port(fields[2]) == peer_port and fields[3] in ("01", "08")
        for fields in _tcp_table()
    )


def _count(influx: InfluxSettings, query: str) -> int:
    series = query_sync(influx, query)
    return int(series[0]["values"][0][1]) if series else 0


def test_sigkill_between_write_and_puback_redelivers_onto_the_same_points(
    own_stack: LocalStack, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        mqtt=MqttSettings(port=own_stack.mqtt_port, client_id="ingest-redeliver", qos=1),
        influx=InfluxSettings(url=own_stack.influx_url, database="redeliver"),
    )
    influx = settings.influx
    influx_port = int(own_stack.influx_url.rsplit(":", 1)[1])
    influxd = own_stack.influx.process
    assert influxd is not None
    metrics_port = free_port()
    log = tmp_path / "ingest.log"
    topic = topics.build("wh1", "temp", "stale-probe")
    batch = 1000
    first_batch = [_payload(i, STALE_T0 + i * 1000) for i in range(batch)]
    second_batch = [_payload(i, STALE_T0 + i * 1000) for i in range(batch, 2 * batch)]
    count_all = "SELECT count(celsius) FROM temperature"
    publisher = Publisher(own_stack.mqtt_port)
    worker = _worker(settings, metrics_port, log)
    paused = False
    try:
        wait_until(lambda: bool(_metrics(metrics_port)), timeout=30, what="the worker")
        for payload in first_batch:
            publisher.publish(topic, payload)
        publisher.flush()
        wait_until(lambda: _count(influx, count_all) == batch, timeout=30, what="first batch")

        # InfluxDB paused: the second batch is received and its write sent, and the worker dies
        # before the answer, so before any PUBACK of it.
        os.kill(influxd.pid, signal.SIGSTOP)
        paused = True
        for payload in second_batch:
            publisher.publish(topic, payload)
        publisher.flush()
        received = "stocksense_ingest_messages_received_total"
        buffered = "stocksense_ingest_buffer_lines"

        def sent() -> bool:
            m = _metrics(metrics_port)
            return m.get(received) == 2 * batch and m.get(buffered) == 0

        wait_until(sent, timeout=30, what="the second batch taken for writing")
        # Past the request's headers (a few hundred bytes): its body is sent in one piece.
        wait_until(lambda: _queued_at(influx_port) > 1024, timeout=30, what="its write at InfluxDB")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        os.kill(influxd.pid, signal.SIGCONT)
        paused = False
        # The write of the dead worker lands: the second batch is durable, never acknowledged.
        wait_until(
            lambda: _count(influx, count_all) == 2 * batch, timeout=30, what="the orphaned write"
        )

        worker = _worker(settings, metrics_port, log)
        written = "stocksense_ingest_points_written_total"

        def redelivered() -> bool:
            m = _metrics(metrics_port)
            return m.get(received, 0) >= batch and m.get(written) == m.get(
                "stocksense_ingest_readings_total"
            )

        wait_until(redelivered, timeout=60, what="the redelivered second batch written")
        after_restart = _metrics(metrics_port)

        # And the first batch published again (a publisher's resend) after the crash.
        for payload in first_batch:
            publisher.publish(topic, payload)
        publisher.flush()
        goal = after_restart[received] + batch

        def republished() -> bool:
            m = _metrics(metrics_port)
            return m.get(received, 0) >= goal and m.get(written) == m.get(
                "stocksense_ingest_readings_total"
            )

        wait_until(republished, timeout=60, what="the republished first batch written")
    finally:
        if paused:
            os.kill(influxd.pid, signal.SIGCONT)
        publisher.close()
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert after_restart[received] >= batch, "the broker redelivered the second batch"
    assert _count(influx, count_all) == 2 * batch
    assert _count(influx, "SELECT count(distinct(seq)) FROM temperature") == 2 * batch
    assert _count(influx, "SELECT count(device_ts) FROM temperature") == 2 * batch
    assert worker.returncode == 0, log.read_text()[-2000:]
