"""Weight shelves: exact unit counts under noise and spikes, ambiguity, drift, tare."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from core.readings import WeightSample
from rules.inventory import InvalidParameterError
from rules.inventory.weight import (
    AmbiguousChange,
    CellConfig,
    CellTracker,
    HampelFilter,
    Movement,
    WeightEvent,
)

T0 = 1_795_309_200_000
UNIT = 250.0
TARE = 1_200.0


BASE = CellConfig(
    site="wh1", device="shelf-1", cell="c1", sku="SKU-1", unit_grams=UNIT, tare_grams=TARE
)


def _config(**overrides: Any) -> CellConfig:
    return replace(BASE, **overrides)


class Shelf:
    """Generates realistic readings: +-0.5 % of a unit of noise plus occasional spikes."""

    def __init__(self, rng: random.Random, *, units: int, spike_p: float = 0.03) -> None:
        self.rng = rng
        self.grams = TARE + units * UNIT
        self.spike_p = spike_p
        self.ts = T0
        self.drift = 0.0

    def reading(self, *, step_ms: int = 1_000) -> tuple[int, float]:
        self.ts += step_ms
        value = self.grams + self.drift + self.rng.uniform(-0.005, 0.005) * UNIT
        if self.rng.random() < self.spike_p:
            value += self.rng.choice([-1, 1]) * self.rng.uniform(1.0, 4.0) * UNIT
        return self.ts, value

    def feed(self, tracker: CellTracker, n: int, *, step_ms: int = 1_000) -> list[WeightEvent]:
        events: list[WeightEvent] = []
        for _ in range(n):
            ts, grams = self.reading(step_ms=step_ms)
            events.extend(
                tracker.update(
                    WeightSample(site="wh1", device="shelf-1", cell="c1", ts_ms=ts, grams=grams)
                )
            )
        return events

    def change(self, tracker: CellTracker, units: float) -> list[WeightEvent]:
        """A hand takes or puts items: two readings in between, then the new level."""
        events: list[WeightEvent] = []
        target = self.grams + units * UNIT
        for frac in (0.3, 0.8):
            self.ts += 1_000
            mid = self.grams + frac * (target - self.grams) + self.rng.uniform(-40, 40)
            events.extend(tracker.update_raw(self.ts, mid))
        self.grams = target
        return events


def _movements(events: list[WeightEvent]) -> list[tuple[str, int]]:
    return [(e.kind, e.units) for e in events if isinstance(e, Movement)]


def test_picks_and_puts_of_1_to_n_units_count_exactly_under_noise_and_spikes() -> None:
    rng = random.Random(20240601)
    tracker = CellTracker(_config())
    shelf = Shelf(rng, units=20)
    assert shelf.feed(tracker, 30) == []
    assert tracker.phase == "idle"
    assert tracker.units_on_shelf == 20
    expected: list[tuple[str, int]] = []
    seen: list[tuple[str, int]] = []
    for n in range(1, 8):
        for units, kind in ((-n, "pick"), (n, "put")):
            events = shelf.change(tracker, units)
            events += shelf.feed(tracker, 25)
            expected.append((kind, n))
            seen += _movements(events)
            assert not [e for e in events if isinstance(e, AmbiguousChange)]
    assert seen == expected
    assert tracker.units_on_shelf == 20
    assert tracker.spikes > 0  # the spikes were there, and filtered


@pytest.mark.parametrize("seed", range(10))
def test_random_sequences_reconcile_to_the_shelf_content(seed: int) -> None:
    rng = random.Random(seed)
    tracker = CellTracker(_config())
    shelf = Shelf(rng, units=30, spike_p=0.05)
    shelf.feed(tracker, 20)
    units = 30
    for _ in range(20):
        delta = rng.choice([-3, -2, -1, 1, 2, 3])
        units += delta
        events = shelf.change(tracker, delta) + shelf.feed(tracker, 20)
        moves = [e for e in events if isinstance(e, Movement)]
        assert len(moves) == 1
        assert moves[0].units == abs(delta)
        assert moves[0].kind == ("pick" if delta < 0 else "put")
        assert moves[0].sku == "SKU-1"
        assert moves[0].cell == "c1"
    assert tracker.units_on_shelf == units


def test_movement_carries_time_cell_and_sku() -> None:
    rng = random.Random(1)
    tracker = CellTracker(_config())
    shelf = Shelf(rng, units=4, spike_p=0.0)
    shelf.feed(tracker, 10)
    events = shelf.change(tracker, -1) + shelf.feed(tracker, 10)
    (move,) = events
    assert isinstance(move, Movement)
    assert move.kind == "pick"
    assert move.units == 1
    assert move.delta_grams == pytest.approx(-UNIT, abs=3)
    assert T0 < move.ts_ms <= shelf.ts
    assert (move.site, move.device, move.cell, move.sku) == ("wh1", "shelf-1", "c1", "SKU-1")


@pytest.mark.parametrize("units", [-1.5, 0.5, 2.45])
def test_ambiguous_change_is_flagged_not_guessed(units: float) -> None:
    rng = random.Random(3)
    tracker = CellTracker(_config())
    shelf = Shelf(rng, units=10)
    shelf.feed(tracker, 20)
    events = shelf.change(tracker, units) + shelf.feed(tracker, 20)
    assert _movements(events) == []
    (flag,) = events
    assert isinstance(flag, AmbiguousChange)
    assert flag.units_estimate == pytest.approx(units, abs=0.02)
    # the next clean pick is counted from the new level
    events = shelf.change(tracker, -2) + shelf.feed(tracker, 20)
    assert _movements(events) == [("pick", 2)]


def test_fifty_grams_of_drift_over_an_hour_idle_gives_no_movement() -> None:
    rng = random.Random(11)
    tracker = CellTracker(_config())
    shelf = Shelf(rng, units=12)
    shelf.feed(tracker, 20)
    events: list[WeightEvent] = []
    for _ in range(3_600):  # one reading a second for an hour, 50 g of creep in total
        shelf.drift += 50.0 / 3_600
        events += shelf.feed(tracker, 1)
    assert events == []
    assert tracker.drift_grams == pytest.approx(50.0, abs=3.0)
    # a real pick of one 250 g unit after the drift is still seen
    events = shelf.change(tracker, -1) + shelf.feed(tracker, 20)
    assert _movements(events) == [("pick", 1)]


def test_drift_with_sparse_readings_and_a_pick_in_the_middle() -> None:
    rng = random.Random(12)
    tracker = CellTracker(_config())
    shelf = Shelf(rng, units=6, spike_p=0.02)
    shelf.feed(tracker, 10, step_ms=10_000)
    events: list[WeightEvent] = []
    for i in range(360):  # one reading every 10 s for an hour; 50 g of drift downwards
        shelf.drift -= 50.0 / 360
        if i == 180:
            events += shelf.change(tracker, -1)
        events += shelf.feed(tracker, 1, step_ms=10_000)
    assert _movements(events) == [("pick", 1)]
    assert [e for e in events if isinstance(e, AmbiguousChange)] == []


def test_hampel_filter_replaces_spikes_with_the_median() -> None:
    f = HampelFilter(window=7, k=3.0)
    out = [f.update(x) for x in [100.0, 100.5, 99.6, 100.2, 99.9, 900.0, 100.1, 100.3]]
    # Six readings in the window at the spike; the median is the mean of 100.0 and 100.2.
    assert out[5] == pytest.approx(100.1)
    assert out[:5] == [100.0, 100.5, 99.6, 100.2, 99.9]
    assert f.spikes == 1


def test_hampel_filter_lets_a_lasting_step_through() -> None:
    f = HampelFilter(window=7, k=3.0)
    for _ in range(7):
        f.update(1_000.0)
    out = [f.update(750.0) for _ in range(6)]
    assert out[-1] == 750.0  # after the step holds the majority of the window


def test_trusted_device_stable_flag_drives_settling() -> None:
    tracker = CellTracker(_config(trust_device_stable=True))
    ts = T0
    events: list[WeightEvent] = []
    for grams, stable in [(3_200, True), (3_100, False), (2_950, False), (2_950, True)]:
        ts += 1_000
        events += tracker.update_raw(ts, grams, stable)
    assert _movements(events) == [("pick", 1)]


def test_the_tare_is_taken_off_every_reading() -> None:
    untared = CellTracker(_config(tare_grams=0.0))
    tared = CellTracker(_config())
    for i in range(10):
        untared.update_raw(T0 + i * 1_000, TARE + 5 * UNIT)
        tared.update_raw(T0 + i * 1_000, TARE + 5 * UNIT)
    assert untared.units_on_shelf == 10  # the empty shelf's 1200 g looks like 4.8 units
    assert tared.units_on_shelf == 5


def test_late_readings_are_ignored() -> None:
    tracker = CellTracker(_config())
    for i in range(10):
        tracker.update_raw(T0 + i * 1_000, TARE + 4 * UNIT)
    # replayed old readings of a different level change nothing
    for i in range(10):
        assert tracker.update_raw(T0 + i * 1_000, TARE) == []
    assert tracker.units_on_shelf == 4


def test_config_validation() -> None:
    with pytest.raises(InvalidParameterError):
        _config(unit_grams=0.0)
    with pytest.raises(InvalidParameterError):
        _config(tolerance=0.5)
