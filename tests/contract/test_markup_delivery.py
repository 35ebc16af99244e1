"""Hostile text from devices, API callers and the catalog, delivered through the real rendering
and HTTP delivery to the local DingTalk and WeCom robots: what their clients would show has no
link but our console's, no heading but ours, no mention but the configured ones, and the
hostile text is still there to read."""

from __future__ import annotations

import asyncio
import time
import unicodedata
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from core import db
from core.alerts import Alert, AlertStores
from core.inventory import InventoryStores
from core.settings import ChannelSettings, Settings
from rules.inventory.service import InventoryProcessor
from rules.notify import render
from rules.notify.base import Channel
from rules.notify.digest import DigestEntry
from rules.notify.dingtalk import DingTalkChannel, DingTalkMsgType
from rules.notify.markup import neutralise
from rules.notify.service import Notifier
from rules.notify.wecom import WeComChannel, WeComMsgType
from simulators.robots import (
    DingTalkRobot,
    Rendering,
    WeComRobot,
    at_marks,
    dingtalk_rendering,
    markdown_headings,
    markdown_links,
    markup_tags,
    text_links,
    wecom_rendering,
)
from tests.authutil import bearer
from tests.conftest import FakeClock

CONSOLE = "http://127.0.0.1:8000/console"
MOBILE = "13800000000"
REASON = "[click](http://evil)\n### x"
HOSTILE = [
    REASON,
    "![p](http://evil/p.png) <font color=\"warning\">FAKE</font> <a href='http://evil'>x</a>",
    "<@lisi> @13900000000 @all www.evil.com evil.com 10.0.0.1",
    "x\r# carriage\u2028## separator",
    "title\n===\n[ref]: http://evil\n[ref]",
]


def ding_channel(
    robot: DingTalkRobot, secret: str, clock: FakeClock, msgtype: DingTalkMsgType = "markdown"
) -> DingTalkChannel:
    settings = ChannelSettings.model_validate(
        {
            "name": "dingtalk-ops",
            "kind": "dingtalk",
            "url": robot.url,
            "secret": secret,
            "language": "en",
            "at_mobiles": [MOBILE],
            "at_user_ids": ["ops1"],
        }
    )
    return DingTalkChannel(settings, console_url=CONSOLE, clock=clock, msgtype=msgtype)


def wecom_channel(robot: WeComRobot, msgtype: WeComMsgType = "markdown") -> WeComChannel:
    settings = ChannelSettings.model_validate(
        {"name": "wecom-ops", "kind": "wecom", "url": robot.url, "at_user_ids": ["zhangsan"]}
    )
    return WeComChannel(settings, console_url=CONSOLE, msgtype=msgtype)


def hostile_alert(text: str, alert_id: int = 1) -> Alert:
    return Alert(
        id=alert_id,
        source=f"wh1/temp/{text}",
        type="sensor_offline",
        severity="major",
        state="active",
        site="wh1",
        zone=text,
        title=text,
        message=f"dev-1 announced it is offline ({text})",
        value=None,
        threshold=None,
        details={"device": text, "sku": text, "reason": text},
        raised_at=int(time.time() * 1000),
        cleared_at=None,
        acked_by=None,
        acked_at=None,
        updated_at=0,
    )


def reads_as(text: str) -> str:
    """What a reader reads: invisible marks dropped, compatibility forms folded, blanks
    taken as word breaks only."""
    kept = "".join(c for c in text if c.isspace() or unicodedata.category(c) not in ("Cc", "Cf"))
    return " ".join(unicodedata.normalize("NFKC", kept).split())


def assert_safe(
    shown: Rendering, *, links: set[str], headings: set[str], mentions: set[str]
) -> None:
    assert set(shown.links) <= links, shown.text
    assert set(shown.headings) <= headings, shown.text
    assert set(shown.mentions) <= mentions
    assert set(shown.mention_marks) <= mentions, shown.text
    assert shown.tags == (), shown.text
    assert text_links(shown.title) == []
    assert at_marks(shown.title) == []


def assert_visible(shown: Rendering, text: str) -> None:
    assert reads_as(text) in reads_as(shown.text)


def send(channel: DingTalkChannel | WeComChannel, alerts: list[Alert]) -> None:
    async def go() -> None:
        try:
            for alert in alerts:
                await channel.send(alert, "raised")
        finally:
            await channel.aclose()

    asyncio.run(go())


# -- the receivers see what a client would ----------------------------------------------------


def test_the_rendering_model_finds_links_headings_mentions_and_tags() -> None:
    # Raw, unneutralised markup: the model must see every trick the others rely on.
    text = (
        "### x\n[click](http://evil/a) ![i](http://evil/i.png) [r][d] <a href='http://evil/b'>\n"
        "[d]: http://evil/ref\ntitle\n===\n> ## quoted\n- # listed\n"
        '<font color="warning">f</font> www.evil.com evil.org 10.0.0.1 x@evil.co <@lisi>'
    )
    body = {"msgtype": "markdown", "markdown": {"content": text}}
    shown = wecom_rendering(body)
    assert set(shown.links) >= {
        "http://evil/a",
        "http://evil/i.png",
        "http://evil/b",
        "http://evil/ref",
        "www.evil.com",
        "evil.org",
        "10.0.0.1",
        "x@evil.co",
    }
    assert shown.headings == ("x", "title", "quoted", "listed")
    assert shown.mentions == ("lisi",)
    assert set(shown.tags) == {"a", "font"}
    ding = dingtalk_rendering(
        {
            "msgtype": "markdown",
            "markdown": {"title": "t", "text": f"hello @{MOBILE} @13900000000"},
            "at": {"atMobiles": [MOBILE], "atUserIds": [], "isAtAll": False},
        }
    )
    assert ding.mentions == (MOBILE,)
    assert ding.mention_marks == (MOBILE, "13900000000")
    assert markdown_links("[告警][严重] no definitions, no links") == []
    assert markdown_headings("#12 is an id, not a heading") == []
    assert markup_tags("9 < 10 > 8") == []


# -- alert messages ---------------------------------------------------------------------------


@pytest.mark.parametrize("msgtype", ["markdown", "actionCard"])
def test_hostile_alerts_reach_dingtalk_inert_and_readable(
    dingtalk: DingTalkRobot, secret: str, clock: FakeClock, msgtype: DingTalkMsgType
) -> None:
    alerts = [hostile_alert(text, i) for i, text in enumerate(HOSTILE, start=1)]
    send(ding_channel(dingtalk, secret, clock, msgtype), alerts)
    assert dingtalk.log.errors == []
    shown = dingtalk.rendered()
    assert len(shown) == len(alerts)
    for alert, message, received in zip(alerts, shown, dingtalk.log.accepted, strict=True):
        assert_safe(
            message,
            links={render.alert_link(alert, CONSOLE)},
            headings={render.title(alert, "raised", "en")},
            mentions={MOBILE, "ops1"},
        )
        assert message.mentions == (MOBILE, "ops1")
        # Mentions come from the channel's settings only, never from the alert's text.
        assert received.body["at"] == {
            "atMobiles": [MOBILE],
            "atUserIds": ["ops1"],
            "isAtAll": False,
        }
        # The reason the device gave is shown in the detail sentence, inert.
        assert_visible(message, alert.details["reason"])
        assert_visible(message, str(alert.zone))


@pytest.mark.parametrize("msgtype", ["markdown", "text"])
def test_hostile_alerts_reach_wecom_inert_and_readable(
    wecom: WeComRobot, msgtype: WeComMsgType
) -> None:
    alerts = [hostile_alert(text, i) for i, text in enumerate(HOSTILE, start=1)]
    send(wecom_channel(wecom, msgtype), alerts)
    assert wecom.log.errors == []
    shown = wecom.rendered()
    assert len(shown) == len(alerts)
    for alert, message in zip(alerts, shown, strict=True):
        assert_safe(
            message,
            links={render.alert_link(alert, CONSOLE)},
            headings={render.title(alert, "raised", "zh")} if msgtype == "markdown" else set(),
            mentions={"zhangsan"},
        )
        assert message.mentions == ("zhangsan",)
        assert_visible(message, alert.details["reason"])


def test_hostile_alerts_folded_into_digests_stay_inert(
    dingtalk: DingTalkRobot, wecom: WeComRobot, secret: str, clock: FakeClock
) -> None:
    entries = [
        DigestEntry(key=i, alert=hostile_alert(text, i), event="raised")
        for i, text in enumerate(HOSTILE * 6, start=1)
    ]
    ding = ding_channel(dingtalk, secret, clock)
    markdown = wecom_channel(wecom, "markdown")
    text = wecom_channel(wecom, "text")

    async def go() -> None:
        try:
            for channel in (ding, markdown, text):
                for payload, _keys in channel.render_digest(entries):
                    await channel.post(payload)
        finally:
            for channel in (ding, markdown, text):
                await channel.aclose()

    asyncio.run(go())
    assert dingtalk.log.errors == wecom.log.errors == []
    numbered = [f" ({i}/{n})" for n in range(2, 6) for i in range(1, n + 1)]
    dings, wecoms = dingtalk.rendered(), wecom.rendered()
    assert dings
    assert wecoms
    for message in dings:
        assert_safe(
            message,
            links={CONSOLE},
            headings={"Alert digest: 30 events" + n for n in ["", *numbered]},
            mentions={MOBILE, "ops1"},
        )
    for message in wecoms:
        assert_safe(
            message,
            links={CONSOLE},
            headings={"告警汇总：30 条" + n for n in ["", *numbered]},
            mentions={"zhangsan"},
        )
    # The reason is shown (as the zone) in the summary lines, neutralised, not dropped.
    assert any(reads_as(REASON) in reads_as(m.text) for m in dings)
    assert any(reads_as(REASON) in reads_as(m.text) for m in wecoms)
    assert neutralise(REASON, "markdown") in dings[0].text


# -- catalog text set through the API ---------------------------------------------------------


def test_sku_name_and_supplier_from_the_api_reach_both_robots_inert(
    dingtalk: DingTalkRobot,
    wecom: WeComRobot,
    secret: str,
    clock: FakeClock,
    tmp_path: Path,
    database: db.Target,
) -> None:
    name = "[Free coffee](http://evil/win)\n# CLICK NOW"
    supplier = '<font color="warning">ACME</font> @13900000000 <@lisi> evil.com'
    settings = Settings(data_dir=tmp_path, database_url=database.url)
    conn = db.connect(settings.database)
    alerts = AlertStores.over(conn, ["dingtalk-ops", "wecom-ops"])
    channels: list[Channel] = [ding_channel(dingtalk, secret, clock), wecom_channel(wecom)]
    notifier = Notifier(alerts, channels, clock=clock)

    async def go() -> None:
        transport = httpx.ASGITransport(app=create_app(settings))
        headers = bearer(settings)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api", headers=headers
        ) as client:
            sku = {"sku": "COFFEE", "name": name, "supplier": supplier, "min_qty": 10,
                   "max_qty": 40, "pack_multiple": 6}  # fmt: skip
            created = await client.post("/inventory/skus", json=sku)
            assert created.status_code == 201
        processor = InventoryProcessor(store=InventoryStores.over(conn), alerts=alerts.state)
        try:
            suggestion = processor.evaluate_reorder("wh1", "COFFEE", at_ms=int(clock() * 1000))
            assert suggestion is not None
            assert suggestion.qty == 42  # up to 40 from 0, in packs of 6
            await notifier.deliver_due()
        finally:
            await notifier.aclose()

    try:
        asyncio.run(go())
        (alert,) = alerts.state.list()
    finally:
        conn.close()
    assert alert.type == "reorder"
    assert name in alert.message  # stored as given: only what people are shown is neutralised
    assert dingtalk.log.errors == wecom.log.errors == []
    (ding,) = dingtalk.rendered()
    (wecom_message,) = wecom.rendered()
    assert_safe(
        ding,
        links={render.alert_link(alert, CONSOLE)},
        headings={render.title(alert, "raised", "en")},
        mentions={MOBILE, "ops1"},
    )
    assert_safe(
        wecom_message,
        links={render.alert_link(alert, CONSOLE)},
        headings={render.title(alert, "raised", "zh")},
        mentions={"zhangsan"},
    )
    for message in (ding, wecom_message):
        assert_visible(message, name)
        assert_visible(message, supplier)
