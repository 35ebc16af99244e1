"""False alarms: a loss check that looks for RFID exits over the whole drop (a shelf offline
while it was picked from), and the false-alarm benchmark: how raises are matched to faults,
and its two weeks through the real broker, ingest, rules, API and InfluxDB (every fault found,
nothing else raised, and nothing at all without faults)."""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.false_alarms import (
    FAULTS,
    SCENARIO,
    Expected,
    Raise,
    expected,
    offset,
    run_week,
    score,
    table,
    theft_losses,
    variant,
)
from core import db
from core.alerts import Alert, AlertStores
from core.epc import encode_sgtin96
from core.inventory import InventoryStores, RfidZone, Shelf, Sku
from core.readings import TagSample, WeightSample
from core.settings import AlertingSettings, ColdChainPolicy, InventorySettings
from rules.inventory.service import InventoryProcessor
from simulators.scenario import load_scenario
from stocksense.devservices import LocalStack

HOUR_MS = 3_600_000
MINUTE_MS = 60_000
T0 = 1_795_309_200_000
SITE = "wh1"
GTIN = "06901234567892"


@pytest.fixture
def conn(database: db.Target) -> Iterator[db.Connection]:
    connection = db.connect(database)
    yield connection
    connection.close()


def _shelf_and_portal(conn: db.Connection) -> InventoryProcessor:
    """Rice on a shelf cell (1 kg a unit) and a dock portal that ships, with a 120 s window."""
    stores = InventoryStores.over(conn)
    stores.load_catalog(
        skus=[Sku(sku="RICE", gtin=GTIN, unit_grams=1000)],
        shelves=[Shelf(site=SITE, device="shelf-1", cell="c1", sku="RICE", location="A1")],
        rfid_zones=[RfidZone(site=SITE, device="dock-1", antenna=2, zone="dock-out",
                             role="shipping")],
        ts_ms=T0,
    )  # fmt: skip
    return InventoryProcessor(
        store=stores,
        alerts=AlertStores.over(conn, []).state,
        config=InventorySettings(loss_window_s=120, settle_s=0),
    )


def _rounds(processor: InventoryProcessor, units: int, start_ms: int, n: int = 12) -> int:
    """``n`` readings a minute apart of the cell at ``units``; returns the time after them."""
    processor.process([
        WeightSample(site=SITE, device="shelf-1", cell="c1", ts_ms=start_ms + i * MINUTE_MS,
                     grams=units * 1000.0)
        for i in range(n)
    ])  # fmt: skip
    return start_ms + n * MINUTE_MS


@pytest.mark.parametrize(
    ("shipped_at_min", "loss"),
    [
        (None, 2.0),  # nothing left through the portal: a loss
        (11 + 45, None),  # shipped while the shelf was away: the drop is explained
        (108 + 1, None),  # shipped within the window after the drop settled (minute 108)
        (11 - 3, 2.0),  # shipped before the drop began, beyond the window: still a loss
    ],
)
def test_a_drop_across_a_shelf_outage_is_explained_by_an_exit_during_it(
    conn: db.Connection, shipped_at_min: int | None, loss: float | None
) -> None:
    processor = _shelf_and_portal(conn)
    # Counted at 20; the last reading at 20 is at minute 11. The shelf is away for 90 minutes,
    # while 2 units are picked and (maybe) shipped; it comes back at 18.
    back = T0 + (11 + 90) * MINUTE_MS
    if shipped_at_min is not None:
        processor.process([
            TagSample(site=SITE, device="dock-1", antenna=2, epc=encode_sgtin96(GTIN, n),
                      ts_ms=T0 + shipped_at_min * MINUTE_MS, rssi=-48.0)
            for n in (1, 2)
        ])  # fmt: skip
    _rounds(processor, 20, T0)
    end = _rounds(processor, 18, back)
    processor.tick(end + 10 * MINUTE_MS)
    losses = [a.value for a in processor.alerts.list(limit=10) if a.type == "unexplained_loss"]
    assert losses == ([] if loss is None else [loss])


def _raise(type_: str, source: str, at_ms: int) -> Raise:
    alert = Alert(
        id=1, source=source, type=type_, severity="major", state="active", site="s", zone=None,
        title="t", message="m", value=None, threshold=None, details={}, raised_at=at_ms,
        cleared_at=None, acked_by=None, acked_at=None, updated_at=at_ms,
    )  # fmt: skip
    return Raise(type_, source, at_ms, alert)


def test_a_raise_answers_the_fault_of_its_type_and_source_within_its_time() -> None:
    faults = [
        Expected("unexplained_loss", "s/shelf/c1", 10 * HOUR_MS, 11 * HOUR_MS),
        Expected("unexplained_loss", "s/shelf/c1", 50 * HOUR_MS, 51 * HOUR_MS),
        Expected("sensor_offline", "s/temp/p1", 20 * HOUR_MS, 22 * HOUR_MS),
    ]
    raises = [
        _raise("unexplained_loss", "s/shelf/c1", 9 * HOUR_MS),  # before its fault began
        _raise("unexplained_loss", "s/shelf/c1", 10 * HOUR_MS),  # at the start: in time
        _raise("unexplained_loss", "s/shelf/c1", 11 * HOUR_MS),  # a second raise of one fault
        _raise("unexplained_loss", "s/shelf/c2", 50 * HOUR_MS),  # another cell
        _raise("sensor_offline", "s/temp/p1", 22 * HOUR_MS),  # at the end of its time
        _raise("reorder", "s/TEA", 30 * HOUR_MS),  # no fault of its type at all
    ]
    scores = score(faults, raises)
    assert list(scores) == ["reorder", "sensor_offline", "unexplained_loss"]
    loss = scores["unexplained_loss"]
    assert (loss.injected, loss.raised, loss.true_positives, loss.false_positives) == (2, 4, 1, 3)
    assert [r.at_ms // HOUR_MS for r in loss.false] == [9, 11, 50]
    assert loss.missed == [faults[1]]
    assert (loss.precision, loss.recall) == (0.25, 0.5)
    offline = scores["sensor_offline"]
    assert (offline.precision, offline.recall, offline.missed) == (1.0, 1.0, [])
    reorder = scores["reorder"]
    assert (reorder.injected, reorder.precision, reorder.recall) == (0, 0.0, None)
    assert table(scores)[2:] == [
        "| `reorder` | 0 | 1 | 0 | 1 | 0.00 | n/a |",
        "| `sensor_offline` | 1 | 1 | 1 | 0 | 1.00 | 1.00 |",
        "| `unexplained_loss` | 2 | 4 | 1 | 3 | 0.25 | 0.50 |",
        "| all | 3 | 6 | 2 | 4 | 0.33 | 0.67 |",
    ]
    # A fault with no raise at all: recall 0, precision undefined.
    alone = score(faults[2:], [])["sensor_offline"]
    assert (alone.precision, alone.recall) == (None, 0.0)


def test_an_excursion_longer_than_the_daily_limit_is_expected_to_pass_it_too() -> None:
    faulty = variant(load_scenario(SCENARIO), site="fa", faults=FAULTS)
    start = 1_000 * HOUR_MS
    found = expected(faulty, start, AlertingSettings())
    cold = [(e.type, e.source) for e in found if e.type.startswith("cold_chain")]
    # The ambient zone is out 90 min (over the 60 min a day), the cold room 40 min.
    assert sorted(cold) == [
        ("cold_chain_cumulative", "fa/ambient"),
        ("cold_chain_excursion", "fa/ambient"),
        ("cold_chain_excursion", "fa/cold-room"),
    ]
    ambient = [e for e in found if e.source == "fa/ambient"]
    assert {(e.from_ms - start, e.to_ms - start) for e in ambient} == {
        ((24 + 14) * HOUR_MS, (24 + 15) * HOUR_MS + HOUR_MS // 2 + HOUR_MS)
    }
    # A limit of its own for the zone, longer than the excursion: no cumulative alert expected.
    lenient = AlertingSettings(
        cold_chain_zones={"fa/ambient": ColdChainPolicy(daily_out_limit_s=5400)}
    )
    assert "cold_chain_cumulative" not in {e.type for e in expected(faulty, start, lenient)}


@pytest.mark.integration
def test_the_benchmark_weeks_raise_every_fault_once_and_nothing_else(
    stack: LocalStack, tmp_path: Path
) -> None:
    scenario = load_scenario(SCENARIO)
    faulty = variant(scenario, site="fa-test-faults", faults=FAULTS)
    clean = variant(scenario, site="fa-test-clean", faults=None)
    assert {f.kind for f in faulty.faults} == {
        "theft", "misplacement", "sensor_drift", "device_offline", "expiring_lot",
        "cold_room_excursion",
    }  # fmt: skip

    async def weeks() -> None:
        with_faults = await run_week(faulty, stack, tmp_path / "faults", speed=20_160)
        wanted = expected(faulty, with_faults.start_ms, AlertingSettings())
        scores = score(wanted, with_faults.raises)
        start = with_faults.start_ms
        # What went wrong, in simulated time since the start, when something did.
        wrong = {
            t: (
                [(m.source, offset(m.from_ms, start), offset(m.to_ms, start)) for m in s.missed],
                [(r.source, offset(r.at_ms, start)) for r in s.false],
            )
            for t, s in scores.items()
            if s.missed or s.false
        }
        assert {t: (s.injected, s.raised, s.true_positives) for t, s in scores.items()} == {
            t: (n, n, n) for t, n in Counter(e.type for e in wanted).items()
        }, f"missed and false raises: {wrong}"
        assert with_faults.picks > 0
        assert with_faults.picks_failed == 0
        # Each theft's alert says exactly the units stolen: no pick drop was added to it.
        losses = theft_losses(faulty, with_faults)
        assert [(units, value) for _, units, value in losses] == [
            (units, float(units)) for _, units, _ in losses
        ]
        without = await run_week(clean, stack, tmp_path / "clean", speed=20_160)
        assert [(r.type, r.source, r.alert.message) for r in without.raises] == []
        assert (without.picks, without.picks_failed) == (with_faults.picks, 0)

    # A week passes in 30 s here, so a 0.3 s pause of this process is two simulated hours.
    # Late in the suite the process holds hundreds of MB of earlier tests' objects, and one
    # full garbage collection over them takes about that long (1.1 s over 8 million objects
    # here): they are set aside for this run.
    gc.collect()
    gc.freeze()
    try:
        asyncio.run(weeks())
    finally:
        gc.unfreeze()
