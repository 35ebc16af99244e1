"""Scenario files of the virtual warehouse: validation that names the field, the catalog they
produce, seeded reproducibility, and what the simulation does with demand, receipts and faults."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from core.errors import ConfigError
from core.readings import TempSample, WeightSample
from ingest.decode import decode_canonical
from simulators.scenario import Scenario, load_scenario
from simulators.warehouse import Message, ScenarioSimulation

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "scenario-week.yaml"
START = 1_795_449_600_000  # 2026-11-24 00:00 Asia/Shanghai, a Tuesday
RAW: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


def _raw(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(RAW)
    raw.update(changes)
    return raw


def _errors(raw: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        Scenario.model_validate(raw)
    return [(".".join(map(str, e["loc"])), e["msg"]) for e in caught.value.errors()]


def _run(scenario: Scenario, rounds: int) -> list[Message]:
    sim = ScenarioSimulation(scenario, start_ms=START)
    out = sim.births()
    for k in range(rounds):
        out += sim.round(k)
    return out


# --------------------------------------------------------------------------- validation


def test_the_example_loads_and_produces_the_catalog_the_pipeline_needs() -> None:
    scenario = load_scenario(EXAMPLE)
    seed = scenario.catalog(START)
    assert [s.id for s in seed.sites] == ["sim1"]
    cold = seed.site("sim1")
    assert cold is not None
    assert [(z.id, z.allowance_s, [r.device for r in z.sensors]) for z in cold.zones[:2]] == [
        ("cold-room", 600.0, ["cold-1", "cold-2", "cold-3"]),
        ("ambient", 3600.0, ["ambient-1"]),
    ]
    assert [(s.device, s.cell, s.sku, s.location_id) for s in seed.shelves] == [
        ("shelf-a1", "c1", "COFFEE-250", "A1-01"),
        ("shelf-a1", "c2", "TEA-500", "A1-02"),
        ("shelf-a2", "c1", "RICE-1KG", "A2-01"),
        ("shelf-a2", "c2", "SPICE-125", "A2-02"),
    ]
    assert [(z.device, z.antenna, z.zone, z.role) for z in seed.rfid_zones] == [
        ("rd-1", 1, "aisle-a", "storage"),
        ("rd-1", 2, "aisle-b", "storage"),
        ("dock-1", 1, "dock-in", "receiving"),
        ("dock-1", 2, "dock-out", "shipping"),
    ]
    # The expiring lot is dated from the start: alert after 1d 12h, removal after 6 days.
    [lot] = seed.lots
    assert (lot.received_at, lot.alert_at, lot.removal_at) == (
        START,
        START + 36 * 3_600_000,
        START + 6 * 86_400_000,
    )
    assert scenario.duration == 7 * 86_400
    assert scenario.ship_after_s == 540


@pytest.mark.parametrize(
    ("change", "where", "says"),
    [
        ({"speed": 0}, "speed", "greater than 0"),
        ({"duration": "7 days"}, "duration", "not a duration: '7 days'"),
        ({"pick_wave": "-1h"}, "pick_wave", "not a duration"),
        ({"colour": "red"}, "colour", "Extra inputs are not permitted"),
        ({"sites": []}, "sites", "at least 1 item"),
    ],
)
def test_top_level_errors_name_the_field(change: dict[str, Any], where: str, says: str) -> None:
    [(loc, msg)] = _errors(_raw(**change))
    assert loc == where
    assert says in msg


def test_reference_errors_name_the_item_at_fault() -> None:
    raw = _raw()
    site = raw["sites"][0]
    site["shelves"][1]["cells"][1]["sku"] = "SALT-1KG"
    site["zones"][0]["sensors"].append({"device": "shelf-a1"})
    raw["faults"][0]["cell"] = "c9"
    raw["faults"][2]["device"] = "cold-9"
    raw["faults"][4]["lot"] = "SP-0000"
    del raw["skus"][1]["gtin"]  # TEA has demand: its picks could not be seen leaving
    raw["receipts"][0]["sku"] = "SALT"
    assert _errors(raw) == [
        ("sites.0.shelves.1.cells.1.sku", "unknown SKU 'SALT-1KG'"),
        ("sites.0.zones.0.sensors.3.device", "shelf-a1 is already a weight device"),
        (
            "demand.TEA-500",
            (
                "picks of TEA-500 leave through a dock portal: the SKU needs a gtin and its"
                " site a portal"
            ),
        ),
        ("receipts.0.sku", "unknown SKU 'SALT'"),
        ("faults.0.cell", "shelf-a1 has no cell 'c9'"),
        ("faults.2.device", "sim1 has no probe 'cold-9'"),
        ("faults.4.lot", "unknown lot 'SP-0000'"),
    ]


def test_fault_fields_are_checked_per_kind() -> None:
    raw = _raw()
    raw["faults"][1]["zone"] = "aisle-a"  # COFFEE's home zone: nothing misplaced there
    raw["faults"][3]["for"] = "soon"
    raw["faults"][5]["kind"] = "meteor"
    errors = _errors(raw)
    assert [loc for loc, _ in errors] == ["faults.3.device_offline.for", "faults.5"]
    assert errors[0][1] == "not a duration: 'soon' (seconds, or e.g. '2d 3h 30m 10s')"
    assert "'theft', 'misplacement'" in errors[1][1]
    del raw["faults"][5]
    raw["faults"][3]["for"] = "2h"
    assert _errors(raw) == [("faults.1.zone", "aisle-a must differ from COFFEE-250's home_zone")]


def test_catalog_errors_come_through_with_their_place_in_the_catalog() -> None:
    raw = _raw()
    raw["skus"][1]["gtin"] = "06901234567909"
    [(loc, msg)] = _errors(raw)
    assert loc == "skus.1.gtin"
    assert msg == "check digit is 9, expected 8"


def test_pick_hours_and_weekly_are_checked() -> None:
    raw = _raw()
    raw["demand"]["TEA-500"]["pick_hours"] = {25: 1}
    raw["demand"]["RICE-1KG"]["weekly"] = [1, 1, 1]
    assert [loc for loc, _ in _errors(raw)] == [
        "demand.TEA-500.pick_hours",
        "demand.RICE-1KG.weekly",
    ]


def test_load_scenario_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 1\nsites: [{id: 'a b'}]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"scenario .*bad\.yaml is invalid: sites\.0\.id: "):
        load_scenario(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_scenario(tmp_path / "none.yaml")


# --------------------------------------------------------------------------- reproducibility


def test_same_seed_same_messages_and_another_seed_others() -> None:
    scenario = load_scenario(EXAMPLE)
    day = 1440  # rounds of a minute
    first = _run(scenario, day)
    again = _run(scenario, day)
    assert [(m.topic, json.dumps(m.payload), m.retain) for m in first] == [
        (m.topic, json.dumps(m.payload), m.retain) for m in again
    ]
    other = _run(scenario.model_copy(update={"seed": scenario.seed + 1}), day)
    assert [m.topic for m in other[:20]] == [m.topic for m in first[:20]]
    assert [m.payload for m in other] != [m.payload for m in first]


def test_default_start_is_a_local_midnight_that_keeps_the_clock_behind_the_wall() -> None:
    scenario = load_scenario(EXAMPLE)
    now = START + 5 * 3_600_000 + 123_456  # 05:02 local
    start = scenario.start_ms(now)
    # A week at 10080x lasts a minute: the start is at least a week minus a minute back.
    assert now - start >= 7 * 86_400_000 - 60_000
    assert (start - START) % 86_400_000 == 0
    assert scenario.model_copy(update={"start": START}).start_ms(now) == START
    # In real time the warehouse starts now, alongside rules on the wall clock.
    assert scenario.model_copy(update={"speed": 1.0}).start_ms(now) == now


def test_an_accelerated_scenario_needs_a_duration() -> None:
    raw = _raw()
    del raw["duration"]
    why = "its clock would run ahead of the wall clock"
    assert _errors(raw) == [("duration", f"an accelerated scenario needs a duration: {why}")]
    assert Scenario.model_validate({**raw, "speed": 1}).duration is None


# --------------------------------------------------------------------------- what happens


def test_messages_decode_to_the_contract_and_follow_the_round_clock() -> None:
    scenario = load_scenario(EXAMPLE)
    sim = ScenarioSimulation(scenario, start_ms=START)
    births = sim.births()
    assert [m.topic for m in births] == [
        f"stocksense/v1/sim1/{kind}/{device}/status"
        for kind, device in [
            ("temp", "cold-1"), ("temp", "cold-2"), ("temp", "cold-3"), ("temp", "ambient-1"),
            ("weight", "shelf-a1"), ("weight", "shelf-a2"), ("rfid", "rd-1"), ("rfid", "dock-1"),
        ]
    ]  # fmt: skip
    assert all(m.retain and m.payload["online"] is True for m in births)
    samples = []
    for k in range(3):
        for message in sim.round(k):
            assert message.payload["ts"] == START + k * 60_000
            raw = json.dumps(message.payload).encode()
            samples += decode_canonical(message.topic, raw, START).samples
    temps = [s for s in samples if isinstance(s, TempSample)]
    weights = [s for s in samples if isinstance(s, WeightSample)]
    assert len(temps) == 12
    assert len(weights) == 12
    coffee = [s.grams for s in weights if (s.device, s.cell) == ("shelf-a1", "c1")]
    assert all(abs(g - 80 * 250) < 10 for g in coffee)
    cold = [s.celsius for s in temps if s.device.startswith("cold")]
    assert all(4.0 < c < 5.0 for c in cold)


def test_a_week_of_demand_receipts_and_faults() -> None:
    scenario = load_scenario(EXAMPLE)
    sim = ScenarioSimulation(scenario, start_ms=START)
    messages: list[tuple[int, Message]] = []
    for k in range(7 * 1440 + 1):
        messages += [(k, m) for m in sim.round(k)]
    truth = sim.truth
    for sku, shelf, cell, start in [
        ("COFFEE-250", "shelf-a1", "c1", 80),
        ("TEA-500", "shelf-a1", "c2", 50),
        ("RICE-1KG", "shelf-a2", "c1", 40),
    ]:
        t = truth[("sim1", sku)]
        assert sim.units("sim1", shelf, cell) == start + t.put - t.picked - t.stolen
        assert t.shipped == t.picked == t.demanded - t.short
    assert truth[("sim1", "TEA-500")].stolen == 3
    assert truth[("sim1", "COFFEE-250")].received == 96
    assert sim.units("sim1", "shelf-a2", "c2") == 30  # no demand for the spice
    # Picks follow the pick hours: nothing shipped between 20:00 and 08:00 local.
    ships = [
        m.payload["ts"] for _, m in messages
        if m.topic.endswith("/rfid/dock-1/data") and _antenna(m) == 2
    ]  # fmt: skip
    hours = {((int(str(ts)) - START) // 3_600_000) % 24 for ts in ships}
    assert hours <= set(range(9, 21))
    # The offline probe is silent for exactly its two hours, then announces itself.
    ambient = [k for k, m in messages if m.topic == "stocksense/v1/sim1/temp/ambient-1/data"]
    gap = [b - a for a, b in itertools.pairwise(ambient) if b - a > 1]
    assert gap == [121]
    back = [m for _, m in messages if m.topic.endswith("/temp/ambient-1/status")]
    assert [m.payload["online"] for m in back] == [True]
    # The misplaced tag is read in aisle-b (antenna 2 of rd-1) for three hours, every round.
    aisle_b = [k for k, m in messages if m.topic.endswith("/rfid/rd-1/data")]
    assert len(aisle_b) == 180
    assert aisle_b[0] == (2 * 24 + 14) * 60


def test_pick_hours_shape_the_day_without_changing_its_total() -> None:
    scenario = load_scenario(EXAMPLE)
    sim = ScenarioSimulation(scenario, start_ms=START)
    coffee = next(line for line in sim.demand_lines if line.sku == "COFFEE-250")
    flat = ScenarioSimulation(
        scenario.model_copy(
            update={
                "demand": {
                    **scenario.demand,
                    "COFFEE-250": scenario.demand["COFFEE-250"].model_copy(
                        update={"pick_hours": dict.fromkeys(range(24), 1.0)}
                    ),
                }
            }
        ),
        start_ms=START,
    )
    flat_coffee = next(line for line in flat.demand_lines if line.sku == "COFFEE-250")
    hours: list[int] = []
    for day in range(28):
        shaped = sim.day_picks(coffee, day)
        assert len(shaped) == len(flat.day_picks(flat_coffee, day))
        assert len(shaped) == coffee.stream.day_total(day)
        hours += [((t - START) // 3_600_000) % 24 for t in shaped]
    assert set(hours) <= set(range(8, 19))
    # Four hours of weight 3 (10, 11, 15, 16) against four of weight 1 (8, 12, 13, 18).
    busy = sum(hours.count(h) for h in (10, 11, 15, 16))
    quiet = sum(hours.count(h) for h in (8, 12, 13, 18))
    assert 2.0 < busy / quiet < 4.0


def _antenna(message: Message) -> int:
    reads = message.payload["reads"]
    assert isinstance(reads, list)
    return int(reads[0]["antenna"])


def test_the_documented_example_validates_and_raises_what_the_table_says() -> None:
    doc = (EXAMPLE.parents[1] / "docs" / "simulator.md").read_text(encoding="utf-8")
    block = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    scenario = Scenario.model_validate(yaml.safe_load(block))
    assert scenario.start == START
    assert scenario.expected_alerts() == [("unexplained_loss", "sim1/shelf-a1/c1")]
    sim = ScenarioSimulation(scenario, start_ms=scenario.start_ms(0))
    for k in range(2 * 1440):
        sim.round(k)
    assert sim.truth[("sim1", "COFFEE-250")].stolen == 3
