"""Alert lifecycle: debounce, flapping, silences, routing, escalation, channel health."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from api.app import create_app
from core import db
from core.alerts import Alert, AlertStores
from core.settings import AlertingSettings, RouteSettings, Settings, TypePolicy
from rules.lifecycle import AlertLifecycle, channel_health_hooks
from rules.notify.base import DeliveryError
from rules.notify.service import Notifier
from tests.alertutil import (
    condition,
    connect,
    connections_closed,  # noqa: F401 - an autouse fixture
)
from tests.authutil import bearer

T0 = 1_795_309_200_000
CHANNELS = ["influxdb", "ops", "oncall", "erp"]


def _store(database: db.Target, alerting: AlertingSettings | None = None) -> AlertStores:
    return AlertStores.over(connect(database), CHANNELS, alerting=alerting)


def _report(
    life: AlertLifecycle,
    at_ms: int,
    *,
    source: str = "wh1/cold",
    type_: str = "cold_chain_mkt",
    severity: Any = "major",
    site: str = "wh1",
    zone: str | None = "cold",
) -> Alert | None:
    return life.report(
        condition(
            source,
            at_ms=at_ms,
            type=type_,
            severity=severity,
            site=site,
            zone=zone,
            value=9.0,
            threshold=8.0,
        )
    )


def _sent_to(store: AlertStores) -> list[tuple[str, str]]:
    return [(o.channel, o.event) for o in store.outbox.outbox()]


def test_debounce_by_duration_and_count(database: db.Target) -> None:
    alerting = AlertingSettings(
        types={
            "cold_chain_mkt": TypePolicy(debounce_s=30),
            "sensor_stuck": TypePolicy(debounce_count=3),
        }
    )
    store = _store(database, alerting)
    life = AlertLifecycle(store.state)
    assert _report(life, T0) is None
    assert _report(life, T0 + 20_000) is None
    raised = _report(life, T0 + 30_000)
    assert raised is not None
    assert raised.raised_at == T0 + 30_000
    assert raised.details["debounce_count"] == 3
    # a gap resets the count: the condition must hold, not just be seen
    stuck = {"source": "wh1/temp/p1/t1", "type_": "sensor_stuck"}
    assert _report(life, T0, **stuck) is None
    assert _report(life, T0 + 1, **stuck) is None
    assert life.resolve("wh1/temp/p1/t1", "sensor_stuck", at_ms=T0 + 2) is None
    assert _report(life, T0 + 3, **stuck) is None
    assert _report(life, T0 + 4, **stuck) is None
    third = _report(life, T0 + 5, **stuck)
    assert third is not None
    assert third.raised_at == T0 + 5
    assert len(store.state.list()) == 2


def test_debounce_raises_exactly_at_the_duration_and_count_limits(database: db.Target) -> None:
    both = TypePolicy(debounce_s=60, debounce_count=3)
    store = _store(database, AlertingSettings(types={"cold_chain_mkt": both}))
    life = AlertLifecycle(store.state)
    assert _report(life, T0) is None
    assert _report(life, T0 + 59_999) is None  # seen twice, held 1 ms short
    assert life.is_pending("wh1/cold", "cold_chain_mkt")
    assert _report(life, T0 + 60_000) is not None  # both limits met exactly: third sighting
    assert not life.is_pending("wh1/cold", "cold_chain_mkt")
    # the count limit alone: held long enough, seen one time too few
    other = {"source": "wh1/other"}
    assert _report(life, T0, **other) is None
    assert _report(life, T0 + 120_000, **other) is None
    alert = _report(life, T0 + 120_001, **other)
    assert alert is not None
    assert (alert.raised_at, alert.details["debounce_count"], alert.details["held_s"]) == (
        T0 + 120_001,
        3,
        120.0,
    )


def test_debounce_progress_is_per_source_and_type(database: db.Target) -> None:
    policy = TypePolicy(debounce_s=30)
    alerting = AlertingSettings(types={"cold_chain_mkt": policy, "sensor_drift": policy})
    life = AlertLifecycle(_store(database, alerting).state)
    assert _report(life, T0) is None
    assert _report(life, T0 + 29_000, source="wh1/b") is None
    assert _report(life, T0 + 29_000, type_="sensor_drift") is None
    assert life.tracked({"cold_chain_mkt"}) == {
        ("wh1/cold", "cold_chain_mkt"),
        ("wh1/b", "cold_chain_mkt"),
    }
    raised = _report(life, T0 + 30_000)
    assert raised is not None
    assert (raised.source, raised.type) == ("wh1/cold", "cold_chain_mkt")
    # the others started later and are still debouncing
    assert _report(life, T0 + 30_000, source="wh1/b") is None
    assert _report(life, T0 + 30_000, type_="sensor_drift") is None
    assert life.tracked({"cold_chain_mkt"}) == {
        ("wh1/cold", "cold_chain_mkt"),
        ("wh1/b", "cold_chain_mkt"),
    }
    # a resolved pending condition raises nothing and leaves nothing behind
    assert life.resolve("wh1/b", "cold_chain_mkt", at_ms=T0 + 31_000) is None
    assert life.tracked({"cold_chain_mkt"}) == {("wh1/cold", "cold_chain_mkt")}
    assert [a.source for a in life.store.list()] == ["wh1/cold"]


def test_overridden_severity_is_what_the_routes_see(database: db.Target) -> None:
    alerting = AlertingSettings(
        types={"cold_chain_mkt": TypePolicy(severity="critical")},
        routes=[
            RouteSettings(severities=("critical",), channels=("oncall",)),
            RouteSettings(severities=("major",), channels=("ops",)),
        ],
    )
    store = _store(database, alerting)
    alert = _report(AlertLifecycle(store.state), T0, severity="major")
    assert alert is not None
    assert alert.severity == "critical"
    assert _sent_to(store) == [("influxdb", "raised"), ("oncall", "raised")]


def test_severity_override_from_settings(database: db.Target) -> None:
    store = _store(
        database, AlertingSettings(types={"cold_chain_mkt": TypePolicy(severity="info")})
    )
    alert = _report(AlertLifecycle(store.state), T0)
    assert alert is not None
    assert alert.severity == "info"


def test_flapping_keeps_one_alert_and_bounds_notifications(database: db.Target) -> None:
    alerting = AlertingSettings(
        flap_window_s=600, flap_max_transitions=4, flap_stable_s=300, reopen_window_s=600
    )
    store = _store(database, alerting)
    life = AlertLifecycle(store.state)
    for i in range(10):  # raise/clear every 10 s, 20 transitions
        _report(life, T0 + i * 20_000)
        life.resolve("wh1/cold", "cold_chain_mkt", at_ms=T0 + i * 20_000 + 10_000)
    alerts = store.state.list()
    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert.state, alert.flapping, alert.pending_clear_at) == (
        "active",
        True,
        T0 + 190_000,
    )
    # raise, clear, raise, clear (4 transitions), then the 5th marks it flapping
    people = [(c, e) for c, e in _sent_to(store) if c == "ops"]
    assert people == [("ops", "raised"), ("ops", "cleared"), ("ops", "raised"), ("ops", "cleared")]
    # still flapping 4 minutes after the last transition, settled after 5
    life.tick(T0 + 190_000 + 240_000)
    assert store.state.get(alert.id) == alert
    life.tick(T0 + 190_000 + 300_000)
    settled = store.state.get(alert.id)
    assert settled is not None
    assert (settled.state, settled.flapping, settled.cleared_at) == ("cleared", False, T0 + 190_000)
    # people last heard "resolved", which is the settled truth: nothing more to send
    assert [(c, e) for c, e in _sent_to(store) if c == "ops"] == people
    assert [(c, e) for c, e in _sent_to(store) if c == "influxdb"][-1] == ("influxdb", "cleared")
    events = [e["event"] for e in store.state.events(alert.id)]
    assert events.count("flapping") == 1
    assert events[-2:] == ["stable", "cleared"]


def test_flapping_that_settles_active_tells_people_it_is_active(database: db.Target) -> None:
    alerting = AlertingSettings(flap_max_transitions=2, flap_stable_s=60, reopen_window_s=600)
    store = _store(database, alerting)
    life = AlertLifecycle(store.state)
    _report(life, T0)
    life.resolve("wh1/cold", "cold_chain_mkt", at_ms=T0 + 1000)
    _report(life, T0 + 2000)  # third transition: flapping, the reopen is not announced
    alert = store.state.list()[0]
    assert alert.flapping
    assert [(c, e) for c, e in _sent_to(store) if c == "ops"] == [
        ("ops", "raised"),
        ("ops", "cleared"),
    ]
    life.tick(T0 + 62_000)
    settled = store.state.get(alert.id)
    assert settled is not None
    assert (settled.state, settled.flapping) == ("active", False)
    assert [(c, e) for c, e in _sent_to(store) if c == "ops"] == [
        ("ops", "raised"),
        ("ops", "cleared"),
        ("ops", "raised"),
    ]


def test_routes_choose_channels_and_influx_gets_everything(database: db.Target) -> None:
    alerting = AlertingSettings(
        routes=[
            RouteSettings(severities=("critical",), channels=("oncall", "ops")),
            RouteSettings(types=("reorder",), channels=("erp",)),
        ],
        default_channels=("ops",),
    )
    store = _store(database, alerting)
    life = AlertLifecycle(store.state)
    crit = _report(life, T0, severity="critical")
    reorder = _report(life, T0, source="wh1/SKU-1", type_="reorder", severity="info")
    other = _report(life, T0, source="wh1/x", type_="sensor_stuck", severity="minor")
    assert crit is not None
    assert reorder is not None
    assert other is not None

    def channels(alert: Alert) -> list[str]:
        return sorted(o.channel for o in store.outbox.outbox(alert_id=alert.id))

    assert channels(crit) == ["influxdb", "oncall", "ops"]
    assert channels(reorder) == ["erp", "influxdb"]
    assert channels(other) == ["influxdb", "ops"]
    # the resolved notice follows the raise, whatever the routes say now
    store.state.alerting = AlertingSettings(routes=[RouteSettings(channels=("erp",))])
    life.resolve("wh1/cold", "cold_chain_mkt", at_ms=T0 + 1)
    cleared = [o.channel for o in store.outbox.outbox(alert_id=crit.id) if o.event == "cleared"]
    assert sorted(cleared) == ["influxdb", "oncall", "ops"]


def test_silence_records_but_sends_only_to_influx(database: db.Target) -> None:
    store = _store(database)
    silence = store.silences.create_silence(
        site="wh1",
        zone="cold",
        type_=None,
        starts_at=T0,
        ends_at=T0 + 3_600_000,
        created_by="li.wei",
        reason="defrost maintenance",
    )
    life = AlertLifecycle(store.state)
    silenced = _report(life, T0 + 60_000)
    outside = _report(life, T0 + 60_000, source="wh2/cold", site="wh2")
    assert silenced is not None
    assert outside is not None
    assert silenced.silenced_by == silence.id
    assert outside.silenced_by is None
    life.resolve("wh1/cold", "cold_chain_mkt", at_ms=T0 + 120_000)
    assert [(o.channel, o.event) for o in store.outbox.outbox(alert_id=silenced.id)] == [
        ("influxdb", "raised"),
        ("influxdb", "cleared"),
    ]
    assert len(store.outbox.outbox(alert_id=outside.id)) == 4
    assert "silenced" in [e["event"] for e in store.state.events(silenced.id)]
    # after the window (or once deleted) alerts notify again
    assert store.silences.delete_silence(silence.id, by="li.wei", at_ms=T0 + 130_000) is not None
    assert store.silences.silences(at_ms=T0) == []
    again = _report(life, T0 + 11 * 60_000, type_="cold_chain_cumulative")
    assert again is not None
    assert len(store.outbox.outbox(alert_id=again.id)) == 4


def test_escalation_after_unacked_minutes_and_not_when_acked(database: db.Target) -> None:
    alerting = AlertingSettings(
        routes=[
            RouteSettings(
                severities=("critical",),
                channels=("ops",),
                escalate_after_s=600,
                escalate_to=("oncall",),
            )
        ]
    )
    store = _store(database, alerting)
    life = AlertLifecycle(store.state)
    first = _report(life, T0, severity="critical")
    acked = _report(life, T0, source="wh1/other", severity="critical")
    minor = _report(life, T0, source="wh1/minor", severity="minor")
    assert first is not None
    assert acked is not None
    assert minor is not None
    store.state.ack(acked.id, by="li.wei", at_ms=T0 + 60_000)
    life.tick(T0 + 599_000)
    assert store.state.get(first.id) == first
    life.tick(T0 + 600_000)
    life.tick(T0 + 700_000)  # escalates once
    escalated = store.state.get(first.id)
    assert escalated is not None
    assert escalated.escalated_at == T0 + 600_000
    assert [(o.channel, o.event) for o in store.outbox.outbox(alert_id=first.id)] == [
        ("influxdb", "raised"),
        ("ops", "raised"),
        ("influxdb", "escalated"),
        ("oncall", "escalated"),
    ]
    assert [o.event for o in store.outbox.outbox(alert_id=acked.id)] == ["raised", "raised"]
    life.resolve("wh1/cold", "cold_chain_mkt", at_ms=T0 + 800_000)
    cleared = sorted(
        o.channel for o in store.outbox.outbox(alert_id=first.id) if o.event == "cleared"
    )
    assert cleared == ["influxdb", "oncall", "ops"]


def test_state_survives_a_restart(database: db.Target) -> None:
    alerting = AlertingSettings(flap_max_transitions=2, reopen_window_s=600, flap_stable_s=60)
    store = _store(database, alerting)
    life = AlertLifecycle(store.state)
    _report(life, T0)
    life.resolve("wh1/cold", "cold_chain_mkt", at_ms=T0 + 1000)
    _report(life, T0 + 2000)
    # a new process: same database, fresh objects
    store2 = AlertStores.over(connect(database), CHANNELS, alerting=alerting)
    life2 = AlertLifecycle(store2.state)
    assert life2.is_open("wh1/cold", "cold_chain_mkt")
    life2.resolve("wh1/cold", "cold_chain_mkt", at_ms=T0 + 3000)
    assert store2.state.list()[0].pending_clear_at == T0 + 3000
    life2.tick(T0 + 63_000)
    assert [(a.state, a.flapping) for a in store2.state.list()] == [("cleared", False)]


class _FailingHook:
    name = "ops"

    async def send(self, alert: Alert, event: Any) -> None:
        del alert, event
        raise DeliveryError("ops: HTTP 404", retry_after_s=None, code=404)

    async def aclose(self) -> None:
        """Nothing to close."""


class _Recorder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.got: list[tuple[str, str]] = []
        self.fail = False

    async def send(self, alert: Alert, event: Any) -> None:
        if self.fail:
            raise DeliveryError(f"{self.name}: bad key", retry_after_s=None, code=93000)
        self.got.append((alert.type, str(event)))

    async def aclose(self) -> None:
        """Nothing to close."""


def test_channel_health_alert_raised_on_problem_and_cleared_on_recovery(
    database: db.Target,
) -> None:
    store = AlertStores.over(connect(database), ["ops", "erp"])
    ops, erp = _Recorder("ops"), _Recorder("erp")
    clock = [time.time() + 1]  # the outbox schedules on wall time
    notifier = Notifier(store, [ops, erp], clock=lambda: clock[0])
    life = AlertLifecycle(store.state)
    notifier.on_channel_problem, notifier.on_channel_recovered = channel_health_hooks(
        life, clock=lambda: clock[0]
    )
    ops.fail = True
    _report(life, T0)
    asyncio.run(notifier.deliver_due())
    health = store.state.list(type_="channel_health")
    assert [(a.source, a.state, a.site) for a in health] == [("notifier/ops", "active", "system")]
    # the news goes to the other channel only
    asyncio.run(notifier.deliver_due())
    assert erp.got == [("cold_chain_mkt", "raised"), ("channel_health", "raised")]
    ops.fail = False
    clock[0] += 10
    _report(life, T0 + 10_000, source="wh1/other")
    asyncio.run(notifier.deliver_due())
    health = store.state.list(type_="channel_health")
    assert [(a.state, a.cleared_at) for a in health] == [("cleared", int(clock[0] * 1000))]
    asyncio.run(notifier.deliver_due())
    assert erp.got[-1] == ("channel_health", "cleared")
    assert ("channel_health", "cleared") not in ops.got


def test_api_silences_and_ack(tmp_path: Path, database: db.Target) -> None:
    settings = Settings(data_dir=tmp_path, database_url=database.url)
    store = AlertStores.over(connect(settings.database), ["ops"])

    async def main() -> None:
        transport = httpx.ASGITransport(app=create_app(settings))
        headers = bearer(settings, "operator")
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api", headers=headers
        ) as client:
            created = await client.post(
                "/alerts/silences",
                json={
                    "site": "wh1",
                    "type": "sensor_offline",
                    "duration_s": 3600,
                    "created_by": "li.wei",
                    "reason": "gateway firmware update",
                },
            )
            assert created.status_code == 201
            body = created.json()
            assert (body["site"], body["zone"], body["type"]) == ("wh1", None, "sensor_offline")
            assert body["ends_at"] - body["starts_at"] == 3_600_000
            listed = (await client.get("/alerts/silences")).json()
            assert [s["id"] for s in listed] == [body["id"]]
            bad = await client.post("/alerts/silences", json={"created_by": "x", "reason": "y"})
            assert bad.status_code == 422
            alert = AlertLifecycle(store.state).report(
                condition("wh1/temp/p1", at_ms=body["starts_at"] + 1000)
            )
            assert alert is not None
            assert alert.silenced_by == body["id"]
            assert store.outbox.outbox(alert_id=alert.id) == []
            acked = await client.post(f"/alerts/{alert.id}/ack", json={"by": "li.wei"})
            assert acked.json()["acked_by"] == "li.wei"
            history = (await client.get(f"/alerts/{alert.id}/events")).json()
            assert [e["event"] for e in history] == ["raised", "silenced", "acked"]
            gone = await client.delete(f"/alerts/silences/{body['id']}", params={"by": "li.wei"})
            assert gone.status_code == 204
            assert (await client.get("/alerts/silences")).json() == []
            missing = await client.delete("/alerts/silences/999", params={"by": "li.wei"})
            assert missing.status_code == 404

    asyncio.run(main())


def test_processes_raising_and_clearing_one_alert_at_once_record_it_once(
    database: db.Target,
) -> None:
    stores = [_store(database) for _ in range(6)]
    start = threading.Barrier(len(stores))
    raised: list[bool] = []
    cleared: list[bool] = []
    errors: list[BaseException] = []

    def race(store: AlertStores) -> None:
        try:
            start.wait(timeout=10)
            raised.append(store.state.raise_alert(condition("wh1/cold", at_ms=T0))[1])
            start.wait(timeout=10)
            cleared.append(store.state.clear("wh1/cold", "sensor_offline", at_ms=T0 + 1)
                           is not None)  # fmt: skip
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=race, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(raised) == [False] * 5 + [True]
    assert sorted(cleared) == [False] * 5 + [True]
    events = [e["event"] for e in stores[0].state.events(1)]
    assert events == ["raised", "cleared"]
