"""Benchmark of the inventory domain layer; prints figures, asserts nothing.

    .venv/bin/python -m bench.rules

- ``dynamic_levels`` over 100,000 SKUs x 180 days of demand (best of 5);
- the weight-cell state machine, per reading;
- the RFID tracker, per read (and per ``tick``).
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable

import numpy as np

from core.epc import encode_sgtin96
from core.readings import TagSample, WeightSample
from rules.inventory.replenishment import dynamic_levels
from rules.inventory.rfid import RfidTracker
from rules.inventory.weight import CellConfig, CellTracker, Movement, WeightEvent

SKUS = 100_000
DAYS = 180
T0 = 1_795_309_200_000


def best_of(runs: int, fn: Callable[[], object]) -> float:
    """Best wall time of ``runs`` calls, in seconds."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench_dynamic_levels() -> None:
    rng = np.random.default_rng(42)
    rates = rng.gamma(shape=1.5, scale=8.0, size=(SKUS, 1))
    demand = rng.poisson(lam=rates, size=(SKUS, DAYS)).astype(np.float64)
    lead_mean = rng.uniform(2.0, 30.0, size=SKUS)
    lead_sigma = lead_mean * rng.uniform(0.05, 0.3, size=SKUS)
    service = rng.choice(np.array([0.9, 0.95, 0.975, 0.99]), size=SKUS)
    seconds = best_of(5, lambda: dynamic_levels(demand, lead_mean, lead_sigma, service))
    _, _, ss, rop = dynamic_levels(demand, lead_mean, lead_sigma, service)
    print(f"dynamic_levels {SKUS:,} SKUs x {DAYS} days: best of 5 = {seconds:.3f} s")
    print(f"  mean safety stock {ss.mean():.1f}, mean reorder point {rop.mean():.1f}")


def bench_weight(readings: int = 200_000, cells: int = 50) -> None:
    rng = random.Random(7)
    unit = 250.0
    configs = [
        CellConfig(site="wh1", device="shelf-1", cell=f"c{i}", sku=f"SKU-{i}", unit_grams=unit)
        for i in range(cells)
    ]
    levels = [rng.randint(5, 40) * unit for _ in range(cells)]
    samples: list[WeightSample] = []
    changes = 0
    for n in range(readings):
        cell = n % cells
        if rng.random() < 0.002:  # a pick or a put now and then
            levels[cell] = max(0.0, levels[cell] + rng.choice([-2, -1, 1, 2]) * unit)
            changes += 1
        grams = levels[cell] + rng.uniform(-0.005, 0.005) * unit
        if rng.random() < 0.01:
            grams += 3 * unit
        samples.append(
            WeightSample(site="wh1", device="shelf-1", cell=f"c{cell}", ts_ms=T0 + n, grams=grams)
        )

    def run() -> list[WeightEvent]:
        # Keyed by (site, device, cell), as the processor's shelves find a reading's cell.
        trackers = {config.key: CellTracker(config) for config in configs}
        events: list[WeightEvent] = []
        for sample in samples:
            events += trackers[(sample.site, sample.device, sample.cell)].update(sample)
        return events

    seconds = best_of(3, run)
    events = run()
    moves = sum(isinstance(e, Movement) for e in events)
    print(
        f"weight state machine: {seconds / readings * 1e6:.2f} us per reading "
        f"({readings:,} readings, {cells} cells, {changes} changes made, "
        f"{moves} movements and {len(events) - moves} ambiguous reported)"
    )


def bench_rfid(reads: int = 200_000, tags: int = 500) -> None:
    rng = random.Random(9)
    zones = {("r1", 1): "dock", ("r1", 2): "dock", ("r2", 1): "aisle", ("r3", 1): "out"}
    antennas = list(zones)
    gtin = "80614141123458"
    epcs = [encode_sgtin96(gtin, serial) for serial in range(tags)]
    # Each tag sits near one antenna; a neighbour hears it now and then, weaker, and 1 % of
    # the tags are carried to another antenna halfway through.
    home = [rng.randrange(len(antennas)) for _ in range(tags)]
    samples = []
    for n in range(reads):
        tag = rng.randrange(tags)
        if n == reads // 2:
            for moved in rng.sample(range(tags), tags // 100):
                home[moved] = (home[moved] + 1) % len(antennas)
        if rng.random() < 0.1:
            device, antenna = rng.choice(antennas)
            rssi = rng.uniform(-85.0, -70.0)
        else:
            device, antenna = antennas[home[tag]]
            rssi = rng.uniform(-60.0, -50.0)
        samples.append(
            TagSample(
                site="wh1",
                device=device,
                antenna=antenna,
                ts_ms=T0 + n * 2,
                epc=epcs[tag],
                rssi=rssi,
            )
        )

    def run() -> int:
        tracker = RfidTracker(antenna_zones=zones, gtin_to_sku={gtin: "SKU-ACME"})
        events = 0
        for i, sample in enumerate(samples):
            events += len(tracker.observe(sample))
            if i % 1_000 == 0:
                events += len(tracker.tick(sample.ts_ms))
        return events

    seconds = best_of(3, run)
    events = run()
    print(
        f"RFID tracker: {seconds / reads * 1e6:.2f} us per read "
        f"({reads:,} reads of {tags:,} tags over {reads * 2 / 1000:.0f} s, "
        f"tick every 1,000 reads, {events:,} events)"
    )


def main() -> None:
    """Run every benchmark and print its figures."""
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}")
    bench_dynamic_levels()
    bench_weight()
    bench_rfid()


if __name__ == "__main__":
    main()
