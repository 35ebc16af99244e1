"""The rules engine's hand-off: bounded queue, routing by reading type, ticks after readings."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from core import db
from core.alerts import AlertStores
from core.readings import DeviceStatus, Sample, TagSample, TempSample, WeightSample
from core.settings import AlertingSettings, Settings
from rules.anomaly.coldchain import ColdChainMonitor
from rules.anomaly.offline import OfflineDetector
from rules.anomaly.sensors import SensorHealthDetector
from rules.engine import ColdChainProcessor, RulesEngine
from rules.inventory.service import InventoryProcessor
from rules.lifecycle import AlertLifecycle
from rules.seed import Seed
from stocksense.pipeline import Pipeline
from tests.alertutil import (
    connect,
    connections_closed,  # noqa: F401 - an autouse fixture
)

T0 = 1_795_309_200_000


class Recorder:
    """A processor that notes what it is handed, in order, in a log shared with the others."""

    def __init__(self, name: str, log: list[str], types: tuple[type, ...] | None = None) -> None:
        self.name, self.log = name, log
        if types is not None:
            self.sample_types = types

    def process(self, samples: Sequence[Sample]) -> None:
        self.log.append(f"{self.name}:{len(samples)}x{type(samples[0]).__name__}")

    def tick(self, now_ms: int) -> None:
        self.log.append(f"{self.name}:tick@{now_ms - T0}")


def _engine(database: db.Target, *processors: Recorder, queue_size: int = 100) -> RulesEngine:
    store = AlertStores.over(connect(database), ["ops"])
    lifecycle = AlertLifecycle(store.state, AlertingSettings())
    return RulesEngine(Seed(), lifecycle, processors=processors, queue_size=queue_size)


def _temp(i: int = 0) -> TempSample:
    return TempSample(site="wh1", device="p1", sensor="t", ts_ms=T0 + i, celsius=4.0)


def _weight() -> WeightSample:
    return WeightSample(site="wh1", device="s1", cell="c1", ts_ms=T0, grams=100.0)


def test_each_message_goes_to_the_processors_of_its_reading_type_in_order(
    database: db.Target,
) -> None:
    log: list[str] = []
    every = Recorder("every", log)
    temps = Recorder("temps", log, (TempSample,))
    stock = Recorder("stock", log, (WeightSample, TagSample))
    none = Recorder("none", log, ())
    engine = _engine(database, every, temps, stock, none)
    engine.process([_temp(), _temp(1)])
    engine.process([_weight()])
    engine.process([DeviceStatus(site="wh1", kind="temp", device="p1", ts_ms=T0, online=True)])
    # a message of mixed types goes to every processor, which picks its own
    engine.process([_temp(), _weight()])
    engine.process([])
    assert log == [
        "every:2xTempSample",
        "temps:2xTempSample",
        "every:1xWeightSample",
        "stock:1xWeightSample",
        "every:1xDeviceStatus",
        "every:2xTempSample",
        "temps:2xTempSample",
        "stock:2xTempSample",
        "none:2xTempSample",
    ]
    assert engine.processed == 6
    late = Recorder("late", log, (WeightSample,))
    engine.add(late)  # routes already taken are built again
    log.clear()
    engine.process([_weight()])
    assert log == ["every:1xWeightSample", "stock:1xWeightSample", "late:1xWeightSample"]
    assert engine.processors[-1] is late


def test_a_tick_comes_after_the_readings_that_arrived_before_it(database: db.Target) -> None:
    log: list[str] = []
    engine = _engine(database, Recorder("r", log))
    engine.offer([_temp(1)])
    engine.offer([_temp(2)])
    assert engine.queued == 2
    engine.tick(T0 + 1000)
    assert log == ["r:1xTempSample", "r:1xTempSample", "r:tick@1000"]
    assert engine.queued == 0


def test_the_queue_is_bounded_and_counts_what_it_drops(database: db.Target) -> None:
    log: list[str] = []
    engine = _engine(database, Recorder("r", log), queue_size=2)
    for i in range(3):
        engine.offer([_temp(i), _temp(i)])
    assert (engine.queued, engine.dropped) == (2, 2)
    engine.tick(T0)
    engine.offer([_temp(9)])  # room again
    assert (engine.queued, engine.dropped) == (1, 2)


def test_run_evaluates_in_slices_and_drain_waits_for_all(database: db.Target) -> None:
    log: list[str] = []
    engine = _engine(database, Recorder("r", log), queue_size=10_000)

    async def scenario() -> list[int]:
        await engine.drain()  # nothing offered: returns at once
        seen: list[int] = []

        async def watch() -> None:
            while True:
                seen.append(engine.queued)
                await asyncio.sleep(0)

        runner = asyncio.create_task(engine.run())
        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0)
        for i in range(5000):
            engine.offer([_temp(i)])
        await asyncio.wait_for(engine.drain(), timeout=10)
        runner.cancel()
        watcher.cancel()
        return seen

    seen = asyncio.run(scenario())
    assert engine.processed == 5000
    assert len(log) == 5000
    # other tasks ran between slices of at most 2,000 messages
    assert 3000 in seen
    assert 1000 in seen


def test_the_pipeline_routes_readings_to_the_processors_that_use_them(
    tmp_path: Path, database: db.Target
) -> None:
    pipeline = Pipeline(Settings(data_dir=tmp_path, database_url=database.url), seed=Seed())
    try:
        rules = pipeline.rules

        def route(sample: Sample) -> list[type]:
            return [type(p) for p in rules._route([sample])]

        temperature = [ColdChainProcessor, ColdChainMonitor, OfflineDetector, SensorHealthDetector]
        assert route(_temp()) == temperature
        assert route(_weight()) == [InventoryProcessor, OfflineDetector]
        tag = TagSample(site="wh1", device="r1", antenna=1, ts_ms=T0, epc="E1")
        assert route(tag) == [InventoryProcessor, OfflineDetector]
        status = DeviceStatus(site="wh1", kind="rfid", device="r1", ts_ms=T0, online=False)
        assert route(status) == [InventoryProcessor, OfflineDetector]
        # every processor is ticked, those that take no readings too
        assert len(rules.processors) > len(temperature)
    finally:
        pipeline.conn.close()
