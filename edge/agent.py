"""The edge agent: polls devices, filters, queues on disk, forwards to the broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from core import topics
from core.bounds import MAX_READINGS_PER_MESSAGE
from edge.config import (
    EdgeConfig,
    LlrpDevice,
    ModbusRtuDevice,
    ModbusTcpDevice,
    SerialScaleDevice,
)
from edge.devices import Driver, SerialLine, close_quietly, driver_for
from edge.errors import DeviceError, EdgeError
from edge.filters import CellFilter
from edge.mqtt import Forwarder, WillHolders, status_payload
from edge.queue import DiskQueue
from edge.readings import Reading, TagRead
from stocksense import __version__

logger = logging.getLogger(__name__)

FIRMWARE = f"stocksense-edge {__version__}"
DRAIN_S = 5.0  # on stop, time given to send what is queued while connected
DeviceConfig = ModbusTcpDevice | ModbusRtuDevice | SerialScaleDevice | LlrpDevice
Item = Reading | TagRead


class Metrics:
    """Prometheus metrics of one agent (own registry)."""

    def __init__(self, queue: DiskQueue) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.polls = Counter("stocksense_edge_polls", "Device polls.", ["device"], registry=r)
        self.errors = Counter(
            "stocksense_edge_errors", "Failed polls and rejected values.", ["device", "reason"],
            registry=r,
        )
        self.readings = Counter(
            "stocksense_edge_readings_queued", "Readings queued.", ["device"], registry=r
        )
        self.published = Counter(
            "stocksense_edge_published_messages", "Messages acknowledged.", registry=r
        )
        self.published_readings = Counter(
            "stocksense_edge_published_readings", "Readings acknowledged.", registry=r
        )
        self.dropped = Gauge(
            "stocksense_edge_dropped_messages", "Messages dropped over the queue bound (ever).",
            registry=r,
        )
        self.dropped_readings = Gauge(
            "stocksense_edge_dropped_readings", "Readings dropped over the queue bound (ever).",
            registry=r,
        )
        depth = Gauge("stocksense_edge_queue_messages", "Messages queued.", registry=r)
        depth.set_function(lambda: queue.depth()[0])
        size = Gauge("stocksense_edge_queue_bytes", "Bytes queued.", registry=r)
        size.set_function(lambda: queue.depth()[1])
        age = Gauge(
            "stocksense_edge_queue_oldest_age_seconds", "Age of the oldest queued message.",
            registry=r,
        )
        age.set_function(queue.oldest_age_s)
        self.online = Gauge(
            "stocksense_edge_device_online", "1 when the device answers.", ["device"], registry=r
        )
        self.broker = Gauge("stocksense_edge_broker_connected", "1 when connected.", registry=r)


@dataclass(slots=True)
class DeviceState:
    """Runtime state of one device."""

    config: DeviceConfig
    driver: Driver
    topic: str
    status_topic: str
    key: str
    online: bool | None = None
    failures: int = 0
    filters: dict[str, CellFilter] = field(default_factory=dict)
    batch: list[Item] = field(default_factory=list)
    batch_started: float = 0.0


def build_payload(kind: str, readings: list[Item], seq: int) -> bytes:
    """Canonical weight, temp or rfid message for ``readings`` with ``seq``."""
    items: list[dict[str, Any]] = []
    for r in readings:
        item: dict[str, Any]
        if isinstance(r, TagRead):
            item = {"epc": r.epc, "antenna": r.antenna, "count": r.count, "ts": r.ts_ms}
            if r.rssi is not None:
                item["rssi"] = r.rssi
        elif kind == "weight":
            item = {"cell": r.channel, "grams": r.value, "ts": r.ts_ms}
            if r.stable is not None:
                item["stable"] = r.stable
        else:
            item = {"sensor": r.channel, "celsius": r.value, "ts": r.ts_ms}
        items.append(item)
    body = {"ts": readings[0].ts_ms, "seq": seq, "reads" if kind == "rfid" else "readings": items}
    return json.dumps(body, separators=(",", ":")).encode()


class EdgeAgent:
    """Runs every configured device until cancelled."""

    # mypy: keep the attribute types visible to callers (tests, bench)
    devices: list[DeviceState]

    def __init__(self, config: EdgeConfig) -> None:
        self.config = config
        q = config.queue
        self.queue = DiskQueue(
            q.path, max_bytes=q.max_bytes, max_age_s=q.max_age_s, synchronous=q.synchronous
        )
        self.metrics = Metrics(self.queue)
        client_id = config.broker.client_id or f"stocksense-edge-{config.agent_id}"
        self.mqtt = config.broker.mqtt_settings(client_id)
        self.agent_topic = topics.build(config.site, config.agent_kind, config.agent_id, "status")
        self.forwarder = Forwarder(
            self.mqtt,
            self.queue,
            will_topic=self.agent_topic,
            birth=self._agent_status,
            max_inflight=config.broker.max_inflight,
            on_published=self._published,
        )
        self.wills = WillHolders(self.mqtt)
        lines: dict[str, SerialLine] = {}  # Modbus RTU devices on one port share its line
        self.devices = [
            DeviceState(
                config=d,
                driver=driver_for(d, lines),
                topic=topics.build(config.site, d.kind, d.name, "data"),
                status_topic=topics.build(config.site, d.kind, d.name, "status"),
                key=f"{config.site}/{d.kind}/{d.name}",
            )
            for d in config.devices
        ]
        self._dropped_seen = self.queue.counter("dropped_messages")
        self.metrics.dropped.set(self._dropped_seen)
        self.metrics.dropped_readings.set(self.queue.counter("dropped_readings"))

    def _published(self, messages: int, readings: int) -> None:
        self.metrics.published.inc(messages)
        self.metrics.published_readings.inc(readings)

    def _agent_status(self) -> bytes:
        dropped = self.queue.counter("dropped_messages")
        reason = None
        if dropped:
            lost = self.queue.counter("dropped_readings")
            reason = (
                f"queue_overflow: dropped {dropped} oldest messages ({lost} readings)"
                " over the queue bound"
            )
        return status_payload(
            True,
            ts=time.time_ns() // 1_000_000,
            interval_s=self.config.heartbeat_s,
            firmware=FIRMWARE,
            reason=reason,
        )

    def _device_status(self, state: DeviceState, online: bool, reason: str | None) -> bytes:
        return status_payload(
            online,
            ts=time.time_ns() // 1_000_000,
            interval_s=self.config.heartbeat_s,
            firmware=FIRMWARE,
            reason=reason[:256] if reason else None,
        )

    async def run(self) -> None:
        """Poll every device, forward, heartbeat; until cancelled, then stop cleanly."""
        if self.config.metrics_port is not None:
            start_http_server(self.config.metrics_port, registry=self.metrics.registry)
        for state in self.devices:
            self.wills.add(state.status_topic)
        self.forwarder.start()
        try:
            async with asyncio.TaskGroup() as group:
                for state in self.devices:
                    group.create_task(self._poll_loop(state), name=f"poll-{state.config.name}")
                group.create_task(self._heartbeat_loop(), name="heartbeat")
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        for state in self.devices:
            with contextlib.suppress(EdgeError):
                await asyncio.to_thread(self._flush, state)
            await close_quietly(state.driver)
        await asyncio.to_thread(self.forwarder.drain, DRAIN_S)
        final = [(self.agent_topic, status_payload(False, reason="stopped"))]
        final += [
            (s.status_topic, status_payload(False, reason="agent stopped")) for s in self.devices
        ]
        await asyncio.to_thread(self.forwarder.stop, final)
        await asyncio.to_thread(self.wills.close)
        self.queue.close()

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_s)
            self.metrics.broker.set(1 if self.forwarder.connected.is_set() else 0)
            dropped = await asyncio.to_thread(self.queue.expire)
            if dropped.messages:
                logger.warning("dropped %d queued messages past max_age_s", dropped.messages)
            total = self.queue.counter("dropped_messages")
            self.metrics.dropped.set(total)
            self.metrics.dropped_readings.set(self.queue.counter("dropped_readings"))
            self.forwarder.publish_now(self.agent_topic, self._agent_status())
            for state in self.devices:
                if state.online:
                    self.forwarder.set_status(
                        state.status_topic, self._device_status(state, True, None)
                    )

    async def _poll_loop(self, state: DeviceState) -> None:
        device = state.config
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        next_at = loop.time()
        while True:
            await self._poll_once(state)
            if task is not None and task.cancelling():
                # Python 3.11's wait_for drops a cancellation that arrives as the poll completes:
                # stop anyway, or SIGTERM would leave the agent polling forever.
                raise asyncio.CancelledError
            if state.batch and (
                len(state.batch) >= MAX_READINGS_PER_MESSAGE
                or time.monotonic() - state.batch_started >= device.batch_interval_s
            ):
                await asyncio.to_thread(self._flush, state)
            next_at += device.poll_interval_s
            delay = next_at - loop.time()
            if delay < 0:
                next_at = loop.time()
                delay = 0
            await asyncio.sleep(delay)

    async def _poll_once(self, state: DeviceState) -> None:
        device = state.config
        self.metrics.polls.labels(device.name).inc()
        try:
            poll = await asyncio.wait_for(
                state.driver.poll(), timeout=device.timeout_s * (device.retries + 1) + 1
            )
        except (DeviceError, TimeoutError) as exc:
            reason = str(exc) or "timed out"
            state.failures += 1
            self.metrics.errors.labels(device.name, "no_answer").inc()
            logger.info("%s: poll failed (%d in a row): %s", device.name, state.failures, reason)
            if state.failures >= device.offline_after and state.online is not False:
                logger.warning("%s: offline after %d failed polls", device.name, state.failures)
                state.online = False
                self.metrics.online.labels(device.name).set(0)
                self.forwarder.set_status(
                    state.status_topic, self._device_status(state, False, reason)
                )
            return
        state.failures = 0
        if state.online is not True:
            if state.online is False:
                logger.warning("%s: answering again", device.name)
            state.online = True
            self.metrics.online.labels(device.name).set(1)
            self.forwarder.set_status(state.status_topic, self._device_status(state, True, None))
        for text in poll.rejected:
            self.metrics.errors.labels(device.name, "rejected").inc()
            logger.warning("%s: value rejected: %s", device.name, text)
        now = time.monotonic()
        items: list[Item] = [*poll.readings, *poll.tags]
        for reading in items:
            kept = self._filter(state, reading, now)
            if kept is None:
                continue
            if not state.batch:
                state.batch_started = now
            state.batch.append(kept)
            if len(state.batch) >= MAX_READINGS_PER_MESSAGE:
                await asyncio.to_thread(self._flush, state)

    def _filter(self, state: DeviceState, reading: Item, now: float) -> Item | None:
        if state.config.kind != "weight" or isinstance(reading, TagRead):
            return reading  # temperatures as read; tag reads were deduplicated by the driver
        cell = state.filters.get(reading.channel)
        if cell is None:
            cell = state.filters[reading.channel] = CellFilter(state.config.filter)
        stable = cell.offer(reading.value, reading.stable, now)
        if stable is None:
            return None
        return Reading(reading.channel, reading.value, stable, reading.ts_ms)

    def _flush(self, state: DeviceState) -> None:
        """Queue the device's batch as one message (its seq assigned by the queue)."""
        batch, state.batch = state.batch, []
        if not batch:
            return
        kind = state.config.kind
        self.queue.put(
            state.key, state.topic, lambda seq: build_payload(kind, batch, seq), len(batch)
        )
        self.metrics.readings.labels(state.config.name).inc(len(batch))
        total = self.queue.counter("dropped_messages")
        if total != self._dropped_seen:
            self._dropped_seen = total
            self.metrics.dropped.set(total)
            self.metrics.dropped_readings.set(self.queue.counter("dropped_readings"))
            self.forwarder.publish_now(self.agent_topic, self._agent_status())

