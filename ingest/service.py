"""The ingest worker: MQTT in, validated readings out to InfluxDB and to the rules engine.

gmqtt is the MQTT client (measured fastest on this hardware, see DESIGN): it keeps the
connection, the session and every packet but PUBLISH. PUBLISH packets (QoS 0 and 1) come
straight from its reader to :meth:`IngestService.on_publish`, with no task and no property
parsing per message. QoS 1 messages are acknowledged (PUBACK) only after their readings are
durable: the writer hands back the packet ids of each durable batch and their PUBACKs go out in
one write.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import logging
import signal
import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gmqtt
from gmqtt.mqtt.constants import MQTTv50, MQTTv311
from prometheus_client import start_http_server

from core import device_registry, topics
from core.errors import PayloadError
from core.influx import InfluxClient
from core.influx_writer import BatchWriter, Rejection
from core.mqtt_tls import connect_gmqtt
from core.readings import Sample
from core.settings import Settings
from ingest import adapters
from ingest.decode import Decoded, decode_canonical
from ingest.lines import StampLedger, message_lines, stamp_key
from ingest.metrics import IngestMetrics

logger = logging.getLogger(__name__)

SampleSink = Callable[[list[Sample]], None]
PUBACK_SUCCESS = 0
RECEIVE_MAXIMUM = 20_000


class IngestService:
    """One ingest worker; ``sink`` receives every decoded batch of readings (the rules engine)."""

    def __init__(
        self,
        settings: Settings,
        *,
        sink: SampleSink | None = None,
        metrics: IngestMetrics | None = None,
        client_id: str | None = None,
        writer: BatchWriter | None = None,
    ) -> None:
        """``writer`` is the process's durable InfluxDB writer, started and closed by whoever
        built it (the pipeline shares one with the rules); without one the service builds,
        starts and closes its own."""
        self.settings = settings
        self.metrics = metrics or IngestMetrics()
        self._sink = sink
        self.client_id = client_id or settings.mqtt.client_id
        self._influx: InfluxClient | None = None
        if writer is None:
            self._influx = InfluxClient(settings.influx)
            writer = build_writer(settings, self._influx, self.metrics, self.client_id)
        self.writer = writer
        self.writer.on_rejected = self._store_rejected
        self._routes = settings.ingest.adapters  # validated with the settings
        # Last seq per device key, least recently seen first: bounded, since device names come
        # from the network (an evicted device that returns just starts a new sequence).
        self._last_seq: OrderedDict[str, int] = OrderedDict()
        self._max_tracked = settings.ingest.max_tracked_devices
        self._max_devices_per_site = settings.ingest.max_devices_per_site
        self._site_devices: dict[str, set[str]] = {}
        self._failed_types: set[str] = set()
        self._max_future_ms = int(settings.ingest.max_future_skew_s * 1000)
        self._max_past_ms = int(settings.ingest.max_past_age_s * 1000)
        self._registry = device_registry.from_settings(settings.ingest)
        self._stamps = StampLedger(stamps_path(settings, self.client_id))
        self._mqtt: Any = None
        self._subscribed = asyncio.Event()
        self._stopping = False
        # Packet ids are per connection: a PUBACK owed on a lost connection must not go out on
        # the next one, where the broker may have given that id to another message (it
        # redelivers the first one instead). Tokens are generation << 16 | packet id.
        self._generation = 0
        self._waiting_stamps: set[asyncio.Task[None]] = set()
        self._mqtt5 = False  # PUBLISH packets carry properties (set on connect)

    @property
    def tracked_devices(self) -> int:
        """Devices whose last ``seq`` is remembered (at most ``max_tracked_devices``)."""
        return len(self._last_seq)

    async def start(self) -> None:
        """Create the database if needed, connect, subscribe and start the writer."""
        if self._influx is not None:
            await self._influx.ensure_database()
            self.writer.start()
        mqtt = self.settings.mqtt
        # A persistent session (clean_session False, no expiry) keeps QoS 1 messages queued at
        # the broker while this worker is down.
        client = gmqtt.Client(
            self.client_id,
            clean_session=False,
            optimistic_acknowledgement=False,
            session_expiry_interval=0xFFFFFFFF,
            # Unacknowledged QoS 1 messages in flight at once: enough for two full batches and
            # the flush interval at full speed, small enough to keep memory flat (each one holds
            # its lines in the writer until its batch is durable).
            receive_maximum=RECEIVE_MAXIMUM,
        )
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        _take_publishes(client, self.on_publish)
        if mqtt.qos == 1:
            self.writer.on_tokens_durable = self._acknowledge
        if mqtt.username:
            password = mqtt.password.get_secret_value() if mqtt.password else None
            client.set_auth_credentials(mqtt.username, password)
        client.set_config({"reconnect_retries": -1, "reconnect_delay": 1})
        self._mqtt = client
        # QoS 1 needs MQTT 5 for receive_maximum (on 3.1.1 the broker's own in-flight limit
        # applies, 20 messages by default on Mosquitto, and gmqtt acknowledges on receipt); QoS 0
        # uses 3.1.1, whose messages carry no properties to parse (about 10 % faster).
        version = MQTTv50 if mqtt.qos == 1 else MQTTv311
        self._mqtt5 = version == MQTTv50
        await connect_gmqtt(client, mqtt, version=version)  # TLS as configured
        await asyncio.wait_for(self._subscribed.wait(), timeout=30)

    def _on_connect(self, client: Any, flags: int, rc: int, properties: Any) -> None:
        del flags, properties
        mqtt = self.settings.mqtt
        vendor = tuple(dict.fromkeys(r.pattern for r in self._routes))
        filters = topics.subscription(mqtt.share_group, mqtt.sites, vendor)
        # One SUBSCRIBE for all filters: its SUBACK tells that the broker routes to us now.
        client.subscribe([gmqtt.Subscription(f, qos=mqtt.qos) for f in filters])
        logger.info("ingest %s connected (rc=%s), subscribing to %s", self.client_id, rc, filters)

    def _on_subscribe(self, client: Any, mid: int, qos: Any, properties: Any) -> None:
        del client, mid, properties
        if any(code >= 0x80 for code in qos):
            logger.error("ingest %s: the broker refused a subscription: %s", self.client_id, qos)
        self._subscribed.set()

    def _on_disconnect(self, client: Any, packet: Any, exc: Exception | None = None) -> None:
        del client, packet
        self._subscribed.clear()
        self._generation += 1
        if not self._stopping:
            logger.warning("ingest %s lost the broker, reconnecting: %s", self.client_id, exc)

    def _decode(
        self, topic: str, payload: bytes
    ) -> tuple[Decoded, dict[int, int] | None, int] | None:
        self.metrics.hot.received += 1
        received_ns = time.time_ns()
        received_ms = received_ns // 1_000_000
        try:
            if self._routes:
                decoded = adapters.decode(topic, payload, received_ms, self._routes)
            else:
                decoded = decode_canonical(topic, payload, received_ms)
        except PayloadError as exc:
            self.dead_letter(topic, payload, exc.reason, exc.detail)
            return None
        except Exception as exc:  # noqa: BLE001 - a decoder bug must not wedge the session
            self._decoder_failed(topic, payload, exc)
            return None
        if not decoded.samples:
            self.metrics.ignored.inc()  # well-formed, but nothing to store (see ingest.adapters)
            return None
        if self._registry is not None and not self._registry.knows(decoded.device_key):
            reason, detail = device_registry.UNKNOWN_DEVICE, self._registry.why(decoded.device_key)
            self.dead_letter(topic, payload, reason, detail)
            return None
        if self._max_devices_per_site and self._over_device_limit(topic, payload, decoded):
            return None
        restamped, stamp_ns = self._check_clock(decoded, received_ns, topic, payload)
        if decoded.seq is not None:
            self._track_seq(decoded.device_key, decoded.seq)
        self.metrics.hot.readings += len(decoded.samples)
        if self._sink is not None:
            self._sink(decoded.samples)
        return decoded, restamped, stamp_ns

    def _decoder_failed(self, topic: str, payload: bytes, exc: Exception) -> None:
        """Dead-letter a message whose decoder raised something other than PayloadError.

        The message is acknowledged all the same: raising from the handler would withhold the
        PUBACK, the broker would redeliver the message forever, and enough such messages fill
        the in-flight window so that nothing else is received.
        """
        name = type(exc).__qualname__
        if name not in self._failed_types:
            self._failed_types.add(name)
            logger.error(
                "decoding a message on %s raised %s; such messages are dead-lettered as"
                " internal_error (logged once per exception type)",
                topic,
                name,
                exc_info=exc,
            )
        try:
            message = str(exc)[:500]
        except Exception:  # noqa: BLE001 - the guard itself must not raise
            message = "<unprintable>"
        self.dead_letter(topic, payload, "internal_error", f"{name}: {message}")

    def _track_seq(self, key: str, seq: int) -> None:
        """Count the messages missing before ``seq`` and remember it as the device's last."""
        last_seq = self._last_seq
        last = last_seq.get(key)
        if last is None:
            last_seq[key] = seq
            if len(last_seq) > self._max_tracked:
                last_seq.popitem(last=False)
            return
        last_seq.move_to_end(key)
        if seq > last + 1:
            self.metrics.seq_gaps.inc(seq - last - 1)
        if seq > last:
            last_seq[key] = seq

    def _over_device_limit(self, topic: str, payload: bytes, decoded: Decoded) -> bool:
        """Dead-letter the message if it names a device past its site's limit."""
        samples = decoded.samples
        first = samples[0]
        known = self._site_devices.get(first.site)
        if known is not None and first.device in known and len(samples) == 1:
            return False  # the hot path: one reading of a known device
        refused = self._refused_device(samples)
        if refused is None:
            return False
        detail = (
            f"new device {refused!r} would take site {first.site!r} past its limit of"
            f" {self._max_devices_per_site} devices (max_devices_per_site)"
        )
        self.dead_letter(topic, payload, "too_many_devices", detail)
        return True

    def _refused_device(self, samples: list[Sample]) -> str | None:
        """A device new to its site that would take the site past its limit, else None.

        Known devices are always accepted. The limit holds per worker and since its start.
        """
        first = samples[0]
        site, device = first.site, first.device
        for sample in samples:
            if sample.device != device or sample.site != site:
                return self._refused_among(samples)
        known = self._site_devices.get(site)
        if known is None:
            known = self._site_devices[site] = set()
        if device in known:
            return None
        if len(known) >= self._max_devices_per_site:
            return device
        known.add(device)
        return None

    def _refused_among(self, samples: list[Sample]) -> str | None:
        """The same for a message naming several devices: all are admitted, or none."""
        new: dict[str, set[str]] = {}
        for sample in samples:
            if sample.device not in self._site_devices.get(sample.site, ()):
                new.setdefault(sample.site, set()).add(sample.device)
        for site, devices in new.items():
            if len(self._site_devices.get(site, ())) + len(devices) > self._max_devices_per_site:
                return min(devices)
        for site, devices in new.items():
            self._site_devices.setdefault(site, set()).update(devices)
        return None

    def _check_clock(
        self, decoded: Decoded, received_ns: int, topic: str, payload: bytes
    ) -> tuple[dict[int, int] | None, int]:
        """Re-stamp readings whose device time is implausible.

        Returns index -> device time of the re-stamped readings, and their stamp (ns): the
        first receipt time of this very message, so that every redelivery of it lands on the
        same points (see docs/wire-contract.md, "Point time").
        """
        samples = decoded.samples
        received_ms = received_ns // 1_000_000
        earliest = received_ms - self._max_past_ms
        latest = received_ms + self._max_future_ms
        for sample in samples:
            if not earliest <= sample.ts_ms <= latest:
                break
        else:
            return None, 0
        stamp_ns = self._stamps.stamp(stamp_key(topic, payload), received_ns)
        stamp_ms = stamp_ns // 1_000_000
        restamped: dict[int, int] = {}
        for index, sample in enumerate(samples):
            if not earliest <= sample.ts_ms <= latest:
                restamped[index] = sample.ts_ms
                samples[index] = dataclasses.replace(sample, ts_ms=stamp_ms)
        self.metrics.clock_skew.inc(len(restamped))
        logger.info(
            "%s: %d readings re-stamped with first receipt time (device clock off by %.0fs)",
            decoded.device_key,
            len(restamped),
            (next(iter(restamped.values())) - received_ms) / 1000,
        )
        return restamped, stamp_ns

    def on_publish(self, cmd: int, packet: bytes) -> None:
        """One PUBLISH packet as read from the connection: fixed-header byte ``cmd`` and the
        rest of the packet (topic, packet id at QoS 1, MQTT 5 properties, payload).

        A QoS 1 message gets its PUBACK once its readings are durable, or at once when it is
        dead-lettered or ignored. Properties are skipped: this client announces no topic alias
        maximum, so the broker sends none, and no other property changes what is stored.
        """
        qos = (cmd >> 1) & 0x03
        position = 2 + int.from_bytes(packet[:2], "big")
        raw_topic = packet[2:position]
        token = None
        if qos:
            token = self._generation << 16 | int.from_bytes(packet[position : position + 2], "big")
            position += 2
        if self._mqtt5:
            position = _after_properties(packet, position)
        payload = packet[position:]
        try:
            topic = raw_topic.decode()
        except UnicodeDecodeError:
            text = raw_topic.decode("utf-8", "backslashreplace")
            self.metrics.hot.received += 1
            self.dead_letter(text, payload, "bad_topic", "topic is not UTF-8 text")
            result = None
        else:
            result = self._decode(topic, payload)
        if result is None:
            if token is not None:
                self._acknowledge([token])  # nothing to wait for
            return
        decoded, restamped, stamp_ns = result
        lines = message_lines(decoded.samples, decoded.seq, restamped, stamp_ns)
        ts_ms = decoded.samples[0].ts_ms
        if not restamped:
            self.writer.add_nowait(lines, ts_ms, token)
        elif token is None:
            # QoS 0: the broker redelivers nothing, but a publisher's resend after a restart
            # should still find the stamp; no need to hold the readings for it.
            self._stamps.sync_soon()
            self.writer.add_nowait(lines, ts_ms)
        else:
            # The stamp is on disk before any point carrying it can be: a crash after the
            # write and before the PUBACK must find it when the message comes back.
            task = asyncio.get_running_loop().create_task(
                self._add_once_stamped(lines, ts_ms, token)
            )
            self._waiting_stamps.add(task)
            task.add_done_callback(self._waiting_stamps.discard)

    async def _add_once_stamped(self, lines: list[str], ts_ms: int, token: int) -> None:
        await self._stamps.synced()
        self.writer.add_nowait(lines, ts_ms, token)

    def _acknowledge(self, tokens: list[int]) -> None:
        """Send the PUBACKs of durable messages received on the current connection, at once."""
        client = self._mqtt
        generation = self._generation
        mids = [t & 0xFFFF for t in tokens if t >> 16 == generation]
        if not mids or client is None or not client.is_connected:
            return  # the broker delivers those messages again: their points are idempotent
        # PUBACK, remaining length 2 (MQTT 5 omits reason code 0 and no properties), packet id.
        packets = struct.pack(f"!{len(mids)}I", *[0x4002_0000 | mid for mid in mids])
        client._connection.send_package(packets)

    def dead_letter(self, topic: str, payload: bytes, reason: str, detail: str) -> None:
        """Publish the message with its reason to the dead-letter topic and count it."""
        self.metrics.deadlettered.labels(reason=reason).inc()
        logger.info("dead-lettered message on %s: %s: %s", topic, reason, detail)
        try:
            text: str | None = payload.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        envelope = {
            "reason": reason,
            "detail": detail,
            "topic": topic,
            "received_at": time.time_ns() // 1_000_000,
            "worker": self.client_id,
            "payload": text if text is not None and len(text) <= 65536 else None,
            "payload_b64": None if text is not None else base64.b64encode(payload[:65536]).decode(),
            "payload_bytes": len(payload),
        }
        if self._mqtt is not None:
            self._mqtt.publish(
                topics.DEADLETTER_TOPIC, json.dumps(envelope).encode(), qos=1, retain=False
            )

    def _store_rejected(self, rejections: list[Rejection]) -> None:
        """Dead-letter each line InfluxDB refused (``store_rejected``; the payload is the line)."""
        for rejection in rejections:
            self.dead_letter("", rejection.line.encode(), "store_rejected", rejection.message)

    async def stop(self) -> None:
        """Flush the writer and disconnect (the persistent session keeps what arrives meanwhile)."""
        self._stopping = True
        # Acknowledge what is in hand while the connection is still up: once it is durable its
        # PUBACKs are written, and a few loop turns let them out before the DISCONNECT.
        # Anything arriving after this is not acknowledged and the broker delivers it again to
        # the next session.
        if self._waiting_stamps:
            await asyncio.gather(*self._waiting_stamps)
        await self.writer.drain()
        for _ in range(3):
            await asyncio.sleep(0)
        if self._mqtt is not None:
            with contextlib.suppress(Exception):
                await self._mqtt.disconnect()
        await self._stamps.close()
        if self._influx is not None:
            await self.writer.close()
            await self._influx.aclose()


async def run_ingest(settings: Settings) -> int:
    """Run one ingest worker until SIGINT/SIGTERM, then flush and exit 0."""
    service = IngestService(settings)
    if settings.ingest.metrics_port is not None:
        start_http_server(settings.ingest.metrics_port, registry=service.metrics.registry)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await service.start()
    logger.info("ingest worker %s running", service.client_id)
    try:
        await stop.wait()
    finally:
        await service.stop()
    return 0


PUBLISH = 3  # MQTT control packet type


def _take_publishes(client: Any, on_publish: Callable[[int, bytes], None]) -> None:
    """Hand QoS 0 and 1 PUBLISH packets from gmqtt's reader straight to ``on_publish``.

    gmqtt would log each packet, parse its properties, and run the message handler through a
    coroutine check, as a task per QoS 1 message with a PUBACK write each: about a third of
    ingest's CPU. Every other packet (and QoS 2) takes gmqtt's own path. gmqtt 0.8.0 is
    pinned; tests/integration/test_no_loss.py and test_redelivery.py fail if this stops
    delivering or acknowledging.
    """
    handler = client._package_handler
    dispatch = handler._handle_packet

    def handle_packet(cmd: int, packet: bytes) -> None:
        if cmd >> 4 == PUBLISH and (cmd >> 1) & 0x03 < 2:
            on_publish(cmd, packet)
        else:
            dispatch(cmd, packet)

    handler._handle_packet = handle_packet


def _after_properties(packet: bytes, position: int) -> int:
    """Where an MQTT 5 property block starting at ``position`` ends (its length is a
    variable byte integer)."""
    length = shift = 0
    while True:
        byte = packet[position]
        position += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return position + length
        shift += 7
        if shift > 21:
            raise ValueError("malformed property length")


def spool_dir(settings: Settings, client_id: str) -> Path:
    """Where a process spools batches while InfluxDB is unavailable (one spool per process)."""
    return settings.data_dir / "spool" / client_id


def build_writer(
    settings: Settings, influx: InfluxClient, metrics: IngestMetrics, client_id: str
) -> BatchWriter:
    """The one durable InfluxDB writer of a process: readings, and stock points in the pipeline."""
    return BatchWriter(
        influx,
        spool_dir(settings, client_id),
        metrics.writer,
        batch_lines=settings.influx.batch_lines,
        flush_interval_s=settings.influx.flush_interval_s,
    )


def stamps_path(settings: Settings, client_id: str) -> Path:
    """Where a worker keeps the first-receipt stamps of re-stamped messages."""
    return settings.data_dir / "stamps" / f"{client_id}.bin"
