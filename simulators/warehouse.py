"""A small virtual warehouse publishing canonical v1 messages over real MQTT.

One cold room (a probe), an ambient zone (a probe), a few weight shelves with load cells, and a
dock RFID reader. Each device announces itself with a retained birth message and leaves a Last
Will. Faults can be injected: a cold-room excursion (temperature above the band for a while).
Time runs on an accelerated clock (``speed``) so hours of warehouse life fit in a short run.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core import topics
from core.epc import encode_sgtin96
from core.mqtt_tls import connect_paho
from core.settings import MqttSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Excursion:
    """Cold-room fault: from ``start_s`` (simulated seconds) for ``duration_s``, at ``celsius``."""

    start_s: float
    duration_s: float
    celsius: float = 11.5


@dataclass(frozen=True)
class ShelfSpec:
    """A weight shelf: its cells, and the unit weight of the item on each cell."""

    device: str
    cells: dict[str, float]
    start_units: int = 40
    start_units_by_cell: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ScriptedPick:
    """At ``at_s`` (simulated), ``units`` leave ``device``/``cell``; when ``gtin`` is set the
    picked items pass the dock reader's shipping antenna ``walk_s`` later, so the pick is
    explained by RFID."""

    at_s: float
    device: str
    cell: str
    units: int
    gtin: str | None = None
    walk_s: float = 10.0


@dataclass
class WarehouseConfig:
    """What the virtual warehouse contains and how fast it talks."""

    site: str = "wh1"
    cold_probe: str = "coldroom-1"
    cold_setpoint: float = 4.5
    ambient_probe: str = "ambient-1"
    rfid_reader: str = "dock-1"
    shelves: list[ShelfSpec] = field(
        default_factory=lambda: [
            ShelfSpec(device="shelf-a1", cells={"c1": 250.0, "c2": 500.0}),
            ShelfSpec(device="shelf-a2", cells={"c1": 1000.0, "c2": 125.0}),
        ]
    )
    gtins: tuple[str, ...] = ("80614141123458", "06901234567892")
    interval_s: float = 1.0
    speed: float = 1.0
    excursions: list[Excursion] = field(default_factory=list)
    pick_probability: float = 0.05
    random_tag_reads: bool = True
    scripted_picks: list[ScriptedPick] = field(default_factory=list)
    shipping_antenna: int = 2
    seed: int = 7


class VirtualWarehouse:
    """Publishes the warehouse's messages from a background thread until stopped."""

    def __init__(
        self,
        config: WarehouseConfig,
        *,
        host: str,
        port: int,
        qos: int = 1,
        broker: MqttSettings | None = None,
    ) -> None:
        """``broker`` brings TLS and credentials; ``host`` and ``port`` override its own."""
        self.config = config
        self._host, self._port, self._qos = host, port, qos
        self._rng = random.Random(config.seed)
        self._seq: dict[str, int] = {}
        self._units = {
            (s.device, c): s.start_units_by_cell.get(c, s.start_units)
            for s in config.shelves
            for c in s.cells
        }
        self._pending_picks = sorted(config.scripted_picks, key=lambda p: p.at_s)
        self._pending_shipments: list[tuple[float, ScriptedPick]] = []
        self._next_serial = 1000
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_wall = 0.0
        self._start_sim_ms = 0
        self.published = 0
        # What `stocksense simulate` reports as it goes: readings sent, last cold-room value.
        self.readings = 0
        self.cold_celsius = config.cold_setpoint
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sim-{config.site}")
        self._broker = (broker or MqttSettings()).model_copy(
            update={"host": host, "port": port, "keepalive_s": 30}
        )

    def sim_ms(self) -> int:
        """The simulated clock in epoch ms."""
        elapsed = (time.monotonic() - self._start_wall) * self.config.speed
        return self._start_sim_ms + int(elapsed * 1000)

    def sim_elapsed_s(self) -> float:
        """Simulated seconds since start."""
        return (self.sim_ms() - self._start_sim_ms) / 1000

    def _devices(self) -> list[tuple[topics.Kind, str]]:
        c = self.config
        devices: list[tuple[topics.Kind, str]] = [("temp", c.cold_probe), ("temp", c.ambient_probe)]
        devices += [("weight", s.device) for s in c.shelves]
        devices.append(("rfid", c.rfid_reader))
        return devices

    def start(self) -> VirtualWarehouse:
        """Connect, publish births and start the publishing thread."""
        c = self.config
        # One MQTT connection carries every simulated device, so the Last Will covers the
        # gateway; per-device births are retained for the dashboards.
        will = topics.build(c.site, "temp", c.cold_probe, "status")
        self._client.will_set(
            will, json.dumps({"online": False, "reason": "lwt"}), qos=1, retain=True
        )
        connect_paho(self._client, self._broker)  # TLS, credentials; waits for the CONNACK
        self._start_wall = time.monotonic()
        self._start_sim_ms = time.time_ns() // 1_000_000
        for kind, device in self._devices():
            birth: dict[str, object] = {"online": True, "ts": self.sim_ms(), "firmware": "sim-1"}
            if kind != "rfid":  # a reader reports when it reads tags, not on a schedule
                birth["interval_s"] = c.interval_s
            self._publish(topics.build(c.site, kind, device, "status"), birth, retain=True)
        self._thread = threading.Thread(target=self._run, name="virtual-warehouse", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop publishing and disconnect cleanly (no Last Will)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._client.loop_stop()
        self._client.disconnect()

    def _publish(self, topic: str, payload: dict[str, object], *, retain: bool = False) -> None:
        self._client.publish(topic, json.dumps(payload), qos=self._qos, retain=retain)
        self.published += 1
        batch = payload.get("readings", payload.get("reads"))
        self.readings += len(batch) if isinstance(batch, list) else 0

    def _next_seq(self, device: str) -> int:
        seq = self._seq.get(device, 0)
        self._seq[device] = seq + 1
        return seq

    def cold_room_celsius(self, elapsed_s: float) -> float:
        """Cold-room temperature at simulated time ``elapsed_s``, excursions included."""
        for exc in self.config.excursions:
            if exc.start_s <= elapsed_s < exc.start_s + exc.duration_s:
                return exc.celsius + self._rng.gauss(0, 0.1)
        return self.config.cold_setpoint + self._rng.gauss(0, 0.15)

    def tick(self) -> None:
        """Publish one round of readings for every device."""
        c = self.config
        now = self.sim_ms()
        elapsed = self.sim_elapsed_s()
        self.cold_celsius = round(self.cold_room_celsius(elapsed), 2)
        cold = {"sensor": "t1", "celsius": self.cold_celsius}
        self._publish(
            topics.build(c.site, "temp", c.cold_probe),
            {"ts": now, "seq": self._next_seq(c.cold_probe), "readings": [cold]},
        )
        ambient = {
            "sensor": "t1",
            "celsius": round(19.0 + self._rng.gauss(0, 0.3), 2),
            "humidity": round(45.0 + self._rng.gauss(0, 1.0), 1),
        }
        self._publish(
            topics.build(c.site, "temp", c.ambient_probe),
            {"ts": now, "seq": self._next_seq(c.ambient_probe), "readings": [ambient]},
        )
        self._apply_scripted_picks(elapsed, now)
        for shelf in c.shelves:
            readings = []
            for cell, unit_g in shelf.cells.items():
                if (
                    self._rng.random() < c.pick_probability
                    and self._units[(shelf.device, cell)] > 0
                ):
                    self._units[(shelf.device, cell)] -= self._rng.randint(1, 3)
                    self._units[(shelf.device, cell)] = max(0, self._units[(shelf.device, cell)])
                grams = self._units[(shelf.device, cell)] * unit_g + self._rng.gauss(
                    0, unit_g * 0.005
                )
                readings.append({"cell": cell, "grams": round(grams, 1), "stable": True})
            self._publish(
                topics.build(c.site, "weight", shelf.device),
                {"ts": now, "seq": self._next_seq(shelf.device), "readings": readings},
            )
        if c.random_tag_reads and self._rng.random() < 0.3:
            gtin = self._rng.choice(c.gtins)
            reads = [
                {
                    "epc": encode_sgtin96(gtin, self._rng.randint(1, 500)),
                    "antenna": self._rng.randint(1, 2),
                    "rssi": round(-45 - self._rng.random() * 25, 1),
                }
                for _ in range(self._rng.randint(1, 4))
            ]
            self._publish(
                topics.build(c.site, "rfid", c.rfid_reader),
                {"ts": now, "seq": self._next_seq(c.rfid_reader), "reads": reads},
            )

    def units(self, device: str, cell: str) -> int:
        """Units currently on a shelf cell (the simulation's ground truth)."""
        return self._units[(device, cell)]

    def _apply_scripted_picks(self, elapsed_s: float, now_ms: int) -> None:
        while self._pending_picks and self._pending_picks[0].at_s <= elapsed_s:
            pick = self._pending_picks.pop(0)
            key = (pick.device, pick.cell)
            self._units[key] = max(0, self._units[key] - pick.units)
            if pick.gtin is not None:
                self._pending_shipments.append((pick.at_s + pick.walk_s, pick))
        due = [(at, p) for at, p in self._pending_shipments if at <= elapsed_s]
        self._pending_shipments = [(at, p) for at, p in self._pending_shipments if at > elapsed_s]
        for _, pick in due:
            self._ship(pick, now_ms)

    def _ship(self, pick: ScriptedPick, now_ms: int) -> None:
        """The picked items pass the dock reader's shipping antenna."""
        c = self.config
        assert pick.gtin is not None
        reads = []
        for _ in range(pick.units):
            self._next_serial += 1
            reads.append(
                {
                    "epc": encode_sgtin96(pick.gtin, self._next_serial),
                    "antenna": c.shipping_antenna,
                    "rssi": -48.0,
                }
            )
        self._publish(
            topics.build(c.site, "rfid", c.rfid_reader),
            {"ts": now_ms, "seq": self._next_seq(c.rfid_reader), "reads": reads},
        )

    def _run(self) -> None:
        period = self.config.interval_s / self.config.speed
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.tick()
            next_at += period
            self._stop.wait(max(0.0, next_at - time.monotonic()))
