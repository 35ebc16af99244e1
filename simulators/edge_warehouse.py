"""The virtual warehouse with one shelf, up to four probes and one shelf cell behind the edge
agent: their values go into the simulated Modbus devices (:mod:`simulators.modbus_devices`)
and the simulated serial scale (:mod:`simulators.serial_scale`) every round, where
``stocksense edge`` reads them, instead of being published over MQTT.

Everything else of the scenario (other shelves, cells and probes, RFID reads, statuses) is
published as :class:`~simulators.warehouse.ScenarioWarehouse` does. The agent stamps readings
with the wall clock, so such a run is at ``speed`` 1 (docs/simulator.md, "Devices behind the
edge agent").
"""

from __future__ import annotations

from pydantic import Field

from core import topics
from core.identifiers import Name, Segment
from core.mqtt_settings import MqttSettings
from edge.codec import GRAMS_PER
from simulators.modbus_devices import CELLS, SHELF_UNIT, TEMP_UNIT, Devices
from simulators.scenario import (
    DEFAULT_SENSOR,
    Cell,
    DeviceOffline,
    Scenario,
    ScenarioModel,
    SimSite,
)
from simulators.serial_scale import SerialScale
from simulators.warehouse import ApiPickRecorder, Message, ScenarioWarehouse

PROBES = 4  # the transmitter's channels


class ScaleCell(ScenarioModel):
    """The shelf cell whose load lies on the serial scale."""

    shelf: Segment
    cell: Name


class EdgeBinding(ScenarioModel):
    """Which devices of a scenario site sit behind the edge agent: one weight shelf (its cells
    on the indicator's cells 1-4, in order), probe devices (their sensors on the
    transmitter's channels 1-4, in order) and one cell of another shelf on the serial scale."""

    site: Segment | None = None
    shelf: Segment | None = None
    probes: list[Segment] = Field(default_factory=list, max_length=PROBES)
    scale: ScaleCell | None = None

    def check(self, scenario: Scenario) -> None:
        """Raise ``ValueError`` unless the devices exist and fit the simulated hardware."""
        if scenario.speed != 1:
            raise ValueError("edge: the agent reads on the wall clock: the scenario needs speed 1")
        ids = [s.id for s in scenario.sites]
        if self.site is None and len(ids) > 1:
            raise ValueError("edge: the scenario has several sites: name one")
        if self.site is not None and self.site not in ids:
            raise ValueError(f"edge: unknown site {self.site!r}")
        site = scenario.site(self.site)
        self._check_shelf(site)
        self._check_scale(site)
        probe_devices = {r.device for _, r in site.probes()}
        for device in self.probes:
            if device not in probe_devices:
                raise ValueError(f"edge: {site.id} has no probe {device!r}")
        if len(self.probes) != len(set(self.probes)):
            raise ValueError("edge: a probe is named twice")
        if len(self.sensors(scenario)) > PROBES:
            raise ValueError(f"edge: the probes have more than {PROBES} sensors")
        behind = {*self.devices(), *([self.scale.shelf] if self.scale else [])}
        for fault in scenario.faults:
            # The simulated devices always answer: a silent one is not simulated here.
            if not isinstance(fault, DeviceOffline) or fault.device not in behind:
                continue
            if scenario.site(fault.site).id == site.id:
                raise ValueError(f"edge: {fault.device} cannot go offline behind the agent")

    def _check_shelf(self, site: SimSite) -> None:
        if self.shelf is None:
            return
        shelf = next((s for s in site.shelves if s.device == self.shelf), None)
        if shelf is None:
            raise ValueError(f"edge: {site.id} has no shelf {self.shelf!r}")
        if len(shelf.cells) > CELLS:
            raise ValueError(f"edge: shelf {self.shelf} has more than {CELLS} cells")

    def _check_scale(self, site: SimSite) -> None:
        if self.scale is None:
            return
        shelf = next((s for s in site.shelves if s.device == self.scale.shelf), None)
        if shelf is None:
            raise ValueError(f"edge: {site.id} has no shelf {self.scale.shelf!r}")
        if not any(c.cell == self.scale.cell for c in shelf.cells):
            raise ValueError(f"edge: shelf {shelf.device} has no cell {self.scale.cell!r}")
        if shelf.device == self.shelf:
            raise ValueError(f"edge: {shelf.device} is on the Modbus shelf: not on the scale too")

    def devices(self) -> set[str]:
        """The device ids of the Modbus shelf and probes."""
        return {*self.probes, *([self.shelf] if self.shelf else [])}

    def sensors(self, scenario: Scenario) -> list[tuple[str, str]]:
        """(device, sensor) on the transmitter's channels, in channel order."""
        site = scenario.site(self.site)
        return [
            (device, ref.sensor or DEFAULT_SENSOR)
            for device in self.probes
            for _, ref in site.probes()
            if ref.device == device
        ]


class EdgeWarehouse(ScenarioWarehouse):
    """A :class:`ScenarioWarehouse` whose ``edge`` devices are served by ``devices`` (a
    :class:`~simulators.modbus_devices.Devices`) and its scale cell by ``scale`` for the edge
    agent to read."""

    def __init__(
        self,
        scenario: Scenario,
        edge: EdgeBinding,
        devices: Devices,
        *,
        host: str,
        port: int,
        qos: int = 1,
        broker: MqttSettings | None = None,
        start_ms: int | None = None,
        picks: ApiPickRecorder | None = None,
        scale: SerialScale | None = None,
    ) -> None:
        """Refuses (``ValueError``) a binding that does not fit the scenario or the scale."""
        edge.check(scenario)
        if (edge.scale is None) != (scale is None):
            raise ValueError("edge: a scale cell and a SerialScale go together")
        if scale is not None and scale.unit not in GRAMS_PER:
            raise ValueError(f"edge: the scale's unit {scale.unit!r} is not g, kg or lb")
        super().__init__(
            scenario, host=host, port=port, qos=qos, broker=broker, start_ms=start_ms,
            picks=picks,
        )  # fmt: skip
        self.edge = edge
        self.devices = devices
        self.scale = scale
        self.site = scenario.site(edge.site)
        self._channels = {key: n for n, key in enumerate(edge.sensors(scenario))}
        self._grams = {s.sku: s.unit_grams for s in scenario.skus if s.unit_grams is not None}
        # The devices the agent publishes for: data and status alike.
        self._edge = {(self.site.id, device) for device in edge.devices()}
        self._scale: tuple[str, Cell] | None = None
        on_scale = (edge.scale.shelf, edge.scale.cell) if edge.scale else None
        for shelf, cell in self.site.cells():
            if (shelf.device, cell.cell) == on_scale:
                self._scale = shelf.device, cell
                if len(shelf.cells) == 1:  # the whole shelf is the agent's, status too
                    self._edge.add((self.site.id, shelf.device))
        self._set_shelf(initial=True)
        self._set_scale(initial=True)
        # Until the first round the probes read their zone's temperature.
        zones = {(r.device, r.sensor or DEFAULT_SENSOR): z for z, r in self.site.probes()}
        for key, n in self._channels.items():
            devices.temp.celsius[n] = zones[key].celsius or 0.0

    def _mqtt(self, messages: list[Message]) -> list[Message]:
        return [self._off_scale(m) for m in messages if self._device(m) not in self._edge]

    def _off_scale(self, message: Message) -> Message:
        # The scale's shelf's other cells stay on MQTT.
        readings = message.payload.get("readings")
        if self._scale is None or not isinstance(readings, list):
            return message
        topic = topics.parse(message.topic)
        device, cell = self._scale
        if (topic.site, topic.kind, topic.device) != (self.site.id, "weight", device):
            return message
        kept = [r for r in readings if r["cell"] != cell.cell]
        return Message(message.topic, {**message.payload, "readings": kept}, message.retain)

    @staticmethod
    def _device(message: Message) -> tuple[str, str]:
        topic = topics.parse(message.topic)
        return topic.site, topic.device

    def _will(self) -> Message:
        # The connection's Last Will covers a device it publishes for, not one of the agent's.
        for site, kind, device in self.simulation.devices():
            if (site, device) in self._edge:
                continue
            status = {"online": False, "reason": "lwt"}
            return Message(topics.build(site, kind, device, "status"), status, retain=True)
        return super()._will()

    def _births(self, now_ms: int) -> list[Message]:
        return self.births()

    def _round(self, k: int, now_ms: int) -> list[Message]:
        return self.round(k, now_ms)

    def births(self) -> list[Message]:
        """The birth messages published over MQTT: the agent announces its own devices."""
        return self._mqtt(super()._births(self.start_ms))

    def round(self, k: int, now_ms: int) -> list[Message]:
        """Round ``k`` at simulated ``now_ms``: sets the edge devices' registers from the
        simulation and returns the messages published over MQTT (picks recorded as
        :class:`ScenarioWarehouse` does)."""
        messages = super()._round(k, now_ms)
        self._set_shelf(initial=False)
        self._set_scale(initial=False)
        self._set_probes(messages)
        return self._mqtt(messages)

    def _set_shelf(self, *, initial: bool) -> None:
        shelf = next((s for s in self.site.shelves if s.device == self.edge.shelf), None)
        if shelf is None:
            return
        for n, cell in enumerate(shelf.cells):
            units = self.simulation.units(self.site.id, shelf.device, cell.cell)
            kg = round((cell.tare_grams + units * self._grams[cell.sku]) / 1000, 6)
            if initial:
                self.devices.shelf.set_kg(n, kg, unstable_reads=0)
            elif kg != self.devices.shelf.kg[n]:
                self.devices.shelf.set_kg(n, kg)  # swings for a couple of reads, as a pick does

    def _set_scale(self, *, initial: bool) -> None:
        if self._scale is None or self.scale is None:
            return
        device, cell = self._scale
        units = self.simulation.units(self.site.id, device, cell.cell)
        grams = cell.tare_grams + units * self._grams[cell.sku]
        value = round(grams / GRAMS_PER[self.scale.unit], 6)
        if initial or value != self.scale.kg:
            self.scale.kg = value
            self.scale.unstable = 0 if initial else 2  # dynamic for a couple of reads

    def _set_probes(self, messages: list[Message]) -> None:
        # The round's own readings: noise, drift and excursions exactly as over MQTT.
        for message in messages:
            topic = topics.parse(message.topic)
            readings = message.payload.get("readings")
            if (topic.site, topic.kind) != (self.site.id, "temp") or not isinstance(readings, list):
                continue
            for reading in readings:
                n = self._channels.get((topic.device, str(reading["sensor"])))
                if n is not None:
                    self.devices.temp.celsius[n] = float(reading["celsius"])

    def agent_devices(
        self, host: str, port: int, *, poll_interval_s: float = 0.2
    ) -> list[dict[str, object]]:
        """The ``devices`` of an edge agent's config that reads the edge devices on the
        Modbus TCP server at ``host:port`` (the shelf on unit 1, each probe on unit 2) and the
        scale on its pty."""
        common = {"protocol": "modbus_tcp", "host": host, "port": port,
                  "poll_interval_s": poll_interval_s}  # fmt: skip
        out: list[dict[str, object]] = []
        shelf = next((s for s in self.site.shelves if s.device == self.edge.shelf), None)
        if shelf is not None:
            registers = {
                cell.cell: {
                    "address": 2 * n,
                    "type": "float32",
                    "unit": "kg",
                    "stable_register": 8,
                    "stable_bit": n,
                }
                for n, cell in enumerate(shelf.cells)
            }
            out.append({"name": shelf.device, "kind": "weight", "unit_id": SHELF_UNIT,
                        "registers": registers, **common})  # fmt: skip
        for device in self.edge.probes:
            registers = {
                sensor: {"address": n, "function": "input", "type": "int16", "scale": 0.1}
                for (probe, sensor), n in self._channels.items()
                if probe == device
            }
            out.append({"name": device, "kind": "temp", "unit_id": TEMP_UNIT,
                        "registers": registers, **common})  # fmt: skip
        if self._scale is not None and self.scale is not None:
            device, cell = self._scale
            out.append({"name": device, "protocol": "serial_scale", "cell": cell.cell,
                        "serial_port": self.scale.device, "command": "SI",
                        "poll_interval_s": poll_interval_s})  # fmt: skip
        return out
