"""A virtual warehouse publishing canonical v1 messages over real MQTT.

Two ways to describe it:

- :class:`WarehouseConfig` (the live demo and plain ``stocksense simulate``): one cold room
  (a probe), an ambient zone (a probe), a few weight shelves with load cells and a dock RFID
  reader, with scripted picks and cold-room excursions;
- a scenario file (:mod:`simulators.scenario`, docs/simulator.md): sites, zones, shelves and
  portals, seasonal demand drawn by :mod:`simulators.demand`, receipts and injected faults.

Either way the warehouse advances in rounds: round ``k`` happens at ``start + k · interval``
simulated time and is published at ``k · interval / speed`` real seconds after start, so hours
of warehouse life fit in a short run and the messages (times included) depend only on the
start, the seed and the description, never on how fast the machine is. Each device announces
itself with a retained birth message; the connection leaves a Last Will.

Picks are recorded the way a picker's scanner or a WMS would, through the API
(:class:`ApiPickRecorder`: ``POST /inventory/picks``, or a pick list per round and site for a
scenario's waves), just before the readings that show the shelf's drop; a theft is not.
"""

from __future__ import annotations

import bisect
import datetime as dt
import heapq
import json
import logging
import math
import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from zoneinfo import ZoneInfo

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core import topics
from core.epc import encode_sgtin96
from core.mqtt_settings import MqttSettings
from core.mqtt_tls import connect_paho
from simulators.demand import DemandStream
from simulators.scenario import (
    DEFAULT_SENSOR,
    ColdRoomExcursion,
    DeviceOffline,
    ExpiringLot,
    Misplacement,
    Scenario,
    SensorDrift,
    SimSite,
    SimZone,
    Theft,
    local_midnight_ms,
)

logger = logging.getLogger(__name__)

DAY_MS = 86_400_000


# --------------------------------------------------------------------------- recorded picks


@dataclass(frozen=True)
class RecordedPick:
    """A pick as the simulated picker records it: ``qty`` of ``sku`` at ``site``, ``ts`` ms."""

    site: str
    sku: str
    qty: int
    ts: int
    ref: str
    location: str | None = None


class ApiPickRecorder:
    """Records picks through the StockSense API with an API token (role operator or above)."""

    def __init__(self, url: str, token: str, *, timeout_s: float = 10.0) -> None:
        self._client = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout_s
        )
        self.recorded = 0
        self.failed = 0

    def pick(self, pick: RecordedPick) -> None:
        """``POST /inventory/picks``."""
        body: dict[str, object] = {"site": pick.site, "sku": pick.sku, "qty": pick.qty,
                                   "ref": pick.ref, "ts": pick.ts}  # fmt: skip
        if pick.location is not None:
            body["location"] = pick.location
        self._send("/inventory/picks", body, 1)

    def pick_list(self, site: str, ref: str, ts: int, picks: list[RecordedPick]) -> None:
        """``POST /inventory/pick-lists``: one list, a line per pick."""
        lines = [{"sku": p.sku, "qty": p.qty, "ts": p.ts, "ref": p.ref} for p in picks]
        body = {"ref": ref, "site": site, "ts": ts, "lines": lines}
        self._send("/inventory/pick-lists", body, len(picks))

    def _send(self, path: str, body: dict[str, object], picks: int) -> None:
        # A refused or lost pick is what the loss check exists for: logged, not fatal.
        try:
            answer = self._client.post(path, json=body)
        except httpx.HTTPError as exc:
            self.failed += picks
            logger.warning("virtual warehouse: %s not recorded: %s", path, exc)
            return
        if answer.status_code not in (200, 201):
            self.failed += picks
            logger.warning(
                "virtual warehouse: %s answered %d: %s", path, answer.status_code, answer.text
            )
            return
        self.recorded += picks

    def close(self) -> None:
        """Close the HTTP connection."""
        self._client.close()


@dataclass(frozen=True)
class Message:
    """One MQTT message of the simulation."""

    topic: str
    payload: dict[str, object]
    retain: bool = False

    @property
    def samples(self) -> int:
        """Readings the pipeline makes of it: one per reading or tag read, one for a status."""
        batch = self.payload.get("readings", self.payload.get("reads"))
        return len(batch) if isinstance(batch, list) else 1


# --------------------------------------------------------------------------- MQTT runner


class _Publisher(ABC):
    """Connects, publishes the births, then one round of messages per ``interval / speed``
    real seconds from a background thread until stopped (or ``duration_s`` simulated)."""

    def __init__(
        self,
        *,
        client_id: str,
        interval_s: float,
        speed: float,
        host: str,
        port: int,
        qos: int,
        broker: MqttSettings | None,
        duration_s: float | None = None,
    ) -> None:
        self._interval_s, self._speed, self._duration_s = interval_s, speed, duration_s
        self._qos = qos
        self._stop = threading.Event()
        self.finished = threading.Event()  # the last round of a run with a duration is out
        self._thread: threading.Thread | None = None
        self._start_sim_ms = 0
        self._last_info: mqtt.MQTTMessageInfo | None = None
        self._seq: dict[str, int] = {}
        # Round times and the readings published up to the end of each round, for the clock
        # of a pipeline that follows the simulation (caught_up_clock).
        self._round_ms: list[int] = []
        self._round_samples: list[int] = []
        self.published = 0
        self.samples = 0
        # What `stocksense simulate` reports as it goes: readings sent.
        self.readings = 0
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self._client.max_inflight_messages_set(1000)
        self._broker = (broker or MqttSettings()).model_copy(
            update={"host": host, "port": port, "keepalive_s": 30}
        )

    # ---------------------------------------------------------------- what subclasses give

    @abstractmethod
    def _will(self) -> Message:
        """The connection's Last Will."""

    @abstractmethod
    def _births(self, now_ms: int) -> list[Message]:
        """The birth messages, published once connected."""

    @abstractmethod
    def _round(self, k: int, now_ms: int) -> list[Message]:
        """The messages of round ``k``, at simulated ``now_ms``."""

    def _begin(self) -> int:
        """The simulated start in epoch ms, fixed when the run starts."""
        return time.time_ns() // 1_000_000

    # ---------------------------------------------------------------- clock

    def sim_ms(self) -> int:
        """The simulated clock in epoch ms: the time of the last round published."""
        return self._round_ms[-1] if self._round_ms else self._start_sim_ms

    def sim_elapsed_s(self) -> float:
        """Simulated seconds since start."""
        return (self.sim_ms() - self._start_sim_ms) / 1000

    def caught_up_clock(self, processed: Callable[[], int]) -> Callable[[], float]:
        """A clock (epoch seconds) for time-based rules that follow the simulation: the time
        of the last round all of whose readings ``processed()`` (a count of readings
        evaluated, such as ``RulesEngine.processed``) covers.

        On an accelerated clock the rules' ticks must not run ahead of the readings they have
        seen, or a probe still in the queue would look silent; this clock waits for them.
        """

        def clock() -> float:
            i = bisect.bisect_right(self._round_samples, processed()) - 1
            return (self._round_ms[i] if i >= 0 else self._start_sim_ms) / 1000

        return clock

    # ---------------------------------------------------------------- running

    def start(self) -> _Publisher:
        """Connect, publish births and start the publishing thread."""
        will = self._will()
        # One MQTT connection carries every simulated device, so the Last Will covers the
        # gateway; per-device births are retained for the dashboards.
        self._client.will_set(will.topic, json.dumps(will.payload), qos=1, retain=will.retain)
        connect_paho(self._client, self._broker)  # TLS, credentials; waits for the CONNACK
        self._start_sim_ms = self._begin()
        for message in self._births(self._start_sim_ms):
            self._publish(message)
        self._thread = threading.Thread(target=self._run, name="virtual-warehouse", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop publishing, let the broker acknowledge what was sent, disconnect cleanly
        (no Last Will)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._last_info is not None and self._client.is_connected():
            try:
                self._last_info.wait_for_publish(timeout=10)
            except (RuntimeError, ValueError):
                logger.warning("virtual warehouse: the last messages were not acknowledged")
        self._client.loop_stop()
        self._client.disconnect()

    def _publish(self, message: Message) -> None:
        self._last_info = self._client.publish(
            message.topic, json.dumps(message.payload), qos=self._qos, retain=message.retain
        )
        self.published += 1
        self.samples += message.samples
        if "readings" in message.payload or "reads" in message.payload:
            self.readings += message.samples

    def _next_seq(self, device: str) -> int:
        seq = self._seq.get(device, 0)
        self._seq[device] = seq + 1
        return seq

    def _run(self) -> None:
        period = self._interval_s / self._speed
        interval_ms = round(self._interval_s * 1000)
        started = time.monotonic()
        k = 0
        while not self._stop.is_set():
            if self._duration_s is not None and k * self._interval_s > self._duration_s:
                self.finished.set()
                return
            now_ms = self._start_sim_ms + k * interval_ms
            for message in self._round(k, now_ms):
                self._publish(message)
            self._round_ms.append(now_ms)
            self._round_samples.append(self.samples)
            k += 1
            # Behind schedule (a busy machine) the rounds follow each other at once: the
            # simulated times stay those of the schedule.
            self._stop.wait(max(0.0, started + k * period - time.monotonic()))


# --------------------------------------------------------------------------- WarehouseConfig


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
    # (device, cell) -> the SKU the catalog binds to it: what a recorded pick names
    skus: dict[tuple[str, str], str] = field(default_factory=dict)


class VirtualWarehouse(_Publisher):
    """Publishes the warehouse of a :class:`WarehouseConfig` until stopped."""

    def __init__(
        self,
        config: WarehouseConfig,
        *,
        host: str,
        port: int,
        qos: int = 1,
        broker: MqttSettings | None = None,
        picks: ApiPickRecorder | None = None,
    ) -> None:
        """``broker`` brings TLS and credentials; ``host`` and ``port`` override its own;
        ``picks`` records every pick (scripted or random) through the API."""
        super().__init__(
            client_id=f"sim-{config.site}",
            interval_s=config.interval_s,
            speed=config.speed,
            host=host,
            port=port,
            qos=qos,
            broker=broker,
        )
        self.config = config
        self.picks = picks
        self._rng = random.Random(config.seed)
        self._units = {
            (s.device, c): s.start_units_by_cell.get(c, s.start_units)
            for s in config.shelves
            for c in s.cells
        }
        self._pending_picks = sorted(config.scripted_picks, key=lambda p: p.at_s)
        self._pending_shipments: list[tuple[float, ScriptedPick]] = []
        self._next_serial = 1000
        self._pick_no = 0
        # Last cold-room value, for `stocksense simulate`'s progress lines.
        self.cold_celsius = config.cold_setpoint

    def _devices(self) -> list[tuple[topics.Kind, str]]:
        c = self.config
        devices: list[tuple[topics.Kind, str]] = [("temp", c.cold_probe), ("temp", c.ambient_probe)]
        devices += [("weight", s.device) for s in c.shelves]
        devices.append(("rfid", c.rfid_reader))
        return devices

    def _will(self) -> Message:
        topic = topics.build(self.config.site, "temp", self.config.cold_probe, "status")
        return Message(topic, {"online": False, "reason": "lwt"}, retain=True)

    def _births(self, now_ms: int) -> list[Message]:
        births = []
        for kind, device in self._devices():
            birth: dict[str, object] = {"online": True, "ts": now_ms, "firmware": "sim-1"}
            if kind != "rfid":  # a reader reports when it reads tags, not on a schedule
                birth["interval_s"] = self.config.interval_s
            births.append(
                Message(topics.build(self.config.site, kind, device, "status"), birth, retain=True)
            )
        return births

    def cold_room_celsius(self, elapsed_s: float) -> float:
        """Cold-room temperature at simulated time ``elapsed_s``, excursions included."""
        for exc in self.config.excursions:
            if exc.start_s <= elapsed_s < exc.start_s + exc.duration_s:
                return exc.celsius + self._rng.gauss(0, 0.1)
        return self.config.cold_setpoint + self._rng.gauss(0, 0.15)

    def _round(self, k: int, now_ms: int) -> list[Message]:
        c = self.config
        elapsed = k * c.interval_s
        out: list[Message] = []
        self.cold_celsius = round(self.cold_room_celsius(elapsed), 2)
        cold = {"sensor": "t1", "celsius": self.cold_celsius}
        out.append(self._data("temp", c.cold_probe, now_ms, readings=[cold]))
        ambient = {
            "sensor": "t1",
            "celsius": round(19.0 + self._rng.gauss(0, 0.3), 2),
            "humidity": round(45.0 + self._rng.gauss(0, 1.0), 1),
        }
        out.append(self._data("temp", c.ambient_probe, now_ms, readings=[ambient]))
        out += self._apply_scripted_picks(elapsed, now_ms)
        for shelf in c.shelves:
            readings = []
            for cell, unit_g in shelf.cells.items():
                key = (shelf.device, cell)
                if self._rng.random() < c.pick_probability and self._units[key] > 0:
                    taken = min(self._units[key], self._rng.randint(1, 3))
                    self._units[key] -= taken
                    self._record(shelf.device, cell, taken, now_ms)
                grams = self._units[key] * unit_g + self._rng.gauss(0, unit_g * 0.005)
                readings.append({"cell": cell, "grams": round(grams, 1), "stable": True})
            out.append(self._data("weight", shelf.device, now_ms, readings=readings))
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
            out.append(self._data("rfid", c.rfid_reader, now_ms, reads=reads))
        return out

    def _data(
        self, kind: topics.Kind, device: str, now_ms: int, **batch: list[dict[str, object]]
    ) -> Message:
        payload = {"ts": now_ms, "seq": self._next_seq(device), **batch}
        return Message(topics.build(self.config.site, kind, device), payload)

    def units(self, device: str, cell: str) -> int:
        """Units currently on a shelf cell (the simulation's ground truth)."""
        return self._units[(device, cell)]

    def _apply_scripted_picks(self, elapsed_s: float, now_ms: int) -> list[Message]:
        while self._pending_picks and self._pending_picks[0].at_s <= elapsed_s:
            pick = self._pending_picks.pop(0)
            key = (pick.device, pick.cell)
            taken = min(self._units[key], pick.units)
            self._units[key] -= taken
            self._record(pick.device, pick.cell, taken, now_ms)
            if pick.gtin is not None:
                self._pending_shipments.append((pick.at_s + pick.walk_s, pick))
        due = [(at, p) for at, p in self._pending_shipments if at <= elapsed_s]
        self._pending_shipments = [(at, p) for at, p in self._pending_shipments if at > elapsed_s]
        return [self._ship(pick, now_ms) for _, pick in due]

    def _record(self, device: str, cell: str, units: int, now_ms: int) -> None:
        """The picker scans what was taken (before the shelf's readings show it)."""
        sku = self.config.skus.get((device, cell))
        if self.picks is None or units <= 0 or sku is None:
            return
        self._pick_no += 1
        # The run's start keeps refs apart from an earlier run's into the same database.
        ref = f"{self.config.site}-{self._start_sim_ms}-{self._pick_no}"
        self.picks.pick(RecordedPick(site=self.config.site, sku=sku, qty=units, ts=now_ms, ref=ref))

    def _ship(self, pick: ScriptedPick, now_ms: int) -> Message:
        """The picked items pass the dock reader's shipping antenna."""
        assert pick.gtin is not None
        reads: list[dict[str, object]] = []
        for _ in range(pick.units):
            self._next_serial += 1
            epc = encode_sgtin96(pick.gtin, self._next_serial)
            reads.append({"epc": epc, "antenna": self.config.shipping_antenna, "rssi": -48.0})
        return self._data("rfid", self.config.rfid_reader, now_ms, reads=reads)


# --------------------------------------------------------------------------- scenarios


@dataclass
class SkuTruth:
    """What happened to one SKU at one site, as the simulation knows it."""

    demanded: int = 0
    picked: int = 0
    short: int = 0  # demanded while the shelves were empty
    stolen: int = 0
    received: int = 0  # read at the dock's receiving antenna
    put: int = 0  # put on a shelf from a receipt
    shipped: int = 0  # read at the dock's shipping antenna


@dataclass(frozen=True)
class DemandLine:
    """The demand of one SKU at one site: its stream of picks and their hours."""

    site: SimSite
    sku: str
    gtin: str
    stream: DemandStream
    cdf: tuple[float, ...]  # cumulative hourly weights, 25 values from 0 to 1
    epoch_ms: int  # local midnight of the first day


class ScenarioSimulation:
    """The messages of a scenario, round by round: pure and deterministic.

    Everything random comes from the scenario's seed (noise from one ``random.Random``, demand
    from :class:`simulators.demand.DemandStream`), so the same scenario and start give the same
    messages, times and payloads included, on every run.
    """

    def __init__(self, scenario: Scenario, *, start_ms: int) -> None:
        self.scenario = scenario
        self.start_ms = start_ms
        self.interval_ms = round(scenario.interval_s * 1000)
        self._rng = random.Random(scenario.seed)
        self._seq: dict[str, int] = {}
        self._serial = 0
        self._events: list[tuple[int, int, Callable[[int], list[Message]]]] = []
        self._event_no = 0
        self._units: dict[tuple[str, str, str], int] = {}
        self._unit_grams: dict[str, float] = {
            s.sku: s.unit_grams for s in scenario.skus if s.unit_grams is not None
        }
        self.truth: dict[tuple[str, str], SkuTruth] = {}
        self.offline: set[tuple[str, str]] = set()
        self._recorded: list[RecordedPick] = []  # picks of the current round, not yet taken
        self._drifts: list[tuple[str, SensorDrift]] = []
        self._excursions: list[tuple[str, ColdRoomExcursion]] = []
        self._misplaced: list[tuple[SimSite, Misplacement, str]] = []
        for site in scenario.sites:
            for shelf, cell in site.cells():
                self._units[(site.id, shelf.device, cell.cell)] = cell.units
        self.demand_lines = self._demand_lines()
        for line in self.demand_lines:
            first_wave = self._wave_after(line.epoch_ms, start_ms)
            self._at(first_wave, self._wave_action(line, first_wave))
        self._schedule_receipts()
        self._schedule_faults()

    # ---------------------------------------------------------------- set-up

    def _demand_lines(self) -> list[DemandLine]:
        lines = []
        skus = {s.sku: s for s in self.scenario.skus}
        for i, site in enumerate(self.scenario.sites):
            epoch = local_midnight_ms(self.start_ms, site.timezone)
            weekday = dt.datetime.fromtimestamp(epoch / 1000, tz=ZoneInfo(site.timezone)).weekday()
            held = {cell.sku for _, cell in site.cells()}
            for sku_id, spec in self.scenario.demand.items():
                gtin = skus[sku_id].gtin
                if sku_id not in held or gtin is None:
                    continue
                cdf = [0.0]
                for weight in spec.hour_weights():
                    cdf.append(cdf[-1] + weight)
                cdf[-1] = 1.0
                # The whole day is drawn uniformly and then mapped onto the pick hours, so the
                # generator's daily totals stay exactly its own.
                stream = DemandStream(
                    spec.profile(sku_id, start_weekday=weekday),
                    self.scenario.seed + i,
                    open_hour=0.0,
                    close_hour=24.0,
                )
                lines.append(DemandLine(site, sku_id, gtin, stream, tuple(cdf), epoch))
        return lines

    def _wave_after(self, epoch_ms: int, after_ms: int) -> int:
        wave_ms = round(self.scenario.pick_wave * 1000)
        return epoch_ms + (math.floor((after_ms - epoch_ms) / wave_ms) + 1) * wave_ms

    def _schedule_receipts(self) -> None:
        for receipt in self.scenario.receipts:
            site = self.scenario.site(receipt.site)
            at = self.start_ms + round(receipt.at * 1000)
            sku = self.scenario.sku(receipt.sku)
            portal = site.portal()
            device, cell = self._cells_of(site, receipt.sku)[0]
            units = receipt.units
            put = partial(self._put, where=(site.id, device, cell), sku=sku.sku, units=units)
            if sku.gtin is None or portal is None:
                self._at(at, put)
                continue
            dock = partial(self._dock, site=site, gtin=sku.gtin, sku=sku.sku, units=units)
            self._at(at, dock)
            self._at(at + round(receipt.put_after * 1000), put)

    def _put(
        self, now_ms: int, *, where: tuple[str, str, str], sku: str, units: int
    ) -> list[Message]:
        del now_ms
        self._units[where] += units
        self._truth(where[0], sku).put += units
        return []

    def _dock(
        self, now_ms: int, *, site: SimSite, gtin: str, sku: str, units: int
    ) -> list[Message]:
        self._truth(site.id, sku).received += units
        return [self._portal_reads(site, gtin, units, now_ms, shipping=False)]

    def _schedule_faults(self) -> None:
        for fault in self.scenario.faults:
            if isinstance(fault, ExpiringLot):
                continue  # its dates are in the catalog; nothing happens in the warehouse
            site = self.scenario.site(fault.site)
            if isinstance(fault, Theft):
                self._at(self._ms(fault.at), self._theft_action(site, fault))
            elif isinstance(fault, DeviceOffline):
                self._schedule_offline(site, fault)
            elif isinstance(fault, SensorDrift):
                self._drifts.append((site.id, fault))
            elif isinstance(fault, ColdRoomExcursion):
                self._excursions.append((site.id, fault))
            elif isinstance(fault, Misplacement):
                gtin = self.scenario.sku(fault.sku).gtin
                assert gtin is not None  # validated
                self._serial += 1
                self._misplaced.append((site, fault, encode_sgtin96(gtin, 900_000 + self._serial)))

    def _theft_action(self, site: SimSite, fault: Theft) -> Callable[[int], list[Message]]:
        def steal(now_ms: int) -> list[Message]:
            del now_ms
            key = (site.id, fault.device, fault.cell)
            taken = min(fault.units, self._units[key])
            self._units[key] -= taken
            sku = next(c.sku for s, c in site.cells() if (s.device, c.cell) == key[1:])
            self._truth(site.id, sku).stolen += taken
            return []

        return steal

    def _schedule_offline(self, site: SimSite, fault: DeviceOffline) -> None:
        key = (site.id, fault.device)
        kind = _device_kind(site, fault.device)

        def down(now_ms: int) -> list[Message]:
            self.offline.add(key)
            if not fault.lwt:
                return []
            status = {"online": False, "ts": now_ms, "reason": "lwt"}
            topic = topics.build(site.id, kind, fault.device, "status")
            return [Message(topic, status, retain=True)]

        def up(now_ms: int) -> list[Message]:
            self.offline.discard(key)
            return [self._birth(site.id, kind, fault.device, now_ms)]

        self._at(self._ms(fault.at), down)
        self._at(self._ms(fault.at + fault.duration), up)

    def _at(self, at_ms: int, action: Callable[[int], list[Message]]) -> None:
        self._event_no += 1
        heapq.heappush(self._events, (at_ms, self._event_no, action))

    def _ms(self, offset_s: float) -> int:
        return self.start_ms + round(offset_s * 1000)

    # ---------------------------------------------------------------- births and rounds

    def devices(self) -> Iterator[tuple[str, topics.Kind, str]]:
        """(site, kind, device) of every simulated device."""
        for site in self.scenario.sites:
            seen: set[str] = set()
            for _, ref in site.probes():
                if ref.device not in seen:
                    seen.add(ref.device)
                    yield site.id, "temp", ref.device
            for shelf in site.shelves:
                yield site.id, "weight", shelf.device
            readers = [a.device for z in site.zones for a in z.readers]
            readers += [p.device for p in site.portals]
            for device in dict.fromkeys(readers):
                yield site.id, "rfid", device

    def will(self) -> Message:
        """The connection's Last Will: the first device goes offline."""
        site, kind, device = next(self.devices())
        return Message(topics.build(site, kind, device, "status"),
                       {"online": False, "reason": "lwt"}, retain=True)  # fmt: skip

    def births(self) -> list[Message]:
        """A retained birth message per device."""
        return [self._birth(s, kind, d, self.start_ms) for s, kind, d in self.devices()]

    def _birth(self, site: str, kind: topics.Kind, device: str, now_ms: int) -> Message:
        birth: dict[str, object] = {"online": True, "ts": now_ms, "firmware": "sim-1"}
        if kind != "rfid":  # a reader reports when it reads tags, not on a schedule
            birth["interval_s"] = self.scenario.interval_s
        return Message(topics.build(site, kind, device, "status"), birth, retain=True)

    def round_ms(self, k: int) -> int:
        """Simulated time of round ``k``."""
        return self.start_ms + k * self.interval_ms

    def round(self, k: int) -> list[Message]:
        """The messages of round ``k``: what happened since the last round (picks, receipts,
        faults; tag reads carry their own times), then every device's readings."""
        now_ms = self.round_ms(k)
        out: list[Message] = []
        while self._events and self._events[0][0] <= now_ms:
            at_ms, _, action = heapq.heappop(self._events)
            out += action(at_ms)
        for site in self.scenario.sites:
            out += self._temperatures(site, now_ms)
            out += self._shelves(site, now_ms)
            out += self._misplaced_reads(site, now_ms)
        return out

    def _temperatures(self, site: SimSite, now_ms: int) -> list[Message]:
        by_device: dict[str, list[dict[str, object]]] = {}
        hour = (now_ms - local_midnight_ms(now_ms, site.timezone)) / 3_600_000
        for zone, ref in site.probes():
            celsius = self._zone_celsius(site.id, zone, hour, now_ms)
            celsius += self._rng.gauss(0, zone.noise_c) + self._drift(site.id, ref.device, now_ms)
            reading: dict[str, object] = {
                "sensor": ref.sensor or DEFAULT_SENSOR,
                "celsius": round(celsius, 2),
            }
            if zone.humidity is not None:
                reading["humidity"] = round(zone.humidity + self._rng.gauss(0, 1.0), 1)
            by_device.setdefault(ref.device, []).append(reading)
        return [
            self._data(topics.build(site.id, "temp", device), now_ms, readings=readings)
            for device, readings in by_device.items()
            if (site.id, device) not in self.offline
        ]

    def _zone_celsius(self, site: str, zone: SimZone, hour: float, now_ms: int) -> float:
        for where, exc in self._excursions:
            if where == site and exc.zone == zone.id and self._during(exc.at, exc.duration, now_ms):
                return exc.celsius
        assert zone.celsius is not None  # validated: a zone with probes has a temperature
        # Warmest mid-afternoon, coolest before dawn.
        return zone.celsius + zone.swing_c * math.sin(2 * math.pi * (hour - 9) / 24)

    def _drift(self, site: str, device: str, now_ms: int) -> float:
        offset = 0.0
        for where, drift in self._drifts:
            if (where, drift.device) == (site, device) and self._during(
                drift.at, drift.duration, now_ms
            ):
                offset += drift.rate_c_per_h * (now_ms - self._ms(drift.at)) / 3_600_000
        return offset

    def _during(self, at_s: float, duration_s: float, now_ms: int) -> bool:
        return self._ms(at_s) <= now_ms < self._ms(at_s + duration_s)

    def _shelves(self, site: SimSite, now_ms: int) -> list[Message]:
        out = []
        for shelf in site.shelves:
            readings: list[dict[str, object]] = []
            for cell in shelf.cells:
                unit_g = self._unit_grams[cell.sku]
                units = self._units[(site.id, shelf.device, cell.cell)]
                grams = cell.tare_grams + units * unit_g + self._rng.gauss(0, unit_g * shelf.noise)
                readings.append({"cell": cell.cell, "grams": round(grams, 1)})
            if (site.id, shelf.device) not in self.offline:
                topic = topics.build(site.id, "weight", shelf.device)
                out.append(self._data(topic, now_ms, readings=readings))
        return out

    def _misplaced_reads(self, site: SimSite, now_ms: int) -> list[Message]:
        by_reader: dict[str, list[dict[str, object]]] = {}
        for where, fault, epc in self._misplaced:
            if where.id != site.id or not self._during(fault.at, fault.duration, now_ms):
                continue
            zone = next(z for z in site.zones if z.id == fault.zone)
            for antenna in zone.readers:
                read = {"epc": epc, "antenna": antenna.antenna, "rssi": -55.0}
                by_reader.setdefault(antenna.device, []).append(read)
        return [
            self._data(topics.build(site.id, "rfid", device), now_ms, reads=reads)
            for device, reads in by_reader.items()
            if (site.id, device) not in self.offline
        ]

    # ---------------------------------------------------------------- demand

    def _wave_action(self, line: DemandLine, wave_ms: int) -> Callable[[int], list[Message]]:
        def wave(now_ms: int) -> list[Message]:
            del now_ms
            since = max(wave_ms - round(self.scenario.pick_wave * 1000), self.start_ms)
            self._pick(line, since, wave_ms)
            following = wave_ms + round(self.scenario.pick_wave * 1000)
            self._at(following, self._wave_action(line, following))
            return []

        return wave

    def _pick(self, line: DemandLine, since_ms: int, until_ms: int) -> None:
        """Pick the units demanded in ``(since, until]`` from the SKU's cells, in order; they
        pass the shipping antenna ``ship_after`` later."""
        wanted = self.demanded(line, since_ms, until_ms)
        truth = self._truth(line.site.id, line.sku)
        truth.demanded += wanted
        picked = 0
        for device, cell in self._cells_of(line.site, line.sku):
            key = (line.site.id, device, cell)
            take = min(wanted - picked, self._units[key])
            self._units[key] -= take
            picked += take
        truth.picked += picked
        truth.short += wanted - picked
        if picked == 0:
            return
        # The wave's picker records the pick (a theft records nothing).
        ref = f"{line.site.id}-{line.sku}-{until_ms}"
        self._recorded.append(
            RecordedPick(site=line.site.id, sku=line.sku, qty=picked, ts=until_ms, ref=ref)
        )

        def ship(now_ms: int) -> list[Message]:
            truth.shipped += picked
            return [self._portal_reads(line.site, line.gtin, picked, now_ms, shipping=True)]

        self._at(until_ms + round(self.scenario.ship_after_s * 1000), ship)

    def demanded(self, line: DemandLine, since_ms: int, until_ms: int) -> int:
        """Units of a demand line whose pick times fall in ``(since, until]``."""
        count = 0
        first = (since_ms - line.epoch_ms) // DAY_MS
        last = (until_ms - line.epoch_ms) // DAY_MS
        for day in range(max(first, 0), last + 1):
            for t_ms in self.day_picks(line, day):
                if since_ms < t_ms <= until_ms:
                    count += 1
        return count

    def day_picks(self, line: DemandLine, day: int) -> list[int]:
        """Pick times (epoch ms) of one day: the generator's uniform times over the day,
        moved onto the pick hours by the inverse of their cumulative weights."""
        day_s = day * 86_400.0
        out = []
        for t in line.stream.pick_times(day_s, day_s + 86_400.0):
            u = (float(t) - day_s) / 86_400.0
            hour = bisect.bisect_right(line.cdf, u) - 1
            while line.cdf[hour + 1] <= line.cdf[hour]:  # an hour of weight 0 holds nothing
                hour += 1
            share = (u - line.cdf[hour]) / (line.cdf[hour + 1] - line.cdf[hour])
            out.append(line.epoch_ms + day * DAY_MS + round((hour + share) * 3_600_000))
        return out

    def take_picks(self) -> list[RecordedPick]:
        """The picks recorded in the rounds since the last call, in order."""
        taken, self._recorded = self._recorded, []
        return taken

    # ---------------------------------------------------------------- helpers

    def _portal_reads(
        self, site: SimSite, gtin: str, units: int, now_ms: int, *, shipping: bool
    ) -> Message:
        portal = site.portal()
        assert portal is not None  # validated: demand and dock receipts need a portal
        antenna = (portal.shipping if shipping else portal.receiving).antenna
        reads: list[dict[str, object]] = []
        for _ in range(units):
            self._serial += 1
            reads.append({"epc": encode_sgtin96(gtin, self._serial), "antenna": antenna,
                          "rssi": -48.0})  # fmt: skip
        return self._data(topics.build(site.id, "rfid", portal.device), now_ms, reads=reads)

    def _data(self, topic: str, now_ms: int, **batch: list[dict[str, object]]) -> Message:
        seq = self._seq.get(topic, 0)
        self._seq[topic] = seq + 1
        return Message(topic, {"ts": now_ms, "seq": seq, **batch})

    def _cells_of(self, site: SimSite, sku: str) -> list[tuple[str, str]]:
        return [(shelf.device, cell.cell) for shelf, cell in site.cells() if cell.sku == sku]

    def _truth(self, site: str, sku: str) -> SkuTruth:
        return self.truth.setdefault((site, sku), SkuTruth())

    def units(self, site: str, device: str, cell: str) -> int:
        """Units on a shelf cell now (the simulation's ground truth)."""
        return self._units[(site, device, cell)]


def _device_kind(site: SimSite, device: str) -> topics.Kind:
    if any(s.device == device for s in site.shelves):
        return "weight"
    if any(r.device == device for _, r in site.probes()):
        return "temp"
    return "rfid"


class ScenarioWarehouse(_Publisher):
    """Publishes a scenario over MQTT on its accelerated clock until stopped or, with a
    ``duration``, until its last round (then :attr:`finished` is set)."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        host: str,
        port: int,
        qos: int = 1,
        broker: MqttSettings | None = None,
        start_ms: int | None = None,
        picks: ApiPickRecorder | None = None,
    ) -> None:
        """``start_ms`` overrides the scenario's start (see :meth:`Scenario.start_ms`);
        ``picks`` records each round's picks as one pick list per site."""
        super().__init__(
            client_id=f"sim-{scenario.sites[0].id}",
            interval_s=scenario.interval_s,
            speed=scenario.speed,
            host=host,
            port=port,
            qos=qos,
            broker=broker,
            duration_s=scenario.duration,
        )
        self.scenario = scenario
        begin = start_ms if start_ms is not None else scenario.start_ms(time.time_ns() // 1_000_000)
        self.simulation = ScenarioSimulation(scenario, start_ms=begin)
        self._start_sim_ms = begin
        self.picks = picks

    @property
    def start_ms(self) -> int:
        """The simulated start in epoch ms."""
        return self.simulation.start_ms

    def _begin(self) -> int:
        return self.simulation.start_ms

    def _will(self) -> Message:
        return self.simulation.will()

    def _births(self, now_ms: int) -> list[Message]:
        del now_ms
        return self.simulation.births()

    def _round(self, k: int, now_ms: int) -> list[Message]:
        messages = self.simulation.round(k)
        picks = self.simulation.take_picks()
        if self.picks is not None and picks:
            # Recorded before the readings that show the drop are published, as a WMS confirms
            # a wave while the shelves settle.
            for site in dict.fromkeys(p.site for p in picks):
                lines = [p for p in picks if p.site == site]
                self.picks.pick_list(site, f"{site}-wave-{now_ms}", now_ms, lines)
        return messages
