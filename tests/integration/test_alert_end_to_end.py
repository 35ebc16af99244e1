"""From a sensor message on the real broker to a signed DingTalk message and an InfluxDB point."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from core import topics
from core.influx import query_sync, rows
from core.settings import ChannelSettings, NotifierSettings, Settings
from rules.seed import Seed, SensorRef, Site, TempBand, Zone
from simulators.robots import DingTalkRobot, WebhookReceiver
from stocksense.pipeline import Pipeline
from tests.conftest import RECENT_T0, Publisher, until

pytestmark = pytest.mark.integration

T0 = RECENT_T0
SEED = Seed(
    sites=[
        Site(
            id="wh1",
            zones=[
                Zone(
                    id="cold-room",
                    name="Cold room 1",
                    temp_band=TempBand(low=2, high=8),
                    allowance_s=30,
                    sensors=[SensorRef(device="coldroom-1")],
                )
            ],
        )
    ]
)


def _settings_with(
    settings: Settings, robot: DingTalkRobot, secret: str, hook: WebhookReceiver
) -> Settings:
    channels = [
        ChannelSettings(
            name="dingtalk-ops",
            kind="dingtalk",
            url=SecretStr(robot.url),
            secret=SecretStr(secret),
            language="en",
            at_mobiles=("13800000000",),
        ),
        ChannelSettings(name="erp-hook", kind="webhook", url=SecretStr(hook.url)),
    ]
    return settings.model_copy(
        update={"notifier": NotifierSettings(channels=channels, poll_interval_s=0.05)}
    )


def _publish_temps(publisher: Publisher, temps: list[float], start_s: int = 0) -> None:
    for i, celsius in enumerate(temps):
        payload = {
            "ts": T0 + (start_s + i * 10) * 1000,
            "seq": start_s + i,
            "readings": [{"sensor": "t1", "celsius": celsius}],
        }
        publisher.publish(topics.build("wh1", "temp", "coldroom-1"), json.dumps(payload))
    publisher.flush()


def test_excursion_reaches_dingtalk_signed_and_clears(
    settings: Settings, publisher: Publisher, tmp_path: Path
) -> None:
    robot = DingTalkRobot(access_token="tok123", secret="SECgood").start()
    hook = WebhookReceiver().start()
    cfg = _settings_with(settings, robot, "SECgood", hook)

    async def scenario() -> None:
        pipeline = Pipeline(cfg, seed=SEED)
        await pipeline.start()
        try:
            _publish_temps(publisher, [5, 5, 9, 9, 9])  # out for 20 s: within the 30 s allowance
            await until(lambda: pipeline.rules.processed >= 5, what="rules caught up")
            await pipeline.notifier.deliver_due()
            assert robot.log.accepted == []
            _publish_temps(publisher, [9, 10, 10, 11, 11], start_s=50)  # out since 20 s -> 90 s
            await until(lambda: len(robot.log.accepted) == 1, what="the alert at the robot")
            _publish_temps(publisher, [5, 5], start_s=100)
            await until(lambda: len(robot.log.accepted) == 2, what="the resolved notice")
            await until(lambda: len(hook.log.accepted) == 2, what="the webhook events")
            await until(
                lambda: len(pipeline.alerts.outbox.outbox(status="sent")) == 6, what="influx points"
            )
            alerts = pipeline.alerts.state.list()
        finally:
            await pipeline.stop()
        assert len(alerts) == 1
        assert alerts[0].state == "cleared"
        assert alerts[0].raised_at == T0 + 60_000  # first reading past 30 s out (out since T0+20 s)
        assert alerts[0].cleared_at == T0 + 100_000
        raised, cleared = robot.log.accepted
        assert raised.body["msgtype"] == "markdown"
        assert raised.body["at"]["atMobiles"] == ["13800000000"]
        assert "Cold-chain excursion" in raised.body["markdown"]["title"]
        # The alert as it stood when sent: raised at 10 °C, kept current by the readings of
        # 11 °C that may have been processed before the notifier's pass.
        assert any(f"Reads {c} °C" in raised.body["markdown"]["text"] for c in (10, 11)), (
            raised.body["markdown"]["text"]
        )
        assert alerts[0].value == 11.0
        assert cleared.body["markdown"]["title"].startswith("[RESOLVED]")
        assert robot.log.errors == []
        assert [h.body["event"] for h in hook.log.accepted] == ["raised", "cleared"]
        assert hook.log.accepted[0].body["alert"]["source"] == "wh1/cold-room"
        points = rows(
            query_sync(
                cfg.influx, "SELECT alert_id, event, severity, site, zone, value FROM alerts"
            )
        )
        assert [
            (p["event"], p["severity"], p["site"], p["zone"], p["alert_id"]) for p in points
        ] == [
            ("raised", "critical", "wh1", "cold-room", alerts[0].id),
            ("cleared", "critical", "wh1", "cold-room", alerts[0].id),
        ]
        assert points[0]["time"] == T0 * 1_000_000 + 60_000 * 1_000_000

    try:
        asyncio.run(scenario())
    finally:
        robot.stop()
        hook.stop()


def test_wrong_signing_secret_is_rejected_with_310000_and_reported(
    settings: Settings, publisher: Publisher, caplog: pytest.LogCaptureFixture
) -> None:
    robot = DingTalkRobot(access_token="tok456", secret="SECright").start()
    hook = WebhookReceiver().start()
    cfg = _settings_with(settings, robot, "SECwrong", hook)

    async def scenario() -> None:
        pipeline = Pipeline(cfg, seed=SEED)
        await pipeline.start()
        try:
            _publish_temps(publisher, [9, 9, 9, 9, 9])
            await until(lambda: len(robot.log.errors) >= 1, what="the robot to reject the message")
            await until(
                lambda: len(pipeline.alerts.outbox.outbox(status="dead")) == 1,
                what="the failure recorded",
            )
            await until(lambda: len(hook.log.accepted) == 2, what="the channel-health alert")
            health = pipeline.notifier.health["dingtalk-ops"]
            assert health.last_error_code == 310000
            assert health.sent == 0
            dead = pipeline.alerts.outbox.outbox(status="dead")[0]
            assert dead.channel == "dingtalk-ops"
            assert dead.attempts == 1  # a rejected signature is not retried
            assert dead.last_error is not None
            assert "errcode 310000" in dead.last_error
            assert "sign not match" in dead.last_error
        finally:
            await pipeline.stop()
        assert robot.log.accepted == []
        assert robot.log.errors == [310000]
        # Other channels are unaffected, and they hear that the DingTalk robot is broken.
        events = [(h.body["event"], h.body["alert"]["type"], h.body["alert"]["source"])
                  for h in hook.log.accepted]  # fmt: skip
        assert sorted(events) == [
            ("raised", "channel_health", "notifier/dingtalk-ops"),
            ("raised", "cold_chain_excursion", "wh1/cold-room"),
        ]

    try:
        with caplog.at_level("ERROR"):
            asyncio.run(scenario())
    finally:
        robot.stop()
        hook.stop()
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("310000" in m and "dingtalk-ops" in m for m in errors)
    assert not any("SECright" in m or "SECwrong" in m or "tok456" in m for m in caplog.messages)
