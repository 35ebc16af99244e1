"""Untrusted text made inert for the robots: properties over arbitrary text, the hostile
examples people actually send, and the everyday ids and values left exactly as they were."""

from __future__ import annotations

import asyncio
import os
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.alerts import Alert, AlertEvent
from core.settings import ChannelSettings
from rules.notify import render
from rules.notify.dingtalk import DingTalkChannel
from rules.notify.markup import Style, neutralise
from rules.notify.wecom import WeComChannel, WeComMsgType
from simulators.robots import (
    Rendering,
    at_marks,
    dingtalk_rendering,
    markdown_headings,
    markdown_links,
    markup_tags,
    text_links,
    wecom_rendering,
)

CONSOLE = "http://127.0.0.1:8000/console"
T0 = 1_767_225_600_000
# The same examples on every CI run; no example database in the tree.
FIXED = os.environ.get("CI", "").lower() == "true"
# Pieces of markup, links and mentions, so generated text is mostly attack and little noise.
TOKENS = [
    *"[]()!#*_`~<>@&|\\:/.=-+ \n\r\t",
    "\u2028",
    "\x85",
    "\x1c",
    "\u202e",
    "http://",
    "https://evil.example/x?a=1",
    "dingtalk://",
    "www.",
    ".com",
    "evil",
    "10.0.0.1",
    "9.3",
    "13800000000",
    "@all",
    "<@zhangsan>",
    '<font color="warning">',
    "</font>",
    "<a href='http://evil'>",
    "](",
    "![",
    "\n### ",
    "\n===",
    "\n---",
    "\n> ",
    "\n- ",
    "\n1. ",
    "    ",
    "[ref]: http://evil\n",
    "&#91;",
    "冷库",
    "ａ",
]
hostile_text = st.one_of(
    st.text(max_size=80),
    st.lists(st.one_of(st.sampled_from(TOKENS), st.characters()), max_size=30).map("".join),
)
HOSTILE = [
    "[click](http://evil)\n### x",
    "![p](http://evil/p.png) [r][1]\n[1]: http://evil",
    '<font color="warning">紧急：请转账</font> <a href="http://evil">x</a> <@lisi>',
    "@13800000000 @all 请处理",
    "**bold** _it_ `code`\n> quoted\n- item\n1. first",
    "x\r# carriage\u2028## separator\x85### next line",
    "www.evil.com evil.com 10.0.0.1 ops@evil.co http://evil.com/a?b=c",
    "&#91;x&#93;(http://evil) &lt;b&gt;",
    "title\n===\nsub\n---",
    "\u202eevil\u202c reversed",
    "    indented code\n\n\tmore",
]
EVERYDAY = [
    "coldroom-1",
    "tasmota_ABC123",
    "WH1/cold",
    "SKU-88",
    "9.3 °C",
    "t1 reads 9.3 °C, above the 2–8 °C band for 120 s",
    "冷库 1 号",
    "aisle-a",
    "projected 9 ≤ 10; suggested purchase of 36",
]


def reads_as(text: str) -> str:
    """What a reader reads: invisible marks dropped, compatibility forms folded (NFKC), and
    whitespace taken as word breaks only."""
    # A lone surrogate cannot be sent (not UTF-8): it reads as the replacement character.
    text = "".join("\ufffd" if unicodedata.category(c) == "Cs" else c for c in text)
    kept = "".join(c for c in text if c.isspace() or unicodedata.category(c) not in ("Cc", "Cf"))
    return " ".join(unicodedata.normalize("NFKC", kept).split())


def assert_inert(fragment: str, style: Style) -> None:
    """Nothing in ``fragment`` takes effect as markup in ``style``."""
    assert len(fragment.splitlines()) <= 1
    assert at_marks(fragment) == []
    assert markup_tags(fragment) == []
    if style == "markdown":
        assert markdown_links(fragment) == []
        assert markdown_headings(fragment) == []
        # In place, too: after our own list-item label and inside our heading.
        assert markdown_links(f"- **Detail**: {fragment}") == []
        assert markdown_headings(f"### [ALERT][CRITICAL] Sensor offline {fragment}") == [
            f"[ALERT][CRITICAL] Sensor offline {fragment}".strip()
        ]
    else:
        assert text_links(fragment) == []


# -- the function -------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["markdown", "text"])
@settings(max_examples=300, deadline=None, derandomize=FIXED, database=None)
@given(text=hostile_text)
@example(text="[click](http://evil)\n### x")
@example(text="www.-evil.com 1.2.3.4 a_.b")
def test_any_text_is_inert_and_reads_the_same(style: Style, text: str) -> None:
    shown = neutralise(text, style)
    assert_inert(shown, style)
    assert reads_as(shown) == reads_as(text)
    assert neutralise(shown, style) == shown  # neutralising twice changes nothing


@pytest.mark.parametrize("text", HOSTILE)
@pytest.mark.parametrize("style", ["markdown", "text"])
def test_hostile_examples_are_inert_and_still_visible(style: Style, text: str) -> None:
    shown = neutralise(text, style)
    assert_inert(shown, style)
    assert reads_as(shown) == reads_as(text)


def test_the_status_reason_example_reads_as_sent() -> None:
    reason = "[click](http://evil)\n### x"
    assert neutralise(reason, "markdown") == "［click］(http：//evil) ＃＃＃ x"
    assert neutralise(reason, "text") == "[click](http：//evil) ### x"
    assert neutralise("@13800000000", "text") == "＠13800000000"
    assert neutralise("<@lisi>", "markdown") == "＜＠lisi＞"


@pytest.mark.parametrize("text", EVERYDAY)
@pytest.mark.parametrize("style", ["markdown", "text"])
def test_everyday_ids_and_values_are_left_alone(style: Style, text: str) -> None:
    assert neutralise(text, style) == text


def test_host_names_keep_their_look_but_lose_their_link() -> None:
    shown = neutralise("evil.com", "text")
    assert shown != "evil.com"
    assert reads_as(shown) == "evil.com"
    assert len(shown) == len("evil.com") + 1  # one invisible joiner, nothing else


# -- through the real rendering ---------------------------------------------------------------


def hostile_alert(text: str, *, in_where: bool = True) -> Alert:
    """An alert with ``text`` in every field that comes from outside (site and zone only when
    ``in_where``: those are ids of at most 64 characters in practice)."""
    return Alert(
        id=7,
        source=f"wh1/temp/{text}",
        type="sensor_offline",
        severity="major",
        state="active",
        site=f"wh1{text}" if in_where else "wh1",
        zone=(text or None) if in_where else "cold",
        title=text,
        message=f"{text} announced it is offline ({text})",
        value=12.0,
        threshold=6.0,
        details={"device": text, "sensor": text, "sku": text, "unit": text, "reason": text},
        raised_at=T0,
        cleared_at=None,
        acked_by=None,
        acked_at=None,
        updated_at=T0,
    )


@contextmanager
def channels(
    wecom_type: WeComMsgType,
) -> Iterator[tuple[DingTalkChannel, WeComChannel]]:
    ding = DingTalkChannel(
        ChannelSettings.model_validate(
            {
                "name": "d",
                "kind": "dingtalk",
                "url": "http://127.0.0.1:9/robot/send?access_token=tok-123456",
                "language": "en",
                "at_mobiles": ["13800000000"],
                "at_user_ids": ["ops1"],
            }
        ),
        console_url=CONSOLE,
    )
    wecom = WeComChannel(
        ChannelSettings.model_validate(
            {
                "name": "w",
                "kind": "wecom",
                "url": "http://127.0.0.1:9/cgi-bin/webhook/send?key=key-123456",
                "at_user_ids": ["zhangsan"],
            }
        ),
        console_url=CONSOLE,
        msgtype=wecom_type,
    )
    try:
        yield ding, wecom
    finally:
        asyncio.run(ding.aclose())
        asyncio.run(wecom.aclose())


def assert_only_ours(
    shown: Rendering, alert: Alert, *, mentions: set[str], heading: str | None
) -> None:
    assert set(shown.links) <= {render.alert_link(alert, CONSOLE)}
    assert set(shown.headings) <= ({heading.strip()} if heading else set())
    assert set(shown.mentions) <= mentions
    assert set(shown.mention_marks) <= mentions
    assert shown.tags == ()


@pytest.mark.parametrize("wecom_type", ["markdown", "text"])
@settings(max_examples=60, deadline=None, derandomize=FIXED, database=None)
@given(text=hostile_text, event=st.sampled_from(["raised", "cleared"]))
def test_rendered_messages_carry_only_our_links_headings_and_mentions(
    wecom_type: WeComMsgType, text: str, event: AlertEvent
) -> None:
    alert = hostile_alert(text)
    with channels(wecom_type) as (ding, wecom):
        for payload in ding.render(alert, event):
            shown = dingtalk_rendering(payload)
            ours = render.title(alert, event, "en")
            assert_only_ours(shown, alert, mentions={"13800000000", "ops1"}, heading=ours)
            assert payload["at"]["atMobiles"] in ([], ["13800000000"])
            assert text_links(shown.title) == []
            assert at_marks(shown.title) == []
        for payload in wecom.render(alert, event):
            shown = wecom_rendering(payload)
            zh = render.title(alert, event, "zh") if wecom_type == "markdown" else None
            assert_only_ours(shown, alert, mentions={"zhangsan"}, heading=zh)


def templated_alert(type_: str, text: str) -> Alert:
    """An alert of ``type_`` whose every string field a detail sentence shows holds ``text``."""
    value, threshold, details = TEMPLATED[type_]
    return Alert(
        id=8,
        source="wh1/x",
        type=type_,
        severity="major",
        state="active",
        site="wh1",
        zone=None,
        title="t",
        message=f"rule: {text}",
        value=value,
        threshold=threshold,
        details={k: text if v == "T" else v for k, v in details.items()},
        raised_at=T0,
        cleared_at=None,
        acked_by=None,
        acked_at=None,
        updated_at=T0,
    )


# "T" marks where the hostile text goes: each string a detail sentence shows (the subject's
# device, SKU and EPC are covered by the tests above).
TEMPLATED: dict[str, tuple[float | None, float | None, dict[str, object]]] = {
    "sensor_offline": (None, None, {"device": "T", "reason": "T"}),
    "cold_chain_cumulative": (1500.0, 1200.0, {"day": "T", "band_low": 2.0, "band_high": 8.0}),
    "misplaced_item": (None, None, {"epc": "3034", "sku": "S1", "home_zone": "T"}),
    "reorder": (9.0, 10.0, {"qty": 36.0, "name": "T", "supplier": "T"}),
    "expiry_alert": (3.0, None, {"lot": "T", "location": "T", "expiration_at": T0, "removal_at": None}),  # noqa: E501
    "expired_on_shelf": (3.0, None, {"lot": "T", "location": "T", "removal_at": T0}),
    "channel_health": (None, None, {"channel": "T"}),
    "store_rejecting": (3.0, None, {"reason": "T", "message": "T"}),
}  # fmt: skip


@pytest.mark.parametrize("type_", sorted(TEMPLATED))
@pytest.mark.parametrize("style", ["markdown", "text"])
@settings(max_examples=40, deadline=None, derandomize=FIXED, database=None)
@given(text=hostile_text.filter(lambda t: t.strip() != ""), language=st.sampled_from(["zh", "en"]))
def test_data_in_detail_sentences_is_inert_and_reads_as_sent(
    type_: str, style: Style, text: str, language: render.Language
) -> None:
    sentence = render.templated_detail(templated_alert(type_, text), language, style)
    assert sentence is not None
    assert_inert(sentence, style)
    assert reads_as(text) in reads_as(sentence)


@pytest.mark.parametrize("wecom_type", ["markdown", "text"])
def test_a_message_cut_to_fit_opens_no_heading_on_its_cut_lines(wecom_type: WeComMsgType) -> None:
    # Long enough to be cut many times, with a trigger after every space a cut may use, and
    # a run with no space at all, cut between characters: were such a piece to start a line
    # under another, it would be a setext underline. Each starts a numbered part instead.
    text = " ".join(["=== ### > - 1. [a](http://evil) <@x> @13800000000"] * 300) + "=" * 9000
    alert = hostile_alert(text, in_where=False)
    with channels(wecom_type) as (ding, wecom):
        dings = ding.render(alert, "raised")
        wecoms = wecom.render(alert, "raised")
        assert len(dings) > 1
        assert len(wecoms) > 1
        for payload in dings:
            assert_only_ours(
                dingtalk_rendering(payload), alert, mentions={"13800000000", "ops1"}, heading=None
            )
        for payload in wecoms:
            assert_only_ours(wecom_rendering(payload), alert, mentions={"zhangsan"}, heading=None)


@pytest.mark.parametrize("style", ["markdown", "text"])
def test_lone_surrogates_become_replacement_characters_that_encode(style: Style) -> None:
    shown = neutralise("wh1\ud800/\udfff", style)
    assert shown == "wh1\ufffd/\ufffd"
    assert shown.encode() == "wh1\ufffd/\ufffd".encode()
