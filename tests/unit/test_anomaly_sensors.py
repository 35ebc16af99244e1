"""Sensor drift against zone peers, and stuck probes."""

from __future__ import annotations

import numpy as np

from core import db
from core.alerts import AlertStores
from core.readings import TempSample
from core.settings import AlertingSettings, SensorHealthPolicy
from rules.anomaly.sensors import DRIFT_TYPE, STUCK_TYPE, SensorHealthDetector
from rules.lifecycle import AlertLifecycle
from rules.seed import Seed, SensorRef, Site, Zone
from tests.alertutil import (
    connect,
    connections_closed,  # noqa: F401 - an autouse fixture
)

T0 = 1_795_309_200_000
SEED = Seed(
    sites=[
        Site(
            id="wh1",
            zones=[Zone(id="cold", sensors=[SensorRef(device=d) for d in ("p1", "p2", "p3")])],
        )
    ]
)


def _detector(database: db.Target, **policy: object) -> tuple[SensorHealthDetector, AlertStores]:
    store = AlertStores.over(connect(database), ["ops"])
    alerting = AlertingSettings(sensor_health=SensorHealthPolicy.model_validate(policy))
    return SensorHealthDetector(SEED, AlertLifecycle(store.state, alerting)), store


def _run(
    detector: SensorHealthDetector,
    n: int,
    *,
    start: int = 0,
    drift_per_step: float = 0.0,
    stuck_p3_from: int | None = None,
    seed: int = 1,
) -> None:
    rng = np.random.default_rng(seed)
    for i in range(start, start + n):
        room = 4.0 + 1.5 * np.sin(i / 40)  # the room moves; residuals must not
        for device, bias in (("p1", 0.0), ("p2", 0.6), ("p3", -0.3)):
            celsius = room + bias + rng.normal(0, 0.1)
            if device == "p1":
                celsius += drift_per_step * max(0, i - start)
            if device == "p3" and stuck_p3_from is not None and i >= stuck_p3_from:
                celsius = 3.7
            detector.process(
                [
                    TempSample(
                        site="wh1",
                        device=device,
                        sensor="t",
                        ts_ms=T0 + i * 30_000,
                        celsius=round(float(celsius), 2),
                    )
                ]
            )


def test_noise_and_room_swings_raise_nothing(database: db.Target) -> None:
    detector, store = _detector(database)
    _run(detector, 600)
    assert store.state.list() == []


def test_drifting_probe_is_found_and_clears_after_recalibration(database: db.Target) -> None:
    detector, store = _detector(database, drift_threshold_c=1.0, drift_clear_c=0.5)
    _run(detector, 100)
    _run(detector, 100, start=100, drift_per_step=0.03)  # 3 °C over 50 minutes
    alerts = store.state.list()
    assert [(a.source, a.type, a.state) for a in alerts] == [
        ("wh1/temp/p1/t", DRIFT_TYPE, "active")
    ]
    assert alerts[0].value is not None
    assert alerts[0].value > 1.0
    assert alerts[0].details["offset_c"] < 0.2  # p1 has no placement offset
    _run(detector, 100, start=200)
    assert store.state.list()[0].state == "cleared"


def test_stuck_probe_raises_and_clears_when_it_moves(database: db.Target) -> None:
    detector, store = _detector(database, stuck_samples=20, stuck_s=300, drift_threshold_c=50)
    _run(detector, 100, stuck_p3_from=50)
    alerts = store.state.list()
    assert [(a.source, a.type) for a in alerts] == [("wh1/temp/p3/t", STUCK_TYPE)]
    # 20 identical samples at 30 s spacing: raised at the 20th, 570 s after the first
    assert alerts[0].raised_at == T0 + 69 * 30_000
    # Kept current: by the last of the 50 stuck samples, 50 in a row.
    assert alerts[0].details["samples"] == 50
    _run(detector, 5, start=100)
    assert store.state.list()[0].state == "cleared"


def test_a_probe_that_never_showed_noise_is_not_stuck(database: db.Target) -> None:
    detector, store = _detector(database, stuck_samples=5, stuck_s=0)
    for i in range(50):
        detector.process(
            [TempSample(site="wh1", device="x", sensor="t", ts_ms=T0 + i * 1000, celsius=20.0)]
        )
    assert store.state.list() == []
