"""Untrusted text in robot messages: shown to people, never obeyed as markup.

Device ids and status reasons (MQTT), alert messages, SKU names and suppliers (API, catalog)
and error texts of remote services all end up inside our messages. :func:`neutralise` makes
such a string inert for the robot that renders it, while a reader still sees every character.

What the robots interpret (their documented syntax, plus what their clients do anyway):

- DingTalk markdown: ``#`` headings, ``>`` quotes, ``*``/``_`` emphasis, ``[x](y)`` links,
  ``![x](y)`` images, ``-``/``1.`` lists, ``<font ...>`` tags, ``@<mobile|userid>`` mentions
  (honoured when also listed in ``at``), and clients turn bare URLs into links.
- WeCom markdown: headings, bold/italic, links, inline code, quotes, ``<font color=...>``,
  ``<@userid>`` mentions; markdown_v2 adds lists, tables, images.
- Text messages (WeCom ``text``): no markdown, but bare URLs and host names become links, and
  WeCom renders ``<a href>`` in the text messages of its applications.

Neither robot documents backslash escapes, and where one is not honoured the backslash shows
and the link stays live. So nothing here relies on them: each trigger character is replaced
by its full-width compatibility form (``[`` by U+FF3B, ``#`` by U+FF03, ``@`` by U+FF20, ...),
which reads the same, is syntax for no markdown parser or mention matcher, and folds back to
the original under NFKC. Where no look-alike fits (a dot before a letter, digit or hyphen, as
in host names and dotted addresses; IDNA would read a full-width dot as a dot) an invisible
WORD JOINER follows it, so ``evil.com`` still reads ``evil.com`` but matches no link
detector; decimal points (``9.3``) are left alone. The colon of ``://`` becomes a full-width
one. Every line break collapses to a space: data never starts a line, so it can open no heading,
quote, list, code block or setext underline, and cannot fake a line of our own template.
Control characters and bidirectional overrides are dropped (they are invisible, and an
override can make text read in an order other than the one sent).

One table serves both robots' markdown: breaking a trigger of one dialect costs nothing in
the other, and a message or digest is rendered once for either. An ``_`` between two letters
or digits is kept (``tasmota_A1B2C3``): intraword underscores open no emphasis in CommonMark,
and ids read badly otherwise. Only data goes through here, never our own template text.
"""

from __future__ import annotations

import re
from typing import Literal

Style = Literal["markdown", "text"]

WORD_JOINER = "\u2060"

# Line breaks as Python's str.splitlines() and markdown see them (CR alone starts a line too).
_BREAKS = re.compile(r"[ \t\x1f]*(?:[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029][ \t\x1f]*)+")
_BLANKS = re.compile(r"[\t\x1f]")
# C0/C1 controls other than blanks and line breaks, and the bidirectional controls.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
# Lone surrogates are valid in JSON text (an API caller can send "\ud800") but cannot be encoded
# as UTF-8: left in, they would fail the whole message at send time.
_SURROGATES = re.compile("[\ud800-\udfff]")
_SCHEME = re.compile(r":(?=//)")
_DOT = re.compile(r"\.(?=[\w\-])")
_DIGITS_AND_DOTS = frozenset("0123456789.")
_LOOSE_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")

_COMMON = {"@": "＠", "<": "＜", ">": "＞", "&": "＆"}
_TABLES = {
    "text": str.maketrans(_COMMON),
    "markdown": str.maketrans(
        {
            **_COMMON,
            "[": "［",
            "]": "］",
            "#": "＃",
            "*": "＊",
            "`": "｀",
            "~": "～",
            "|": "｜",
            "\\": "＼",
        }
    ),
}


def _is_decimal_point(text: str, at: int) -> bool:
    """True for the lone dot of a number like ``9.3`` (not ``10.0.0.1``, not ``v1.x``)."""
    if not (text[at - 1 : at].isascii() and text[at - 1 : at].isdigit()):
        return False
    if not (text[at + 1 : at + 2].isascii() and text[at + 1 : at + 2].isdigit()):
        return False
    start, end = at, at + 1
    while start > 0 and text[start - 1] in _DIGITS_AND_DOTS:
        start -= 1
    while end < len(text) and text[end] in _DIGITS_AND_DOTS:
        end += 1
    return text.count(".", start, end) == 1


def _break_dot(match: re.Match[str]) -> str:
    return "." if _is_decimal_point(match.string, match.start()) else "." + WORD_JOINER


def neutralise(text: str, style: Style) -> str:
    """``text`` on one line, with no markup, link, mention or tag a robot would act on.

    ``style`` is how the message is rendered: ``markdown`` (DingTalk and WeCom markdown,
    actionCard) or ``text`` (plain text messages, DingTalk titles).
    """
    text = _BREAKS.sub(" ", _INVISIBLE.sub("", text))
    text = _SURROGATES.sub("\ufffd", text)
    text = _BLANKS.sub(" ", text)
    text = _SCHEME.sub("：", text)
    text = _DOT.sub(_break_dot, text)
    if style == "markdown":
        text = _LOOSE_UNDERSCORE.sub("＿", text)
    return text.translate(_TABLES[style])
