"""A 60 s broker outage at 1,000 readings/s, with a SIGKILL of the agent in the middle of it:
afterwards every queued reading is in InfluxDB exactly once, in order per sensor.

The agent polls a simulated Modbus transmitter 20 times a second for 50 registers (1,000
readings/s) through the production path: driver, batch, SQLite queue, forwarder, a Mosquitto of
the test's own (stopped and started again), ingest, InfluxDB. Register 10 is the transmitter's
read counter, so sensor ``n`` rises by one with every poll: its stored values show both the
order and that no poll was stored twice or lost after it was queued.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from core.influx import query_sync, rows
from core.settings import Settings
from ingest.service import IngestService
from simulators.modbus_devices import ThreadedDevices
from stocksense.devservices import free_port, mosquitto
from tests.conftest import wait_for
from tests.integration.test_edge_agent import Agent, _site, only_site, run_with_ingest

pytestmark = pytest.mark.integration

SENSORS = 50  # registers 10..59 per poll
POLL_S = 0.05  # 20 polls/s x 50 = 1,000 readings/s
OUTAGE_READINGS = 60_000  # 60 s at 1,000 readings/s


def queued_readings(path: Path) -> int:
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT value FROM counters WHERE name='queued_readings'").fetchone()
    return int(row[0]) if row else 0


def queue_depth(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])


def transmitter_config(
    site: str, broker_port: int, modbus_port: int, queue: Path
) -> dict[str, Any]:
    registers: dict[str, Any] = {
        "n": {"address": 10, "function": "input", "type": "uint16", "scale": 0.01}
    }
    registers.update(
        {
            f"s{i}": {"address": 10 + i, "function": "input", "type": "int16", "scale": 0.1}
            for i in range(1, SENSORS)
        }
    )
    return {
        "site": site,
        "agent_id": "gw",
        "heartbeat_s": 5,
        "broker": {"port": broker_port},
        "queue": {"path": str(queue), "synchronous": "full"},
        "devices": [
            {
                "name": "probe-1",
                "protocol": "modbus_tcp",
                "kind": "temp",
                "host": "127.0.0.1",
                "port": modbus_port,
                "unit_id": 2,
                "poll_interval_s": POLL_S,
                "timeout_s": 0.5,
                "retries": 0,
                "offline_after": 1000,
                "batch_interval_s": 0.2,  # about 200 readings per message
                "registers": registers,
            }
        ],
    }


def test_sixty_second_outage_at_1000_readings_per_second(
    settings: Settings, tmp_path: Path
) -> None:
    site = _site()
    queue = tmp_path / "q.sqlite"
    modbus = ThreadedDevices(free_port()).start()
    broker = mosquitto(tmp_path / "broker").start()
    agent = Agent(tmp_path, transmitter_config(site, broker.port, modbus.port, queue))
    ingest = only_site(settings, site, broker.port)

    def count() -> int:
        got = rows(
            query_sync(
                settings.influx, f"SELECT COUNT(celsius) FROM temperature WHERE site='{site}'"
            )
        )
        return int(got[0]["count"]) if got else 0

    figures: dict[str, float] = {}

    def scenario(_service: IngestService) -> None:
        agent.start()
        wait_for(lambda: count() >= 2_000, what="readings before the outage")
        broker.stop()
        started = time.monotonic()
        at_outage = queued_readings(queue)
        wait_for(
            lambda: queued_readings(queue) >= at_outage + OUTAGE_READINGS // 2,
            timeout=60,
            what="half the outage queued",
        )
        agent.stop(signal.SIGKILL)  # mid-outage
        figures["queued_at_kill"] = queue_depth(queue)
        agent.start()
        wait_for(
            lambda: queued_readings(queue) >= at_outage + OUTAGE_READINGS,
            timeout=70,
            what="60,000 readings queued through the outage",
        )
        figures["outage_s"] = time.monotonic() - started
        figures["outage_readings"] = queued_readings(queue) - at_outage
        figures["queued_at_restart"] = queue_depth(queue)
        broker.start()
        wait_for(lambda: queue_depth(queue) < 20, timeout=60, what="the queue replayed")
        agent.stop()
        figures["queued_total"] = queued_readings(queue)
        wait_for(
            lambda: count() == figures["queued_total"], timeout=60, what="every reading stored"
        )

    try:
        run_with_ingest(ingest, scenario)
    finally:
        agent.stop(signal.SIGKILL)  # only if a failure left it running
        broker.stop()
        modbus.stop()
    print(f"edge outage: {figures}")
    assert figures["outage_s"] <= 75  # about 1,000 readings/s through the outage
    assert figures["queued_at_kill"] >= 100
    assert queue_depth(queue) == 0
    counter = rows(
        query_sync(
            settings.influx,
            f"SELECT celsius, seq FROM temperature WHERE site='{site}' AND sensor='n'"
            " ORDER BY time",
        )
    )
    polls = len(counter)
    assert polls * SENSORS == figures["queued_total"] == count()
    values = [round(r["celsius"] * 100) for r in counter]
    assert values == sorted(set(values))  # each poll once, in the order it was read
    seqs = [r["seq"] for r in counter]
    assert seqs == sorted(seqs)
    assert sorted(set(seqs)) == list(range(seqs[-1] + 1))  # every message from 0, none missing
    per_sensor = rows(
        query_sync(
            settings.influx,
            f"SELECT COUNT(celsius) FROM temperature WHERE site='{site}' GROUP BY sensor",
        )
    )
    assert len(per_sensor) == SENSORS
    assert {int(r["count"]) for r in per_sensor} == {polls}
