"""Delivery against local receivers that enforce the DingTalk and WeCom robot contracts."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time

import pytest

from core import db
from core.alerts import Alert, AlertStores, Severity
from core.settings import ChannelSettings
from rules.lifecycle import AlertLifecycle
from rules.notify.base import DeliveryError
from rules.notify.dingtalk import MAX_BODY_BYTES, DingTalkChannel
from rules.notify.service import Notifier
from rules.notify.wecom import WeComChannel
from simulators.robots import DingTalkRobot, RobotLog, WeComRobot
from tests.alertutil import (
    condition,
    connect,
    connections_closed,  # noqa: F401 - an autouse fixture
)
from tests.conftest import FakeClock

CONSOLE = "http://127.0.0.1:8000/console"
SEVERITIES: list[Severity] = ["critical", "major", "minor", "warning", "info"]


def ding_settings(robot: DingTalkRobot, secret: str, **extra: object) -> ChannelSettings:
    return ChannelSettings.model_validate(
        {"name": "dingtalk-ops", "kind": "dingtalk", "url": robot.url, "secret": secret, **extra}
    )


def wecom_settings(robot: WeComRobot, **extra: object) -> ChannelSettings:
    return ChannelSettings.model_validate(
        {"name": "wecom-ops", "kind": "wecom", "url": robot.url, **extra}
    )


def make_alert(alert_id: int = 1, *, message: str = "t1 reads 9.3 °C", raised_at: int = 0) -> Alert:
    return Alert(
        id=alert_id,
        source=f"WH1/cold/t{alert_id}",
        type="cold_chain_excursion",
        severity="critical",
        state="active",
        site="WH1",
        zone="cold",
        title="t",
        message=message,
        value=9.3,
        threshold=8.0,
        details={"sensor": "t1", "duration_s": 30},
        raised_at=raised_at or int(time.time() * 1000),
        cleared_at=None,
        acked_by=None,
        acked_at=None,
        updated_at=0,
    )


def named_ids(log: RobotLog) -> set[int]:
    return {int(m) for text in log.texts() for m in re.findall(r"#(\d+)", text)}


def max_in_any_minute(times: list[float]) -> int:
    ordered = sorted(times)
    return max(
        (sum(1 for t in ordered[i:] if t - start < 60) for i, start in enumerate(ordered)),
        default=0,
    )


# -- DingTalk ---------------------------------------------------------------------------------


def test_dingtalk_signed_markdown_with_mentions_is_accepted(
    dingtalk: DingTalkRobot, secret: str, clock: FakeClock
) -> None:
    settings = ding_settings(dingtalk, secret, at_mobiles=["13800000000"], at_user_ids=["ops1"])
    channel = DingTalkChannel(settings, console_url=CONSOLE, clock=clock)

    async def go() -> None:
        try:
            await channel.send(make_alert(), "raised")
        finally:
            await channel.aclose()

    asyncio.run(go())
    assert dingtalk.log.errors == []
    body = dingtalk.log.accepted[0].body
    assert body["msgtype"] == "markdown"
    assert body["at"] == {"atMobiles": ["13800000000"], "atUserIds": ["ops1"], "isAtAll": False}
    assert body["markdown"]["title"] == "[告警][严重] 冷链温度超限 WH1/cold"
    assert body["markdown"]["text"].endswith("@13800000000 @ops1")


def test_dingtalk_action_card_is_accepted(
    dingtalk: DingTalkRobot, secret: str, clock: FakeClock
) -> None:
    settings = ding_settings(dingtalk, secret, at_mobiles=["13800000000"], language="en")
    channel = DingTalkChannel(settings, console_url=CONSOLE, clock=clock, msgtype="actionCard")

    async def go() -> None:
        try:
            await channel.send(make_alert(5), "raised")
        finally:
            await channel.aclose()

    asyncio.run(go())
    assert dingtalk.log.errors == []
    card = dingtalk.log.accepted[0].body["actionCard"]
    assert card["singleURL"] == f"{CONSOLE}#alert-5"
    assert card["singleTitle"] == "Open console"
    assert "@13800000000" in card["text"]


@pytest.mark.parametrize(
    ("skew_s", "accepted"), [(-3590, True), (3590, True), (3610, False), (-3610, False)]
)
def test_dingtalk_timestamp_must_be_within_one_hour(
    dingtalk: DingTalkRobot, secret: str, clock: FakeClock, skew_s: float, accepted: bool
) -> None:
    channel = DingTalkChannel(
        ding_settings(dingtalk, secret), console_url=CONSOLE, clock=lambda: clock() + skew_s
    )

    async def go() -> DeliveryError | None:
        try:
            await channel.send(make_alert(), "raised")
        except DeliveryError as exc:
            return exc
        finally:
            await channel.aclose()
        return None

    error = asyncio.run(go())
    if accepted:
        assert error is None
        assert len(dingtalk.log.accepted) == 1
    else:
        assert error is not None
        assert (error.code, error.permanent) == (310000, True)
        assert dingtalk.log.errors == [310000]


def test_dingtalk_wrong_secret_is_permanent_not_retried_and_redacted(
    dingtalk: DingTalkRobot, clock: FakeClock, database: db.Target, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "SEC" + secrets.token_hex(24)
    store = AlertStores.over(connect(database), ["dingtalk-ops"])
    AlertLifecycle(store.state).report(
        condition(
            "s",
            at_ms=int(clock() * 1000),
            type="cold_chain_excursion",
            severity="critical",
            site="WH1",
            zone="cold",
            value=9.0,
            threshold=8.0,
        )
    )
    problems: list[tuple[str, str]] = []
    channel = DingTalkChannel(ding_settings(dingtalk, wrong), console_url=CONSOLE, clock=clock)
    notifier = Notifier(
        store, [channel], clock=clock, on_channel_problem=lambda c, m: problems.append((c, m))
    )

    async def go() -> None:
        try:
            for _ in range(5):
                await notifier.deliver_due()
                clock.advance(120)
        finally:
            await notifier.aclose()

    asyncio.run(go())
    assert dingtalk.log.errors == [310000]  # one attempt, no retry loop
    assert dingtalk.log.accepted == []
    row = store.outbox.outbox()[0]
    assert row.status == "dead"
    assert "errcode 310000" in (row.last_error or "")
    assert problems == [("dingtalk-ops", row.last_error)]
    health = notifier.health["dingtalk-ops"]
    assert health.last_error_code == 310000
    assert health.permanent_failures == [row.last_error]
    for text in (caplog.text, row.last_error or "", problems[0][1]):
        assert wrong not in text
        assert dingtalk.access_token not in text


def test_dingtalk_oversize_alert_is_split_under_the_body_limit(
    dingtalk: DingTalkRobot, secret: str, clock: FakeClock
) -> None:
    huge = "\n".join(
        f'探头 t{i} 读数 9.{i % 10} °C，高于 2–8 °C 温区，"持续" 超限' for i in range(900)
    )
    channel = DingTalkChannel(ding_settings(dingtalk, secret), console_url=CONSOLE, clock=clock)
    payloads = channel.render(make_alert(message=huge), "raised")
    assert len(payloads) > 1

    async def go() -> None:
        try:
            await channel.send(make_alert(message=huge), "raised")
        finally:
            await channel.aclose()

    asyncio.run(go())
    assert dingtalk.log.errors == []
    assert len(dingtalk.log.accepted) == len(payloads)
    for received in dingtalk.log.accepted:
        assert len(json.dumps(received.body, ensure_ascii=False).encode()) <= MAX_BODY_BYTES
    # The message is one line (data never starts a line) cut at spaces: count a mark that
    # holds no space, once per reading.
    assert "".join(dingtalk.log.texts()).count('"持续"') == 900


# -- WeCom ------------------------------------------------------------------------------------


def test_wecom_markdown_with_user_mentions(wecom: WeComRobot) -> None:
    channel = WeComChannel(wecom_settings(wecom, at_user_ids=["zhangsan"]), console_url=CONSOLE)

    async def go() -> None:
        try:
            await channel.send(make_alert(), "raised")
            await channel.send(make_alert(), "cleared")
        finally:
            await channel.aclose()

    asyncio.run(go())
    assert wecom.log.errors == []
    first, second = (r.body for r in wecom.log.accepted)
    assert first["msgtype"] == "markdown"
    assert first["markdown"]["content"].endswith("\n<@zhangsan>")
    assert "<@zhangsan>" not in second["markdown"]["content"]  # resolved notices are quiet


def test_wecom_text_with_mention_lists(wecom: WeComRobot) -> None:
    settings = wecom_settings(
        wecom, at_user_ids=["zhangsan"], at_mobiles=["13800000000"], language="en"
    )
    channel = WeComChannel(settings, console_url=CONSOLE)
    assert channel.msgtype == "text"

    async def go() -> None:
        try:
            await channel.send(make_alert(), "raised")
        finally:
            await channel.aclose()

    asyncio.run(go())
    assert wecom.log.errors == []
    text = wecom.log.accepted[0].body["text"]
    assert text["mentioned_list"] == ["zhangsan"]
    assert text["mentioned_mobile_list"] == ["13800000000"]
    assert text["content"].startswith("[ALERT][CRITICAL] Cold-chain excursion WH1/cold")


@pytest.mark.parametrize("msgtype", ["markdown", "text"])
def test_wecom_oversize_is_split_so_no_40058(wecom: WeComRobot, msgtype: str) -> None:
    huge = "\n".join(f"探头 t{i} 读数 9.{i % 10} °C，高于温区上限" for i in range(400))
    channel = WeComChannel(
        wecom_settings(wecom, at_user_ids=["zhangsan"]),
        console_url=CONSOLE,
        msgtype="markdown" if msgtype == "markdown" else "text",
    )

    async def go() -> None:
        try:
            await channel.send(make_alert(message=huge), "raised")
        finally:
            await channel.aclose()

    asyncio.run(go())
    assert wecom.log.errors == []
    assert len(wecom.log.accepted) > 1
    limit = 4096 if msgtype == "markdown" else 2048
    for received in wecom.log.accepted:
        assert len(received.body[msgtype]["content"].encode()) <= limit
    # The message is one line cut at spaces: count a mark that holds no space.
    assert "".join(wecom.log.texts()).count("高于温区上限") == 400


def test_wecom_wrong_key_is_permanent(
    wecom: WeComRobot, clock: FakeClock, database: db.Target
) -> None:
    settings = ChannelSettings.model_validate(
        {"name": "wecom-ops", "kind": "wecom", "url": wecom.url.replace(wecom.key, "wrong-key-123")}
    )
    store = AlertStores.over(connect(database), ["wecom-ops"])
    AlertLifecycle(store.state).report(condition("s", at_ms=int(clock() * 1000), site="WH1"))
    notifier = Notifier(store, [WeComChannel(settings, console_url=CONSOLE)], clock=clock)

    async def go() -> None:
        try:
            for _ in range(3):
                await notifier.deliver_due()
                clock.advance(120)
        finally:
            await notifier.aclose()

    asyncio.run(go())
    assert wecom.log.errors == [93000]
    assert store.outbox.outbox()[0].status == "dead"
    assert notifier.health["wecom-ops"].problem is not None
    assert "wrong-key-123" not in (notifier.health["wecom-ops"].problem or "")


# -- storms -----------------------------------------------------------------------------------


def run_storm(
    store: AlertStores, notifier: Notifier, clock: FakeClock, *, alerts: int = 500, minutes: int = 6
) -> list[int]:
    """Raise ``alerts`` within one simulated minute while delivering, then keep delivering."""
    ids: list[int] = []
    lifecycle = AlertLifecycle(store.state)

    async def go() -> None:
        try:
            for second in range(60 * minutes):
                for i in range(len(ids), min(alerts, (second + 1) * alerts // 60)):
                    alert = lifecycle.report(
                        condition(
                            f"WH{i % 3}/zone{i % 7}/probe{i}",
                            at_ms=int(clock() * 1000),
                            type="cold_chain_excursion",
                            severity=SEVERITIES[i % 5],
                            site=f"WH{i % 3}",
                            zone=f"zone{i % 7}",
                            message=f"probe{i} out of band",
                            value=9.0 + i / 100,
                            threshold=8.0,
                            details={"sensor": f"probe{i}"},
                        )
                    )
                    assert alert is not None
                    ids.append(alert.id)
                await notifier.deliver_due()
                clock.advance(1)
        finally:
            await notifier.aclose()

    asyncio.run(go())
    return ids


def test_dingtalk_storm_is_paced_and_folded(
    dingtalk: DingTalkRobot, secret: str, clock: FakeClock, database: db.Target
) -> None:
    store = AlertStores.over(connect(database), ["dingtalk-ops"])
    channel = DingTalkChannel(ding_settings(dingtalk, secret), console_url=CONSOLE, clock=clock)
    notifier = Notifier(store, [channel], clock=clock)
    ids = run_storm(store, notifier, clock)
    assert len(ids) == 500
    assert dingtalk.log.errors == []  # in particular no 130101
    assert max_in_any_minute([r.at for r in dingtalk.log.accepted]) <= 20
    assert set(ids) <= named_ids(dingtalk.log)
    assert {r.status for r in store.outbox.outbox()} == {"sent"}
    health = notifier.health["dingtalk-ops"]
    assert health.sent == 500
    assert health.digests >= 1
    assert health.messages == len(dingtalk.log.accepted)


def test_wecom_storm_is_paced_and_folded(
    wecom: WeComRobot, clock: FakeClock, database: db.Target
) -> None:
    store = AlertStores.over(connect(database), ["wecom-ops"])
    channel = WeComChannel(wecom_settings(wecom, at_user_ids=["zhangsan"]), console_url=CONSOLE)
    notifier = Notifier(store, [channel], clock=clock)
    ids = run_storm(store, notifier, clock)
    assert wecom.log.errors == []  # in particular no 45009
    assert max_in_any_minute([r.at for r in wecom.log.accepted]) <= 20
    assert set(ids) <= named_ids(wecom.log)
    assert {r.status for r in store.outbox.outbox()} == {"sent"}
    assert notifier.health["wecom-ops"].sent == 500
