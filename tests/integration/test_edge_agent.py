"""The edge agent as users start it (``stocksense edge --config``), against simulated devices,
the real broker, ingest and InfluxDB: exact readings after scripted picks and faults.

The broker outage is in ``test_edge_outage.py``, LLRP readers in ``test_edge_llrp.py``, the
ledger after picks in ``test_edge_inventory.py``."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.influx import query_sync, rows
from core.mqtt_settings import MqttSettings
from core.settings import Settings
from ingest.service import IngestService
from simulators.modbus_devices import ThreadedDevices
from simulators.serial_scale import SerialScale
from stocksense.devservices import free_port
from tests.conftest import wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _site() -> str:
    return f"edge{uuid.uuid4().hex[:8]}"


def only_site(settings: Settings, site: str, port: int | None = None) -> Settings:
    """Ingest settings for ``site`` alone (optionally on another broker port)."""
    update: dict[str, Any] = {"sites": (site,)}
    if port is not None:
        update["port"] = port
    mqtt: MqttSettings = settings.mqtt.model_copy(update=update)
    return settings.model_copy(update={"mqtt": mqtt})


class Agent:
    """``stocksense edge --config`` in a subprocess."""

    def __init__(self, tmp: Path, config: dict[str, Any]) -> None:
        self.path = tmp / "edge.yaml"
        self.path.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.log = tmp / "edge.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Agent:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stocksense.cli", "edge", "--config", str(self.path)],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()  # never leave it behind, then say why the test failed
            proc.wait(10)
            pytest.fail(f"stocksense edge did not stop within 20 s of {sig.name}")


@pytest.fixture
def modbus() -> Iterator[ThreadedDevices]:
    sim = ThreadedDevices(free_port()).start()
    yield sim
    sim.stop()


def shelf_config(site: str, broker_port: int, modbus_port: int, queue: Path) -> dict[str, Any]:
    stable = {"stable_register": 8}
    return {
        "site": site,
        "agent_id": "gw",
        "heartbeat_s": 5,
        "broker": {"port": broker_port},
        "queue": {"path": str(queue)},
        "devices": [
            {
                "name": "shelf-1",
                "protocol": "modbus_tcp",
                "kind": "weight",
                "host": "127.0.0.1",
                "port": modbus_port,
                "unit_id": 1,
                "poll_interval_s": 0.1,
                "timeout_s": 0.5,
                "retries": 0,
                "batch_interval_s": 0,
                "filter": {"deadband_g": 5, "heartbeat_s": 3600, "settled_repeats": 1},
                "registers": {
                    f"c{n + 1}": {
                        "address": 2 * n,
                        "type": "float32",
                        "unit": "kg",
                        "stable_bit": n,
                        **stable,
                    }
                    for n in range(4)
                },
            },
            {
                "name": "probe-1",
                "protocol": "modbus_tcp",
                "kind": "temp",
                "host": "127.0.0.1",
                "port": modbus_port,
                "unit_id": 2,
                "poll_interval_s": 0.2,
                "timeout_s": 0.5,
                "retries": 0,
                "offline_after": 2,
                "registers": {
                    "t1": {"address": 0, "function": "input", "type": "int16", "scale": 0.1}
                },
            },
        ],
    }


def weights(settings: Settings, site: str) -> list[dict[str, Any]]:
    return rows(
        query_sync(
            settings.influx,
            f"SELECT grams, stable, seq, cell FROM weight WHERE site='{site}' ORDER BY time",
        )
    )


def statuses(settings: Settings, site: str, device: str) -> list[dict[str, Any]]:
    return rows(
        query_sync(
            settings.influx,
            "SELECT online, reason FROM device_status"
            f" WHERE site='{site}' AND device='{device}' ORDER BY time",
        )
    )


def run_with_ingest(settings: Settings, body: Callable[[IngestService], Any]) -> None:
    async def scenario() -> None:
        service = IngestService(settings)
        await service.start()
        try:
            await asyncio.to_thread(body, service)
        finally:
            await service.stop()

    asyncio.run(scenario())


def test_shelf_picks_land_exactly_and_faults_stay_local(
    settings: Settings, stack: Any, modbus: ThreadedDevices, tmp_path: Path
) -> None:
    site = _site()
    shelf = modbus.devices.shelf
    for n, kg in enumerate([10.0, 5.0, 2.5, 0.0]):
        shelf.set_kg(n, kg, unstable_reads=0)
    agent = Agent(tmp_path, shelf_config(site, stack.mqtt_port, modbus.port, tmp_path / "q.sqlite"))
    ingest = only_site(settings, site)

    def scenario(_service: IngestService) -> None:
        agent.start()
        try:
            wait_for(lambda: len(weights(settings, site)) >= 4, what="the first four cells")
            shelf.pick(0, 0.5)  # c1 10 kg -> 9.5 kg, unstable for two reads
            wait_for(lambda: len(weights(settings, site)) >= 5, what="the pick")
            # The transmitter answers with exception codes, then garbage: the shelf goes on.
            from pymodbus.constants import ExcCodes  # noqa: PLC0415

            modbus.devices.temp.faults.exception = ExcCodes.DEVICE_FAILURE
            wait_for(
                lambda: [s["online"] for s in statuses(settings, site, "probe-1")][-1:] == [False],
                what="probe offline",
            )
            shelf.pick(1, 1.25)  # c2 5 kg -> 3.75 kg
            wait_for(lambda: len(weights(settings, site)) >= 6, what="the second pick")
            modbus.devices.temp.faults.exception = None
            modbus.devices.temp.faults.garbage = True
            wait_for(
                lambda: [s["online"] for s in statuses(settings, site, "probe-1")][-1:] == [True],
                what="probe online again",
            )
            shelf.pick(3, -0.75)  # c4 0 kg -> 0.75 kg
            wait_for(lambda: len(weights(settings, site)) >= 7, what="the put")
        finally:
            agent.stop()

    run_with_ingest(ingest, scenario)
    got = [(r["cell"], r["grams"], r["stable"], r["seq"]) for r in weights(settings, site)]
    assert got == [
        ("c1", 10000.0, True, 0),
        ("c2", 5000.0, True, 0),
        ("c3", 2500.0, True, 0),
        ("c4", 0.0, True, 0),
        ("c1", 9500.0, True, 1),
        ("c2", 3750.0, True, 2),
        ("c4", 750.0, True, 3),
    ]
    temps = rows(
        query_sync(settings.influx, f"SELECT celsius FROM temperature WHERE site='{site}'")
    )
    assert temps
    assert {t["celsius"] for t in temps} == {4.0}  # 3276.7 °C garbage never stored
    reasons = [s["reason"] for s in statuses(settings, site, "probe-1") if s["online"] is False]
    assert any("exception code 4" in (r or "") for r in reasons)
    log = agent.log.read_text()
    assert "value rejected: t1: value 3276.7 outside the physical range" in log


def test_serial_scale_end_to_end(settings: Settings, stack: Any, tmp_path: Path) -> None:
    site = _site()
    scale = SerialScale(12.345).start()
    config = {
        "site": site,
        "agent_id": "gw",
        "broker": {"port": stack.mqtt_port},
        "queue": {"path": str(tmp_path / "q.sqlite")},
        "devices": [
            {
                "name": "scale-1",
                "protocol": "serial_scale",
                "serial_port": scale.device,
                "poll_interval_s": 0.1,
                "timeout_s": 0.3,
                "retries": 0,
                "batch_interval_s": 0,
                "command": "SI",
                "filter": {"deadband_g": 1, "heartbeat_s": 3600, "settled_repeats": 1},
            }
        ],
    }
    agent = Agent(tmp_path, config)

    def scenario(_service: IngestService) -> None:
        agent.start()
        try:
            wait_for(lambda: len(weights(settings, site)) >= 1, what="first weight")
            scale.fault = "half"
            wait_for(lambda: "half line" in agent.log.read_text(), what="a half line logged")
            scale.fault = "garbage"
            wait_for(lambda: "not ASCII" in agent.log.read_text(), what="garbage logged")
            scale.fault = "busy"
            wait_for(lambda: "scale busy" in agent.log.read_text(), what="busy logged")
            scale.fault = None
            scale.pick(2.0)
            wait_for(lambda: len(weights(settings, site)) >= 2, what="the pick")
            scale.pick(-0.5)
            wait_for(lambda: len(weights(settings, site)) >= 3, what="the put")
        finally:
            agent.stop()
            scale.stop()

    run_with_ingest(only_site(settings, site), scenario)
    got = [(r["cell"], r["grams"], r["stable"], r["seq"]) for r in weights(settings, site)]
    assert got == [("c1", 12345.0, True, 0), ("c1", 10345.0, True, 1), ("c1", 10845.0, True, 2)]
