"""Cold-chain rule: allowance, single alert, clearing."""

from __future__ import annotations

import pytest

from core import db
from core.alerts import AlertStores
from core.readings import TempSample
from core.settings import AlertingSettings, TypePolicy
from rules.coldchain import ALERT_TYPE, ColdChainRule
from rules.lifecycle import AlertLifecycle
from rules.seed import Seed, SensorRef, Site, TempBand, Zone
from tests.alertutil import (
    connect,
    connections_closed,  # noqa: F401 - an autouse fixture
)

T0 = 1_795_309_200_000


def _rule(
    database: db.Target, allowance_s: float = 60, alerting: AlertingSettings | None = None
) -> tuple[ColdChainRule, AlertStores]:
    seed = Seed(
        sites=[
            Site(
                id="wh1",
                zones=[
                    Zone(
                        id="cold",
                        temp_band=TempBand(low=2, high=8),
                        allowance_s=allowance_s,
                        sensors=[
                            SensorRef(device="probe-1"),
                            SensorRef(device="probe-2", sensor="t1"),
                        ],
                    )
                ],
            )
        ]
    )
    store = AlertStores.over(connect(database), ["webhook"], alerting=alerting)
    return ColdChainRule(seed, AlertLifecycle(store.state)), store


def _feed(
    rule: ColdChainRule,
    temps: list[float],
    *,
    device: str = "probe-1",
    start: int = T0,
    step_s: float = 10,
) -> None:
    for i, celsius in enumerate(temps):
        rule.evaluate(
            TempSample(
                site="wh1",
                device=device,
                sensor="t1",
                ts_ms=start + int(i * step_s * 1000),
                celsius=celsius,
            )
        )


def test_excursion_longer_than_allowance_raises_exactly_one_alert(database: db.Target) -> None:
    rule, store = _rule(database)
    _feed(rule, [5, 9, 9.5, 10, 10, 10, 10, 11, 11, 12, 12])  # out for 90 s
    alerts = store.state.list()
    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert.source, alert.type, alert.state, alert.severity) == (
        "wh1/cold",
        ALERT_TYPE,
        "active",
        "critical",
    )
    # raised at the first reading past the 60 s allowance: out since T0+10 s, raised at T0+80 s
    assert alert.raised_at == T0 + 80_000
    # Kept current while it lasts: the latest reading (T0+100 s), the peak, 90 s out of band.
    assert (alert.value, alert.peak_value, alert.last_seen_at) == (12.0, 12.0, T0 + 100_000)
    assert alert.threshold == 8.0
    assert alert.details["duration_s"] == 90.0
    assert alert.details["held_s"] == 0.0  # the raise's own details are kept
    assert [o.event for o in store.outbox.outbox()] == ["raised"]


def test_excursion_within_allowance_raises_nothing(database: db.Target) -> None:
    rule, store = _rule(database)
    _feed(
        rule, [5, 9, 10, 11, 10, 9, 9, 7, 5, 1.5, 1.0, 1.2, 3]
    )  # 60 s above, 20 s below: both allowed
    assert store.state.list() == []


def test_back_in_band_clears_and_a_new_excursion_raises_again(database: db.Target) -> None:
    rule, store = _rule(database, allowance_s=20)
    _feed(rule, [9, 9, 9, 9, 5, 5])
    first = store.state.list()
    assert [(a.state, a.cleared_at) for a in first] == [("cleared", T0 + 40_000)]
    _feed(rule, [1, 1, 1, 1], start=T0 + 100_000)
    alerts = store.state.list()
    assert [a.state for a in alerts] == ["active", "cleared"]
    assert alerts[0].threshold == 2.0
    assert [o.event for o in store.outbox.outbox()] == ["raised", "cleared", "raised"]


def test_zone_clears_only_when_every_probe_is_back(database: db.Target) -> None:
    rule, store = _rule(database, allowance_s=0)
    _feed(rule, [9, 9], device="probe-1")
    _feed(rule, [9, 9], device="probe-2", start=T0 + 1)
    assert len(store.state.list(state="active")) == 1
    _feed(rule, [5], device="probe-1", start=T0 + 30_000)
    assert len(store.state.list(state="active")) == 1
    _feed(rule, [5], device="probe-2", start=T0 + 31_000)
    assert store.state.list(state="active") == []


def test_unbound_probes_and_late_readings_are_ignored(database: db.Target) -> None:
    rule, store = _rule(database, allowance_s=0)
    _feed(rule, [20, 20, 20], device="elsewhere")
    rule.evaluate(TempSample(site="wh1", device="probe-2", sensor="t9", ts_ms=T0, celsius=30))
    rule.evaluate(
        TempSample(site="wh1", device="probe-2", sensor="t9", ts_ms=T0 + 99_000, celsius=30)
    )
    assert store.state.list() == []
    _feed(rule, [5, 9, 9])
    rule.evaluate(
        TempSample(site="wh1", device="probe-1", sensor="t1", ts_ms=T0, celsius=5)
    )  # late
    assert len(store.state.list(state="active")) == 1


def test_debounce_counts_from_the_first_reading_past_the_allowance(database: db.Target) -> None:
    policy = TypePolicy(debounce_s=30, severity="major")
    rule, store = _rule(database, alerting=AlertingSettings(types={ALERT_TYPE: policy}))
    # out from T0+10 s; past the 60 s allowance at T0+80 s; 30 s later is T0+110 s
    _feed(rule, [5, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9])  # up to T0+100 s: 20 s of debounce
    assert store.state.list() == []
    _feed(rule, [9], start=T0 + 109_999)
    assert store.state.list() == []
    _feed(rule, [9], start=T0 + 110_000)  # exactly at the limit
    (alert,) = store.state.list()
    assert (alert.raised_at, alert.severity, alert.details["held_s"]) == (
        T0 + 110_000,
        "major",
        30.0,
    )


def test_excursion_ending_before_its_debounce_raises_nothing_and_starts_over(
    database: db.Target,
) -> None:
    policy = TypePolicy(debounce_s=30)
    rule, store = _rule(database, alerting=AlertingSettings(types={ALERT_TYPE: policy}))
    _feed(rule, [9, 9, 9, 9, 9, 9, 9, 9, 9, 5])  # past the allowance at T0+70..80 s, then back
    _feed(rule, [9, 9, 9, 9, 9, 9, 9, 9, 9], start=T0 + 100_000)  # past it at T0+170 s
    # a debounce remembered from the first excursion would have raised at T0+170 s
    assert store.state.list() == []
    _feed(rule, [9, 9, 9], start=T0 + 190_000)  # T0+190..210 s
    assert [a.raised_at for a in store.state.list()] == [T0 + 200_000]


@pytest.mark.parametrize("band", [(8, 2), (5, 5)])
def test_seed_rejects_inverted_bands(band: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="must be below"):
        TempBand(low=band[0], high=band[1])
