"""Cold-chain MKT and cumulative out-of-band time."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core import db
from core.alerts import AlertStores
from core.readings import TempSample
from core.settings import AlertingSettings, ColdChainPolicy
from rules.anomaly.coldchain import (
    CUMULATIVE_TYPE,
    MKT_TYPE,
    ColdChainMonitor,
    MktWindow,
    mean_kinetic_temperature,
)
from rules.lifecycle import AlertLifecycle
from rules.seed import Seed, SensorRef, Site, TempBand, Zone
from tests.alertutil import (
    connect,
    connections_closed,  # noqa: F401 - an autouse fixture
)

T0 = 1_795_309_200_000  # 2026-11-22 01:00 UTC, 09:00 in Shanghai
SEED = Seed(
    sites=[
        Site(
            id="wh1",
            timezone="Asia/Shanghai",
            zones=[
                Zone(
                    id="cold",
                    temp_band=TempBand(low=2, high=8),
                    sensors=[SensorRef(device="p1"), SensorRef(device="p2")],
                )
            ],
        )
    ]
)


def _textbook_mkt(celsius: list[float]) -> float:
    kelvin = [c + 273.15 for c in celsius]
    mean = sum(math.exp(-10_000 / t) for t in kelvin) / len(kelvin)
    return 10_000 / -math.log(mean) - 273.15


def test_mkt_matches_the_textbook_formula() -> None:
    temps = [2.0, 5.0, 8.0, 25.0, 4.0, 6.5]
    assert mean_kinetic_temperature(temps) == pytest.approx(_textbook_mkt(temps), abs=1e-9)
    assert mean_kinetic_temperature([5.0] * 10) == pytest.approx(5.0, abs=1e-9)
    # MKT weighs warm spells more than the arithmetic mean does
    assert mean_kinetic_temperature([2.0, 14.0]) > 8.0 + 0.3


def test_streaming_window_equals_batch_over_the_window() -> None:
    rng = np.random.default_rng(3)
    temps = rng.normal(6.0, 2.5, size=3000)
    window = MktWindow(window_ms=600_000)
    for i, celsius in enumerate(temps):
        window.add(T0 + i * 10_000, float(celsius))
    last = temps[-60:]  # 600 s / 10 s
    assert len(window) == 60
    assert window.value() == pytest.approx(mean_kinetic_temperature(last), abs=1e-9)


def _monitor(database: db.Target, policy: ColdChainPolicy) -> tuple[ColdChainMonitor, AlertStores]:
    store = AlertStores.over(connect(database), ["ops"])
    alerting = AlertingSettings(cold_chain_zones={"wh1/cold": policy})
    return ColdChainMonitor(SEED, AlertLifecycle(store.state, alerting), alerting), store


def _feed(monitor: ColdChainMonitor, temps: list[float], *, start: int, step_s: int = 60) -> None:
    for i, celsius in enumerate(temps):
        monitor.process(
            [
                TempSample(
                    site="wh1",
                    device="p1",
                    sensor="t",
                    ts_ms=start + i * step_s * 1000,
                    celsius=celsius,
                )
            ]
        )


def test_mkt_alert_raises_over_threshold_and_clears_below_margin(database: db.Target) -> None:
    policy = ColdChainPolicy(
        mkt_window_s=3600, mkt_min_samples=10, daily_out_limit_s=None, mkt_clear_margin_c=0.2
    )
    monitor, store = _monitor(database, policy)
    _feed(monitor, [6.0] * 30, start=T0)
    assert store.state.list() == []
    # 7 °C most of the time with warm spells: every reading but few out of band, MKT above 8
    warm = [7.0, 7.0, 12.0] * 20
    _feed(monitor, warm, start=T0 + 30 * 60_000)
    alerts = store.state.list(type_=MKT_TYPE)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.threshold == 8.0
    assert alert.value is not None
    assert alert.value > 8.0
    mkt = monitor.mkt("wh1", "cold")
    assert mkt is not None
    assert mkt > 8.0
    _feed(monitor, [5.0] * 60, start=T0 + 90 * 60_000)
    cleared = store.state.list(type_=MKT_TYPE)[0]
    assert cleared.state == "cleared"
    assert monitor.mkt("wh1", "cold") == pytest.approx(5.0, abs=1e-6)


def test_cumulative_time_out_of_band_per_local_day(database: db.Target) -> None:
    policy = ColdChainPolicy(daily_out_limit_s=600, mkt_min_samples=10_000)
    monitor, store = _monitor(database, policy)
    # local day in Shanghai starts at 16:00 UTC; T0 is 01:00 UTC (09:00 local)
    # short excursions: 3 x 4 minutes out = 720 s > 600 s, none long on its own
    pattern = [9.0] * 4 + [5.0] * 10
    _feed(monitor, pattern * 2, start=T0)
    assert store.state.list() == []
    _feed(monitor, pattern, start=T0 + 28 * 60_000)
    alerts = store.state.list(type_=CUMULATIVE_TYPE)
    assert len(alerts) == 1
    assert alerts[0].threshold == 600
    # Raised at 660 s (4 min + 4 min + 3 min, when the 12th minute lands), kept current to
    # the whole 12 minutes while the readings stay out of band.
    assert (alerts[0].raised_at, alerts[0].value) == (T0 + 31 * 60_000, 720.0)
    assert alerts[0].details["day"] == "2026-11-22"
    # the next local day (16:00 UTC) starts from zero and clears it
    next_day = T0 + 19 * 3_600_000
    _feed(monitor, [5.0, 5.0], start=next_day)
    assert store.state.list(type_=CUMULATIVE_TYPE)[0].state == "cleared"


def test_a_long_gap_does_not_count_as_out(database: db.Target) -> None:
    policy = ColdChainPolicy(daily_out_limit_s=600, max_gap_s=300, mkt_min_samples=10_000)
    monitor, store = _monitor(database, policy)
    _feed(monitor, [9.0, 9.0], start=T0, step_s=3600)  # probe silent for an hour after 9 °C
    assert store.state.list() == []


def test_a_probe_counts_once_when_its_device_is_listed_under_several_sensors(
    database: db.Target,
) -> None:
    seed = Seed(
        sites=[
            Site(
                id="wh1",
                zones=[
                    Zone(
                        id="cold",
                        temp_band=TempBand(low=2, high=8),
                        sensors=[
                            SensorRef(device="p1", sensor="t1"),
                            SensorRef(device="p1", sensor="t2"),
                        ],
                    )
                ],
            )
        ]
    )
    store = AlertStores.over(connect(database), ["ops"])
    monitor = ColdChainMonitor(seed, AlertLifecycle(store.state))
    for i in range(5):
        monitor.process(
            [TempSample(site="wh1", device="p1", sensor="t1", ts_ms=T0 + i * 1000, celsius=5.0)]
        )
    state = monitor.zone_states("wh1", "cold")
    assert state is not None
    assert len(state.mkt) == 5


# --------------------------------------------------------------------------- local days

HOUR_MS = 3_600_000
# (time zone, a local midnight after T0, the local day before it, the local day it starts)
MIDNIGHTS = [
    pytest.param("Asia/Shanghai", T0 + 15 * HOUR_MS, "2026-11-22", "2026-11-23", id="shanghai"),
    pytest.param("UTC", T0 + 23 * HOUR_MS, "2026-11-22", "2026-11-23", id="utc"),
]


def _zone_monitor(
    database: db.Target, timezone: str, limit_s: float
) -> tuple[ColdChainMonitor, AlertStores]:
    seed = SEED.model_copy(
        update={"sites": [SEED.sites[0].model_copy(update={"timezone": timezone})]}
    )
    policy = ColdChainPolicy(daily_out_limit_s=limit_s, mkt_min_samples=10_000)
    store = AlertStores.over(connect(database), ["ops"])
    alerting = AlertingSettings(cold_chain_zones={"wh1/cold": policy})
    return ColdChainMonitor(seed, AlertLifecycle(store.state, alerting), alerting), store


def _read(monitor: ColdChainMonitor, device: str, ts_ms: int, celsius: float) -> None:
    monitor.process(
        [TempSample(site="wh1", device=device, sensor="t", ts_ms=ts_ms, celsius=celsius)]
    )


@pytest.mark.parametrize(("timezone", "midnight", "yesterday", "today"), MIDNIGHTS)
def test_a_late_reading_for_yesterday_never_resets_today(
    database: db.Target, timezone: str, midnight: int, yesterday: str, today: str
) -> None:
    monitor, store = _zone_monitor(database, timezone, limit_s=1800)
    for i in range(21):  # p1 out of band for 20 minutes after local midnight
        _read(monitor, "p1", midnight + i * 60_000, 9.0)
    assert monitor.out_of_band_s("wh1", "cold") == {"p1/t": 1200.0}
    # p2 delivers its last readings of the day before, late
    _read(monitor, "p2", midnight - 60_000, 9.0)
    _read(monitor, "p2", midnight - 30_000, 9.0)
    assert monitor.out_of_band_s("wh1", "cold") == {"p1/t": 1200.0}
    assert monitor.out_of_band_s("wh1", "cold", yesterday) == {"p2/t": 30.0}
    assert store.state.list() == []
    for i in range(21, 41):  # 20 minutes more
        _read(monitor, "p1", midnight + i * 60_000, 9.0)
    assert monitor.out_of_band_s("wh1", "cold") == {"p1/t": 2400.0}
    assert monitor.out_of_band_s("wh1", "cold", today) == {"p1/t": 2400.0}
    [alert] = store.state.list(type_=CUMULATIVE_TYPE)
    assert alert.state == "active"
    # First above 1800 s at minute 31, kept current to the 2400 s of minute 40.
    assert (alert.raised_at, alert.value) == (midnight + 31 * 60_000, 2400.0)
    assert alert.details["day"] == today


@pytest.mark.parametrize(("timezone", "midnight", "yesterday", "today"), MIDNIGHTS)
def test_an_interval_across_local_midnight_counts_for_both_days(
    database: db.Target, timezone: str, midnight: int, yesterday: str, today: str
) -> None:
    monitor, _ = _zone_monitor(database, timezone, limit_s=1800)
    for offset_s in (-90, -30, 30, 90):
        _read(monitor, "p1", midnight + offset_s * 1000, 9.0)
    _read(monitor, "p1", midnight + 150_000, 5.0)  # back in band
    # 60 s + the 30 s up to midnight for the old day; 30 + 60 + 60 s for the new one
    assert monitor.out_of_band_s("wh1", "cold", yesterday) == {"p1/t": 90.0}
    assert monitor.out_of_band_s("wh1", "cold", today) == {"p1/t": 150.0}


@pytest.mark.parametrize(("timezone", "midnight", "yesterday", "today"), MIDNIGHTS)
def test_a_reading_exactly_at_local_midnight_starts_the_new_day(
    database: db.Target, timezone: str, midnight: int, yesterday: str, today: str
) -> None:
    monitor, _ = _zone_monitor(database, timezone, limit_s=1800)
    state = monitor.zone_states("wh1", "cold")
    assert state is not None
    _read(monitor, "p1", midnight - 60_000, 9.0)
    _read(monitor, "p1", midnight - 1, 9.0)
    assert state.day == yesterday
    _read(monitor, "p1", midnight, 9.0)
    assert state.day == today
    assert monitor.out_of_band_s("wh1", "cold", yesterday) == {"p1/t": 60.0}
    assert monitor.out_of_band_s("wh1", "cold", today) == {}
    _read(monitor, "p1", midnight + 60_000, 5.0)
    assert monitor.out_of_band_s("wh1", "cold", today) == {"p1/t": 60.0}
    assert monitor.out_of_band_s("wh1", "cold", yesterday) == {"p1/t": 60.0}


@pytest.mark.parametrize(("timezone", "midnight", "yesterday", "today"), MIDNIGHTS)
def test_the_minutes_before_midnight_can_put_the_old_day_over_its_limit(
    database: db.Target, timezone: str, midnight: int, yesterday: str, today: str
) -> None:
    monitor, store = _zone_monitor(database, timezone, limit_s=600)
    for k in range(11):  # out from 10.5 minutes before midnight, read every minute
        _read(monitor, "p1", midnight - 630_000 + k * 60_000, 9.0)
    assert monitor.out_of_band_s("wh1", "cold", yesterday) == {"p1/t": 600.0}
    assert store.state.list() == []  # exactly at the limit is not over it
    _read(monitor, "p1", midnight + 30_000, 9.0)
    assert monitor.out_of_band_s("wh1", "cold", yesterday) == {"p1/t": 630.0}
    assert monitor.out_of_band_s("wh1", "cold", today) == {"p1/t": 30.0}
    [alert] = store.state.list(type_=CUMULATIVE_TYPE)
    assert (alert.value, alert.details["day"], alert.state) == (630.0, yesterday, "cleared")
