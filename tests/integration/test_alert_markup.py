"""A device's status reason with markdown in it, from the real broker through ingest, the
offline detector and the notifier to the DingTalk and WeCom robots: shown, never obeyed."""

from __future__ import annotations

import asyncio
import json
import unicodedata
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr

from core import topics
from core.settings import ChannelSettings, NotifierSettings, RulesSettings, Settings
from rules.notify import render
from rules.notify.markup import neutralise
from rules.seed import Seed, SensorRef, Site, TempBand, Zone
from simulators.robots import DingTalkRobot, Rendering, WeComRobot
from stocksense.pipeline import Pipeline
from tests.conftest import Publisher, until

pytestmark = pytest.mark.integration

SITE = "wh-markup"
REASON = "[click](http://evil)\n### x"
SEED = Seed(
    sites=[
        Site(
            id=SITE,
            timezone="Asia/Shanghai",
            zones=[
                Zone(
                    id="cold-room",
                    temp_band=TempBand(low=2, high=8),
                    sensors=[SensorRef(device="coldroom-1")],
                )
            ],
        )
    ]
)


def reads_as(text: str) -> str:
    """What a reader reads: invisible marks dropped, compatibility forms folded, blanks
    taken as word breaks only."""
    kept = "".join(c for c in text if c.isspace() or unicodedata.category(c) not in ("Cc", "Cf"))
    return " ".join(unicodedata.normalize("NFKC", kept).split())


def assert_shown_not_obeyed(shown: Rendering, *, link: str, heading: str, people: set[str]) -> None:
    assert shown.links == (link,), shown.text
    assert not any("evil" in target for target in shown.links)
    assert shown.headings == (heading,), shown.text
    assert set(shown.mention_marks) <= people, shown.text
    assert shown.tags == ()
    assert reads_as(REASON) in reads_as(shown.text)


def test_status_reason_with_markdown_reaches_the_robots_inert(
    settings: Settings, publisher: Publisher
) -> None:
    dingtalk = DingTalkRobot(access_token="tok-markup", secret="SECmarkup").start()
    wecom = WeComRobot(key="key-markup").start()
    channels = [
        ChannelSettings(
            name="dingtalk-ops",
            kind="dingtalk",
            url=SecretStr(dingtalk.url),
            secret=SecretStr("SECmarkup"),
            language="en",
            at_mobiles=("13800000000",),
        ),
        ChannelSettings(
            name="wecom-ops", kind="wecom", url=SecretStr(wecom.url), at_user_ids=("zhangsan",)
        ),
    ]
    # The seed file as `stocksense run` reads it: the channels take the site's timezone from it.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    seed_file = settings.data_dir / "seed.yaml"
    seed_file.write_text(json.dumps(SEED.model_dump(mode="json")), encoding="utf-8")
    cfg = settings.model_copy(
        update={
            "notifier": NotifierSettings(channels=channels, poll_interval_s=0.05),
            "rules": RulesSettings(seed_file=seed_file),
        }
    )

    async def scenario() -> None:
        pipeline = Pipeline(cfg, seed=SEED)
        await pipeline.start()
        try:
            # The Last Will exactly as a device would compose it: no ts, a free-text reason.
            publisher.publish(
                topics.build(SITE, "temp", "coldroom-1", "status"),
                json.dumps({"online": False, "reason": REASON}),
            )
            publisher.flush()
            await until(lambda: len(dingtalk.log.accepted) == 1, what="the alert at DingTalk")
            await until(lambda: len(wecom.log.accepted) == 1, what="the alert at WeCom")
            (alert,) = pipeline.alerts.state.list()
        finally:
            await pipeline.stop()
        assert alert.type == "sensor_offline"
        assert alert.source == f"{SITE}/temp/coldroom-1"
        assert REASON in alert.message  # kept as the device sent it; only the display is inert
        console = cfg.notifier.console_url
        (ding,) = dingtalk.rendered()
        assert_shown_not_obeyed(
            ding,
            link=render.alert_link(alert, console),
            heading=render.title(alert, "raised", "en"),
            people={"13800000000"},
        )
        assert ding.mentions == ("13800000000",)
        assert dingtalk.log.accepted[0].body["at"]["atMobiles"] == ["13800000000"]
        (wecom_message,) = wecom.rendered()
        assert_shown_not_obeyed(
            wecom_message,
            link=render.alert_link(alert, console),
            heading=render.title(alert, "raised", "zh"),
            people={"zhangsan"},
        )
        assert wecom_message.mentions == ("zhangsan",)
        assert dingtalk.log.errors == wecom.log.errors == []
        # In each channel's language, the reason inert, the time the site's own.
        since = render.local_time(alert.raised_at, ZoneInfo("Asia/Shanghai"))
        assert since.endswith(" (UTC+8)")
        wecom_lines = wecom.log.accepted[0].body["markdown"]["content"].splitlines()
        assert f"- **开始时间**: {since}" in wecom_lines
        shown = neutralise(REASON, "markdown")
        assert any(
            line.startswith(f"- **详情**: 设备报告离线，原因：{shown}") for line in wecom_lines
        )
        ding_lines = dingtalk.log.accepted[0].body["markdown"]["text"].splitlines()
        assert f"- **Since**: {since}" in ding_lines
        detail = f"- **Detail**: The device announced it is offline: {shown}"
        assert any(line.startswith(detail) for line in ding_lines)

    try:
        asyncio.run(scenario())
    finally:
        dingtalk.stop()
        wecom.stop()
