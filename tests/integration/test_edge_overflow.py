"""A queue over its bound while the broker is away: the oldest messages go first, and how many
(messages and readings) is on the agent's metrics and, once the broker is back, on its retained
status."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pymodbus.constants import ExcCodes

from simulators.modbus_devices import ThreadedDevices
from stocksense.devservices import free_port, mosquitto
from tests.conftest import wait_for
from tests.integration.test_edge_agent import Agent, _site

pytestmark = pytest.mark.integration

MAX_BYTES = 8192


def counters(path: Path) -> dict[str, int]:
    """The queue's persisted counters; none before the agent created the file."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return {name: int(v) for name, v in db.execute("SELECT name, value FROM counters")}
    except sqlite3.OperationalError:
        return {}


def queued_seqs(path: Path) -> list[int]:
    with sqlite3.connect(path) as db:
        payloads = db.execute("SELECT payload FROM outbox ORDER BY id").fetchall()
    return [json.loads(p[0])["seq"] for p in payloads]


def next_seq(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT next FROM seq").fetchone()[0])


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def test_overflow_drops_oldest_and_reports_how_many(tmp_path: Path) -> None:
    site = _site()
    queue = tmp_path / "q.sqlite"
    modbus = ThreadedDevices(free_port()).start()
    broker = mosquitto(tmp_path / "broker")  # not started: the agent queues from the first poll
    metrics_port = free_port()
    config = {
        "site": site,
        "agent_id": "gw",
        "heartbeat_s": 1,
        "metrics_port": metrics_port,
        "broker": {"port": broker.port},
        "queue": {"path": str(queue), "max_bytes": MAX_BYTES},
        "devices": [
            {
                "name": "probe-1",
                "protocol": "modbus_tcp",
                "kind": "temp",
                "host": "127.0.0.1",
                "port": modbus.port,
                "unit_id": 2,
                "poll_interval_s": 0.02,
                "timeout_s": 0.5,
                "retries": 0,
                "offline_after": 1000,
                "batch_interval_s": 0,  # one message per poll
                "registers": {
                    f"t{n + 1}": {"address": n, "function": "input", "type": "int16", "scale": 0.1}
                    for n in range(4)
                },
            }
        ],
    }
    agent = Agent(tmp_path, config)
    status: list[dict[str, Any]] = []
    lock = threading.Lock()

    def on_message(_c: Any, _u: Any, message: Any) -> None:
        with lock:
            status.append(json.loads(message.payload))

    listener = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"l-{uuid.uuid4().hex[:8]}")
    listener.on_message = on_message
    try:
        agent.start()
        wait_for(lambda: counters(queue).get("dropped_messages", 0) >= 100, what="overflow")
        modbus.devices.temp.faults.exception = ExcCodes.DEVICE_FAILURE  # no more readings
        wait_for(
            lambda: (
                metric(metrics_port, "stocksense_edge_dropped_messages")
                == counters(queue)["dropped_messages"]
            ),
            what="the metric caught up with the last drop",
        )
        dropped = counters(queue)["dropped_messages"]
        lost = counters(queue)["dropped_readings"]
        made = next_seq(queue)
        kept = queued_seqs(queue)
        # The newest messages are kept, in order; exactly the oldest ones are gone.
        assert kept == list(range(made - len(kept), made))
        assert dropped == made - len(kept)
        assert lost == 4 * dropped
        assert metric(metrics_port, "stocksense_edge_dropped_readings") == lost
        assert metric(metrics_port, "stocksense_edge_queue_bytes") <= MAX_BYTES
        assert metric(metrics_port, "stocksense_edge_queue_messages") == len(kept)

        broker.start()
        listener.connect("127.0.0.1", broker.port)
        listener.subscribe(f"stocksense/v1/{site}/temp/gw/status", qos=1)
        listener.loop_start()
        wait_for(lambda: not queued_seqs(queue), timeout=30, what="the queue sent")
        expected = (
            f"queue_overflow: dropped {dropped} oldest messages ({lost} readings)"
            " over the queue bound"
        )

        def reasons() -> list[str | None]:
            with lock:
                return [s.get("reason") for s in status if s.get("online")]

        wait_for(lambda: expected in reasons(), what="the overflow on the agent's status")
    finally:
        listener.loop_stop()
        agent.stop()
        broker.stop()
        modbus.stop()
    assert counters(queue)["dropped_messages"] == dropped  # nothing dropped once connected
