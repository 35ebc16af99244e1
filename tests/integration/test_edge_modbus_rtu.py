"""``stocksense edge --config`` polling a Modbus RTU shelf over a serial line: the simulated
devices served by pymodbus's RTU server on one end of a null modem (two ptys), the agent on the
other, the session's Mosquitto, ingest and InfluxDB. Exact weights after scale and offset, a
change in the registers as a new reading, and a pulled cable published offline on the device's
retained status, then online again.

Parity is N with two stop bits (the Modbus RTU framing without parity): a pty refuses parity."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from core import topics
from core.influx import query_sync, rows
from core.models import StatusMessage
from core.settings import Settings
from ingest.service import IngestService
from simulators.modbus_devices import SHELF_UNIT, TEMP_UNIT, SerialLine, ThreadedDevices
from simulators.null_modem import NullModem
from stocksense.devservices import LocalStack
from tests.conftest import wait_for
from tests.integration.test_edge_agent import (
    Agent,
    _site,
    only_site,
    run_with_ingest,
    statuses,
    weights,
)

pytestmark = pytest.mark.integration

DEVICE = "shelf-rtu"
BAUDRATE = 19200


@pytest.fixture
def modem() -> Iterator[NullModem]:
    cable = NullModem().start()
    yield cable
    cable.stop()


@pytest.fixture
def rtu(modem: NullModem) -> Iterator[ThreadedDevices]:
    sim = ThreadedDevices(line=SerialLine(modem.b, BAUDRATE, "N", 2)).start()
    yield sim
    sim.stop()


def rtu_config(site: str, broker_port: int, serial_port: str, queue: Path) -> dict[str, Any]:
    """The simulator's cell 4 as float32 kg, its cell 1 as int32 grams read as kg (scale 0.001)
    less a 250 g tare.

    Cell 4's value and stable flag (6..8) come in one request: the simulator ages a change at
    every request, so a flag read in a request of its own could belong to another moment."""
    return {
        "site": site,
        "agent_id": "gw",
        "heartbeat_s": 5,
        "broker": {"port": broker_port},
        "queue": {"path": str(queue)},
        "devices": [
            {
                "name": DEVICE,
                "protocol": "modbus_rtu",
                "kind": "weight",
                "serial_port": serial_port,
                "baudrate": BAUDRATE,
                "parity": "N",
                "stopbits": 2,
                "unit_id": SHELF_UNIT,
                "poll_interval_s": 0.1,
                "timeout_s": 1.0,
                "retries": 0,
                "offline_after": 2,
                "batch_interval_s": 0,
                "filter": {"deadband_g": 5, "heartbeat_s": 3600, "settled_repeats": 1},
                "registers": {
                    "c4": {
                        "address": 6,
                        "type": "float32",
                        "word_order": "big",
                        "unit": "kg",
                        "stable_register": 8,
                        "stable_bit": 3,
                    },
                    "c1": {
                        "address": 100,
                        "type": "int32",
                        "word_order": "big",
                        "scale": 0.001,
                        "offset": -0.25,
                        "unit": "kg",
                        "stable_register": 8,
                        "stable_bit": 0,
                    },
                },
            }
        ],
    }


def retained_status(port: int, topic: str, timeout: float = 10.0) -> StatusMessage | None:
    """The status retained on ``topic``, as a client connecting now receives it."""
    got: list[StatusMessage] = []
    arrived = threading.Event()

    def on_message(_c: Any, _u: Any, message: Any) -> None:
        if message.retain and message.payload:
            got.append(StatusMessage.model_validate_json(message.payload))
        arrived.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"r-{uuid.uuid4().hex[:8]}")
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    try:
        arrived.wait(timeout)
    finally:
        client.loop_stop()
        client.disconnect()
    return got[0] if got else None


def test_rtu_shelf_readings_and_a_pulled_cable(
    settings: Settings, stack: LocalStack, modem: NullModem, rtu: ThreadedDevices, tmp_path: Path
) -> None:
    site = _site()
    shelf = rtu.devices.shelf
    shelf.set_kg(3, 7.25, unstable_reads=0)  # c4: 7,250 g
    shelf.set_kg(0, 3.5, unstable_reads=0)  # c1: 3,500 g in the registers, 3,250 g net of tare
    status_topic = topics.build(site, "weight", DEVICE, "status")
    agent = Agent(tmp_path, rtu_config(site, stack.mqtt_port, modem.a, tmp_path / "q.sqlite"))

    def online() -> list[bool]:
        return [s["online"] for s in statuses(settings, site, DEVICE)]

    def retained_online(expected: bool) -> bool:
        status = retained_status(stack.mqtt_port, status_topic)
        return status is not None and status.online is expected

    def scenario(_service: IngestService) -> None:
        agent.start()
        try:
            wait_for(lambda: len(weights(settings, site)) >= 2, 60, what="both cells")
            shelf.pick(3, 1.5)  # c4 7.25 kg -> 5.75 kg, unstable for two reads
            wait_for(lambda: len(weights(settings, site)) >= 3, 30, what="the pick")
            wait_for(lambda: retained_online(True), 30, what="retained online")

            modem.unplug()
            wait_for(lambda: online()[-1:] == [False], 30, what="offline stored")
            reads_cut = shelf.reads
            wait_for(lambda: retained_online(False), 30, what="retained offline")
            shelf.pick(0, 0.5)  # c1 3.5 kg -> 3.0 kg while nobody can read it
            wait_for(lambda: "(3 in a row)" in agent.log.read_text(), 30, what="asked again")
            assert shelf.reads == reads_cut  # the agent kept asking: nothing crossed the cable

            modem.plug()
            wait_for(lambda: online()[-1:] == [True], 30, what="online again")
            wait_for(lambda: retained_online(True), 30, what="retained online again")
            wait_for(lambda: len(weights(settings, site)) >= 4, 30, what="the change read")
        finally:
            agent.stop()

    run_with_ingest(only_site(settings, site), scenario)
    got = sorted((r["seq"], r["cell"], r["grams"], r["stable"]) for r in weights(settings, site))
    assert got == [
        (0, "c1", 3250.0, True),
        (0, "c4", 7250.0, True),
        (1, "c4", 5750.0, True),
        (2, "c1", 2750.0, True),
    ]
    reasons = [
        s["reason"]
        for s in statuses(settings, site, DEVICE)
        if s["online"] is False and s["reason"] != "agent stopped"
    ]
    assert reasons
    assert all(f"{modem.a}: no answer" in (r or "") for r in reasons)


def test_two_units_on_one_rtu_line_take_turns(
    settings: Settings, stack: LocalStack, modem: NullModem, rtu: ThreadedDevices, tmp_path: Path
) -> None:
    # An RS-485 bus: the shelf (unit 1) and the transmitter (unit 2) on one port, polled fast
    # enough that their requests would collide if the agent did not take turns on the line.
    site = _site()
    rtu.devices.shelf.set_kg(3, 7.25, unstable_reads=0)
    rtu.devices.temp.celsius[0] = 4.5
    config = rtu_config(site, stack.mqtt_port, modem.a, tmp_path / "q.sqlite")
    shelf = config["devices"][0]
    shelf["registers"] = {"c4": shelf["registers"]["c4"]}
    # A busy machine must not pass for a collision: time enough for each answer.
    shelf.update(poll_interval_s=0.02, timeout_s=3.0, offline_after=5)
    config["devices"].append(
        {
            "name": "probe-rtu",
            "protocol": "modbus_rtu",
            "kind": "temp",
            "serial_port": modem.a,
            "baudrate": BAUDRATE,
            "parity": "N",
            "stopbits": 2,
            "unit_id": TEMP_UNIT,
            "poll_interval_s": 0.02,
            "timeout_s": 3.0,
            "retries": 0,
            "offline_after": 5,
            "batch_interval_s": 0,
            "registers": {"t0": {"address": 0, "type": "int16", "scale": 0.1}},
        }
    )
    agent = Agent(tmp_path, config)

    def temperatures() -> list[float]:
        found = rows(
            query_sync(settings.influx, f"SELECT celsius FROM temperature WHERE site='{site}'")
        )
        return [r["celsius"] for r in found]

    def scenario(_service: IngestService) -> None:
        agent.start()
        try:
            wait_for(lambda: len(weights(settings, site)) >= 1, 60, what="the shelf")
            wait_for(lambda: len(temperatures()) >= 20, 60, what="the probe, many times")
            rtu.devices.temp.celsius[0] = 5.0
            wait_for(lambda: 5.0 in temperatures(), 30, what="the probe's change")
        finally:
            agent.stop()

    run_with_ingest(only_site(settings, site), scenario)
    assert [(r["cell"], r["grams"]) for r in weights(settings, site)] == [("c4", 7250.0)]
    assert set(temperatures()) == {4.5, 5.0}
    # Neither unit ever failed to answer: no request was lost in a collision.
    for device in (DEVICE, "probe-rtu"):
        assert [s["online"] for s in statuses(settings, site, device)] == [True, False]
