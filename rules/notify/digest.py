"""Digests: many alert events folded into few messages when a robot's budget is spent.

A digest names every event it covers, so nothing is silently dropped: the most severe ones
(oldest first within a severity) get a summary line each, the rest are listed by id on a
compact "and also" line, and a continuation part follows when even that does not fit. Each
part carries the keys (outbox row ids) of the events it names, so the notifier marks exactly
those rows sent once that part is accepted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from core.alerts import Alert, AlertEvent
from rules.notify import render
from rules.notify.markup import Style
from rules.notify.render import Language, SiteTimezones
from rules.notify.textsplit import Measure, utf8_len

DEFAULT_TOP = 10
_NUMBER_ROOM = " (999/999)"
_WORDS = {
    "zh": {
        "title": "告警汇总：{n} 条",
        "note": "发送频率已达机器人上限（每分钟 20 条），以下告警已合并为汇总消息。",
        "also": "另有（✓=已恢复）",
        "resolved": "已恢复",
    },
    "en": {
        "title": "Alert digest: {n} events",
        "note": "The robot's limit of 20 messages a minute is reached: these events are "
        "folded into a digest.",
        "also": "And also (✓ = resolved)",
        "resolved": "resolved",
    },
}


@dataclass(frozen=True)
class DigestEntry:
    """One pending alert event; ``key`` identifies it to the caller (the outbox row id)."""

    key: int
    alert: Alert
    event: AlertEvent


@dataclass(frozen=True)
class DigestPart:
    """One digest message: its headline, body, and the keys of the entries it names."""

    title: str
    text: str
    keys: frozenset[int]
    has_raised: bool


def order(entries: Sequence[DigestEntry]) -> list[DigestEntry]:
    """Most severe first; within a severity, oldest first (the start of a storm is its cause)."""
    return sorted(
        entries,
        key=lambda e: (
            render.SEVERITY_ORDER.get(e.alert.severity, 99),
            e.alert.raised_at
            if e.event != "cleared"
            else (e.alert.cleared_at or e.alert.raised_at),
            e.key,
        ),
    )


def counts_line(entries: Sequence[DigestEntry], language: Language) -> str:
    """``严重 3 · 重要 10 · 已恢复 2``: raised events by severity, then resolved ones."""
    raised = Counter(e.alert.severity for e in entries if e.event != "cleared")
    parts = [
        f"{render.severity(level, language)} {raised[level]}"
        for level in sorted(raised, key=lambda s: render.SEVERITY_ORDER.get(s, 99))
    ]
    cleared = sum(1 for e in entries if e.event == "cleared")
    if cleared:
        parts.append(f"{_WORDS[language]['resolved']} {cleared}")
    return " · ".join(parts)


def _id_token(entry: DigestEntry) -> str:
    return f"#{entry.alert.id}" + ("✓" if entry.event == "cleared" else "")


class _Part:
    """Lines of one part under construction, with their measured size."""

    def __init__(self, measure: Measure, reserved: int) -> None:
        self.measure = measure
        self.lines: list[str] = []
        self.size = reserved
        self.keys: set[int] = set()
        self.raised = False

    def cost(self, line: str) -> int:
        return self.measure(line) + (self.measure("\n") if self.lines else 0)

    def add(self, line: str) -> None:
        self.size += self.cost(line)
        self.lines.append(line)

    def cover(self, entry: DigestEntry) -> None:
        self.keys.add(entry.key)
        self.raised = self.raised or entry.event != "cleared"


def _fill_top(
    part: _Part,
    rest: list[DigestEntry],
    *,
    top: int,
    bullet: str,
    language: Language,
    style: Style,
    max_size: int,
    timezones: SiteTimezones,
) -> None:
    """Move up to ``top`` entries from ``rest`` into ``part`` as summary lines, while they fit."""
    shown = 0
    while rest and shown < top:
        alert = rest[0].alert
        line = bullet + render.summary_line(
            alert, rest[0].event, language, style, timezones(alert.site)
        )
        if part.size + part.cost(line) > max_size:
            return
        part.add(line)
        part.cover(rest.pop(0))
        shown += 1


def _fill_ids(part: _Part, rest: list[DigestEntry], *, prefix: str, max_size: int) -> int:
    """Name as many entries of ``rest`` by id as fit on one line; returns how many."""
    line = prefix
    size = part.size + part.cost(line)
    taken = 0
    for entry in rest:
        token = ("" if taken == 0 else ", ") + _id_token(entry)
        token_size = part.measure(token)
        if size + token_size > max_size:
            break
        line += token
        size += token_size
        part.cover(entry)
        taken += 1
    if taken:
        part.add(line)
    return taken


def build_digest(
    entries: Sequence[DigestEntry],
    *,
    language: Language,
    console_url: str,
    max_size: int,
    measure: Measure = utf8_len,
    style: Style = "markdown",
    top: int = DEFAULT_TOP,
    timezones: SiteTimezones | None = None,
) -> list[DigestPart]:
    """Fold ``entries`` into as few parts as fit ``max_size`` each (by ``measure``).

    Every entry is named in exactly one part, either by a summary line or by id. Summary lines
    give each alert's time in its site's timezone (``timezones``; UTC when not given).
    """
    if not entries:
        return []
    words = _WORDS[language]
    ordered = order(entries)
    headline = words["title"].format(n=len(ordered))
    heading = "### " if style == "markdown" else ""
    console = render.label("console", language)
    footer = f"[{console}]({console_url})" if style == "markdown" else f"{console}: {console_url}"
    # Room every part keeps for its numbered heading, a blank line and the console link.
    reserved = measure(heading + headline + _NUMBER_ROOM) + 3 * measure("\n") + measure(footer)

    current = _Part(measure, reserved)
    for line in (counts_line(ordered, language), words["note"], ""):
        current.add(line)
    if current.size > max_size:
        raise ValueError(f"max_size {max_size} cannot hold a digest heading")
    rest = list(ordered)
    bullet = "- " if style == "markdown" else "· "
    _fill_top(
        current,
        rest,
        top=top,
        bullet=bullet,
        language=language,
        style=style,
        max_size=max_size,
        timezones=timezones or SiteTimezones(),
    )

    parts: list[_Part] = []
    while rest:
        taken = _fill_ids(current, rest, prefix=f"{words['also']}: ", max_size=max_size)
        del rest[:taken]
        if rest:
            if not current.keys:
                raise ValueError(f"max_size {max_size} cannot hold one digest entry")
            parts.append(current)
            current = _Part(measure, reserved)
    parts.append(current)

    total = len(parts)
    out: list[DigestPart] = []
    for number, part in enumerate(parts, start=1):
        numbered = headline + (f" ({number}/{total})" if total > 1 else "")
        body = [heading + numbered, *part.lines]
        if body[-1] != "":
            body.append("")
        body.append(footer)
        text = "\n".join(body)
        out.append(DigestPart(numbered, text, frozenset(part.keys), part.raised))
    return out
