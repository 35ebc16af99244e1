"""The virtual warehouse with devices behind the edge agent, without a broker: the Modbus
devices' registers and the serial scale follow the simulation round by round, those devices'
messages (the scale cell's readings) are left out of MQTT and nothing else is, and bindings
that do not fit the scenario are refused."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import topics
from edge.config import EdgeConfig, ModbusTcpDevice, SerialScaleDevice
from simulators.edge_warehouse import EdgeBinding, EdgeWarehouse, ScaleCell
from simulators.modbus_devices import Devices
from simulators.scenario import Scenario, load_scenario
from simulators.serial_scale import SerialScale
from simulators.warehouse import Message, ScenarioSimulation

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "scenario-week.yaml"
START = 1_795_449_600_000  # 2026-11-24 00:00 Asia/Shanghai
SCENARIO = load_scenario(EXAMPLE).model_copy(update={"speed": 1.0})
EDGE = EdgeBinding(shelf="shelf-a1", probes=["cold-1", "cold-2"])
GRAMS = {"c1": 250.0, "c2": 500.0}  # COFFEE-250, TEA-500
RICE = ScaleCell(shelf="shelf-a2", cell="c1")  # RICE-1KG, 40 units


@pytest.fixture
def scale() -> Iterator[SerialScale]:
    scale = SerialScale().start()  # the tests ask it directly, as its pty's reader would
    yield scale
    scale.stop()


def _warehouse(devices: Devices) -> EdgeWarehouse:
    return EdgeWarehouse(SCENARIO, EDGE, devices, host="127.0.0.1", port=1, start_ms=START)


def _celsius(messages: list[Message]) -> dict[str, float]:
    """Each probe's reading in a round's messages (one sensor per probe)."""
    out: dict[str, float] = {}
    for message in messages:
        topic = topics.parse(message.topic)
        readings = message.payload.get("readings")
        if topic.kind == "temp" and isinstance(readings, list):
            [reading] = readings
            out[topic.device] = float(reading["celsius"])
    return out


def test_the_registers_follow_the_simulation_and_only_the_edge_devices_leave_mqtt() -> None:
    devices = Devices()
    warehouse = _warehouse(devices)
    plain = ScenarioSimulation(SCENARIO, start_ms=START)
    edge_devices = {"shelf-a1", "cold-1", "cold-2"}
    # Before the first round: 80 x 250 g, 50 x 500 g, and the cold room's 4.5 °C.
    assert (devices.shelf.kg[:2], devices.temp.celsius[:2]) == ([20.0, 25.0], [4.5, 4.5])
    assert {topics.parse(m.topic).device for m in warehouse.births()} == {
        "cold-3", "ambient-1", "shelf-a2", "rd-1", "dock-1"
    }  # fmt: skip
    seen: set[float] = set()
    last = round((5 * 24 + 14) * 3600 / SCENARIO.interval_s)  # past the theft, drift, excursion
    for k in range(last):
        expected = plain.round(k)
        got = warehouse.round(k, plain.round_ms(k))
        assert got == [m for m in expected if topics.parse(m.topic).device not in edge_devices]
        for n, cell in enumerate(("c1", "c2")):
            units = plain.units("sim1", "shelf-a1", cell)
            assert devices.shelf.kg[n] == units * GRAMS[cell] / 1000
        celsius = _celsius(expected)
        for n, probe in enumerate(("cold-1", "cold-2")):
            assert devices.temp.celsius[n] == celsius[probe]
            seen.add(devices.temp.celsius[n])
    assert warehouse.simulation.truth == plain.truth
    assert plain.truth[("sim1", "TEA-500")].stolen == 3
    assert 11.5 in seen  # the excursion reached the transmitter
    assert max(seen) > 6  # so did cold-2's drift


def test_the_agent_devices_are_an_edge_config_of_the_bound_devices() -> None:
    devices = _warehouse(Devices()).agent_devices("127.0.0.1", 5020)
    config = EdgeConfig.model_validate({"site": "sim1", "agent_id": "gw", "devices": devices})
    got = [
        (d.name, d.kind, d.unit_id, sorted(d.registers))
        for d in config.devices
        if isinstance(d, ModbusTcpDevice)
    ]
    assert got == [
        ("shelf-a1", "weight", 1, ["c1", "c2"]),
        ("cold-1", "temp", 2, ["t1"]),
        ("cold-2", "temp", 2, ["t1"]),
    ]
    probes = [d for d in config.devices if isinstance(d, ModbusTcpDevice) and d.kind == "temp"]
    assert [d.registers["t1"].address for d in probes] == [0, 1]


@pytest.mark.parametrize(
    ("binding", "message"),
    [
        (EdgeBinding(site="nowhere"), "edge: unknown site 'nowhere'"),
        (EdgeBinding(shelf="shelf-z9"), "edge: sim1 has no shelf 'shelf-z9'"),
        (EdgeBinding(probes=["rd-1"]), "edge: sim1 has no probe 'rd-1'"),
        (EdgeBinding(probes=["cold-1", "cold-1"]), "edge: a probe is named twice"),
        (EdgeBinding(probes=["ambient-1"]), "edge: ambient-1 cannot go offline behind the agent"),
    ],
)
def test_bindings_that_do_not_fit_are_refused(binding: EdgeBinding, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        binding.check(SCENARIO)


def test_an_accelerated_scenario_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^edge: the agent reads on the wall clock"):
        EDGE.check(SCENARIO.model_copy(update={"speed": 10_080.0}))


def test_a_shelf_of_more_than_four_cells_is_refused() -> None:
    raw = SCENARIO.model_dump(by_alias=True)
    cells = raw["sites"][0]["shelves"][0]["cells"]
    cells += [dict(cells[0], cell=f"c{n}", location=f"X-{n}") for n in range(3, 6)]
    scenario = type(SCENARIO).model_validate(raw)
    with pytest.raises(ValueError, match=r"^edge: shelf shelf-a1 has more than 4 cells$"):
        EdgeBinding(shelf="shelf-a1").check(scenario)


def _with_fault(fault: dict[str, object]) -> Scenario:
    raw = SCENARIO.model_dump(by_alias=True)
    raw["faults"].append(fault)
    return Scenario.model_validate(raw)


def _without_rice(message: Message) -> Message:
    """The message without shelf-a2's c1 reading."""
    readings = message.payload.get("readings")
    if topics.parse(message.topic).device != "shelf-a2" or not isinstance(readings, list):
        return message
    kept = [r for r in readings if r["cell"] != "c1"]
    assert [r["cell"] for r in kept] == ["c2"]
    return Message(message.topic, {**message.payload, "readings": kept}, message.retain)


def test_the_scale_follows_its_cell_and_only_its_readings_leave_mqtt(scale: SerialScale) -> None:
    edge = EDGE.model_copy(update={"scale": RICE})
    warehouse = EdgeWarehouse(
        SCENARIO, edge, Devices(), host="127.0.0.1", port=1, start_ms=START, scale=scale
    )
    plain = ScenarioSimulation(SCENARIO, start_ms=START)
    assert scale.reply("SI") == b"S S     40.000 kg\r\n"  # stable before the first round
    # shelf-a2's other cell, and its birth, stay on MQTT.
    assert "shelf-a2" in {topics.parse(m.topic).device for m in warehouse.births()}
    seen: set[float] = set()
    for k in range(round(3 * 24 * 3600 / SCENARIO.interval_s)):
        expected = plain.round(k)
        got = warehouse.round(k, plain.round_ms(k))
        assert scale.kg == plain.units("sim1", "shelf-a2", "c1")  # 1 kg a unit
        seen.add(scale.kg)
        edge_devices = {"shelf-a1", "cold-1", "cold-2"}
        mqtt = [m for m in expected if topics.parse(m.topic).device not in edge_devices]
        assert got == [_without_rice(m) for m in mqtt]
    assert len(seen) > 3  # the rice was picked
    for _ in range(scale.unstable):
        assert scale.reply("SI").startswith(b"S D ")  # swinging after the last change
    units = plain.units("sim1", "shelf-a2", "c1")
    assert scale.reply("SI") == f"S S {units:10.3f} kg\r\n".encode()


def test_a_one_cell_shelf_on_the_scale_is_the_agents_entirely(scale: SerialScale) -> None:
    raw = SCENARIO.model_dump(by_alias=True)
    del raw["sites"][0]["shelves"][1]["cells"][1]  # shelf-a2 keeps its rice only
    raw["lots"] = []  # the spice's lot has no cell left
    raw["faults"] = [f for f in raw["faults"] if f["kind"] != "expiring_lot"]
    scenario = Scenario.model_validate(raw)
    warehouse = EdgeWarehouse(
        scenario, EdgeBinding(scale=RICE), Devices(), host="127.0.0.1", port=1,
        start_ms=START, scale=scale,
    )  # fmt: skip
    plain = ScenarioSimulation(scenario, start_ms=START)
    assert "shelf-a2" not in {topics.parse(m.topic).device for m in warehouse.births()}
    for k in range(60):
        expected = plain.round(k)
        assert warehouse.round(k, plain.round_ms(k)) == [
            m for m in expected if topics.parse(m.topic).device != "shelf-a2"
        ]
        assert scale.kg == plain.units("sim1", "shelf-a2", "c1")


def test_a_scale_in_grams_shows_the_cell_in_grams() -> None:
    scale = SerialScale(unit="g").start()
    try:
        spice = ScaleCell(shelf="shelf-a2", cell="c2")  # 30 x 125 g
        EdgeWarehouse(
            SCENARIO, EdgeBinding(scale=spice), Devices(), host="127.0.0.1", port=1,
            start_ms=START, scale=scale,
        )  # fmt: skip
        assert scale.reply("SI") == b"S S   3750.000 g\r\n"
    finally:
        scale.stop()


def test_the_agent_devices_read_the_scale_on_its_pty(scale: SerialScale) -> None:
    edge = EdgeBinding(scale=RICE)
    warehouse = EdgeWarehouse(
        SCENARIO, edge, Devices(), host="127.0.0.1", port=1, start_ms=START, scale=scale
    )
    devices = warehouse.agent_devices("127.0.0.1", 5020)
    config = EdgeConfig.model_validate({"site": "sim1", "agent_id": "gw", "devices": devices})
    [device] = config.devices
    assert isinstance(device, SerialScaleDevice)
    assert (device.name, device.cell, device.serial_port, device.command) == (
        "shelf-a2", "c1", scale.device, "SI"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("binding", "message"),
    [
        (
            EdgeBinding(scale=ScaleCell(shelf="shelf-z9", cell="c1")),
            "edge: sim1 has no shelf 'shelf-z9'",
        ),
        (
            EdgeBinding(scale=ScaleCell(shelf="shelf-a2", cell="c9")),
            "edge: shelf shelf-a2 has no cell 'c9'",
        ),
        (
            EdgeBinding(shelf="shelf-a1", scale=ScaleCell(shelf="shelf-a1", cell="c2")),
            "edge: shelf-a1 is on the Modbus shelf: not on the scale too",
        ),
    ],
)
def test_scale_cells_that_do_not_fit_are_refused(binding: EdgeBinding, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        binding.check(SCENARIO)


def test_the_scale_shelf_cannot_go_offline() -> None:
    scenario = _with_fault({"kind": "device_offline", "at": 60, "for": 60, "device": "shelf-a2"})
    with pytest.raises(ValueError, match=r"^edge: shelf-a2 cannot go offline behind the agent$"):
        EdgeBinding(scale=RICE).check(scenario)


def test_a_scale_cell_needs_a_scale_of_a_known_unit(scale: SerialScale) -> None:
    with pytest.raises(ValueError, match=r"^edge: a scale cell and a SerialScale go together$"):
        EdgeWarehouse(SCENARIO, EdgeBinding(scale=RICE), Devices(), host="127.0.0.1", port=1)
    with pytest.raises(ValueError, match=r"^edge: a scale cell and a SerialScale go together$"):
        EdgeWarehouse(SCENARIO, EDGE, Devices(), host="127.0.0.1", port=1, scale=scale)
    scale.unit = "oz"
    with pytest.raises(ValueError, match=r"^edge: the scale's unit 'oz' is not g, kg or lb$"):
        EdgeWarehouse(
            SCENARIO, EdgeBinding(scale=RICE), Devices(), host="127.0.0.1", port=1, scale=scale
        )
