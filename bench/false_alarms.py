"""False alarms and missed faults of the rules over a simulated week.

    .venv/bin/python -m bench.false_alarms [--speed 20160] [--no-picks]

Starts its own Mosquitto and InfluxDB and runs the example week (examples/scenario-week.yaml,
with one more dated lot) twice through the whole pipeline (broker, ingest, rules with the
anomaly processors, InfluxDB), each on its own site and database, with the rules on the
simulation's clock and a WMS recording every wave's picks as a pick list through the API
(thefts are not recorded): once with injected faults of every kind (:data:`FAULTS`, several
of each, in place of the file's), once with none. Every raise of an alert (a new alert or a
reopened one) is matched to the fault that should raise it: same type and source, raised from
the fault's start to :data:`GRACE_S` after its end. Prints a table per alert type (faults
injected, alerts raised, true and false positives, precision, recall) and every alert of the
week without faults, with its details; exits 1 when that week raised any. ``--no-picks``
runs both weeks without the WMS: only the dock portal's tags explain the shelves' drops.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import db
from core.alerts import Alert
from core.auth import AuthStore, Role
from core.inventory import InventoryStores
from core.mqtt_settings import MqttSettings
from core.settings import AlertingSettings, InfluxSettings, Settings
from rules.engine import RulesEngine
from simulators.scenario import Scenario, Theft, load_scenario
from simulators.warehouse import ApiPickRecorder, ScenarioWarehouse
from stocksense.apiserver import ApiServer
from stocksense.devservices import LocalStack, local_stack
from stocksense.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "examples" / "scenario-week.yaml"
SPEED = 20_160.0  # a week in 30 s
# An alert raised up to this long after its fault ended still answers it: a drift is seen
# hours into the fault, an excursion after its zone's allowance, a loss after the shelf settled.
GRACE_S = 3600.0
RAISES = ("raised", "reopened")  # alert events that tell people of a new occurrence

# Faults of every kind, several of each and apart in time, for the example week (its sites,
# shelves, probes and lots); one theft per cell, since a cell's loss alert stays active.
FAULTS: list[dict[str, Any]] = [
    {"kind": "theft", "at": "1d 3h", "device": "shelf-a1", "cell": "c2", "units": 3},
    {"kind": "theft", "at": "3d 2h", "device": "shelf-a2", "cell": "c1", "units": 2},
    # One unit, between two waves of the busiest SKU's busiest hour.
    {"kind": "theft", "at": "5d 15h 30m", "device": "shelf-a1", "cell": "c1", "units": 1},
    {"kind": "theft", "at": "6d 4h", "device": "shelf-a2", "cell": "c2", "units": 2},
    {"kind": "misplacement", "at": "2d 14h", "for": "3h", "sku": "COFFEE-250", "zone": "aisle-b"},
    {"kind": "misplacement", "at": "5d 9h", "for": "2h", "sku": "COFFEE-250", "zone": "aisle-b"},
    {"kind": "sensor_drift", "at": "3d 2h", "for": "6h", "device": "cold-2", "rate_c_per_h": 0.4},
    {"kind": "sensor_drift", "at": "6d 2h", "for": "5h", "device": "cold-3", "rate_c_per_h": -0.5},
    {"kind": "device_offline", "at": "4d 10h", "for": "2h", "device": "ambient-1"},
    # A cold-room probe away for hours, shelves away while they are picked from (silent, and
    # with a Last Will), the dock portal while picks ship.
    {"kind": "device_offline", "at": "4d 16h", "for": "3h", "device": "cold-1"},
    {"kind": "device_offline", "at": "1d 10h", "for": "1h", "device": "shelf-a1"},
    {"kind": "device_offline", "at": "2d 10h", "for": "90m", "device": "shelf-a2", "lwt": True},
    {"kind": "device_offline", "at": "6d 15h", "for": "1h", "device": "dock-1", "lwt": True},
    {"kind": "expiring_lot", "lot": "SP-2611", "alert_after": "1d 12h", "removal_after": "6d"},
    {"kind": "expiring_lot", "lot": "RC-BENCH", "alert_after": "1d 6h", "removal_after": "2d 12h"},
    {"kind": "cold_room_excursion", "at": "5d 13h", "for": "40m", "zone": "cold-room"},
    {"kind": "cold_room_excursion", "at": "1d 14h", "for": "90m", "zone": "ambient",
     "celsius": 33.0},
]  # fmt: skip
# A second dated lot: the rice picked (FEFO from this lot first) by its removal date leaves
# some of it on the shelf on every seed tried.
LOTS: list[dict[str, Any]] = [
    {"lot": "RC-BENCH", "sku": "RICE-1KG", "location": "A2-01", "qty": 40},
]


@dataclass(frozen=True)
class Raise:
    """One occurrence of an alert: its type and source, and when it was raised (epoch ms)."""

    type: str
    source: str
    at_ms: int
    alert: Alert


@dataclass(frozen=True)
class Expected:
    """An alert a fault should raise, and when: from its start to its end (epoch ms)."""

    type: str
    source: str
    from_ms: int
    to_ms: int


@dataclass
class Score:
    """How one alert type did: the faults that should raise it and the raises it had."""

    injected: int = 0
    raised: int = 0
    true_positives: int = 0
    false: list[Raise] = field(default_factory=list)
    missed: list[Expected] = field(default_factory=list)

    @property
    def false_positives(self) -> int:
        """Raises that answer no fault."""
        return len(self.false)

    @property
    def precision(self) -> float | None:
        """True positives per raise (None without a raise)."""
        return self.true_positives / self.raised if self.raised else None

    @property
    def recall(self) -> float | None:
        """Faults answered per fault injected (None without a fault)."""
        return self.true_positives / self.injected if self.injected else None


@dataclass(frozen=True)
class Week:
    """What one simulated week raised, and what it took."""

    site: str
    start_ms: int
    raises: list[Raise]
    alerts: list[Alert]
    wall_s: float
    messages: int
    picks: int
    picks_failed: int


def expected(
    scenario: Scenario, start_ms: int, alerting: AlertingSettings, grace_s: float = GRACE_S
) -> list[Expected]:
    """The alerts the scenario's faults should raise, each with the time it may come in.

    An excursion longer than its zone's daily out-of-band limit also exceeds that limit: it
    should raise ``cold_chain_cumulative`` as well.
    """
    found = []
    for type_, source, begin, end in scenario.expected_alert_times():
        window = (start_ms + round(begin * 1000), start_ms + round((end + grace_s) * 1000))
        found.append(Expected(type_, source, *window))
        if type_ == "cold_chain_excursion":
            site, zone = source.split("/", 1)
            limit_s = alerting.cold_chain_for(site, zone).daily_out_limit_s
            if limit_s is not None and end - begin > limit_s:
                found.append(Expected("cold_chain_cumulative", source, *window))
    return found


def score(wanted: Iterable[Expected], raises: Iterable[Raise]) -> dict[str, Score]:
    """Match raises to the faults that should cause them, per alert type.

    Each fault is answered by at most one raise (the earliest of its type and source inside
    its time), each raise answers at most one fault; raises left over are false positives.
    """
    scores: dict[str, Score] = {}
    left = sorted(raises, key=lambda r: (r.at_ms, r.source))
    for one in left:
        scores.setdefault(one.type, Score()).raised += 1
    for fault in sorted(wanted, key=lambda f: (f.from_ms, f.source)):
        entry = scores.setdefault(fault.type, Score())
        entry.injected += 1
        hit = next(
            (r for r in left
             if (r.type, r.source) == (fault.type, fault.source)
             and fault.from_ms <= r.at_ms <= fault.to_ms),
            None,
        )  # fmt: skip
        if hit is None:
            entry.missed.append(fault)
            continue
        left.remove(hit)
        entry.true_positives += 1
    for one in left:
        scores[one.type].false.append(one)
    return dict(sorted(scores.items()))


def variant(scenario: Scenario, *, site: str, faults: list[dict[str, Any]] | None) -> Scenario:
    """The scenario on site ``site`` (its first; its lots follow it) with :data:`LOTS` added,
    and ``faults`` in place of its own (``None``: no fault at all)."""
    raw = scenario.model_dump(by_alias=True, exclude_none=True)
    old = raw["sites"][0]["id"]
    raw["sites"][0]["id"] = site
    lots = raw["lots"] + [{**lot, "site": old} for lot in LOTS]
    raw["lots"] = [{**lot, "site": site} if lot["site"] == old else lot for lot in lots]
    raw["faults"] = faults or []
    return Scenario.model_validate(raw)


async def run_week(
    scenario: Scenario, stack: LocalStack, data_dir: Path, *, speed: float, picks: bool = True
) -> Week:
    """Run ``scenario`` once through a new pipeline, API and database; what it raised.
    ``picks``: the WMS records each wave's picks through the API."""
    site = scenario.sites[0].id
    scenario = scenario.model_copy(update={"speed": speed})
    unique = uuid.uuid4().hex[:8]
    settings = Settings(
        data_dir=data_dir,
        mqtt=MqttSettings(port=stack.mqtt_port, client_id=f"fa-{unique}", sites=(site,)),
        influx=InfluxSettings(url=stack.influx_url, database=f"fa_{unique}"),
    )
    api = ApiServer(settings, port=0)
    wms = ApiPickRecorder(api.url, _wms_token(settings)) if picks else None
    warehouse = ScenarioWarehouse(scenario, host="127.0.0.1", port=stack.mqtt_port, picks=wms)
    catalog = scenario.catalog(warehouse.start_ms)
    conn = db.connect(settings.database)
    try:
        InventoryStores.over(conn).load_catalog(
            skus=catalog.skus, shelves=catalog.shelves, rfid_zones=catalog.rfid_zones,
            lots=catalog.lots, ts_ms=warehouse.start_ms,
        )  # fmt: skip
    finally:
        conn.close()
    engine: list[RulesEngine] = []
    clock = warehouse.caught_up_clock(lambda: engine[0].processed if engine else 0)
    pipeline = Pipeline(settings, seed=catalog, anomaly_sites={site}, tick_interval_s=0.05,
                        clock=clock)  # fmt: skip
    engine.append(pipeline.rules)
    await pipeline.start()
    await api.start()
    started = time.monotonic()
    warehouse.start()
    try:
        await _until(warehouse.finished.is_set, timeout=300, what="the week published")
        await _until(lambda: pipeline.rules.processed >= warehouse.samples, timeout=300,
                     what="the rules caught up with the week")  # fmt: skip
        wall_s = time.monotonic() - started
        pipeline.rules.tick(warehouse.sim_ms())
        state = pipeline.alerts.state
        alerts = state.list(site=site, limit=10_000)
        raises = [
            Raise(a.type, a.source, int(e["at"]), a)
            for a in alerts
            for e in state.events(a.id)
            if e["event"] in RAISES
        ]
        recorded, failed = (wms.recorded, wms.failed) if wms is not None else (0, 0)
        return Week(site, warehouse.start_ms, raises, alerts, wall_s, warehouse.published,
                    recorded, failed)  # fmt: skip
    finally:
        warehouse.stop()
        if wms is not None:
            wms.close()
        await api.stop()
        await pipeline.stop()


def _wms_token(settings: Settings) -> str:
    """An API token of the WMS's user (an operator may record picks)."""
    conn = db.connect(settings.database)
    try:
        store = AuthStore(conn)
        store.add_user("wms", Role.OPERATOR)
        return store.create_token("wms", label="pick lists")[1]
    finally:
        conn.close()


async def _until(predicate: Any, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


def offset(at_ms: int, start_ms: int) -> str:
    """Simulated time since the start as ``2d 13h 05m``."""
    minutes = (at_ms - start_ms) // 60_000
    return f"{minutes // 1440}d {minutes // 60 % 24:02d}h {minutes % 60:02d}m"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def table(scores: dict[str, Score]) -> list[str]:
    """The scores as a Markdown table, with a total row."""
    head = "alert type | faults injected | alerts raised | true positives | false positives"
    lines = [f"| {head} | precision | recall |", "|---|---|---|---|---|---|---|"]
    total = Score()
    for type_, s in scores.items():
        lines.append(
            f"| `{type_}` | {s.injected} | {s.raised} | {s.true_positives} | {s.false_positives}"
            f" | {_ratio(s.precision)} | {_ratio(s.recall)} |"
        )
        total.injected += s.injected
        total.raised += s.raised
        total.true_positives += s.true_positives
        total.false += s.false
    lines.append(
        f"| all | {total.injected} | {total.raised} | {total.true_positives}"
        f" | {total.false_positives} | {_ratio(total.precision)} | {_ratio(total.recall)} |"
    )
    return lines


def describe(one: Raise, start_ms: int) -> str:
    """A raise with what the rule said about it."""
    a = one.alert
    details = json.dumps(a.details, ensure_ascii=False, sort_keys=True)
    return (
        f"{one.type} {one.source} at {offset(one.at_ms, start_ms)} ({a.severity}, now {a.state},"
        f" value {a.value}, threshold {a.threshold}): {a.message} {details}"
    )


def theft_losses(scenario: Scenario, week: Week) -> list[tuple[str, int, float | None]]:
    """(cell, units stolen, value of its loss alert) of each theft: the value is the units no
    pick explained (a later drop of the cell adds to the open alert rather than raising
    another); None without an alert."""
    found = []
    for fault in scenario.faults:
        if isinstance(fault, Theft):
            source = f"{week.site}/{fault.device}/{fault.cell}"
            value = next(
                (a.value for a in week.alerts
                 if (a.type, a.source) == ("unexplained_loss", source)),
                None,
            )  # fmt: skip
            found.append((source, fault.units, value))
    return found


async def _bench(scenario: Scenario, speed: float, root: Path, *, picks: bool) -> int:
    faulty = variant(scenario, site="fa-faults", faults=FAULTS)
    clean = variant(scenario, site="fa-clean", faults=None)
    with local_stack(root / "services") as stack:
        weeks = []
        for sim in (faulty, clean):
            week = await run_week(sim, stack, root / sim.sites[0].id, speed=speed, picks=picks)
            weeks.append(week)
    with_faults, without = weeks
    days = (scenario.duration or 0.0) / 86_400
    print(
        f"{days:g} simulated days of {scenario.sites[0].name or scenario.sites[0].id} (seed"
        f" {scenario.seed}, a round every {scenario.interval_s:g} s) at {speed:g}x, each week"
        " through Mosquitto, ingest, the rules and InfluxDB, "
        + ("its picks recorded as pick lists through the API" if picks else "no pick recorded")
    )
    for week in weeks:
        print(
            f"  {week.site}: {week.messages} messages in {week.wall_s:.1f} s, {week.picks} picks"
            f" recorded ({week.picks_failed} refused), {len(week.raises)} alerts raised"
        )
    wanted = expected(faulty, with_faults.start_ms, AlertingSettings())
    scores = score(wanted, with_faults.raises)
    print(f"\nWith {len(faulty.faults)} injected faults ({len(wanted)} alerts expected):\n")
    print("\n".join(table(scores)))
    for type_, s in scores.items():
        for one in s.false:
            print(f"  false positive: {describe(one, with_faults.start_ms)}")
        for fault in s.missed:
            since = offset(fault.from_ms, with_faults.start_ms)
            print(f"  missed: {type_} {fault.source} from {since}")
    for source, units, value in theft_losses(faulty, with_faults):
        verdict = "" if value == units else ": MISMATCH"
        print(f"  theft of {units} units at {source}: loss alert of {value} units{verdict}")
    print(f"\nWithout faults: {len(without.raises)} alerts raised")
    for one in without.raises:
        print(f"  {describe(one, without.start_ms)}")
    return 1 if without.raises else 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 when the week without faults raised any alert."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--speed", type=float, default=SPEED, help="simulated seconds per real second (%(default)g)"
    )
    parser.add_argument(
        "--no-picks", action="store_true", help="record no pick: only RFID exits explain drops"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    scenario = load_scenario(SCENARIO)
    with tempfile.TemporaryDirectory(prefix="bench-false-alarms-") as root:
        return asyncio.run(_bench(scenario, args.speed, Path(root), picks=not args.no_picks))


if __name__ == "__main__":
    sys.exit(main())
