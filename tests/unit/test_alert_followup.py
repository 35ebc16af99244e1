"""Alerts after they are raised: kept current (latest, peak, throttled writes), owners from
routes and on-call rotations, deadlines, reminders and people's resolutions, at the stores and
the lifecycle the pipeline runs."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from core import db
from core.alerts import AlertStores
from core.migrations.legacy import alerts as alerts_schema
from core.readings import TempSample
from core.settings import (
    AlertingSettings,
    DuePolicy,
    OnCallSettings,
    RouteSettings,
    Settings,
    TypePolicy,
)
from rules.coldchain import ALERT_TYPE, ColdChainRule
from rules.lifecycle import AlertLifecycle, farther
from rules.seed import Seed, SensorRef, Site, TempBand, Zone
from tests.alertutil import (
    condition,
    connect,
    connections_closed,  # noqa: F401 - an autouse fixture
)

# Sunday 2026-11-22 01:00 UTC (09:00 in Shanghai).
T0 = 1_795_309_200_000
CHANNELS = ["influxdb", "ops", "oncall"]
MIN_MS = 60_000
DOC = Path(__file__).resolve().parents[2] / "docs" / "alerts.md"


def _stores(database: db.Target, alerting: AlertingSettings) -> AlertStores:
    return AlertStores.over(connect(database), CHANNELS, alerting=alerting)


def _report(life: AlertLifecycle, at_ms: int, value: float, *, severity: str = "critical") -> None:
    life.report(
        condition(
            "wh1/cold",
            at_ms=at_ms,
            type=ALERT_TYPE,
            severity=severity,  # type: ignore[arg-type]
            zone="cold",
            value=value,
            threshold=8.0,
            message=f"reads {value}",
            details={"duration_s": (at_ms - T0) / 1000},
        )
    )


def _rows(stores: AlertStores, event: str) -> list[tuple[str, int]]:
    return [(o.channel, o.seq) for o in stores.outbox.outbox() if o.event == event]


# -- kept current ------------------------------------------------------------------------------


def test_peak_is_the_value_farthest_beyond_the_threshold_on_either_side() -> None:
    assert farther(11.4, 12.1, 8.0) == 12.1  # above the band: the highest
    assert farther(12.5, 12.1, 8.0) == 12.5
    assert farther(1.2, 0.8, 2.0) == 0.8  # below the band: the lowest
    assert farther(0.5, 0.8, 2.0) == 0.5
    assert farther(3.0, 5.0, None) == 5.0  # no threshold: the largest
    assert farther(None, 5.0, 8.0) == 5.0
    assert farther(9.0, None, 8.0) == 9.0
    assert farther(7.0, 9.0, 8.0) == 9.0  # a tie keeps the stored peak


def _cold_rule(
    database: db.Target, alerting: AlertingSettings
) -> tuple[ColdChainRule, AlertStores]:
    seed = Seed(
        sites=[
            Site(
                id="wh1",
                zones=[
                    Zone(
                        id="cold",
                        temp_band=TempBand(low=2, high=8),
                        allowance_s=0,
                        sensors=[SensorRef(device="p1")],
                    )
                ],
            )
        ]
    )
    stores = _stores(database, alerting)
    return ColdChainRule(seed, AlertLifecycle(stores.state, alerting)), stores


def _read(rule: ColdChainRule, at_ms: int, celsius: float) -> None:
    rule.evaluate(TempSample(site="wh1", device="p1", sensor="t", ts_ms=at_ms, celsius=celsius))


@pytest.mark.parametrize(
    ("readings", "latest", "peak", "threshold"),
    [
        ([9.0, 11.0, 12.1, 11.4], 11.4, 12.1, 8.0),  # above the band
        ([1.5, 0.8, 1.2], 1.2, 0.8, 2.0),  # below the band
    ],
)
def test_an_excursion_keeps_its_latest_and_peak_value(
    database: db.Target, readings: list[float], latest: float, peak: float, threshold: float
) -> None:
    rule, stores = _cold_rule(database, AlertingSettings(update_interval_s=5))
    _read(rule, T0, 5.0)
    for i, celsius in enumerate(readings, start=1):
        _read(rule, T0 + i * 10_000, celsius)
    [alert] = stores.state.list()
    assert (alert.value, alert.peak_value, alert.threshold) == (latest, peak, threshold)
    assert alert.last_seen_at == T0 + len(readings) * 10_000
    assert alert.details["duration_s"] == (len(readings) - 1) * 10.0
    assert alert.raised_at == T0 + 20_000  # out since T0+10 s, past the 0 s allowance next
    assert _rows(stores, "raised") == [("influxdb", 0), ("ops", 0), ("oncall", 0)]


def test_writes_are_throttled_except_a_new_peak(database: db.Target) -> None:
    stores = _stores(database, AlertingSettings(update_interval_s=5))
    life = AlertLifecycle(stores.state)
    _report(life, T0, 10.0)
    _report(life, T0 + 4_999, 9.5)  # within 5 s, not a peak: not written
    [alert] = stores.state.list()
    assert (alert.value, alert.last_seen_at) == (10.0, T0)
    _report(life, T0 + 5_000, 9.6)  # exactly the interval after the last write: written
    [alert] = stores.state.list()
    assert (alert.value, alert.peak_value, alert.last_seen_at) == (9.6, 10.0, T0 + 5_000)
    _report(life, T0 + 6_000, 10.5)  # a new peak 1 s later: written at once
    [alert] = stores.state.list()
    assert (alert.value, alert.peak_value, alert.last_seen_at) == (10.5, 10.5, T0 + 6_000)
    assert alert.message == "reads 10.5"
    # A lifecycle started later (a restart) picks the stored peak up.
    again = AlertLifecycle(stores.state)
    _report(again, T0 + 7_000, 10.2)
    assert stores.state.list()[0].peak_value == 10.5
    assert [o.event for o in stores.outbox.outbox()] == ["raised", "raised", "raised"]


def test_a_condition_still_reported_after_a_person_resolved_it_is_raised_again(
    database: db.Target,
) -> None:
    stores = _stores(database, AlertingSettings(update_interval_s=0, reopen_window_s=0))
    life = AlertLifecycle(stores.state)
    _report(life, T0, 10.0)
    [alert] = stores.state.list()
    stores.state.resolve(alert.id, by="zhangwei", note="door closed", cause="process")
    _report(life, T0 + 60_000, 10.2)
    newest, resolved = stores.state.list()
    assert (resolved.state, resolved.resolved_by, resolved.cause) == (
        "cleared",
        "zhangwei",
        "process",
    )
    assert (newest.state, newest.raised_at, newest.value) == ("active", T0 + 60_000, 10.2)


# -- owners ----------------------------------------------------------------------------------


def test_owner_from_the_route_else_the_oncall_day_in_its_timezone(database: db.Target) -> None:
    alerting = AlertingSettings(
        routes=[
            RouteSettings(types=("cold_chain_excursion",), channels=("ops",), owner="zhangwei"),
            RouteSettings(channels=("ops",)),
        ],
        oncall=[
            OnCallSettings(sites=("wh2",), days={"mon": "nobody"}),
            OnCallSettings(
                timezone="Asia/Shanghai", days={"mon": "chen", "tue": "wang"}, default="zhao"
            ),
        ],
    )
    stores = _stores(database, alerting)
    life = AlertLifecycle(stores.state)
    _report(life, T0, 10.0)
    # Monday 2026-11-23 20:00 UTC is Tuesday 04:00 in Shanghai; Saturday is nobody's day.
    tuesday = T0 + 43 * 3_600_000
    saturday = T0 + 6 * 86_400_000
    for source, at in (("wh1/offline-a", tuesday), ("wh1/offline-b", saturday)):
        life.report(condition(source, at_ms=at, type="sensor_offline"))
    owners = {a.source: a.owner for a in stores.state.list()}
    assert owners == {"wh1/cold": "zhangwei", "wh1/offline-a": "wang", "wh1/offline-b": "zhao"}
    alert = stores.state.active("wh1/cold", ALERT_TYPE)
    assert alert is not None
    assert stores.state.events(alert.id)[1] == {
        "event": "assigned",
        "at": T0,
        "actor": None,
        "note": "zhangwei",
    }
    moved = stores.state.assign(alert.id, "chen", by="li.wei", at_ms=T0 + 1)
    assert moved is not None
    assert moved.owner == "chen"
    assert stores.state.events(alert.id)[-1] == {
        "event": "assigned",
        "at": T0 + 1,
        "actor": "li.wei",
        "note": "chen",
    }


# -- deadlines and escalation ------------------------------------------------------------------


def _escalating(database: db.Target) -> tuple[AlertStores, AlertLifecycle]:
    alerting = AlertingSettings(
        routes=[RouteSettings(channels=("ops",), escalate_to=("oncall",))],
        due={"critical": DuePolicy(ack_s=900, resolve_s=3600)},
    )
    stores = _stores(database, alerting)
    life = AlertLifecycle(stores.state)
    _report(life, T0, 10.0)
    return stores, life


def test_due_exactly_at_the_deadline_escalates_once_per_deadline(database: db.Target) -> None:
    stores, life = _escalating(database)
    [alert] = stores.state.list()
    assert (alert.ack_due_at, alert.resolve_due_at) == (T0 + 900_000, T0 + 3_600_000)
    life.tick(T0 + 899_999)
    assert _rows(stores, "escalated") == []
    life.tick(T0 + 900_000)
    assert _rows(stores, "escalated") == [("influxdb", 0), ("oncall", 0)]
    [alert] = stores.state.list()
    assert (alert.ack_overdue_at, alert.escalated_at, alert.resolve_overdue_at) == (
        T0 + 900_000,
        T0 + 900_000,
        None,
    )
    life.tick(T0 + 1_800_000)  # once only
    assert _rows(stores, "escalated") == [("influxdb", 0), ("oncall", 0)]
    stores.state.ack(alert.id, by="chen", at_ms=T0 + 2_000_000)
    life.tick(T0 + 3_599_999)
    assert _rows(stores, "escalated") == [("influxdb", 0), ("oncall", 0)]
    life.tick(T0 + 3_600_000)  # acknowledged, still active at the resolve deadline
    assert _rows(stores, "escalated") == [
        ("influxdb", 0),
        ("oncall", 0),
        ("influxdb", 1),
        ("oncall", 1),
    ]
    [alert] = stores.state.list()
    assert alert.resolve_overdue_at == T0 + 3_600_000
    assert alert.time_to_ack_s == 2000.0
    overdue = [e["note"] for e in stores.state.events(alert.id) if e["event"] == "overdue"]
    assert overdue == ["acknowledge", "resolve"]


def test_a_missed_deadline_without_escalation_channels_is_recorded_only(
    database: db.Target,
) -> None:
    stores = _stores(database, AlertingSettings())  # default deadlines, no routes
    life = AlertLifecycle(stores.state)
    _report(life, T0, 10.0)
    life.tick(T0 + 4 * 3_600_000)
    [alert] = stores.state.list()
    assert (alert.ack_overdue_at, alert.resolve_overdue_at) == (T0 + 14_400_000,) * 2
    assert alert.escalated_at is None
    assert [o.event for o in stores.outbox.outbox()] == ["raised"] * 3


# -- reminders -------------------------------------------------------------------------------


def test_reminder_exactly_at_the_interval_until_acknowledged(database: db.Target) -> None:
    alerting = AlertingSettings(
        types={ALERT_TYPE: TypePolicy(remind_every_s=1800)},
        routes=[RouteSettings(channels=("ops",), remind_every_s=3600)],
        due={},
    )
    stores = _stores(database, alerting)
    life = AlertLifecycle(stores.state)
    _report(life, T0, 10.0)
    [alert] = stores.state.list()
    assert stores.state.reminder_interval_s(alert) == 1800  # the shortest of type and route
    life.tick(T0 + 30 * MIN_MS - 1)
    assert _rows(stores, "reminder") == []
    life.tick(T0 + 30 * MIN_MS)
    assert _rows(stores, "reminder") == [("ops", 1)]  # not InfluxDB: nothing changed
    life.tick(T0 + 60 * MIN_MS - 1)  # the interval counts from the last reminder
    assert _rows(stores, "reminder") == [("ops", 1)]
    life.tick(T0 + 60 * MIN_MS)
    assert _rows(stores, "reminder") == [("ops", 1), ("ops", 2)]
    [alert] = stores.state.list()
    assert (alert.reminders, alert.reminded_at) == (2, T0 + 60 * MIN_MS)
    stores.state.ack(alert.id, by="chen", at_ms=T0 + 61 * MIN_MS)
    life.tick(T0 + 120 * MIN_MS)
    assert _rows(stores, "reminder") == [("ops", 1), ("ops", 2)]


def test_no_reminders_unless_configured(database: db.Target) -> None:
    stores = _stores(database, AlertingSettings(due={}))
    life = AlertLifecycle(stores.state)
    _report(life, T0, 10.0)
    life.tick(T0 + 7 * 86_400_000)
    assert _rows(stores, "reminder") == []


# -- resolution ------------------------------------------------------------------------------


def test_a_person_resolves_with_note_and_cause_and_the_told_channels_hear_it(
    database: db.Target,
) -> None:
    alerting = AlertingSettings(routes=[RouteSettings(channels=("ops",))])
    stores = _stores(database, alerting)
    life = AlertLifecycle(stores.state)
    _report(life, T0, 10.0)
    [alert] = stores.state.list()
    stores.state.ack(alert.id, by="chen", at_ms=T0 + 120_000)
    done = stores.state.resolve(
        alert.id, by="chen", note="door seal replaced", cause="equipment", at_ms=T0 + 1_500_000
    )
    assert done is not None
    assert (done.state, done.cleared_at, done.resolved_by, done.cause) == (
        "cleared",
        T0 + 1_500_000,
        "chen",
        "equipment",
    )
    assert (done.resolution_note, done.time_to_ack_s, done.time_to_resolve_s) == (
        "door seal replaced",
        120.0,
        1500.0,
    )
    assert [(o.channel, o.event) for o in stores.outbox.outbox()] == [
        ("influxdb", "raised"),
        ("ops", "raised"),
        ("influxdb", "cleared"),
        ("ops", "cleared"),
    ]
    assert stores.state.events(alert.id)[-1] == {
        "event": "resolved",
        "at": T0 + 1_500_000,
        "actor": "chen",
        "note": "door seal replaced",
    }


def test_a_rule_clear_keeps_its_note_and_a_person_adds_the_cause(database: db.Target) -> None:
    stores = _stores(database, AlertingSettings())
    life = AlertLifecycle(stores.state)
    _report(life, T0, 10.0)
    cleared = life.resolve("wh1/cold", ALERT_TYPE, at_ms=T0 + 600_000, note="back in band")
    assert cleared is not None
    assert (cleared.resolution_note, cleared.resolved_by, cleared.cause) == (
        "back in band",
        None,
        None,
    )
    assert cleared.time_to_resolve_s == 600.0
    explained = stores.state.resolve(
        cleared.id, by="chen", note="defrost cycle", cause="process", at_ms=T0 + 900_000
    )
    assert explained is not None
    assert (explained.cleared_at, explained.resolved_by, explained.cause) == (
        T0 + 600_000,
        "chen",
        "process",
    )
    assert [o.event for o in stores.outbox.outbox()].count("cleared") == 3  # not sent again


def test_reopening_starts_a_fresh_occurrence(database: db.Target) -> None:
    stores = _stores(database, AlertingSettings(reopen_window_s=600, due={}))
    life = AlertLifecycle(stores.state)
    _report(life, T0, 12.0)
    [alert] = stores.state.list()
    stores.state.assign(alert.id, "chen", by="li.wei")
    stores.state.ack(alert.id, by="chen", at_ms=T0 + 60_000)
    life.resolve("wh1/cold", ALERT_TYPE, at_ms=T0 + 120_000, note="in band")
    _report(life, T0 + 180_000, 9.0)
    [again] = stores.state.list()
    assert (again.id, again.occurrence, again.state) == (alert.id, 1, "active")
    assert (again.value, again.peak_value, again.owner) == (9.0, 9.0, "chen")
    assert (again.acked_at, again.time_to_ack_s, again.resolution_note) == (None, None, None)


# -- the documented examples -----------------------------------------------------------------


def test_the_documented_settings_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```dotenv\n(.*?)```", text, re.S)
    lines = [line for block in blocks for line in block.splitlines() if line.strip()]
    assert len(lines) == 3
    for line in lines:
        name, value = line.split("=", 1)
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)
    alerting = settings.alerting
    assert alerting.routes[0].owner == "li.wei"
    assert alerting.oncall[0].days["wed"] == "chen"
    assert alerting.policy(ALERT_TYPE).remind_every_s == 1800
    defaults = AlertingSettings()
    assert (defaults.due_for("critical").ack_s, defaults.due_for("critical").resolve_s) == (
        900,
        14_400,
    )
    assert (defaults.due_for("major").ack_s, defaults.due_for("minor").ack_s) == (3600, None)


def test_a_database_of_the_previous_schema_keeps_its_alerts_and_outbox(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path, isolation_level=None)
    for script in alerts_schema.MIGRATIONS[:2]:
        old.executescript(script)
    old.executescript(
        """CREATE TABLE schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL);
        INSERT INTO schema_versions VALUES ('alerts', 2);
        INSERT INTO alerts (source, type, severity, state, site, title, message, value,
            threshold, raised_at, cleared_at, acked_by, acked_at, updated_at)
            VALUES ('wh1/cold', 'cold_chain_excursion', 'critical', 'cleared', 'wh1', 't', 'm',
            9.5, 8.0, 1000, 601000, 'chen', 121000, 601000);
        INSERT INTO outbox (channel, alert_id, event, status, next_attempt_at, created_at)
            VALUES ('ops', 1, 'raised', 'sent', 1000, 1000);"""
    )
    old.close()
    stores = AlertStores.over(db.connect(path), CHANNELS, alerting=AlertingSettings())
    alert = stores.state.get(1)
    assert alert is not None
    assert (alert.peak_value, alert.last_seen_at, alert.reminders) == (9.5, 1000, 0)
    assert (alert.time_to_ack_s, alert.time_to_resolve_s) == (120.0, 600.0)
    assert [(o.channel, o.event, o.status, o.seq) for o in stores.outbox.outbox()] == [
        ("ops", "raised", "sent", 0)
    ]
