"""``stocksense edge`` against a simulated LLRP reader and the session's Mosquitto: tag reports
become canonical RFID messages (dedup per EPC and antenna, exact read counts), and a reader that
restarts is published offline, reconnected, and reports again; so is one that hangs."""

from __future__ import annotations

import itertools
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from core.models import RfidMessage, StatusMessage
from simulators.llrp_reader import POWER_TABLE_DBM, SimulatedReader
from stocksense.devservices import LocalStack, free_port
from tests.conftest import wait_for
from tests.integration.test_edge_agent import Agent

pytestmark = pytest.mark.integration

EPC_A = "3034257BF7194E4000003039"
EPC_B = "3034257BF7194E400000303A"
EPC_C = "E2801160600002084E1A2B3C"
WINDOW_S = 1.0


class Listener:
    """Every message under one site, decoded with the contract's own models."""

    def __init__(self, port: int, site: str) -> None:
        self.data: list[RfidMessage] = []
        self.status: dict[str, list[StatusMessage]] = {}
        self._lock = threading.Lock()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"l-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"stocksense/v1/{site}/#", qos=1)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, message: Any) -> None:
        device, channel = message.topic.split("/")[-2:]
        with self._lock:
            if channel == "data":
                self.data.append(RfidMessage.model_validate_json(message.payload))
            elif message.payload:
                status = StatusMessage.model_validate_json(message.payload)
                self.status.setdefault(device, []).append(status)

    def reads(self) -> list[tuple[str, int, int, float | None, int]]:
        """(epc, antenna, count, rssi, ts) of every read so far, in the order published."""
        with self._lock:
            return [
                (r.epc, r.antenna, r.count, r.rssi, r.ts or 0) for m in self.data for r in m.reads
            ]

    def counts(self) -> Counter[tuple[str, int]]:
        total: Counter[tuple[str, int]] = Counter()
        for epc, antenna, count, _, _ in self.reads():
            total[(epc, antenna)] += count
        return total

    def online(self, device: str) -> list[bool]:
        with self._lock:
            return [s.online for s in self.status.get(device, [])]

    def seqs(self) -> list[int]:
        with self._lock:
            return [m.seq for m in self.data]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def reader() -> Iterator[SimulatedReader]:
    sim = SimulatedReader(free_port()).start()
    yield sim
    sim.stop()


def llrp_config(site: str, broker_port: int, reader_port: int, queue: Path) -> dict[str, Any]:
    return {
        "site": site,
        "agent_id": "gw",
        "broker": {"port": broker_port},
        "queue": {"path": str(queue)},
        "devices": [
            {
                "name": "dock-1",
                "protocol": "llrp",
                "host": "127.0.0.1",
                "port": reader_port,
                "antennas": [1, 2],
                "report_interval_s": 0.2,
                "dedup_window_s": WINDOW_S,
                "tx_power_dbm": 20.0,
                "keepalive_s": 1,
                "poll_interval_s": 0.1,
                "timeout_s": 1.0,
                "retries": 0,
                "offline_after": 2,
                "batch_interval_s": 0,
            }
        ],
    }


def test_tag_reports_become_rfid_messages_and_reader_restart_reconnects(
    stack: LocalStack, reader: SimulatedReader, tmp_path: Path
) -> None:
    site = f"llrp{uuid.uuid4().hex[:8]}"
    reader.place(EPC_A, 1, rssi=-50, reads=3)
    reader.place(EPC_A, 2, rssi=-71)
    reader.place(EPC_B, 2, rssi=-61, reads=2)
    reader.place(EPC_C, 3)  # antenna 3 is not in the agent's ROSpec: never reported
    listener = Listener(stack.mqtt_port, site)
    agent = Agent(tmp_path, llrp_config(site, stack.mqtt_port, reader.port, tmp_path / "q.sqlite"))
    try:
        agent.start()
        wait_for(lambda: listener.online("dock-1")[-1:] == [True], what="reader online")
        wait_for(lambda: len(listener.reads()) >= 9, what="three windows of each pair")
        reader.clear()
        # Once the reader reports no tags, the open windows close: every read it sent is counted.
        wait_for(lambda: listener.counts() == reader.sent, what="every reported read published")
        first = listener.reads()
        assert {(e, a) for e, a, *_ in first} == {(EPC_A, 1), (EPC_A, 2), (EPC_B, 2)}
        assert reader.sent[(EPC_A, 1)] >= 9  # three or more reports of three reads each
        # Dedup: one read per pair and window, carrying the reads of several reports.
        by_pair: dict[tuple[str, int], list[tuple[int, float | None, int]]] = {}
        for epc, antenna, count, rssi, ts in first:
            by_pair.setdefault((epc, antenna), []).append((count, rssi, ts))
        for pair, reads in by_pair.items():
            times = [ts for _, _, ts in reads]
            assert times == sorted(times), pair
            # the last window was cut short by reader.clear(); every other one spans WINDOW_S
            whole = itertools.pairwise(times[:-1])
            assert all(b - a >= 0.5 * WINDOW_S * 1000 for a, b in whole), pair
            assert max(count for count, _, _ in reads) >= 2 * (3 if pair == (EPC_A, 1) else 1)
        assert {rssi for _, rssi, _ in by_pair[(EPC_A, 1)]} == {-50.0}
        assert {rssi for _, rssi, _ in by_pair[(EPC_B, 2)]} == {-61.0}
        assert all(count % 2 == 0 for count, _, _ in by_pair[(EPC_B, 2)])
        # The ROSpec the agent set up: its antennas, 20 dBm, reports every 200 ms.
        rospec = reader.rospec
        assert rospec is not None
        aispec = rospec["AISpec"][0]
        assert aispec["AntennaID"] == [1, 2]
        assert aispec["AISpecStopTrigger"]["TagObservationTrigger"]["Timeout"] == 200
        configs = aispec["InventoryParameterSpec"][0]["AntennaConfiguration"]
        powers = {c["AntennaID"]: c["RFTransmitter"]["TransmitPower"] for c in configs}
        assert {a: POWER_TABLE_DBM[i - 1] for a, i in powers.items()} == {1: 20.0, 2: 20.0}

        # The reader restarts: offline while it is away, online and reporting once it is back.
        reader.stop()
        wait_for(lambda: listener.online("dock-1")[-1:] == [False], what="reader offline")
        before = len(listener.reads())
        reader.place(EPC_C, 1, rssi=-40)
        reader.start()
        wait_for(lambda: listener.online("dock-1")[-1:] == [True], what="reader online again")
        wait_for(lambda: len(listener.reads()) > before, what="reports after the restart")
        assert reader.connections == 2
        assert {(e, a) for e, a, *_ in listener.reads()[before:]} == {(EPC_C, 1)}
        reader.clear()
        wait_for(lambda: listener.counts() == reader.sent, what="every read after the restart")

        # A reader that hangs (the connection stays up, nothing comes back): after three missed
        # keepalives the agent reconnects, gets no session, and publishes the reader offline.
        offline_before = listener.online("dock-1").count(False)
        reader.silent = True
        wait_for(
            lambda: listener.online("dock-1").count(False) > offline_before,
            timeout=30,
            what="a silent reader offline",
        )
        reader.silent = False
        wait_for(lambda: listener.online("dock-1")[-1:] == [True], what="answering again")
        assert reader.connections >= 4  # the hung session, one or more unanswered, the new one
    finally:
        agent.stop()
        listener.close()
    seqs = listener.seqs()
    assert seqs == list(range(len(seqs)))  # one seq per message, none lost or repeated
    offline = [s.reason or "" for s in listener.status["dock-1"] if not s.online]
    assert "cannot connect" in offline[0]  # the reader switched off
    assert "no inventory within 1 s" in offline[1]  # the hung reader
    log = agent.log.read_text()
    assert log.count("inventory running on") == 3
    assert "silent for" in log
