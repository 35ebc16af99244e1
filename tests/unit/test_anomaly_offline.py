"""Sensor offline: heartbeat timeout from the announced or learned interval, and Last Will."""

from __future__ import annotations

from core import db
from core.alerts import AlertStores
from core.readings import DeviceStatus, TagSample, TempSample
from core.settings import AlertingSettings, OfflinePolicy
from rules.anomaly.offline import ALERT_TYPE, OfflineDetector
from rules.lifecycle import AlertLifecycle
from tests.alertutil import (
    connect,
    connections_closed,  # noqa: F401 - an autouse fixture
)

T0 = 1_795_309_200_000


def _detector(database: db.Target, **policy: object) -> tuple[OfflineDetector, AlertStores]:
    store = AlertStores.over(connect(database), ["ops"])
    alerting = AlertingSettings(offline=OfflinePolicy.model_validate(policy))
    # Arrival time 0: reading time alone decides, as these tests simulate the clock.
    detector = OfflineDetector(
        AlertLifecycle(store.state, alerting), alerting.offline, clock=lambda: 0.0
    )
    return detector, store


def _temp(ts_ms: int, device: str = "p1", site: str = "wh1") -> TempSample:
    return TempSample(site=site, device=device, sensor="t", ts_ms=ts_ms, celsius=5.0)


def test_timeout_uses_the_learned_interval_and_data_clears(database: db.Target) -> None:
    detector, store = _detector(database, timeout_factor=3, default_interval_s=600)
    for i in range(6):
        detector.process([_temp(T0 + i * 10_000)])
    last = T0 + 50_000
    state = detector.devices[("wh1", "temp", "p1")]
    assert detector.interval_s(state) == 10.0
    detector.tick(last + 30_000)  # exactly 3 x 10 s: not yet
    assert store.state.list() == []
    detector.tick(last + 31_000)
    detector.tick(last + 40_000)
    alerts = store.state.list()
    assert [(a.source, a.type, a.state, a.raised_at) for a in alerts] == [
        ("wh1/temp/p1", ALERT_TYPE, "active", last + 31_000)
    ]
    assert alerts[0].threshold == 30.0
    detector.process([_temp(last + 45_000)])
    assert store.state.list()[0].state == "cleared"
    assert store.state.list()[0].cleared_at == last + 45_000


def test_announced_interval_wins_and_default_applies_before_learning(database: db.Target) -> None:
    detector, store = _detector(database, timeout_factor=2, default_interval_s=100)
    detector.process(
        [DeviceStatus(site="wh1", kind="temp", device="p2", ts_ms=T0, online=True, interval_s=5)]
    )
    detector.process([_temp(T0 + 1000, device="p3")])
    detector.tick(T0 + 11_000)
    assert [a.source for a in store.state.list()] == ["wh1/temp/p2"]
    detector.tick(T0 + 201_000 + 1)
    assert sorted(a.source for a in store.state.list()) == ["wh1/temp/p2", "wh1/temp/p3"]


def test_last_will_raises_at_once_and_birth_clears(database: db.Target) -> None:
    detector, store = _detector(database)
    detector.process([_temp(T0)])
    detector.process(
        [
            DeviceStatus(
                site="wh1", kind="temp", device="p1", ts_ms=T0 + 500, online=False, reason="lwt"
            )
        ]
    )
    alerts = store.state.list()
    assert [(a.state, a.details["reason"], a.raised_at) for a in alerts] == [
        ("active", "lwt", T0 + 500)
    ]
    detector.tick(T0 + 10_000_000)  # no second alert while it is down
    assert len(store.state.list()) == 1
    detector.process(
        [DeviceStatus(site="wh1", kind="temp", device="p1", ts_ms=T0 + 9000, online=True)]
    )
    assert store.state.list()[0].state == "cleared"


def test_rfid_reader_without_heartbeat_is_not_timed_and_sites_filter(database: db.Target) -> None:
    store = AlertStores.over(connect(database), ["ops"])
    detector = OfflineDetector(AlertLifecycle(store.state), sites={"wh1"}, clock=lambda: 0.0)
    detector.process([TagSample(site="wh1", device="r1", antenna=1, ts_ms=T0, epc="AB")])
    detector.process([_temp(T0, site="wh9")])
    detector.tick(T0 + 86_400_000)
    assert store.state.list() == []
    assert list(detector.devices) == [("wh1", "rfid", "r1")]


def test_replayed_old_readings_that_arrive_now_keep_a_device_online(database: db.Target) -> None:
    store = AlertStores.over(connect(database), ["ops"])
    arrival = [T0 / 1000]
    detector = OfflineDetector(
        AlertLifecycle(store.state), OfflinePolicy(timeout_factor=3), clock=lambda: arrival[0]
    )
    detector.process([DeviceStatus(site="wh1", kind="temp", device="p1", ts_ms=T0 - 3_600_000,
                                   online=True, interval_s=10)])  # fmt: skip
    # A gateway replays an hour-old backlog, arriving now (T0) and during the next minute.
    for i in range(7):
        arrival[0] = (T0 + i * 10_000) / 1000
        detector.process([_temp(T0 - 3_600_000 + i * 10_000)])
    detector.tick(T0 + 60_000)
    assert store.state.list() == []
    detector.tick(T0 + 60_000 + 31_000)  # then nothing arrives for more than 3 x 10 s
    assert [(a.source, a.type) for a in store.state.list()] == [("wh1/temp/p1", ALERT_TYPE)]


def test_a_silence_no_tick_saw_is_reported_when_data_returns(database: db.Target) -> None:
    # The rules were behind (a backlog, a fast simulation): no tick fell inside the silence.
    detector, store = _detector(database, timeout_factor=3, default_interval_s=600)
    for i in range(6):
        detector.process([_temp(T0 + i * 10_000)])
    last = T0 + 50_000
    detector.process([_temp(last + 30_000)])  # exactly the 30 s timeout: not offline
    assert store.state.list() == []
    back = last + 30_000 + 30_001
    detector.process([_temp(back)])
    (alert,) = store.state.list()
    assert (alert.type, alert.state, alert.raised_at, alert.cleared_at) == (
        ALERT_TYPE,
        "cleared",
        last + 60_000,
        back,
    )
    assert alert.value == 30.0


def test_a_silence_no_tick_saw_is_reported_when_a_birth_ends_it(database: db.Target) -> None:
    # The device comes back by announcing itself before its first reading, as gateways do.
    detector, store = _detector(database, timeout_factor=3, default_interval_s=600)
    for i in range(6):
        detector.process([_temp(T0 + i * 10_000)])
    last = T0 + 50_000

    def birth(ts_ms: int) -> DeviceStatus:
        return DeviceStatus(site="wh1", kind="temp", device="p1", ts_ms=ts_ms, online=True)

    detector.process([birth(last + 30_000)])  # exactly the timeout: it never was offline
    assert store.state.list() == []
    back = last + 30_000 + 30_001
    detector.process([birth(back), _temp(back + 1_000)])
    (alert,) = store.state.list()
    assert (alert.type, alert.state, alert.raised_at, alert.cleared_at) == (
        ALERT_TYPE,
        "cleared",
        last + 30_000 + 30_000,
        back,
    )
    assert alert.value == 30.0


def test_a_birth_stamped_ahead_of_its_arrival_invents_no_silence(database: db.Target) -> None:
    store = AlertStores.over(connect(database), ["ops"])
    arrival = [T0 / 1000]
    detector = OfflineDetector(
        AlertLifecycle(store.state), OfflinePolicy(timeout_factor=3), clock=lambda: arrival[0]
    )
    for i in range(4):
        arrival[0] = (T0 + i * 10_000) / 1000
        detector.process([_temp(T0 + i * 10_000)])
    # A birth stamped an hour ahead (a device clock off, a retained birth) arrives 10 s later.
    arrival[0] = (T0 + 40_000) / 1000
    detector.process([DeviceStatus(site="wh1", kind="temp", device="p1",
                                   ts_ms=T0 + 3_600_000, online=True)])  # fmt: skip
    assert store.state.list() == []


def test_a_gateway_that_publishes_its_probes_in_bursts_is_timed_by_each_probes_spacing(
    database: db.Target,
) -> None:
    """50 probes under one device name, one message each, a millisecond apart, every minute:
    the interval is a minute (each probe's spacing), not the millisecond between messages."""
    detector, store = _detector(database, timeout_factor=3, default_interval_s=600)
    for burst in range(4):
        start = T0 + burst * 60_000
        for probe in range(50):
            reading = TempSample(
                site="wh1", device="gw", sensor=f"t{probe}", ts_ms=start + probe, celsius=4.0
            )
            detector.process([reading])
            detector.tick(start + probe + 5)  # between two messages of the burst
    last = T0 + 3 * 60_000 + 49
    state = detector.devices[("wh1", "temp", "gw")]
    assert detector.interval_s(state) == 60.0
    detector.tick(last + 100_000)  # a pause between bursts is not a silence
    assert store.state.list() == []
    detector.tick(last + 180_000)  # exactly 3 x 60 s
    assert store.state.list() == []
    detector.tick(last + 180_001)
    assert [a.source for a in store.state.list()] == ["wh1/temp/gw"]


def test_an_even_number_of_spacings_takes_the_mean_of_the_middle_two(database: db.Target) -> None:
    detector, _ = _detector(database)
    for ts in (0, 10_000, 30_000, 60_000, 100_000):  # spacings 10, 20, 30, 40 s
        detector.process([_temp(T0 + ts)])
    state = detector.devices[("wh1", "temp", "p1")]
    assert detector.interval_s(state) == 25.0
    detector.process([_temp(T0 + 150_000)])  # and 50 s: five, the middle one
    assert detector.interval_s(state) == 30.0


def test_the_probes_remembered_per_device_are_bounded(database: db.Target) -> None:
    detector, _ = _detector(database)
    for probe in range(3000):
        detector.process(
            [TempSample(site="wh1", device="gw", sensor=f"t{probe}", ts_ms=T0, celsius=4.0)]
        )
    state = detector.devices[("wh1", "temp", "gw")]
    assert len(state.series_ms) == 1024
    assert "t2999" in state.series_ms
    assert "t0" not in state.series_ms
