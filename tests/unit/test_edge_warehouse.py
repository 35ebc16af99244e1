"""The virtual warehouse with devices behind the edge agent, without a broker: the Modbus
devices' registers follow the simulation round by round, those devices' messages are left out
of MQTT and nothing else is, and bindings that do not fit the scenario are refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core import topics
from edge.config import EdgeConfig, ModbusTcpDevice
from simulators.edge_warehouse import EdgeBinding, EdgeWarehouse
from simulators.modbus_devices import Devices
from simulators.scenario import load_scenario
from simulators.warehouse import Message, ScenarioSimulation

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "scenario-week.yaml"
START = 1_795_449_600_000  # 2026-11-24 00:00 Asia/Shanghai
SCENARIO = load_scenario(EXAMPLE).model_copy(update={"speed": 1.0})
EDGE = EdgeBinding(shelf="shelf-a1", probes=["cold-1", "cold-2"])
GRAMS = {"c1": 250.0, "c2": 500.0}  # COFFEE-250, TEA-500


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
