"""Per-type alert policies (``AlertingSettings.types``) through the real broker, ingest, rules
and notifier: a severity override and a debounce take effect for the cold-chain rule, for the
inventory reorder rule and for a detector (sensor offline) alike.

Time-based rules are driven with ``rules.tick(now_ms)`` on a simulated clock.
"""

from __future__ import annotations

import asyncio
import random

from pydantic import SecretStr

from core import db
from core.alerts import Alert
from core.inventory import InventoryStores
from core.settings import (
    AlertingSettings,
    ChannelSettings,
    InventorySettings,
    NotifierSettings,
    OfflinePolicy,
    RouteSettings,
    Settings,
    TypePolicy,
)
from rules.seed import Seed
from simulators.robots import WebhookReceiver
from stocksense.pipeline import Pipeline
from tests.conftest import RECENT_T0, Publisher, until
from tests.integration.test_anomaly_scenarios import Run, running
from tests.integration.test_inventory_scenarios import CATALOG, SHELVES, SITE, ZONES, Shelves

T0 = RECENT_T0
TO_HOOK = [RouteSettings(channels=("hook",))]


def _hook_severities(run: Run, type_: str) -> list[tuple[str, str]]:
    return [
        (r.body["event"], r.body["alert"]["severity"])
        for r in run.hook.log.accepted
        if r.body["alert"]["site"] == run.site and r.body["alert"]["type"] == type_
    ]


def test_cold_chain_excursion_debounce_and_severity(
    settings: Settings, publisher: Publisher
) -> None:
    policy = TypePolicy(debounce_s=120, severity="major")
    alerting = AlertingSettings(types={"cold_chain_excursion": policy}, routes=TO_HOOK)

    async def scenario() -> None:
        async with running(settings, publisher, "pol-cc", alerting, allowance_s=60) as run:

            def excursion() -> list[Alert]:
                return run.alerts("cold_chain_excursion")

            # Out of band from T0, past the allowance at T0+90 s, back in band at T0+180 s:
            # 90 s of debounce out of 120, so nothing is raised.
            for i in range(6):
                run.temps(i, {"p1": 9.0 + i / 10})
            run.temps(6, {"p1": 5.0})
            await run.settle()
            assert excursion() == []
            # Out again from T0+300 s, past the allowance at T0+390 s: raised 120 s later.
            for i in range(10, 17):
                run.temps(i, {"p1": 9.0 + i / 10})
            await run.settle()
            assert excursion() == []  # T0+480 s: held 90 s
            run.temps(17, {"p1": 10.7})
            await run.settle()
            (alert,) = excursion()
            assert (alert.raised_at, alert.severity, alert.value) == (T0 + 510_000, "major", 10.7)
            assert alert.details["held_s"] == 120.0
            for i in range(18, 21):
                run.temps(i, {"p1": 11.0})
            await run.settle()
            assert len(excursion()) == 1
            await until(lambda: _hook_severities(run, "cold_chain_excursion") != [], what="hook")
            assert _hook_severities(run, "cold_chain_excursion") == [("raised", "major")]

    asyncio.run(scenario())


def test_sensor_offline_debounce_and_severity(settings: Settings, publisher: Publisher) -> None:
    alerting = AlertingSettings(
        types={"sensor_offline": TypePolicy(debounce_s=20, severity="critical")},
        routes=TO_HOOK,
        offline=OfflinePolicy(timeout_factor=3),
    )

    async def scenario() -> None:
        async with running(settings, publisher, "pol-off", alerting) as run:

            def offline() -> list[Alert]:
                return run.alerts("sensor_offline")

            run.status("p1", online=True, ts=T0, interval_s=10)
            for i in range(5):
                run.temps(i, {"p1": 5.0 + i / 10}, step_s=10)
            await run.settle()
            run.pipeline.rules.tick(T0 + 71_000)  # silent 31 s > 30 s: debouncing
            await run.settle()
            run.temps(5, {"p1": 5.6}, step_s=15)  # data at T0+75 s: the condition is gone
            await run.settle()
            # Silent again from T0+75 s: a debounce kept from T0+71 s would raise at once.
            for now in (T0 + 106_000, T0 + 125_999):
                run.pipeline.rules.tick(now)
                await run.settle()
                assert offline() == []
            run.pipeline.rules.tick(T0 + 126_000)
            await run.settle()
            (alert,) = offline()
            assert (alert.source, alert.raised_at, alert.severity) == (
                "pol-off/temp/p1",
                T0 + 126_000,
                "critical",
            )
            run.pipeline.rules.tick(T0 + 200_000)
            await run.settle()
            assert len(offline()) == 1
            await until(lambda: _hook_severities(run, "sensor_offline") != [], what="hook")
            assert _hook_severities(run, "sensor_offline") == [("raised", "critical")]

    asyncio.run(scenario())


def test_reorder_debounce_across_sweeps_and_severity(
    settings: Settings, publisher: Publisher
) -> None:
    hook = WebhookReceiver().start()
    cfg = settings.model_copy(
        update={
            "notifier": NotifierSettings(
                channels=[ChannelSettings(name="hook", kind="webhook", url=SecretStr(hook.url))],
                poll_interval_s=0.05,
            ),
            "alerting": AlertingSettings(
                types={"reorder": TypePolicy(debounce_s=60, severity="major")}, routes=TO_HOOK
            ),
            # A sweep at every tick of this test (ticks are at least 1 ms apart).
            "inventory": InventorySettings(evaluate_interval_s=0.001, loss_window_s=60),
            # This test's site only: other tests' retained status messages stay out of the
            # processed count it waits on.
            "mqtt": settings.mqtt.model_copy(update={"sites": (SITE,)}),
        }
    )
    conn = db.connect(cfg.database)
    InventoryStores.over(conn).load_catalog(
        skus=CATALOG, shelves=SHELVES, rfid_zones=ZONES, ts_ms=T0
    )
    conn.close()
    shelves = Shelves(publisher, random.Random(3))

    def coffee(units: int) -> dict[str, tuple[float, float]]:
        return {"c1": (800 + units * 250.0, 250.0)}

    async def scenario() -> None:
        # The pipeline's own inventory processor: the one `stocksense run` builds.
        pipeline = Pipeline(cfg, seed=Seed(), anomaly_sites=(), tick_interval_s=3600)
        await pipeline.start()
        inventory = pipeline.inventory.store

        def reorder() -> list[Alert]:
            return pipeline.alerts.state.list(type_="reorder", site=SITE)

        async def hold(units: int, start_ms: int) -> int:
            end = shelves.hold("shelf-1", coffee(units), start_ms=start_ms, spike_p=0.0)
            await until(lambda: pipeline.rules.processed >= shelves.sent, what="rules caught up")
            return end

        def last_pick_ms() -> int:
            return inventory.ledger.ledger(site=SITE, sku="COFFEE", kinds=("pick",))[-1].ts

        try:
            t = await hold(12, T0)
            t = await hold(9, t)  # below the minimum of 10: a suggestion, the alert debouncing
            dropped = last_pick_ms()
            pipeline.rules.tick(dropped + 20_000)
            assert reorder() == []
            t = await hold(12, dropped + 30_000)  # back above the minimum within 60 s
            for now in (dropped + 60_000, dropped + 90_000):
                pipeline.rules.tick(now)
            assert reorder() == []
            assert [(s.qty, s.state) for s in inventory.planning.suggestions(site=SITE)] == [
                (36.0, "suggested")
            ]

            # Below again: the open suggestion covers the gap; the condition holds 60 s.
            await hold(9, dropped + 100_000)
            again = last_pick_ms()
            for now in (again + 20_000, again + 40_000, again + 59_999):
                pipeline.rules.tick(now)
                assert reorder() == []
            pipeline.rules.tick(again + 60_000)
            (alert,) = reorder()
            assert (alert.source, alert.raised_at, alert.severity, alert.value) == (
                f"{SITE}/COFFEE",
                again + 60_000,
                "major",
                9.0,
            )
            pipeline.rules.tick(again + 120_000)
            assert len(reorder()) == 1
            assert len(inventory.planning.suggestions(site=SITE)) == 1

            def sent() -> list[tuple[str, str]]:
                return [
                    (r.body["event"], r.body["alert"]["severity"])
                    for r in hook.log.accepted
                    if r.body["alert"]["type"] == "reorder"
                ]

            await until(lambda: sent() != [], what="reorder reached the webhook")
            assert sent() == [("raised", "major")]
        finally:
            await pipeline.stop()
            hook.stop()

    asyncio.run(scenario())
