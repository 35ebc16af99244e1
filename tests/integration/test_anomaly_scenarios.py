"""Anomaly detectors and the alert lifecycle through the real broker, ingest and notifier.

Each scenario publishes device messages to Mosquitto, lets ingest decode them into the rules
engine (with the anomaly processors added) and checks the alerts and what reached a local
webhook. Time-based rules are driven with ``rules.tick(now_ms)`` on a simulated clock: the
engine's wall-clock ticker is effectively off (one tick per hour).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from pydantic import SecretStr

from core import topics
from core.alerts import Alert
from core.settings import (
    AlertingSettings,
    ChannelSettings,
    ColdChainPolicy,
    NotifierSettings,
    OfflinePolicy,
    RouteSettings,
    SensorHealthPolicy,
    Settings,
)
from rules.anomaly import AnomalyProcessors
from rules.seed import Seed, SensorRef, Site, TempBand, Zone
from simulators.robots import WebhookReceiver
from stocksense.pipeline import Pipeline
from tests.conftest import RECENT_T0, Publisher, until

pytestmark = pytest.mark.integration

T0 = RECENT_T0
PROBES = ("p1", "p2", "p3")


def _seed(site: str, *, allowance_s: float = 3600, timezone: str = "UTC") -> Seed:
    return Seed(
        sites=[
            Site(
                id=site,
                timezone=timezone,
                zones=[
                    Zone(
                        id="cold",
                        temp_band=TempBand(low=2, high=8),
                        allowance_s=allowance_s,
                        sensors=[SensorRef(device=p) for p in PROBES],
                    )
                ],
            )
        ]
    )


@dataclass
class Run:
    """A running pipeline with the anomaly processors and the receivers' logs."""

    pipeline: Pipeline
    anomaly: AnomalyProcessors
    hook: WebhookReceiver
    oncall: WebhookReceiver
    publisher: Publisher
    site: str
    published: int = 0

    def temps(self, round_: int, values: dict[str, float], step_s: int = 30) -> None:
        """One reading per probe at ``T0 + round * step``."""
        for device, celsius in values.items():
            payload = {
                "ts": T0 + round_ * step_s * 1000,
                "seq": round_,
                "readings": [{"sensor": "t", "celsius": round(celsius, 3)}],
            }
            self.publisher.publish(topics.build(self.site, "temp", device), json.dumps(payload))
            self.published += 1

    def status(
        self, device: str, *, online: bool, ts: int, interval_s: float | None = None
    ) -> None:
        """A birth or Last Will (not retained: the broker is shared between tests)."""
        body: dict[str, object] = {"online": online, "ts": ts}
        if interval_s is not None:
            body["interval_s"] = interval_s
        if not online:
            body["reason"] = "lwt"
        topic = topics.build(self.site, "temp", device, "status")
        self.publisher.publish(topic, json.dumps(body))
        self.published += 1

    async def settle(self) -> None:
        """Wait until every published reading went through the rules."""
        self.publisher.flush()
        target = self.published
        await until(lambda: self.pipeline.rules.processed >= target, what="rules caught up")
        await self.pipeline.notifier.deliver_due()

    def alerts(self, type_: str | None = None) -> list[Alert]:
        """This scenario's alerts, oldest first."""
        found = self.pipeline.alerts.state.list(type_=type_, site=self.site, limit=1000)
        return sorted(found, key=lambda a: a.id)

    def hook_events(self, type_: str | None = None) -> list[tuple[str, str, str]]:
        """(event, type, source) of the webhook posts about this site."""
        return [
            (r.body["event"], r.body["alert"]["type"], r.body["alert"]["source"])
            for r in self.hook.log.accepted
            if r.body["alert"]["site"] == self.site
            and (type_ is None or r.body["alert"]["type"] == type_)
        ]


@asynccontextmanager
async def running(
    settings: Settings,
    publisher: Publisher,
    site: str,
    alerting: AlertingSettings,
    *,
    allowance_s: float = 3600,
    timezone: str = "UTC",
) -> AsyncIterator[Run]:
    """Pipeline + anomaly processors + two webhooks ("hook" routed, "oncall" for escalation)."""
    hook = WebhookReceiver().start()
    oncall = WebhookReceiver().start()
    channels = [
        ChannelSettings(name="hook", kind="webhook", url=SecretStr(hook.url)),
        ChannelSettings(name="oncall", kind="webhook", url=SecretStr(oncall.url)),
    ]
    cfg = settings.model_copy(
        update={
            "notifier": NotifierSettings(channels=channels, poll_interval_s=0.05),
            "alerting": alerting,
            # This scenario's site only: retained status messages of other tests would count
            # as processed readings and end the "rules caught up" waits early.
            "mqtt": settings.mqtt.model_copy(update={"sites": (site,)}),
        }
    )
    # The scenarios drive time themselves: readings arrive "at" T0 as far as the rules know.
    pipeline = Pipeline(
        cfg,
        seed=_seed(site, allowance_s=allowance_s, timezone=timezone),
        anomaly_sites={site},
        tick_interval_s=3600,
        clock=lambda: T0 / 1000,
    )
    anomaly = pipeline.anomaly
    await pipeline.start()
    try:
        yield Run(pipeline, anomaly, hook, oncall, publisher, site)
    finally:
        await pipeline.stop()
        hook.stop()
        oncall.stop()


def _only_hook(**kwargs: object) -> AlertingSettings:
    """Routes: everything to "hook"; "oncall" only through escalation.

    Offline detection waits a day unless a scenario sets it: clock jumps must not page.
    """
    routes = [RouteSettings(channels=("hook",))]
    offline = OfflinePolicy(min_timeout_s=86_400)
    return AlertingSettings.model_validate({"routes": routes, "offline": offline, **kwargs})


def _noise(rng: np.random.Generator, i: int, swing: float = 1.0) -> dict[str, float]:
    room = 5.0 + swing * np.sin(i / 15)
    biases = {"p1": 0.0, "p2": 0.4, "p3": -0.3}
    return {p: float(room + b + rng.normal(0, 0.08)) for p, b in biases.items()}


def _run(coro: Callable[[], object]) -> None:
    asyncio.run(coro())  # type: ignore[arg-type]


def test_noise_only_raises_nothing(settings: Settings, publisher: Publisher) -> None:
    alerting = _only_hook(
        cold_chain=ColdChainPolicy(mkt_window_s=1800, daily_out_limit_s=600),
        offline=OfflinePolicy(timeout_factor=3),
        sensor_health=SensorHealthPolicy(stuck_samples=10, stuck_s=120),
    )

    async def scenario() -> None:
        async with running(settings, publisher, "sq-noise", alerting) as run:
            rng = np.random.default_rng(5)
            for i in range(80):
                run.temps(i, _noise(rng, i))
            await run.settle()
            run.pipeline.rules.tick(T0 + 79 * 30_000 + 60_000)  # within 3 x 30 s
            await run.settle()
            assert run.alerts() == []
            assert run.hook_events() == []
            mkt = run.anomaly.cold_chain.mkt("sq-noise", "cold")
            assert mkt is not None
            assert 4.0 < mkt < 6.5

    _run(scenario)


def _zone_with_midnight_at(ts_ms: int) -> str:
    """A fixed-offset time zone in which ``ts_ms`` (a whole UTC hour) is local midnight."""
    offset = -datetime.fromtimestamp(ts_ms / 1000, tz=UTC).hour % 24
    if offset > 12:
        offset -= 24  # the Etc/GMT zones span UTC-11 .. UTC+12 for this purpose
    return "Etc/GMT" + ("" if offset == 0 else f"{-offset:+d}")  # POSIX: the sign is inverted


def test_cumulative_time_out_of_band_fires_and_a_new_day_clears(
    settings: Settings, publisher: Publisher
) -> None:
    midnight = T0 + 2 * 3_600_000
    alerting = _only_hook(
        cold_chain=ColdChainPolicy(daily_out_limit_s=600, mkt_min_samples=100_000)
    )

    async def scenario() -> None:
        tz = _zone_with_midnight_at(midnight)
        async with running(settings, publisher, "sq-cum", alerting, timezone=tz) as run:
            rng = np.random.default_rng(7)
            spell = [9.0] * 8 + [5.0] * 20  # 4 minutes out, 10 back in band (30 s readings)
            for i, celsius in enumerate(spell * 2):
                run.temps(i, {"p1": celsius + rng.normal(0, 0.05)})
            await run.settle()
            assert run.alerts() == []  # 8 minutes out so far: within the 10-minute allowance
            for i, celsius in enumerate(spell, start=56):
                run.temps(i, {"p1": celsius + rng.normal(0, 0.05)})
            await run.settle()
            [alert] = run.alerts("cold_chain_cumulative")
            assert alert.state == "active"
            assert alert.threshold == 600
            assert alert.value is not None
            assert 600 < alert.value <= 720
            # past local midnight the day's count starts again, and the alert clears
            run.temps((midnight - T0) // 30_000 + 1, {"p1": 5.0})
            await run.settle()
            await until(lambda: len(run.hook_events()) == 2, what="raised and resolved")
            assert run.hook_events() == [
                ("raised", "cold_chain_cumulative", "sq-cum/cold"),
                ("cleared", "cold_chain_cumulative", "sq-cum/cold"),
            ]

    _run(scenario)


def test_mkt_fires_and_clears(settings: Settings, publisher: Publisher) -> None:
    alerting = _only_hook(
        cold_chain=ColdChainPolicy(mkt_window_s=1800, mkt_min_samples=20, daily_out_limit_s=None)
    )

    async def scenario() -> None:
        async with running(settings, publisher, "sq-mkt", alerting) as run:
            rng = np.random.default_rng(3)
            for i in range(60):  # warm spells: 12 °C every other reading, never 2 in a row
                warm = 12.0 if i % 2 == 1 else 7.0
                run.temps(i, {"p1": warm + rng.normal(0, 0.05), "p2": 6.5 + rng.normal(0, 0.05)})
            await run.settle()
            [alert] = run.alerts("cold_chain_mkt")
            assert alert.state == "active"
            assert alert.value is not None
            assert alert.value > 8.0
            assert alert.threshold == 8.0
            for i in range(60, 130):
                run.temps(i, {"p1": 5.0 + rng.normal(0, 0.05), "p2": 5.0 + rng.normal(0, 0.05)})
            await run.settle()
            await until(lambda: len(run.hook_events()) == 2, what="raised and resolved")
            assert run.alerts("cold_chain_mkt")[0].state == "cleared"
            assert run.hook_events() == [
                ("raised", "cold_chain_mkt", "sq-mkt/cold"),
                ("cleared", "cold_chain_mkt", "sq-mkt/cold"),
            ]

    _run(scenario)


def test_offline_by_timeout_and_by_last_will(settings: Settings, publisher: Publisher) -> None:
    alerting = _only_hook(offline=OfflinePolicy(timeout_factor=3))

    async def scenario() -> None:
        async with running(settings, publisher, "sq-off", alerting) as run:
            run.status("p1", online=True, ts=T0, interval_s=10)
            for i in range(5):
                run.temps(i, {"p1": 5.0}, step_s=10)
            await run.settle()
            last = T0 + 40_000
            run.pipeline.rules.tick(last + 30_000)
            await run.settle()
            assert run.alerts() == []
            run.pipeline.rules.tick(last + 31_000)
            await run.settle()
            assert [(a.source, a.state) for a in run.alerts()] == [("sq-off/temp/p1", "active")]
            run.temps(5, {"p1": 5.0}, step_s=10)  # p1 is back
            await run.settle()
            offline = run.alerts("sensor_offline")
            assert [(a.source, a.state) for a in offline] == [("sq-off/temp/p1", "cleared")]
            run.status("p2", online=False, ts=T0 + 52_000)
            await run.settle()
            assert run.alerts()[-1].source == "sq-off/temp/p2"
            assert run.alerts()[-1].details["reason"] == "lwt"
            run.status("p2", online=True, ts=T0 + 60_000)
            await run.settle()
            await until(lambda: len(run.hook_events()) == 4, what="four webhook events")
            assert run.hook_events() == [
                ("raised", "sensor_offline", "sq-off/temp/p1"),
                ("cleared", "sensor_offline", "sq-off/temp/p1"),
                ("raised", "sensor_offline", "sq-off/temp/p2"),
                ("cleared", "sensor_offline", "sq-off/temp/p2"),
            ]

    _run(scenario)


def test_drift_and_stuck_fire_and_clear(settings: Settings, publisher: Publisher) -> None:
    alerting = _only_hook(
        sensor_health=SensorHealthPolicy(
            drift_threshold_c=1.0, drift_clear_c=0.5, stuck_samples=15, stuck_s=300
        ),
        cold_chain=ColdChainPolicy(daily_out_limit_s=None, mkt_min_samples=100_000),
    )

    async def scenario() -> None:
        async with running(settings, publisher, "sq-drift", alerting) as run:
            rng = np.random.default_rng(11)
            for i in range(60):
                run.temps(i, _noise(rng, i, swing=0.2))
            for i in range(60, 130):  # p1 walks away by 0.04 °C per reading; p3 flat-lines
                values = _noise(rng, i, swing=0.2)
                values["p1"] += 0.04 * (i - 60)
                values["p3"] = 4.7 if i >= 100 else values["p3"]
                run.temps(i, values)
            await run.settle()
            assert [(a.source, a.type, a.state) for a in run.alerts()] == [
                ("sq-drift/temp/p1/t", "sensor_drift", "active"),
                ("sq-drift/temp/p3/t", "sensor_stuck", "active"),
            ]
            for i in range(130, 180):
                run.temps(i, _noise(rng, i, swing=0.2))
            await run.settle()
            assert [a.state for a in run.alerts()] == ["cleared", "cleared"]
            await until(lambda: len(run.hook_events()) == 4, what="four webhook events")

    _run(scenario)


def test_flapping_gives_one_alert_and_bounded_notifications(
    settings: Settings, publisher: Publisher
) -> None:
    alerting = _only_hook(
        reopen_window_s=600, flap_window_s=600, flap_max_transitions=4, flap_stable_s=120
    )

    async def scenario() -> None:
        async with running(settings, publisher, "sq-flap", alerting, allowance_s=0) as run:
            for i in range(40):  # two readings out of band, two in: raise, clear, ...
                run.temps(i, {"p1": 9.0 if i % 4 < 2 else 5.0}, step_s=10)
            await run.settle()
            [alert] = run.alerts("cold_chain_excursion")
            assert (alert.state, alert.flapping) == ("active", True)
            # the last transition is the held clear at 380 s (readings 36, 37 out; 38 in)
            run.pipeline.rules.tick(T0 + 380_000 + 119_000)
            await run.settle()
            assert run.alerts()[0].flapping
            run.pipeline.rules.tick(T0 + 380_000 + 120_000)  # quiet for flap_stable_s
            await run.settle()
            [settled] = run.alerts()
            assert (settled.id, settled.state, settled.flapping) == (alert.id, "cleared", False)
            assert settled.cleared_at == T0 + 380_000
            await until(lambda: len(run.hook_events()) == 4, what="the bounded notifications")
            assert [e for e, _, _ in run.hook_events()] == ["raised", "cleared"] * 2
            assert [o.channel for o in run.pipeline.alerts.outbox.outbox(status="pending")] == []

    _run(scenario)


def test_silenced_alert_is_recorded_and_sends_nothing(
    settings: Settings, publisher: Publisher
) -> None:
    async def scenario() -> None:
        async with running(settings, publisher, "sq-mute", _only_hook(), allowance_s=0) as run:
            run.pipeline.alerts.silences.create_silence(
                site="sq-mute",
                zone="cold",
                type_=None,
                starts_at=T0,
                ends_at=T0 + 3_600_000,
                created_by="li.wei",
                reason="defrost",
            )
            for i in range(4):
                run.temps(i, {"p1": 9.0}, step_s=10)
            for i in range(4, 6):
                run.temps(i, {"p1": 5.0}, step_s=10)
            await run.settle()
            [alert] = run.alerts()
            assert (alert.state, alert.silenced_by) == ("cleared", 1)
            rows = run.pipeline.alerts.outbox.outbox(alert_id=alert.id)
            assert [(o.channel, o.event) for o in rows] == [
                ("influxdb", "raised"),
                ("influxdb", "cleared"),
            ]
            await until(
                lambda: (
                    {o.status for o in run.pipeline.alerts.outbox.outbox(alert_id=alert.id)}
                    == {"sent"}
                ),
                what="influx points written",
            )
            assert run.hook_events() == []
            assert run.oncall.log.accepted == []

    _run(scenario)


def test_unacked_critical_escalates_after_n_minutes(
    settings: Settings, publisher: Publisher
) -> None:
    alerting = AlertingSettings(
        offline=OfflinePolicy(min_timeout_s=86_400),
        routes=[
            RouteSettings(
                severities=("critical",),
                channels=("hook",),
                escalate_after_s=600,
                escalate_to=("oncall",),
            ),
            RouteSettings(severities=("major", "minor", "warning", "info"), channels=("hook",)),
        ],
    )

    async def scenario() -> None:
        async with running(settings, publisher, "sq-esc", alerting, allowance_s=0) as run:
            for i in range(3):
                run.temps(i, {"p1": 9.0}, step_s=10)
            await run.settle()
            [alert] = run.alerts()
            assert (alert.severity, alert.raised_at) == ("critical", T0 + 10_000)
            await until(lambda: len(run.hook_events()) == 1, what="the alert at the hook")
            run.pipeline.rules.tick(alert.raised_at + 599_000)
            await run.settle()
            assert run.oncall.log.accepted == []
            run.pipeline.rules.tick(alert.raised_at + 600_000)
            await run.settle()
            await until(lambda: len(run.oncall.log.accepted) == 1, what="the escalation")
            body = run.oncall.log.accepted[0].body
            assert (body["event"], body["alert"]["id"]) == ("escalated", alert.id)
            assert body["alert"]["escalated_at"] == alert.raised_at + 600_000
            run.pipeline.rules.tick(alert.raised_at + 1_200_000)  # once only
            await run.settle()
            assert len(run.oncall.log.accepted) == 1
            assert run.hook_events() == [("raised", "cold_chain_excursion", "sq-esc/cold")]

    _run(scenario)


def test_cumulative_time_is_kept_when_another_probe_reports_yesterday_late(
    settings: Settings, publisher: Publisher
) -> None:
    midnight = T0 + 2 * 3_600_000
    alerting = _only_hook(
        cold_chain=ColdChainPolicy(daily_out_limit_s=1800, mkt_min_samples=100_000)
    )

    async def scenario() -> None:
        tz = _zone_with_midnight_at(midnight)
        site = "sq-late"
        async with running(settings, publisher, site, alerting, timezone=tz) as run:
            rng = np.random.default_rng(11)
            first = (midnight - T0) // 30_000  # the round at local midnight (30 s readings)
            for i in range(first, first + 41):  # p1 out for 20 minutes after midnight
                run.temps(i, {"p1": 9.0 + rng.normal(0, 0.05)})
            await run.settle()
            cold_chain = run.anomaly.cold_chain
            assert cold_chain.out_of_band_s(site, "cold") == {"p1/t": 1200.0}
            # p2's 23:59:30 reading of the day before arrives now
            run.temps(first - 1, {"p2": 9.0})
            await run.settle()
            assert cold_chain.out_of_band_s(site, "cold") == {"p1/t": 1200.0}
            assert run.alerts("cold_chain_cumulative") == []
            for i in range(first + 41, first + 81):  # p1 out 20 minutes more
                run.temps(i, {"p1": 9.0 + rng.normal(0, 0.05)})
            await run.settle()
            assert cold_chain.out_of_band_s(site, "cold") == {"p1/t": 2400.0}
            [alert] = run.alerts("cold_chain_cumulative")
            assert alert.state == "active"
            # Raised first above 1800 s, kept current to the 2400 s of the last reading.
            assert (alert.raised_at, alert.value) == (midnight + 61 * 30_000, 2400.0)
            today = datetime.fromtimestamp(midnight / 1000, tz=ZoneInfo(tz)).date().isoformat()
            assert alert.details["day"] == today
            await until(lambda: len(run.hook_events()) == 1, what="raised")
            assert run.hook_events() == [("raised", "cold_chain_cumulative", f"{site}/cold")]

    _run(scenario)
