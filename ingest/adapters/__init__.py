"""Payload adapters: a device's native MQTT message -> canonical readings (core.readings).

Routes from config (:class:`core.settings.AdapterRoute`, validated with the settings) pick the
adapter by MQTT topic filter (``+`` and ``#`` wildcards, first matching route wins). Topics
under ``stocksense/v1/`` always use the canonical decoder; a ``canonical`` route matching them
may pin their site.

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
from typing import Protocol

from core import topics
from core.errors import ConfigError, PayloadError
from core.settings import AdapterRoute
from ingest.adapters import impinj, shelly, tasmota, zebra
from ingest.adapters._common import AdapterContext, device_at
from ingest.decode import Decoded, check_size, decode_canonical

__all__ = [
    "ADAPTERS",
    "Adapter",
    "AdapterContext",
    "AdapterRoute",
    "context",
    "decode",
    "match_route",
]

CANONICAL_PREFIX = f"{topics.ROOT}/"


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


def context(route: AdapterRoute, topic: str) -> AdapterContext:
    """The AdapterContext for one message on ``topic`` routed by ``route``."""
    device = None if route.device_segment is None else device_at(topic, route.device_segment)
    if route.site is None:
        raise ConfigError(f"route {route.pattern!r} has no site")
    return AdapterContext(
        site=route.site,
        timezone=route.timezone,
        device=device,
        kind=route.kind,
        weight_unit=route.weight_unit,
    )


def match_route(routes: Sequence[AdapterRoute], topic: str) -> AdapterRoute | None:
    """The first route whose pattern matches ``topic``, or None."""
    for route in routes:
        if topics.matches(route.pattern, topic):
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
            (r for r in routes if r.adapter == "canonical" and topics.matches(r.pattern, topic)),
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
    return ADAPTERS[route.adapter](topic, payload, received_ms, context(route, topic))


def _check_canonical_site(topic: str, site: str) -> None:
    topic_site = topic.split("/")[2]
    if topic_site != site:
        raise PayloadError(
            "bad_topic", f"topic site {topic_site!r} is not the route's site {site!r}"
        )
