"""Byte-length splitting, JSON-aware sizing and secret redaction."""

from __future__ import annotations

import json
import logging

import pytest

from rules.notify.textsplit import (
    json_utf8_len,
    protect_in_logs,
    redact,
    split_numbered,
    split_text,
    truncate,
    url_secrets,
    utf8_len,
)


def test_utf8_len_counts_chinese_as_three_bytes() -> None:
    assert utf8_len("冷链") == 6
    assert utf8_len("a冷") == 4


def test_json_len_counts_escapes() -> None:
    assert json_utf8_len('a"b\n') == 6
    assert json_utf8_len("温度") == 6
    assert json_utf8_len("\x01") == 6


def test_short_text_is_not_split() -> None:
    assert split_text("温度 9.3", 100) == ["温度 9.3"]


@pytest.mark.parametrize("limit", [7, 8, 9, 10, 100, 101, 102])
def test_long_chinese_line_is_cut_between_characters(limit: int) -> None:
    text = "冷库温度超限请检查制冷机组" * 20
    chunks = split_text(text, limit)
    assert "".join(chunks) == text
    for chunk in chunks:
        assert 0 < utf8_len(chunk) <= limit
        assert chunk.encode().decode() == chunk
    # Greedy packing: every chunk but the last is within one character of the limit.
    assert all(utf8_len(c) > limit - 3 for c in chunks[:-1])


def test_splits_on_line_boundaries() -> None:
    lines = [f"第{i}行：仓库 WH1 区域 cold-{i} 温度 9.{i} °C" for i in range(40)]
    text = "\n".join(lines)
    chunks = split_text(text, 200)
    assert len(chunks) > 1
    assert all(utf8_len(c) <= 200 for c in chunks)
    assert [line for c in chunks for line in c.split("\n")] == lines


def test_mixed_width_boundary_with_line_break_exactly_at_limit() -> None:
    text = "ab冷\n链c"  # 5 bytes + newline + 4 bytes
    assert split_text(text, 5) == ["ab冷", "链c"]
    assert split_text(text, 10) == [text]


def test_split_with_json_measure_respects_escaped_size() -> None:
    text = "\n".join(['"quoted" 冷链 \\ path'] * 50)
    chunks = split_text(text, 120, measure=json_utf8_len)
    assert all(json_utf8_len(c) <= 120 for c in chunks)
    assert "\n".join(chunks) == text
    body = json.dumps({"t": chunks[0]}, ensure_ascii=False).encode()
    assert len(body) == json_utf8_len(chunks[0]) + len('{"t": ""}')


def test_split_numbered_prefixes_parts_and_stays_within_limit() -> None:
    text = "\n".join(f"告警 #{i} 冷链温度超限" for i in range(100))
    parts = split_numbered(text, 300)
    n = len(parts)
    assert n > 1
    for i, part in enumerate(parts, start=1):
        assert part.startswith(f"({i}/{n}) ")
        assert utf8_len(part) <= 300
    assert split_numbered("short", 300) == ["short"]


def test_space_preferred_for_cutting_long_lines() -> None:
    text = " ".join(["word"] * 30)
    chunks = split_text(text, 22)
    assert all(c.endswith(" ") or c == chunks[-1] for c in chunks)
    assert "".join(chunks) == text


def test_zero_limit_is_rejected() -> None:
    with pytest.raises(ValueError, match="positive"):
        split_text("x", 0)


def test_truncate_never_cuts_a_character() -> None:
    assert truncate("冷链温度", 8) == "冷…"
    assert truncate("冷链温度", 12) == "冷链温度"
    assert truncate("冷链温度", 9) == "冷链…"


def test_url_secrets_and_redact() -> None:
    url = "https://oapi.dingtalk.com/robot/send?access_token=abcdef123456"
    assert url_secrets(url) == ["abcdef123456"]
    secret = "SEC+abc/def=="
    text = f"failed {url}&sign=x secret {secret} quoted SEC%2Babc%2Fdef%3D%3D"
    cleaned = redact(text, [*url_secrets(url), secret])
    assert "abcdef123456" not in cleaned
    assert secret not in cleaned
    assert "SEC%2Babc" not in cleaned
    assert cleaned.count("***") == 3


def test_http_client_log_lines_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    protect_in_logs(["tok-0123456789"])
    with caplog.at_level(logging.INFO, logger="httpx"):
        logging.getLogger("httpx").info(
            "HTTP Request: %s %s", "POST", "http://h/robot/send?access_token=tok-0123456789"
        )
    assert caplog.messages == ["HTTP Request: POST http://h/robot/send?access_token=***"]
