"""MQTT topic layout of the canonical wire contract (v1).

``stocksense/v1/{site}/{kind}/{device}/{channel}`` with kind in weight|temp|rfid and channel
in data|status. Status messages are retained (birth and Last Will).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, cast, get_args

from paho.mqtt.client import topic_matches_sub

from core.errors import TopicError
from core.identifiers import SEGMENT_RE

ROOT = "stocksense/v1"
DEADLETTER_TOPIC = f"{ROOT}/_deadletter"

Kind = Literal["weight", "temp", "rfid"]
Channel = Literal["data", "status"]
KINDS: tuple[str, ...] = get_args(Kind)
CHANNELS: tuple[str, ...] = get_args(Channel)
MAX_TOPIC_LENGTH = 65_535  # MQTT UTF-8 string limit


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed canonical topic."""

    site: str
    kind: Kind
    device: str
    channel: Channel

    device_key: str = field(init=False, compare=False)
    """``site/kind/device``: identifies one device across its channels."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "device_key", f"{self.site}/{self.kind}/{self.device}")

    def __str__(self) -> str:
        return f"{ROOT}/{self.site}/{self.kind}/{self.device}/{self.channel}"


def build(site: str, kind: Kind, device: str, channel: Channel = "data") -> str:
    """Return the topic for one device channel, checking every segment."""
    for name, value in (("site", site), ("device", device)):
        if not SEGMENT_RE.fullmatch(value):
            raise TopicError(f"{name} {value!r} must match {SEGMENT_RE.pattern}")
    return str(Topic(site=site, kind=kind, device=device, channel=channel))


_PARSED: dict[str, Topic] = {}
_PARSED_MAX = 100_000


def parse(topic: str) -> Topic:
    """Parse a canonical topic or raise :class:`TopicError` saying what is wrong.

    Results are memoised: a fleet publishes on a bounded set of topics, and parsing is on the
    ingest hot path.
    """
    found = _PARSED.get(topic)
    if found is not None:
        return found
    parsed = _parse(topic)
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.clear()
    _PARSED[topic] = parsed
    return parsed


def _parse(topic: str) -> Topic:
    parts = topic.split("/")
    if len(parts) != 6 or f"{parts[0]}/{parts[1]}" != ROOT:
        raise TopicError(f"topic {topic!r} is not {ROOT}/<site>/<kind>/<device>/<channel>")
    _, _, site, kind, device, channel = parts
    if not SEGMENT_RE.fullmatch(site):
        raise TopicError(f"site segment {site!r} must match {SEGMENT_RE.pattern}")
    if not SEGMENT_RE.fullmatch(device):
        raise TopicError(f"device segment {device!r} must match {SEGMENT_RE.pattern}")
    if kind not in KINDS:
        raise TopicError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    if channel not in CHANNELS:
        raise TopicError(f"channel {channel!r} is not one of {', '.join(CHANNELS)}")
    return Topic(
        site=site, kind=cast("Kind", kind), device=device, channel=cast("Channel", channel)
    )


# Levels below ``{ROOT}/{site}``: the contract's three and deeper (``#`` also matches its
# parent level), then two and one.
_SHAPES = ("+/+/+/#", "+/+", "+")


def subscription(
    share_group: str | None = None, sites: tuple[str, ...] = (), extra: tuple[str, ...] = ()
) -> list[str]:
    """Topic filters for an ingest worker: all sites or only ``sites``, plus ``extra`` vendor
    filters; every filter is shared when a group is set.

    Besides the contract's depth, the filters take topics one or two levels shallower and any
    deeper, so that a device publishing on a wrong topic is dead-lettered (``bad_topic``)
    instead of never being seen. The filters do not overlap (a broker may deliver a message
    once per matching filter), and none matches ``{ROOT}/<name>``, where the dead-letter
    topic lives.
    """
    scopes = [f"{ROOT}/{site}" for site in sites] if sites else [f"{ROOT}/+"]
    filters = [f"{scope}/{levels}" for scope in scopes for levels in _SHAPES]
    filters += [f for f in extra if not f.startswith(f"{ROOT}/")]
    if share_group:
        return [f"$share/{share_group}/{f}" for f in filters]
    return filters


def validate_filter(pattern: str) -> str:
    """Return an MQTT topic filter, or raise :class:`TopicError` saying what is wrong.

    ``+`` must fill a whole level and ``#`` the whole last level; the filter is 1 to 65,535
    characters with no NUL.
    """
    if not pattern or len(pattern) > MAX_TOPIC_LENGTH or "\x00" in pattern:
        raise TopicError(f"topic filter {pattern!r} must be 1..{MAX_TOPIC_LENGTH} chars, no NUL")
    levels = pattern.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise TopicError(f"topic filter {pattern!r}: '#' must be the whole last level")
        if "+" in level and level != "+":
            raise TopicError(f"topic filter {pattern!r}: '+' must be a whole level")
    return pattern


def matches(pattern: str, topic: str) -> bool:
    """MQTT 3.1.1/5 matching of a topic name against a valid topic filter (paho's matcher).

    ``+`` matches exactly one level (which may be empty), ``#`` matches the parent level and
    any number of levels below it, and a filter starting with a wildcard does not match
    topics starting with ``$`` (broker-internal topics such as ``$SYS``). A topic name with a
    wildcard or no character is not one a broker delivers: nothing matches it.
    """
    if not topic or "+" in topic or "#" in topic:
        return False
    return topic_matches_sub(pattern, topic)
