"""Digest folding and alert text: every event named, sizes respected, readable in zh and en."""

from __future__ import annotations

import re
from typing import Any

import pytest

from core.alerts import Alert, AlertEvent, Severity
from rules.notify import render
from rules.notify.digest import DigestEntry, build_digest, counts_line, order
from rules.notify.textsplit import json_utf8_len, utf8_len

T0 = 1_767_225_600_000  # 2026-01-01 00:00:00 UTC
CONSOLE = "http://console.example/console"
SEVERITIES: list[Severity] = ["critical", "major", "minor", "warning", "info"]
NEW_TYPES = [
    "cold_chain_excursion",
    "cold_chain_mkt",
    "sensor_offline",
    "unexplained_loss",
    "misplaced_item",
    "sensor_drift",
    "sensor_stuck",
    "reorder",
    "expiry_alert",
    "expired_on_shelf",
    "dead_stock",
    "supply_imbalance",
    "channel_health",
]


def make_alert(
    alert_id: int,
    *,
    severity: Severity = "critical",
    type_: str = "cold_chain_excursion",
    raised_at: int = T0,
    cleared_at: int | None = None,
    details: dict[str, Any] | None = None,
    value: float | None = 9.3,
    threshold: float | None = 8.0,
    message: str = "t1 reads 9.3 °C, above the 2–8 °C band for 120 s",
) -> Alert:
    return Alert(
        id=alert_id,
        source=f"WH1/cold/t{alert_id}",
        type=type_,
        severity=severity,
        state="active" if cleared_at is None else "cleared",
        site="WH1",
        zone="cold",
        title="t",
        message=message,
        value=value,
        threshold=threshold,
        details={"sensor": f"t{alert_id}", "duration_s": 120} if details is None else details,
        raised_at=raised_at,
        cleared_at=cleared_at,
        acked_by=None,
        acked_at=None,
        updated_at=raised_at,
    )


def entries(n: int) -> list[DigestEntry]:
    out = []
    for i in range(1, n + 1):
        event: AlertEvent = "cleared" if i % 17 == 0 else "raised"
        alert = make_alert(
            i,
            severity=SEVERITIES[i % 5],
            raised_at=T0 + i * 100,
            cleared_at=T0 + i * 100 + 5000 if event == "cleared" else None,
        )
        out.append(DigestEntry(key=1000 + i, alert=alert, event=event))
    return out


def named_ids(text: str) -> set[int]:
    return {int(m) for m in re.findall(r"#(\d+)", text)}


def test_order_is_severity_then_time() -> None:
    items = [
        DigestEntry(1, make_alert(1, severity="minor", raised_at=T0), "raised"),
        DigestEntry(2, make_alert(2, severity="critical", raised_at=T0 + 50), "raised"),
        DigestEntry(3, make_alert(3, severity="critical", raised_at=T0 + 10), "raised"),
    ]
    assert [e.key for e in order(items)] == [3, 2, 1]


def test_counts_line_by_severity_and_resolved() -> None:
    items = entries(34)
    assert (
        counts_line(items, "en")
        == "CRITICAL 6 · MAJOR 7 · MINOR 6 · WARNING 7 · INFO 6 · resolved 2"
    )
    assert counts_line(items, "zh").startswith("严重 6 · 重要 7")


def test_small_digest_is_one_part_with_top_lines_and_link() -> None:
    items = entries(5)
    parts = build_digest(items, language="zh", console_url=CONSOLE, max_size=4096)
    assert len(parts) == 1
    text = parts[0].text
    assert text.startswith("### 告警汇总：5 条\n")
    assert parts[0].title == "告警汇总：5 条"
    assert text.endswith(f"[查看控制台]({CONSOLE})")
    assert text.count("\n- #") == 5
    assert "另有" not in text
    assert parts[0].keys == frozenset(e.key for e in items)
    assert parts[0].has_raised


@pytest.mark.parametrize(
    ("max_size", "measure"),
    [(4096, utf8_len), (2048, utf8_len), (19_000, json_utf8_len), (700, utf8_len)],
)
def test_storm_digest_names_every_event_exactly_once(max_size: int, measure: Any) -> None:
    items = entries(500)
    parts = build_digest(
        items, language="zh", console_url=CONSOLE, max_size=max_size, measure=measure
    )
    all_keys = [k for p in parts for k in p.keys]
    assert sorted(all_keys) == sorted(e.key for e in items)
    by_key = {e.key: e.alert.id for e in items}
    for part in parts:
        assert measure(part.text) <= max_size
        assert named_ids(part.text) == {by_key[k] for k in part.keys}
    if len(parts) > 1:
        assert parts[0].title == f"告警汇总：500 条 (1/{len(parts)})"
        assert parts[1].text.startswith(f"### 告警汇总：500 条 (2/{len(parts)})")


def test_top_lines_are_most_severe_and_rest_by_id() -> None:
    items = entries(60)
    part = build_digest(items, language="en", console_url=CONSOLE, max_size=4096, top=3)[0]
    bullets = [line for line in part.text.splitlines() if line.startswith("- ")]
    assert len(bullets) == 3
    assert all("[CRITICAL]" in b for b in bullets)
    assert bullets[0].startswith("- #5 [CRITICAL] Cold-chain excursion WH1/cold · Sensor t5 · ")
    assert "9.3 °C / Threshold 8 °C" in bullets[0]
    also = next(line for line in part.text.splitlines() if line.startswith("And also"))
    assert "#17✓" in also  # resolved events are marked
    assert also.startswith("And also (✓ = resolved): #20, #25")
    assert "#10," not in also  # already shown as a summary line


def test_plain_text_style_has_no_markdown() -> None:
    part = build_digest(
        entries(3), language="en", console_url=CONSOLE, max_size=2048, style="text"
    )[0]
    assert "###" not in part.text
    assert "](" not in part.text
    assert part.text.endswith(f"Open console: {CONSOLE}")


def test_too_small_limit_is_an_error() -> None:
    with pytest.raises(ValueError, match="cannot hold"):
        build_digest(entries(3), language="zh", console_url=CONSOLE, max_size=50)


def test_empty_digest() -> None:
    assert build_digest([], language="zh", console_url=CONSOLE, max_size=4096) == []


# -- render -----------------------------------------------------------------------------------


@pytest.mark.parametrize("type_", NEW_TYPES)
def test_every_known_type_has_names_and_actions(type_: str) -> None:
    for language in ("zh", "en"):
        assert render.type_name(type_, language) != type_
        assert render.action(type_, language) != render.action("no_such_type", language)


def test_unknown_type_still_renders_sensibly() -> None:
    alert = make_alert(7, type_="forklift_collision", value=None, threshold=None, details={})
    text = render.markdown(alert, "raised", "en", CONSOLE)
    assert "Forklift collision WH1/cold" in text
    assert "- **Source**: WH1/cold/t7" in text
    assert "Open the console for details" in text
    assert render.type_name("forklift_collision", "zh") == "Forklift collision"


def test_markdown_in_chinese_has_where_what_value_duration_action() -> None:
    alert = make_alert(12, details={"sku": "SKU-88", "sensor": "t12", "duration_s": 3725})
    text = render.markdown(alert, "raised", "zh", CONSOLE)
    assert text.splitlines()[0] == "### [告警][严重] 冷链温度超限 WH1/cold"
    for expected in (
        "- **编号**: #12",
        "- **仓库**: WH1",
        "- **区域**: cold",
        "- **来源**: SKU SKU-88，传感器 t12",
        "- **当前值**: 9.3 °C / 阈值 8 °C",
        "- **持续时间**: 1小时2分5秒",
        "- **处理建议**: 请检查冷库门和制冷机组",
        f"[查看控制台]({CONSOLE}#alert-12)",
    ):
        assert expected in text


def test_resolved_notice_in_english_has_duration_and_no_action() -> None:
    alert = make_alert(3, cleared_at=T0 + 95_000)
    text = render.plain(alert, "cleared", "en", CONSOLE)
    assert text.splitlines()[0] == "[RESOLVED][CRITICAL] Cold-chain excursion WH1/cold"
    assert "Duration: 1m 35s" in text
    assert "Resolved at: 2026-01-01 00:01:35 UTC" in text
    assert "What to do" not in text
    assert text.endswith(f"Open console: {CONSOLE}#alert-3")


def test_units_from_details_and_fractional_values() -> None:
    alert = make_alert(4, type_="reorder", value=12.5, threshold=20, details={"unit": "pcs"})
    assert render.value_text(alert, "en") == "12.5 pcs / Threshold 20 pcs"


def test_data_in_messages_and_digests_is_shown_in_the_style_of_the_message() -> None:
    hostile = "[x](http://evil) @13800000000"
    alert = make_alert(
        9,
        details={"sku": hostile, "unit": "*kg*"},
        message=f"line one\n### {hostile}",
    )
    markdown = render.markdown(alert, "raised", "en", CONSOLE)
    assert "- **Detail**: line one ＃＃＃ ［x］(http：//evil) ＠13800000000" in markdown
    assert "- **Source**: SKU ［x］(http：//evil) ＠13800000000" in markdown
    assert "9.3 ＊kg＊ / Threshold 8 ＊kg＊" in markdown
    plain = render.plain(alert, "raised", "en", CONSOLE)
    # Text messages render no markdown: brackets stay, mentions and links are still broken.
    assert "Detail: line one ### [x](http：//evil) ＠13800000000" in plain
    markdown_digest = build_digest(
        [DigestEntry(1, alert, "raised")], language="en", console_url=CONSOLE, max_size=4096
    )[0]
    text_digest = build_digest(
        [DigestEntry(1, alert, "raised")],
        language="en",
        console_url=CONSOLE,
        max_size=4096,
        style="text",
    )[0]
    assert "SKU ［x］(http：//evil) ＠13800000000" in markdown_digest.text
    assert "SKU [x](http：//evil) ＠13800000000" in text_digest.text
    assert markdown_digest.text.endswith(f"[Open console]({CONSOLE})")  # our own markup stays
