"""Payload adapters: a device's native MQTT message -> canonical readings (core.readings).

Routes from config pick the adapter by MQTT topic filter (``+`` and ``#`` wildcards, first
matching route wins). Topics under ``stocksense/v1/`` always use the canonical decoder; a
``canonical`` route matching them may pin their site.

Every adapter has the :class:`Adapter` signature ``(topic, payload, received_ms, ctx)`` and
returns a :class:`ingest.decode.Decoded`. The outcomes are the same for all adapters:

* readings: ``Decoded.samples`` holds TempSample / WeightSample / TagSample / DeviceStatus.
* ignored: a well-formed message the adapter recognises but that carries no reading
  StockSense stores (Impinj ``diagnostic`` events, Zebra management responses, Tasmota
  ``INFO1``/``RESULT``, a Tasmota SENSOR with only ``ENERGY``, Shelly ``NotifyEvent``, a
  Shelly humidity-only change) returns ``Decoded`` with an **empty** ``samples`` list.
  Callers count it as ignored: it is neither dead-lettered nor written.
* garbage: :class:`core.errors.PayloadError` with a reason code shared with the canonical
  decoder (``oversize``, ``invalid_json``, ``not_finite``, ``missing_field``, ``schema``,
  ``out_of_range``, ``bad_topic``, ``no_adapter``); the caller dead-letters the message.
  One malformed event in a batch rejects the whole message, so nothing is dropped silently.

Vendor messages carry no per-device sequence number, so ``Decoded.seq`` is None for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from core import topics
from core.errors import ConfigError, PayloadError
from ingest.adapters import impinj, shelly, tasmota, zebra
from ingest.adapters._common import AdapterContext, WeightUnit, check_name, zone
from ingest.decode import Decoded, check_size, decode_canonical

__all__ = [
    "ADAPTERS",
    "Adapter",
    "AdapterContext",
    "AdapterName",
    "AdapterRoute",
    "decode",
    "match_route",
    "topic_matches",
    "validate_filter",
]

AdapterName = Literal["canonical", "impinj", "zebra", "tasmota", "shelly"]
CANONICAL_PREFIX = f"{topics.ROOT}/"
MAX_TOPIC_LENGTH = 65_535  # MQTT UTF-8 string limit


class Adapter(Protocol):
    """Turns one MQTT message into readings, or raises PayloadError."""

    def __call__(
        self, topic: str, payload: bytes, received_ms: int, ctx: AdapterContext
    ) -> Decoded: ...


def canonical(topic: str, payload: bytes, received_ms: int, ctx: AdapterContext) -> Decoded:
    """The canonical v1 decoder, refusing a topic whose site is not ``ctx.site``."""
    decoded = decode_canonical(topic, payload, received_ms)
    _check_canonical_site(topic, ctx.site)
    return decoded


ADAPTERS: dict[str, Adapter] = {
    "canonical": canonical,
    "impinj": impinj.adapt,
    "zebra": zebra.adapt,
    "tasmota": tasmota.adapt,
    "shelly": shelly.adapt,
}


def validate_filter(pattern: str) -> str:
    """Check an MQTT topic filter: ``+`` fills a whole level, ``#`` only the whole last level."""
    if not pattern or len(pattern) > MAX_TOPIC_LENGTH or "\x00" in pattern:
        raise ValueError(f"topic filter {pattern!r} must be 1..{MAX_TOPIC_LENGTH} chars, no NUL")
    if pattern.startswith("$share/"):
        raise ValueError("route patterns match received topics; drop the $share/<group>/ prefix")
    levels = pattern.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise ValueError(f"topic filter {pattern!r}: '#' must be the whole last level")
        if "+" in level and level != "+":
            raise ValueError(f"topic filter {pattern!r}: '+' must be a whole level")
    return pattern


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT 3.1.1/5 matching of a topic name against a valid topic filter.

    ``+`` matches exactly one level (which may be empty), ``#`` matches the parent level and
    any number of levels below it, and a filter starting with a wildcard does not match
    topics starting with ``$`` (broker-internal topics such as ``$SYS``).
    """
    if not topic or "+" in topic or "#" in topic:
        return False  # not a valid topic name: nothing may match it
    if topic.startswith("$") and pattern[:1] in ("+", "#"):
        return False
    filter_levels = pattern.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level not in ("+", topic_levels[index]):
            return False
    return len(filter_levels) == len(topic_levels)


class AdapterRoute(BaseModel):
    """One config entry: topics matching ``pattern`` are decoded by ``adapter``.

    ``site`` is required for vendor adapters (their topics do not name the site); for
    ``canonical`` None means the site segment of the topic, and a value pins it.
    ``timezone`` is the zone of device-local clocks (Tasmota ``Time``). ``device_segment``
    is the index of the topic level holding the device id (negative counts from the end);
    when unset the adapter's default applies. ``kind`` is the canonical kind of the device
    for status messages, ``weight_unit`` the unit of Tasmota HX711 ``Weight``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    pattern: str
    adapter: AdapterName
    site: str | None = None
    timezone: str = "UTC"
    device_segment: int | None = None
    kind: topics.Kind | None = None
    weight_unit: WeightUnit = "kg"

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        return validate_filter(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            zone(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("site")
    @classmethod
    def _site(cls, value: str | None) -> str | None:
        if value is not None and not topics.SEGMENT_RE.fullmatch(value):
            raise ValueError(f"site {value!r} must match {topics.SEGMENT_RE.pattern}")
        return value

    @model_validator(mode="after")
    def _site_for_vendor(self) -> AdapterRoute:
        if self.adapter != "canonical" and self.site is None:
            raise ValueError(f"a {self.adapter} route needs a site: vendor topics do not carry one")
        return self

    def context(self, topic: str) -> AdapterContext:
        """The AdapterContext for one message on ``topic``."""
        device = None
        if self.device_segment is not None:
            parts = topic.split("/")
            if not -len(parts) <= self.device_segment < len(parts):
                raise PayloadError(
                    "bad_topic", f"topic {topic!r} has no device segment {self.device_segment}"
                )
            segment = parts[self.device_segment]
            device = check_name(segment, f"device segment of {topic!r}", "bad_topic")
        if self.site is None:
            raise ConfigError(f"route {self.pattern!r} has no site")
        return AdapterContext(
            site=self.site,
            timezone=self.timezone,
            device=device,
            kind=self.kind,
            weight_unit=self.weight_unit,
        )


def match_route(routes: Sequence[AdapterRoute], topic: str) -> AdapterRoute | None:
    """The first route whose pattern matches ``topic``, or None."""
    for route in routes:
        if topic_matches(route.pattern, topic):
            return route
    return None


def decode(topic: str, payload: bytes, received_ms: int, routes: Sequence[AdapterRoute]) -> Decoded:
    """Decode one MQTT message with the adapter its topic routes to.

    Raises PayloadError: ``oversize`` before anything else, ``no_adapter`` when no route
    matches, or the adapter's own reason.
    """
    check_size(payload)
    if topic.startswith(CANONICAL_PREFIX):
        pinned = next(
            (r for r in routes if r.adapter == "canonical" and topic_matches(r.pattern, topic)),
            None,
        )
        decoded = decode_canonical(topic, payload, received_ms)
        if pinned is not None and pinned.site is not None:
            _check_canonical_site(topic, pinned.site)
        return decoded
    route = match_route(routes, topic)
    if route is None:
        raise PayloadError("no_adapter", f"no adapter route matches topic {topic!r}")
    if route.adapter == "canonical":
        raise PayloadError("bad_topic", f"topic {topic!r} is not under {CANONICAL_PREFIX}")
    return ADAPTERS[route.adapter](topic, payload, received_ms, route.context(topic))


def _check_canonical_site(topic: str, site: str) -> None:
    topic_site = topic.split("/")[2]
    if topic_site != site:
        raise PayloadError(
            "bad_topic", f"topic site {topic_site!r} is not the route's site {site!r}"
        )
