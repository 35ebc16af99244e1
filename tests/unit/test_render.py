"""Alert text as ops staff read it: the channel's language throughout (the detail sentence
included), times in the site's timezone with their offset, and no label said twice."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.alerts import Alert, AlertEvent
from core.errors import ConfigError
from core.influx import InfluxClient
from core.settings import ChannelSettings, NotifierSettings, RulesSettings, Settings
from rules.notify import render
from rules.notify.digest import DigestEntry, build_digest
from rules.notify.dingtalk import DingTalkChannel
from rules.notify.render import Language, SiteTimezones
from rules.notify.service import build_channels
from rules.notify.wecom import WeComChannel
from rules.seed import Seed, Site

CONSOLE = "http://console.example/console"
SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
# 2026-12-01 00:00:00 in Shanghai (2026-11-30 16:00:00 UTC).
MIDNIGHT_SHANGHAI = 1_796_054_400_000
FIXED = os.environ.get("CI", "").lower() == "true"


def make_alert(
    type_: str,
    *,
    value: float | None = None,
    threshold: float | None = None,
    details: dict[str, Any] | None = None,
    message: str = "the rule's own English sentence",
    site: str = "wh1",
    zone: str | None = None,
    source: str = "wh1/x",
    raised_at: int = MIDNIGHT_SHANGHAI,
    cleared_at: int | None = None,
    severity: Any = "major",
) -> Alert:
    return Alert(
        id=42,
        source=source,
        type=type_,
        severity=severity,
        state="active" if cleared_at is None else "cleared",
        site=site,
        zone=zone,
        title="t",
        message=message,
        value=value,
        threshold=threshold,
        details=details or {},
        raised_at=raised_at,
        cleared_at=cleared_at,
        acked_by=None,
        acked_at=None,
        updated_at=raised_at,
    )


def excursion(**extra: Any) -> Alert:
    fields: dict[str, Any] = {"zone": "cold-1", "source": "wh1/cold-1", **extra}
    return make_alert(
        "cold_chain_excursion",
        value=11.4,
        threshold=8.0,
        severity="critical",
        message="coldroom-1/t1 reads 11.4 °C, above the 2–8 °C band for 312 s (allowance 300 s)",
        details={
            "device": "coldroom-1",
            "sensor": "t1",
            "band_low": 2.0,
            "band_high": 8.0,
            "allowance_s": 300.0,
            "duration_s": 312.0,
            "out_since_ms": MIDNIGHT_SHANGHAI - 312_000,
        },
        **fields,
    )


# -- whole messages ---------------------------------------------------------------------------


def test_cold_chain_excursion_in_chinese() -> None:
    assert render.plain(excursion(), "raised", "zh", CONSOLE, SHANGHAI) == "\n".join(
        [
            "[告警][严重] 冷链温度超限 wh1/cold-1",
            "编号: #42",
            "仓库: wh1",
            "区域: cold-1",
            "来源: 传感器 coldroom-1/t1",
            "开始时间: 2026-12-01 00:00:00 (UTC+8)",
            "详情: 温度 11.4 °C，高于上限 8 °C，已持续 5分12秒（允许 5分）",
            "处理建议: 请检查冷库门和制冷机组，必要时转移货物，并记录超温时长。",
            f"查看控制台: {CONSOLE}#alert-42",
        ]
    )


def test_cold_chain_excursion_in_english_markdown() -> None:
    assert render.markdown(excursion(), "raised", "en", CONSOLE, SHANGHAI) == "\n".join(
        [
            "### [ALERT][CRITICAL] Cold-chain excursion wh1/cold-1",
            "",
            "- **Alert**: #42",
            "- **Site**: wh1",
            "- **Zone**: cold-1",
            "- **Source**: Sensor coldroom-1/t1",
            "- **Since**: 2026-12-01 00:00:00 (UTC+8)",
            (
                "- **Detail**: Reads 11.4 °C, above the upper limit of 8 °C, for 5m 12s "
                "(allowed: 5m 00s)"
            ),
            (
                "- **What to do**: Check the cold-room door and refrigeration unit, move stock if "
                "needed, and record the excursion time."
            ),
            "",
            f"[Open console]({CONSOLE}#alert-42)",
        ]
    )


def test_resolved_excursion_gives_both_times_and_the_whole_duration() -> None:
    alert = excursion(cleared_at=MIDNIGHT_SHANGHAI + 3_725_000)
    assert render.plain(alert, "cleared", "zh", CONSOLE, SHANGHAI) == "\n".join(
        [
            "[已恢复][严重] 冷链温度超限 wh1/cold-1",
            "编号: #42",
            "仓库: wh1",
            "区域: cold-1",
            "来源: 传感器 coldroom-1/t1",
            "开始时间: 2026-12-01 00:00:00 (UTC+8)",
            "恢复时间: 2026-12-01 01:02:05 (UTC+8)",
            "持续时间: 1小时2分5秒",
            "详情: 温度 11.4 °C，高于上限 8 °C，已持续 5分12秒（允许 5分）",
            f"查看控制台: {CONSOLE}#alert-42",
        ]
    )


def offline_timeout() -> Alert:
    return make_alert(
        "sensor_offline",
        value=312.0,
        threshold=180.0,
        source="wh1/temp/tasmota_A1",
        message="nothing from tasmota_A1 for 312 s (timeout 180 s = 3 × 60 s interval)",
        details={
            "device": "tasmota_A1",
            "kind": "temp",
            "reason": "timeout",
            "last_seen_ms": MIDNIGHT_SHANGHAI - 312_000,
            "unit": "s",
        },
    )


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        (
            "zh",
            [
                "[告警][重要] 传感器离线 wh1",
                "编号: #42",
                "仓库: wh1",
                "来源: 设备 tasmota_A1",
                "开始时间: 2026-12-01 00:00:00 (UTC+8)",
                "详情: 已 5分12秒 未收到数据（超时 3分）；最后数据 2026-11-30 23:54:48 (UTC+8)",
                "处理建议: 请检查设备供电、电池和网络连接；离线期间的数据无法监控。",
            ],
        ),
        (
            "en",
            [
                "[ALERT][MAJOR] Sensor offline wh1",
                "Alert: #42",
                "Site: wh1",
                "Source: Device tasmota_A1",
                "Since: 2026-12-01 00:00:00 (UTC+8)",
                (
                    "Detail: Nothing received for 5m 12s (timeout 3m 00s); "
                    "last data 2026-11-30 23:54:48 (UTC+8)"
                ),
                (
                    "What to do: Check the device's power, battery and network; nothing is "
                    "monitored while it is offline."
                ),
            ],
        ),
    ],
)
def test_sensor_offline_by_timeout(language: Language, expected: list[str]) -> None:
    text = render.plain(offline_timeout(), "raised", language, CONSOLE, SHANGHAI)
    assert text.splitlines()[:-1] == expected


@pytest.mark.parametrize(
    ("reason", "zh", "en"),
    [
        (
            "lwt",
            "设备报告离线，原因：连接中断（遗嘱消息）",
            "The device announced it is offline: connection lost (last will)",
        ),
        (
            "battery low",
            "设备报告离线，原因：battery low",
            "The device announced it is offline: battery low",
        ),
        (
            "[x](http://evil)\n# y",
            "设备报告离线，原因：［x］(http：//evil) ＃ y",
            "The device announced it is offline: ［x］(http：//evil) ＃ y",
        ),
    ],
)
def test_sensor_offline_by_last_will_shows_the_device_reason_inert(
    reason: str, zh: str, en: str
) -> None:
    alert = make_alert(
        "sensor_offline",
        details={"device": "d1", "kind": "temp", "reason": reason, "unit": "s"},
        message=f"d1 announced it is offline ({reason})",
    )
    assert render.detail(alert, "zh") == zh
    assert render.detail(alert, "en") == en


def test_expired_lot_at_a_utc_site() -> None:
    removal = 1_796_083_200_000  # 2026-12-01 00:00:00 UTC
    alert = make_alert(
        "expired_on_shelf",
        value=12.0,
        source="wh1/RICE-1KG/L7",
        raised_at=removal + 60_000,
        message="12 units of lot L7 at A-1 must be taken out of stock; they no longer count as "
        "available",
        details={"lot": "L7", "location": "A-1", "removal_at": removal},
    )
    assert render.plain(alert, "raised", "zh", CONSOLE) == "\n".join(
        [
            "[告警][重要] 过期商品在架 wh1",
            "编号: #42",
            "仓库: wh1",
            "来源: 货位 A-1",
            "开始时间: 2026-12-01 00:01:00 UTC",
            (
                "详情: 批次 L7 共 12 件已过下架时间 2026-12-01 00:00:00 UTC，须立即下架；"
                "这些货品已不计入可用库存"
            ),
            "处理建议: 请立即下架并隔离过期商品，按规定处理。",
            f"查看控制台: {CONSOLE}#alert-42",
        ]
    )


@pytest.mark.parametrize(
    ("type_", "value", "threshold", "details", "zh", "en"),
    [
        (
            "cold_chain_cumulative", 1500.0, 1200.0,
            {"device": "c1", "sensor": "t1", "day": "2026-12-01", "unit": "s", "band_low": 2.0, "band_high": 8.0},  # noqa: E501
            "2026-12-01 累计超出 2–8 °C 共 25分，上限 20分",
            "Outside 2–8 °C for 25m 00s in all on 2026-12-01 (limit 20m 00s)",
        ),
        (
            "cold_chain_mkt", 8.534, 8.0,
            {"window_s": 86400.0, "readings": 144, "device": "c1", "sensor": "t1"},
            "过去 24小时 的平均动力学温度为 8.53 °C，高于限值 8 °C（144 个读数）",
            "Mean kinetic temperature over the last 24h 00m is 8.53 °C, above the limit of 8 °C (144 readings)",  # noqa: E501
        ),
        (
            "cold_chain_excursion", 1.5, 2.0,
            {"device": "c1", "sensor": "t1", "band_low": 2.0, "band_high": 8.0, "duration_s": 45.0},
            "温度 1.5 °C，低于下限 2 °C，已持续 45秒",
            "Reads 1.5 °C, below the lower limit of 2 °C, for 45s",
        ),
        (
            "sensor_drift", -1.234, 1.0,
            {"device": "d1", "sensor": "t2", "reference_c": 5.1, "offset_c": 0.1},
            "读数比同区其他探头偏离 -1.23 °C（参考值 5.1 °C，常规偏差 +0.1 °C，阈值 ±1 °C）",
            "Reads -1.23 °C away from the zone's other probes (reference 5.1 °C, usual offset +0.1 °C, threshold ±1 °C)",  # noqa: E501
        ),
        (
            "sensor_stuck", 4.5, None,
            {"device": "d1", "sensor": "t2", "samples": 12, "duration_s": 600.0},
            "连续 12 次读数均为 4.5 °C，持续 10分",
            "Read exactly 4.5 °C 12 times in a row over 10m 00s",
        ),
        (
            "dead_stock", 45.2, 30.0,
            {"sku": "RICE-1KG", "stock": 12.0, "value": 120.0},
            "库存 12 件，已 45 天无出库（超过 30 天即为呆滞）",
            "12 units, no outflow for 45 days (dead after 30 days)",
        ),
        (
            "supply_imbalance", 1234.5, None,
            {"rank": 1, "shortfall": 40.0, "first_due_at": MIDNIGHT_SHANGHAI + 86_400_000},
            "缺货 40 件，最早需求时间 2026-12-02 00:00:00 (UTC+8)，风险金额 1234.50",
            "Short by 40 units, first due 2026-12-02 00:00:00 (UTC+8), value at risk 1234.50",
        ),
        (
            "weight_ambiguous", 1.37, None,
            {"sku": "RICE-1KG", "delta_grams": -1370.2},
            "重量变化 -1370.2 g，折合 +1.37 件，不是整数，库存未变更",
            "Weight changed by -1370.2 g, +1.37 units: not a whole number, stock not changed",
        ),
        (
            "store_rejecting", 17.0, None,
            {"writer": "influxdb", "reason": "field type conflict", "message": 'field type conflict: input field "celsius"', "line": "x"},  # noqa: E501
            '累计 17 个数据点被拒收；最近一次：field type conflict: input field "celsius"',
            '17 points refused in all; last: field type conflict: input field "celsius"',
        ),
    ],
)  # fmt: skip
def test_detail_sentences_from_the_rules_fields(
    type_: str,
    value: float,
    threshold: float | None,
    details: dict[str, Any],
    zh: str,
    en: str,
) -> None:
    alert = make_alert(type_, value=value, threshold=threshold, details=details)
    assert render.detail(alert, "zh", tz=SHANGHAI) == zh
    assert render.detail(alert, "en", tz=SHANGHAI) == en


def test_channel_health_shows_the_robots_own_error() -> None:
    error = "dingtalk-ops: DingTalk errcode 310000 (keyword rejected): sign not match"
    alert = make_alert(
        "channel_health",
        site="system",
        source="notifier/dingtalk-ops",
        message=error,
        details={"channel": "dingtalk-ops"},
    )
    lines = render.plain(alert, "raised", "zh", CONSOLE).splitlines()
    assert lines[:6] == [
        "[告警][重要] 通知通道异常 system",
        "编号: #42",
        "仓库: system",
        "来源: notifier/dingtalk-ops",
        "开始时间: 2026-11-30 16:00:00 UTC",
        f"详情: 发送失败：{error}",
    ]


# -- what the rules send today ----------------------------------------------------------------

# Details exactly as each rule builds them today (rules/, core/influx_writer.py).
TODAY: dict[str, tuple[float | None, float | None, dict[str, Any]]] = {
    "cold_chain_excursion": (9.5, 8.0, {"device": "c1", "sensor": "t1", "band_low": 2.0, "band_high": 8.0, "allowance_s": 300.0, "duration_s": 301.0, "out_since_ms": 1}),  # noqa: E501
    "cold_chain_cumulative": (1500.0, 1200.0, {"device": "c1", "sensor": "t1", "day": "2026-12-01", "unit": "s", "band_low": 2.0, "band_high": 8.0}),  # noqa: E501
    "cold_chain_mkt": (8.5, 8.0, {"window_s": 86400.0, "readings": 144, "device": "c1", "sensor": "t1"}),  # noqa: E501
    "sensor_offline": (400.0, 300.0, {"device": "d1", "kind": "temp", "reason": "timeout", "last_seen_ms": 1, "unit": "s"}),  # noqa: E501
    "sensor_drift": (1.2, 1.0, {"device": "d1", "sensor": "t1", "reference_c": 5.0, "offset_c": 0.1}),  # noqa: E501
    "sensor_stuck": (4.0, None, {"device": "d1", "sensor": "t1", "samples": 30, "duration_s": 900.0}),  # noqa: E501
    "expired_on_shelf": (3.0, None, {"lot": "L1", "location": "A-1", "removal_at": 1}),
    "dead_stock": (40.0, 30.0, {"sku": "S1", "stock": 5.0, "value": 50.0}),
    "supply_imbalance": (99.0, None, {"rank": 1, "shortfall": 4.0, "first_due_at": 1}),
    "channel_health": (None, None, {"channel": "dingtalk-ops"}),
    "store_rejecting": (3.0, None, {"writer": "influxdb", "reason": "r", "message": "m", "line": "l"}),  # noqa: E501
    "weight_ambiguous": (1.4, None, {"sku": "S1", "delta_grams": 700.0}),
    "unexplained_loss": (2.0, None, {"sku": "S1", "device": "shelf-1", "cell": "c1", "drop_at": 1, "window_s": 60.0}),  # noqa: E501
    "misplaced_item": (None, None, {"epc": "3034", "sku": "S1", "home_zone": "dry"}),
    "reorder": (9.0, 10.0, {"suggestion_id": 1, "qty": 36.0, "reason": "min/max", "name": "Tea", "supplier": None}),  # noqa: E501
    "expiry_alert": (3.0, None, {"lot": "L1", "location": "A-1", "expiration_at": 5, "removal_at": 4, "alert_at": 1}),  # noqa: E501
}  # fmt: skip
FALLS_BACK: set[str] = set()  # every type raised today sends what its sentence needs


@pytest.mark.parametrize("type_", sorted(TODAY))
@pytest.mark.parametrize("language", ["zh", "en"])
def test_types_raised_today_get_a_sentence_unless_their_details_lack_a_field(
    type_: str, language: Language
) -> None:
    value, threshold, details = TODAY[type_]
    alert = make_alert(type_, value=value, threshold=threshold, details=details)
    sentence = render.templated_detail(alert, language)
    if type_ in FALLS_BACK:
        assert sentence is None
        assert render.detail(alert, language) == alert.message
    else:
        assert sentence is not None
        assert render.detail(alert, language) == sentence


def test_a_fallback_message_keeps_the_value_line_and_is_made_inert() -> None:
    # An older row whose details lack the sentence's fields shows the rule's message.
    value, threshold, details = 9.0, 10.0, {"suggestion_id": 1, "qty": 36.0, "reason": "min/max"}
    alert = make_alert(
        "reorder",
        value=value,
        threshold=threshold,
        details=details,
        source="wh1/COFFEE",
        message="[Free](http://evil): projected 9 < 10; suggested purchase of 36",
    )
    assert render.plain(alert, "raised", "zh", CONSOLE, SHANGHAI).splitlines()[3:7] == [
        "来源: wh1/COFFEE",
        "当前值: 9 件 / 阈值 10 件",
        "开始时间: 2026-12-01 00:00:00 (UTC+8)",
        "详情: [Free](http：//evil): projected 9 ＜ 10; suggested purchase of 36",
    ]


def test_unknown_types_and_mistyped_details_fall_back_to_the_message() -> None:
    unknown = make_alert("forklift_collision", message="forklift hit rack 3")
    assert render.detail(unknown, "zh") == "forklift hit rack 3"
    mistyped = make_alert(
        "sensor_stuck", value=4.0, details={"samples": "many", "duration_s": 60.0}, message="m"
    )
    assert render.templated_detail(mistyped, "zh") is None
    assert render.detail(mistyped, "zh") == "m"


def test_reorder_once_the_rule_sends_name_and_supplier() -> None:
    value, threshold, details = TODAY["reorder"]
    alert = make_alert(
        "reorder",
        value=value,
        threshold=threshold,
        details={**details, "name": "大米 1kg", "supplier": "ACME"},
    )
    assert (
        render.detail(alert, "zh")
        == "大米 1kg：预计库存 9 件，补货点 10 件，建议采购 36 件，供应商 ACME"
    )
    assert render.detail(alert, "en") == (
        "大米 1kg: projected stock 9, reorder point 10; suggested purchase of 36 from ACME"
    )
    alert = make_alert(
        "reorder",
        value=value,
        threshold=threshold,
        details={**details, "name": "R", "supplier": None},
    )
    assert render.detail(alert, "zh") == "R：预计库存 9 件，补货点 10 件，建议采购 36 件"


# -- times ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ms", "tz", "expected"),
    [
        (MIDNIGHT_SHANGHAI - 1000, SHANGHAI, "2026-11-30 23:59:59 (UTC+8)"),
        (MIDNIGHT_SHANGHAI, SHANGHAI, "2026-12-01 00:00:00 (UTC+8)"),
        (MIDNIGHT_SHANGHAI - 1, SHANGHAI, "2026-11-30 23:59:59 (UTC+8)"),  # never rounded up
        (MIDNIGHT_SHANGHAI, UTC, "2026-11-30 16:00:00 UTC"),
        # Berlin, spring forward on 2026-03-29 at 01:00 UTC: 01:59:59 CET, then 03:00:00 CEST.
        (1_774_745_999_000, BERLIN, "2026-03-29 01:59:59 (UTC+1)"),
        (1_774_746_000_000, BERLIN, "2026-03-29 03:00:00 (UTC+2)"),
        # Fall back on 2026-10-25 at 01:00 UTC: 02:xx happens twice, told apart by the offset.
        (1_792_889_999_000, BERLIN, "2026-10-25 02:59:59 (UTC+2)"),
        (1_792_890_000_000, BERLIN, "2026-10-25 02:00:00 (UTC+1)"),
        (MIDNIGHT_SHANGHAI, ZoneInfo("Asia/Kolkata"), "2026-11-30 21:30:00 (UTC+5:30)"),
        (MIDNIGHT_SHANGHAI, ZoneInfo("America/Sao_Paulo"), "2026-11-30 13:00:00 (UTC-3)"),
    ],
)
def test_local_time_with_its_offset(ms: int, tz: ZoneInfo, expected: str) -> None:
    assert render.local_time(ms, tz) == expected
    assert render.clock_time(ms, tz) == expected.split(" ", 1)[1]


@pytest.mark.parametrize(
    ("raised_at", "since"),
    [
        (MIDNIGHT_SHANGHAI - 1000, "2026-11-30 23:59:59 (UTC+8)"),
        (MIDNIGHT_SHANGHAI, "2026-12-01 00:00:00 (UTC+8)"),
    ],
)
def test_alert_raised_either_side_of_local_midnight(raised_at: int, since: str) -> None:
    text = render.plain(excursion(raised_at=raised_at), "raised", "zh", CONSOLE, SHANGHAI)
    assert text.splitlines()[5] == f"开始时间: {since}"


def test_berlin_alert_across_the_spring_change_lasts_one_real_hour() -> None:
    alert = excursion(
        site="berlin", raised_at=1_774_744_200_000, cleared_at=1_774_747_800_000
    )  # 00:30 and 01:30 UTC
    lines = render.plain(alert, "cleared", "en", CONSOLE, BERLIN).splitlines()
    assert lines[5:8] == [
        "Since: 2026-03-29 01:30:00 (UTC+1)",
        "Resolved at: 2026-03-29 03:30:00 (UTC+2)",
        "Duration: 1h 00m",
    ]


def test_digest_lines_give_each_alert_its_own_sites_clock() -> None:
    timezones = SiteTimezones({"wh1": "Asia/Shanghai", "berlin": "Europe/Berlin"})
    entries = [
        DigestEntry(1, excursion(site="wh1"), "raised"),
        DigestEntry(2, excursion(site="berlin", raised_at=1_774_746_000_000), "raised"),
    ]
    (part,) = build_digest(
        entries, language="zh", console_url=CONSOLE, max_size=4096, timezones=timezones
    )
    bullets = [line for line in part.text.splitlines() if line.startswith("- #")]
    assert bullets == [
        (
            "- #42 [严重] 冷链温度超限 berlin/cold-1 · 传感器 coldroom-1/t1 · "
            "11.4 °C / 阈值 8 °C · 03:00:00 (UTC+2)"
        ),
        (
            "- #42 [严重] 冷链温度超限 wh1/cold-1 · 传感器 coldroom-1/t1 · 11.4 °C / 阈值 8 °C · "
            "00:00:00 (UTC+8)"
        ),
    ]


def test_site_timezones_from_the_seed() -> None:
    seed = Seed(sites=[Site(id="wh1", timezone="Asia/Shanghai"), Site(id="wh2")])
    timezones = SiteTimezones.from_seed(seed)
    assert timezones("wh1") == SHANGHAI
    assert timezones("wh2") == ZoneInfo("UTC")
    assert timezones("system") == UTC  # the sites disagree: nothing to guess from
    one = SiteTimezones.from_seed(Seed(sites=[Site(id="wh1", timezone="Asia/Shanghai")]))
    assert one("system") == SHANGHAI  # a single-zone deployment: system alerts read it too
    assert SiteTimezones()("wh1") == UTC
    assert render.local_time(0, timezones("wh2")) == "1970-01-01 00:00:00 UTC"
    with pytest.raises(ConfigError, match="site wh9: unknown timezone 'Mars/Olympus'"):
        SiteTimezones({"wh9": "Mars/Olympus"})


def _channel_settings(tmp_path: Path, seed_file: Path | None) -> Settings:
    channels = [
        ChannelSettings.model_validate(
            {"name": "d", "kind": "dingtalk", "url": "http://127.0.0.1:9/robot/send?access_token=t"}
        ),
        ChannelSettings.model_validate(
            {"name": "w", "kind": "wecom", "url": "http://127.0.0.1:9/cgi-bin/webhook/send?key=k"}
        ),
    ]
    return Settings(
        data_dir=tmp_path,
        notifier=NotifierSettings(channels=channels),
        rules=RulesSettings(seed_file=seed_file),
    )


@pytest.mark.parametrize("from_file", [True, False])
def test_channels_built_for_the_pipeline_and_notify_show_the_sites_time(
    tmp_path: Path, from_file: bool
) -> None:
    seed_file = tmp_path / "seed.yaml"
    seed_file.write_text("sites:\n  - id: wh1\n    timezone: Asia/Shanghai\n", encoding="utf-8")
    cfg = _channel_settings(tmp_path, seed_file if from_file else None)
    influx = InfluxClient(cfg.influx)
    # `stocksense notify` reads the seed file; the pipeline hands over the seed it runs on.
    seed = None if from_file else Seed(sites=[Site(id="wh1", timezone="Asia/Shanghai")])
    channels = build_channels(cfg, influx, seed=seed)

    async def close() -> None:
        for channel in channels:
            await channel.aclose()
        await influx.aclose()

    try:
        robots = [c for c in channels if isinstance(c, DingTalkChannel | WeComChannel)]
        assert len(robots) == 2
        for robot in robots:
            (payload,) = robot.render(excursion(), "raised")
            body = payload["markdown"].get("text") or payload["markdown"]["content"]
            assert "- **开始时间**: 2026-12-01 00:00:00 (UTC+8)" in body.splitlines()
    finally:
        asyncio.run(close())


def test_channels_without_a_seed_show_utc(tmp_path: Path) -> None:
    cfg = _channel_settings(tmp_path, None)
    influx = InfluxClient(cfg.influx)
    channels = build_channels(cfg, influx)

    async def close() -> None:
        for channel in channels:
            await channel.aclose()
        await influx.aclose()

    try:
        robot = next(c for c in channels if isinstance(c, DingTalkChannel))
        (payload,) = robot.render(excursion(), "raised")
        assert "- **开始时间**: 2026-11-30 16:00:00 UTC" in payload["markdown"]["text"]
    finally:
        asyncio.run(close())


# -- nothing said twice -----------------------------------------------------------------------


EVENTS: list[AlertEvent] = ["raised", "escalated", "cleared"]


@pytest.mark.parametrize("type_", sorted(TODAY))
@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("event", EVENTS)
def test_no_label_twice_and_no_value_repeating_its_label(
    type_: str, language: Language, event: AlertEvent
) -> None:
    value, threshold, details = TODAY[type_]
    alert = make_alert(
        type_,
        value=value,
        threshold=threshold,
        details=details,
        source="wh1/src-1",
        cleared_at=MIDNIGHT_SHANGHAI + 60_000 if event == "cleared" else None,
    )
    facts = render.facts(alert, event, language, "text", SHANGHAI)
    labels = [name for name, _ in facts]
    assert len(labels) == len(set(labels))
    for name, shown in facts:
        assert not shown.startswith(name), (name, shown)
    title = render.title(alert, event, language, "text")
    words = title.split()
    assert len(words) == len(set(words))


def test_a_zone_wide_source_is_not_repeated_as_the_source() -> None:
    alert = make_alert("cold_chain_excursion", zone="cold-1", source="wh1/cold-1", message="m")
    labels = [name for name, _ in render.facts(alert, "raised", "zh")]
    assert "来源" not in labels
    line = render.summary_line(alert, "raised", "zh")
    assert line == "#42 [重要] 冷链温度超限 wh1/cold-1 · 16:00:00 UTC"


def test_the_title_stays_one_short_line_in_both_languages() -> None:
    alert = excursion(site="a" * 64, zone="z" * 64)
    for language in ("zh", "en"):
        title = render.title(alert, "escalated", language, "text")
        assert "\n" not in title
        assert len(title.encode()) <= 200  # chat-list and push previews show about one line


# -- every known type in Chinese, from the rule's fields --------------------------------------

IDS = st.from_regex(r"[a-z]{1,5}-[0-9]{1,3}", fullmatch=True)
TEMPS = st.floats(min_value=-30, max_value=40, allow_nan=False).map(lambda x: round(x, 1))
SECONDS = st.integers(min_value=1, max_value=200_000).map(float)
COUNTS = st.integers(min_value=1, max_value=5000).map(float)
TIMES = st.integers(min_value=1_700_000_000_000, max_value=1_900_000_000_000)


@dataclass
class Case:
    """One alert as a rule raises it: its fields, and the English message the rule writes."""

    value: float | None
    threshold: float | None
    details: dict[str, Any]
    message: str
    data: list[str] = field(default_factory=list)  # strings from outside, shown as they are


def _date(ms: int) -> str:
    return render.local_time(ms).split(" ")[0]


@st.composite
def excursion_case(draw: st.DrawFn) -> Case:
    device, sensor, low = draw(IDS), draw(IDS), draw(st.integers(-25, 5))
    high = low + draw(st.integers(1, 10))
    above = draw(st.booleans())
    celsius = high + draw(st.integers(1, 90)) / 10 if above else low - draw(st.integers(1, 90)) / 10
    lasted, allowance = draw(SECONDS), draw(SECONDS)
    message = (
        f"{device}/{sensor} reads {celsius:.1f} °C, {'above' if above else 'below'} the "
        f"{low:g}–{high:g} °C band for {lasted:.0f} s (allowance {allowance:g} s)"
    )
    details = {"device": device, "sensor": sensor, "band_low": float(low), "band_high": float(high),
               "allowance_s": allowance, "duration_s": lasted}  # fmt: skip
    return Case(celsius, float(high if above else low), details, message)


@st.composite
def cumulative_case(draw: st.DrawFn) -> Case:
    device, sensor, day = draw(IDS), draw(IDS), _date(draw(TIMES))
    low, high, total, limit = 2.0, 8.0, draw(SECONDS), draw(SECONDS)
    message = (
        f"{device}/{sensor} has been outside {low:g}–{high:g} °C for {total:.0f} s on {day} "
        f"(limit {limit:g} s)"
    )
    details = {"device": device, "sensor": sensor, "day": day, "unit": "s",
               "band_low": low, "band_high": high}  # fmt: skip
    return Case(total, limit, details, message)


@st.composite
def mkt_case(draw: st.DrawFn) -> Case:
    mkt, limit = draw(TEMPS), draw(TEMPS)
    window, readings = (
        draw(st.sampled_from([3600.0, 86400.0, 604800.0])),
        draw(st.integers(1, 9999)),
    )
    message = (
        f"MKT over the last {window / 3600:g} h is {mkt:.2f} °C, above {limit:g} °C "
        f"({readings} readings)"
    )
    details = {"window_s": window, "readings": readings, "device": draw(IDS), "sensor": draw(IDS)}
    return Case(mkt, limit, details, message)


@st.composite
def offline_case(draw: st.DrawFn) -> Case:
    device, seen = draw(IDS), draw(TIMES)
    if draw(st.booleans()):
        silent, interval, factor = draw(SECONDS), draw(SECONDS), 3.0
        message = (
            f"nothing from {device} for {silent:.0f} s (timeout {interval * factor:.0f} s = "
            f"{factor:g} × {interval:.0f} s interval)"
        )
        details = {"device": device, "kind": "temp", "reason": "timeout", "last_seen_ms": seen,
                   "unit": "s"}  # fmt: skip
        return Case(silent, interval * factor, details, message)
    reason = draw(st.sampled_from(["lwt", "battery low", "[x](http://evil)"]))
    details = {
        "device": device,
        "kind": "temp",
        "reason": reason,
        "last_seen_ms": seen,
        "unit": "s",
    }
    data = [] if reason == "lwt" else [reason]
    return Case(None, None, details, f"{device} announced it is offline ({reason})", data)


@st.composite
def drift_case(draw: st.DrawFn) -> Case:
    device, sensor, drift, reference, offset = (
        draw(IDS),
        draw(IDS),
        draw(TEMPS),
        draw(TEMPS),
        draw(TEMPS),
    )
    message = (
        f"{device}/{sensor} reads {drift:+.2f} °C away from the zone's other probes "
        f"(reference {reference:.2f} °C, usual offset {offset:+.2f} °C)"
    )
    details = {"device": device, "sensor": sensor, "reference_c": reference, "offset_c": offset}
    return Case(drift, 1.0, details, message)


@st.composite
def stuck_case(draw: st.DrawFn) -> Case:
    device, sensor, celsius = draw(IDS), draw(IDS), draw(TEMPS)
    samples, held = draw(st.integers(2, 999)), draw(SECONDS)
    message = f"{device}/{sensor} has read exactly {celsius:g} °C {samples} times over {held:.0f} s"
    details = {"device": device, "sensor": sensor, "samples": samples, "duration_s": held}
    return Case(celsius, None, details, message)


@st.composite
def loss_case(draw: st.DrawFn) -> Case:
    device, cell, sku, units, window = draw(IDS), draw(IDS), draw(IDS), draw(COUNTS), draw(SECONDS)
    message = (
        f"{device}/{cell} lost {units:g} units with no RFID exit and no recorded pick within "
        f"{window:g} s"
    )
    details = {
        "sku": sku,
        "drop_at": draw(TIMES),
        "device": device,
        "cell": cell,
        "window_s": window,
    }
    return Case(units, None, details, message)


@st.composite
def misplaced_case(draw: st.DrawFn) -> Case:
    epc, sku, zone, home = draw(IDS), draw(IDS), draw(IDS), draw(IDS)
    message = f"tag {epc} of {sku} settled in {zone}; it belongs in {home}"
    return Case(None, None, {"epc": epc, "home_zone": home, "sku": sku}, message, [zone])


@st.composite
def reorder_case(draw: st.DrawFn) -> Case:
    name, supplier = draw(st.sampled_from(["大米 1kg", "Jasmine Rice 5kg"])), draw(IDS)
    projected, level, qty = draw(COUNTS), draw(COUNTS), draw(COUNTS)
    message = (
        f"{name}: projected {projected:g} < {level:g}; suggested purchase of {qty:g} from "
        f"{supplier}"
    )
    details = {"suggestion_id": 1, "qty": qty, "reason": "min/max", "name": name,
               "supplier": supplier}  # fmt: skip
    return Case(projected, level, details, message, [name])


@st.composite
def expiry_case(draw: st.DrawFn) -> Case:
    lot, location, qty = draw(IDS), draw(IDS), draw(COUNTS)
    expires, removal = draw(TIMES), draw(TIMES)
    message = f"{qty:g} units at {location}; expires {_date(expires)}, removal {_date(removal)}"
    details = {"lot": lot, "location": location, "alert_at": draw(TIMES),
               "expiration_at": expires, "removal_at": removal}  # fmt: skip
    return Case(qty, None, details, message)


@st.composite
def expired_case(draw: st.DrawFn) -> Case:
    lot, location, qty = draw(IDS), draw(IDS), draw(COUNTS)
    message = (
        f"{qty:g} units of lot {lot} at {location} must be taken out of stock; they no longer "
        "count as available"
    )
    return Case(qty, None, {"lot": lot, "location": location, "removal_at": draw(TIMES)}, message)


@st.composite
def dead_case(draw: st.DrawFn) -> Case:
    sku, stock, days = draw(IDS), draw(COUNTS), draw(st.floats(31, 999).map(lambda d: round(d, 1)))
    message = f"{stock:g} units, no outflow for {days:.0f} days"
    return Case(days, 30.0, {"sku": sku, "stock": stock, "value": stock * 2}, message)


@st.composite
def imbalance_case(draw: st.DrawFn) -> Case:
    demand, available, inbound = draw(COUNTS), draw(COUNTS), draw(COUNTS)
    at_risk = draw(st.floats(0, 1e6).map(lambda v: round(v, 2)))
    message = (
        f"confirmed demand {demand:g} due within 14 days; available {available:g}, inbound "
        f"{inbound:g}; value at risk {at_risk:.2f}"
    )
    details = {"rank": 1, "shortfall": demand - available - inbound, "first_due_at": draw(TIMES),
               "demand": demand, "available": available, "in_transit": inbound}  # fmt: skip
    return Case(at_risk, None, details, message)


@st.composite
def channel_case(draw: st.DrawFn) -> Case:
    channel = draw(IDS)
    error = f"{channel}: DingTalk errcode 310000 (keyword, signature, timestamp or IP allow-list rejected): sign not match"  # noqa: E501
    # The whole message is the robot's error text: shown as it came, under our own words.
    return Case(None, None, {"channel": channel}, error, [error])


@st.composite
def rejecting_case(draw: st.DrawFn) -> Case:
    new, total = draw(st.integers(1, 99)), draw(st.integers(100, 9999))
    reason, said = "field type conflict", 'input field "celsius" is type float'
    message = f"{new} points refused ({total} in all); last {reason}: {said}"
    details = {"writer": "influxdb", "reason": reason, "message": said, "line": "x", "refused": new}
    return Case(float(total), None, details, message, [reason, said])


@st.composite
def ambiguous_case(draw: st.DrawFn) -> Case:
    sku, grams = draw(IDS), draw(st.floats(-5000, 5000).map(lambda g: round(g, 1)))
    units = round(grams / 700, 2)
    message = (
        f"{grams:+.1f} g is {units:+.2f} units of {sku}: not a whole number, stock not changed; "
        "please count the shelf"
    )
    return Case(units, None, {"sku": sku, "delta_grams": grams}, message)


CASES: dict[str, Callable[[], st.SearchStrategy[Case]]] = {
    "cold_chain_excursion": excursion_case,
    "cold_chain_cumulative": cumulative_case,
    "cold_chain_mkt": mkt_case,
    "sensor_offline": offline_case,
    "sensor_drift": drift_case,
    "sensor_stuck": stuck_case,
    "unexplained_loss": loss_case,
    "misplaced_item": misplaced_case,
    "reorder": reorder_case,
    "expiry_alert": expiry_case,
    "expired_on_shelf": expired_case,
    "dead_stock": dead_case,
    "supply_imbalance": imbalance_case,
    "channel_health": channel_case,
    "store_rejecting": rejecting_case,
    "weight_ambiguous": ambiguous_case,
}
# Units and technical terms a Chinese message may keep.
KEPT = {"C", "s", "h", "g", "RFID"}
WORD = re.compile(r"[A-Za-z]+")


def test_every_type_raised_today_has_a_case_a_name_and_an_action() -> None:
    assert set(CASES) == set(TODAY)
    for type_ in CASES:
        for language in ("zh", "en"):
            assert render.type_name(type_, language) != render.type_name("x_" + type_, language)
            assert render.action(type_, language) != render.action("no_such_type", language)


@pytest.mark.parametrize("type_", sorted(CASES))
@settings(max_examples=40, deadline=None, derandomize=FIXED, database=None)
@given(data=st.data(), event=st.sampled_from(EVENTS), tz=st.sampled_from([SHANGHAI, BERLIN]))
def test_chinese_messages_keep_no_english_word_of_the_rules_message(
    type_: str, data: st.DataObject, event: AlertEvent, tz: ZoneInfo
) -> None:
    case = data.draw(CASES[type_]())
    raised_at = data.draw(TIMES)
    alert = make_alert(
        type_,
        value=case.value,
        threshold=case.threshold,
        details=case.details,
        message=case.message,
        source=f"wh1/{data.draw(IDS)}",
        zone=data.draw(st.none() | IDS),
        raised_at=raised_at,
        cleared_at=raised_at + 5000 if event == "cleared" else None,
    )
    sentence = render.templated_detail(alert, "zh", "text", tz)
    assert sentence is not None
    assert re.search(r"[\u4e00-\u9fff]", sentence)
    identifiers = [str(v) for v in case.details.values() if isinstance(v, str)]
    identifiers += [alert.source, alert.zone or "", *case.data]
    allowed = KEPT | {w for text in identifiers for w in WORD.findall(text)}
    english = set(WORD.findall(case.message)) - allowed
    for body in (
        render.plain(alert, event, "zh", CONSOLE, tz),
        render.markdown(alert, event, "zh", CONSOLE, tz),
        render.summary_line(alert, event, "zh", "markdown", tz),
    ):
        assert set(WORD.findall(body)) & english == set(), body
    assert render.templated_detail(alert, "en", "text", tz) is not None


# -- alerts kept current: reminders, owners, deadlines, resolutions ---------------------------

HOUR_MS = 3_600_000


def current_excursion(**extra: Any) -> Alert:
    """An excursion raised at midnight, last seen 4 minutes later at 12.1 °C peak / 11.4 °C
    latest (552 s out of band then), reminded at 30 minutes; owned, with deadlines."""
    fields: dict[str, Any] = {
        "peak_value": 12.1,
        "last_seen_at": MIDNIGHT_SHANGHAI + 240_000,
        "reminded_at": MIDNIGHT_SHANGHAI + 1_800_000,
        "reminders": 1,
        "owner": "zhangwei",
        "ack_due_at": MIDNIGHT_SHANGHAI + 900_000,
        "resolve_due_at": MIDNIGHT_SHANGHAI + 4 * HOUR_MS,
        **extra,
    }
    base = excursion()
    details = {**base.details, "duration_s": 552.0}
    return base.model_copy(update={"details": details, **fields})


def test_reminder_in_chinese_shows_latest_peak_duration_owner_and_deadlines() -> None:
    assert render.plain(current_excursion(), "reminder", "zh", CONSOLE, SHANGHAI) == "\n".join(
        [
            "[提醒][严重] 冷链温度超限 wh1/cold-1",
            "编号: #42",
            "仓库: wh1",
            "区域: cold-1",
            "来源: 传感器 coldroom-1/t1",
            "开始时间: 2026-12-01 00:00:00 (UTC+8)",
            # 552 s at the last sighting + 26 min to the reminder
            "详情: 温度 11.4 °C（峰值 12.1 °C），高于上限 8 °C，已持续 35分12秒（允许 5分）",
            "负责人: zhangwei",
            "确认期限: 2026-12-01 00:15:00 (UTC+8)（已超期）",
            "处理期限: 2026-12-01 04:00:00 (UTC+8)",
            "处理建议: 请检查冷库门和制冷机组，必要时转移货物，并记录超温时长。",
            f"查看控制台: {CONSOLE}#alert-42",
        ]
    )


def test_reminder_in_english_markdown() -> None:
    text = render.markdown(current_excursion(), "reminder", "en", CONSOLE, SHANGHAI)
    assert text.splitlines()[0] == "### [REMINDER][CRITICAL] Cold-chain excursion wh1/cold-1"
    assert (
        "- **Detail**: Reads 11.4 °C (peak 12.1 °C), above the upper limit of 8 °C, for "
        "35m 12s (allowed: 5m 00s)"
    ) in text.splitlines()
    assert "- **Owner**: zhangwei" in text.splitlines()
    assert "- **Acknowledge by**: 2026-12-01 00:15:00 (UTC+8) (overdue)" in text.splitlines()
    assert "- **Resolve by**: 2026-12-01 04:00:00 (UTC+8)" in text.splitlines()


def test_a_deadline_is_overdue_at_exactly_its_time() -> None:
    due = MIDNIGHT_SHANGHAI + 1_800_000  # the reminder's own time
    on_time = current_excursion(ack_due_at=due + 1)
    late = current_excursion(ack_due_at=due)
    assert "确认期限: 2026-12-01 00:30:00 (UTC+8)（已超期）" in render.plain(
        late, "reminder", "zh", CONSOLE, SHANGHAI
    ).splitlines()
    assert "确认期限: 2026-12-01 00:30:00 (UTC+8)" in render.plain(
        on_time, "reminder", "zh", CONSOLE, SHANGHAI
    ).splitlines()


def test_peak_below_the_band_is_the_lowest_reading() -> None:
    below = current_excursion(value=1.2, peak_value=0.8, threshold=2.0)
    assert render.templated_detail(below, "en", "text", SHANGHAI, "reminder") == (
        "Reads 1.2 °C (peak 0.8 °C), below the lower limit of 2 °C, for 35m 12s "
        "(allowed: 5m 00s)"
    )
    # No peak beyond the latest: none shown; no reminder: lasted to the last sighting.
    same = current_excursion(peak_value=11.4, reminded_at=None)
    assert render.templated_detail(same, "zh", "text", SHANGHAI, "raised") == (
        "温度 11.4 °C，高于上限 8 °C，已持续 9分12秒（允许 5分）"
    )


def test_a_type_without_a_duration_sentence_gets_peak_and_duration_lines() -> None:
    alert = make_alert(
        "cold_chain_mkt",
        value=8.4,
        threshold=8.0,
        details={"window_s": 86_400, "readings": 120},
    ).model_copy(update={"peak_value": 8.9, "last_seen_at": MIDNIGHT_SHANGHAI + 600_000,
                         "reminded_at": MIDNIGHT_SHANGHAI + HOUR_MS})  # fmt: skip
    lines = render.plain(alert, "reminder", "en", CONSOLE, SHANGHAI).splitlines()
    assert "Peak: 8.9 °C" in lines
    assert "Duration: 1h 00m" in lines
    assert render.value_text(alert, "en") == "8.4 °C / Threshold 8 °C / Peak 8.9 °C"


def test_a_person_resolution_shows_who_why_and_how() -> None:
    alert = excursion(cleared_at=MIDNIGHT_SHANGHAI + 3_725_000).model_copy(
        update={
            "resolved_by": "zhangwei",
            "cause": "equipment",
            "resolution_note": "compressor relay replaced <b>",
            "owner": "zhangwei",
        }
    )
    lines = render.markdown(alert, "cleared", "zh", CONSOLE, SHANGHAI).splitlines()
    assert "- **处理人**: zhangwei" in lines
    assert "- **原因**: 设备" in lines
    assert [line for line in lines if line.startswith("- **处理说明**")] == [
        "- **处理说明**: compressor relay replaced ＜b＞"
    ]
    assert not any("负责人" in line for line in lines)  # owner and deadlines: not on a clear
    ruled = excursion(cleared_at=MIDNIGHT_SHANGHAI + 3_725_000).model_copy(
        update={"resolution_note": "back in band at 5.0 °C"}
    )
    # A rule's English note is not shown to a Chinese channel: the message says it all.
    assert not any("处理说明" in line for line in render.plain(ruled, "cleared", "zh", CONSOLE,
                                                            SHANGHAI).splitlines())  # fmt: skip
