"""Forwarding to the broker with paho: queued messages at QoS 1, statuses retained, wills.

The forwarder thread owns one connection at a time. On every connection it publishes the
agent's birth and the latest status of every device, then sends queued rows in order, a
window of ``max_inflight`` at a time, deleting each row only on its PUBACK. When the
connection drops, everything unacknowledged is sent again from the queue on the next one
(at-least-once; ingest's writes are idempotent). Each device also gets a small connection that
only holds its Last Will, so a dead agent turns every device offline too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from core.mqtt_settings import MqttSettings
from core.mqtt_tls import BrokerConnectError, client_context, connect_paho
from edge.queue import DiskQueue

logger = logging.getLogger(__name__)

RECONNECT_MAX_S = 10.0


def status_payload(online: bool, **extra: Any) -> bytes:
    """A canonical status message (``core.models.StatusMessage``)."""
    body: dict[str, Any] = {"online": online}
    body.update({k: v for k, v in extra.items() if v is not None})
    return json.dumps(body, separators=(",", ":")).encode()


class Forwarder(threading.Thread):
    """Publishes the queue to the broker, reconnecting with backoff, until :meth:`stop`."""

    def __init__(
        self,
        mqtt: MqttSettings,
        queue: DiskQueue,
        *,
        will_topic: str,
        birth: Callable[[], bytes],
        max_inflight: int,
        on_published: Callable[[int, int], None],
    ) -> None:
        super().__init__(name="edge-forwarder", daemon=True)
        self.mqtt = mqtt
        self.queue = queue
        self.will_topic = will_topic
        self.birth = birth
        self.max_inflight = max_inflight
        self.on_published = on_published
        self.connected = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._statuses: dict[str, bytes] = {}
        self._client: paho.Client | None = None
        self._acks: deque[int] = deque()
        self._ack_event = threading.Event()
        self._drained = threading.Event()
        self._inflight: dict[int, tuple[int, int]] = {}

    def set_status(self, topic: str, payload: bytes) -> None:
        """Remember a device's status and publish it now when connected (retained, QoS 1)."""
        with self._lock:
            self._statuses[topic] = payload
            client = self._client if self.connected.is_set() else None
        if client is not None:
            client.publish(topic, payload, qos=1, retain=True)

    def publish_now(self, topic: str, payload: bytes) -> None:
        """Publish a retained status once, when connected (the agent's heartbeat)."""
        with self._lock:
            client = self._client if self.connected.is_set() else None
        if client is not None:
            client.publish(topic, payload, qos=1, retain=True)

    def drain(self, timeout_s: float) -> bool:
        """Wait while connected until the queue is empty; whether it is."""
        deadline = time.monotonic() + timeout_s
        while self.queue.depth()[0] and self.connected.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._drained.wait(min(remaining, 0.1))
            self._drained.clear()
        return self.queue.depth()[0] == 0

    def stop(self, final: list[tuple[str, bytes]]) -> None:
        """Publish ``final`` statuses (retained) if connected, disconnect cleanly, end."""
        with self._lock:
            client = self._client if self.connected.is_set() else None
        if client is not None:
            infos = [client.publish(t, p, qos=1, retain=True) for t, p in final]
            for info in infos:
                with contextlib.suppress(RuntimeError, ValueError):
                    info.wait_for_publish(2.0)
        self._stopping.set()
        self.queue.wake()
        self._ack_event.set()
        self.join(10)

    def run(self) -> None:
        """Connect, forward, reconnect; until stopped."""
        backoff = 0.5
        while not self._stopping.is_set():
            client = self._new_client()
            try:
                connect_paho(client, self.mqtt)
            except BrokerConnectError as exc:
                logger.warning("broker unavailable, retrying in %.1f s: %s", backoff, exc)
                self._stopping.wait(backoff)
                backoff = min(RECONNECT_MAX_S, backoff * 2)
                continue
            backoff = 0.5
            logger.info("connected to %s:%d", self.mqtt.host, self.mqtt.port)
            try:
                self._forward(client)
            finally:
                self.connected.clear()
                with self._lock:
                    self._client = None
                client.loop_stop()
                with contextlib.suppress(OSError):
                    client.disconnect()

    def _new_client(self) -> paho.Client:
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=self.mqtt.client_id, clean_session=True
        )
        client.max_inflight_messages_set(self.max_inflight + 64)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(1, int(RECONNECT_MAX_S))
        client.will_set(self.will_topic, status_payload(False, reason="lwt"), qos=1, retain=True)
        client.on_publish = self._on_publish
        client.on_disconnect = self._on_disconnect
        return client

    def _on_publish(self, _c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        # Only queued here: the forwarder thread owns the in-flight map (see _settle).
        self._acks.append(mid)
        self._ack_event.set()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not self._stopping.is_set():
            logger.warning("broker connection lost (%s): queueing until it returns", reason)
        self.connected.clear()
        self._ack_event.set()
        self.queue.wake()

    def _forward(self, client: paho.Client) -> None:
        client.on_disconnect = self._on_disconnect
        self._inflight.clear()
        self._acks.clear()
        with self._lock:
            self._client = client
            statuses = list(self._statuses.items())
        self.connected.set()
        client.publish(self.will_topic, self.birth(), qos=1, retain=True)
        for topic, payload in statuses:
            client.publish(topic, payload, qos=1, retain=True)
        last_id = 0
        while self.connected.is_set() and not self._stopping.is_set():
            self._settle()
            room = self.max_inflight - len(self._inflight)
            if room <= 0:
                self._ack_event.wait(0.2)
                self._ack_event.clear()
                continue
            rows = self.queue.peek_after(last_id, room, 0.2)
            for row in rows:
                if not self.connected.is_set():
                    break
                # No lock of ours around publish: paho calls on_publish holding its own.
                info = client.publish(row.topic, row.payload, qos=1)
                if info.rc != paho.MQTT_ERR_SUCCESS:
                    break
                self._inflight[info.mid] = (row.id, row.readings)
                last_id = row.id
        self._settle()

    def _settle(self) -> None:
        acked: list[tuple[int, int]] = []
        while self._acks:
            entry = self._inflight.pop(self._acks.popleft(), None)
            if entry is not None:  # None: a status message's PUBACK
                acked.append(entry)
        if acked:
            self.queue.remove([row_id for row_id, _ in acked])
            self.on_published(len(acked), sum(n for _, n in acked))
            self._drained.set()


class WillHolders:
    """One connection per device that carries only the device's Last Will."""

    def __init__(self, mqtt: MqttSettings) -> None:
        self.mqtt = mqtt
        self._clients: list[paho.Client] = []

    def add(self, topic: str) -> None:
        """Hold the will ``{"online": false, "reason": "lwt"}`` for ``topic``."""
        tag = uuid.uuid5(uuid.NAMESPACE_URL, topic).hex[:12]
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{self.mqtt.client_id}-w{tag}")
        client.will_set(topic, status_payload(False, reason="lwt"), qos=1, retain=True)
        ctx = client_context(self.mqtt)
        if ctx is not None:
            client.tls_set_context(ctx)
        if self.mqtt.username:
            password = self.mqtt.password.get_secret_value() if self.mqtt.password else None
            client.username_pw_set(self.mqtt.username, password)
        client.reconnect_delay_set(1, int(RECONNECT_MAX_S))
        client.connect_async(self.mqtt.host, self.mqtt.port, keepalive=self.mqtt.keepalive_s)
        client.loop_start()
        self._clients.append(client)

    def close(self) -> None:
        """Disconnect cleanly: the broker discards the wills."""
        for client in self._clients:
            with contextlib.suppress(OSError):
                client.disconnect()
            client.loop_stop()
        self._clients.clear()

