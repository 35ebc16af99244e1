"""Impinj R700/R720 IoT Device Interface events (MQTT data output) -> canonical readings.

Payload: one event object, a JSON array of events, or newline-delimited events (the HTTP
stream framing, which some bridges forward unchanged). Each event has ``timestamp``,
optional ``hostname``, ``eventType`` and a ``<eventType>Event`` object.

* ``tagInventory``: one TagSample. The EPC is base64url in ``epc`` (reader default) or hex in
  ``epcHex``; when both are present they must agree. ``peakRssiCdbm`` is centi-dBm (/100).
  ``lastSeenTime`` stamps the read when present, else the event ``timestamp``. A missing
  ``antennaPort`` becomes antenna 1, the canonical contract's default.
* ``antennaConnected``, ``antennaDisconnected``, ``inventoryStatus``, ``inventoryTerminated``
  and ``heartbeat``: a DeviceStatus with ``online=True`` (the reader is talking) and the event
  type plus its port/status as ``reason``.
* Any other event type (``diagnostic``, GPI/GPO, location events...) is skipped and logged at
  debug level; it carries no reading StockSense stores.

Timestamps are ISO 8601 text with an offset or integer epoch nanoseconds. Any malformed event
rejects the whole message (it is dead-lettered with its payload), so tag reads are never
dropped silently. Device id: the route's device segment, else ``hostname``, else the
second-to-last topic segment (``impinj/<reader>/events``).
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from typing import Annotated, Any

from pydantic import Field

from core.bounds import RSSI_DBM
from core.errors import PayloadError
from core.identifiers import EPC_HEX_RE
from core.readings import DeviceStatus, Sample, TagSample
from ingest.adapters._common import (
    AdapterContext,
    VendorModel,
    check_name,
    check_ts_ms,
    device_key,
    load_json,
    parse_iso,
    topic_device,
    validate,
)
from ingest.decode import Decoded, check_size

logger = logging.getLogger(__name__)

KIND = "rfid"
STATUS_EVENTS = frozenset(
    {
        "antennaConnected",
        "antennaDisconnected",
        "inventoryStatus",
        "inventoryTerminated",
        "heartbeat",
    }
)
_B64URL_RE = re.compile(r"^[A-Za-z0-9_\-]+={0,2}\Z")
_NS_PER_MS = 1_000_000


class TagInventoryEvent(VendorModel):
    """The ``tagInventoryEvent`` object (fields StockSense uses; others are ignored)."""

    epc: str | None = None
    epc_hex: str | None = Field(default=None, alias="epcHex")
    antenna_port: Annotated[int, Field(ge=1, le=64)] | None = Field(
        default=None, alias="antennaPort"
    )
    peak_rssi_cdbm: int | None = Field(default=None, alias="peakRssiCdbm")
    last_seen_time: str | int | None = Field(default=None, alias="lastSeenTime")


class ImpinjEvent(VendorModel):
    """One IoT Device Interface event envelope."""

    timestamp: str | int
    hostname: str | None = None
    event_type: str = Field(alias="eventType")
    tag_inventory_event: TagInventoryEvent | None = Field(default=None, alias="tagInventoryEvent")


def adapt(topic: str, payload: bytes, received_ms: int, ctx: AdapterContext) -> Decoded:
    """Decode one Impinj MQTT message into TagSamples and DeviceStatus readings."""
    del received_ms  # every Impinj event carries its own timestamp
    check_size(payload)
    raw_events = _load_events(payload)
    fallback = topic_device(topic, ctx, -2)
    samples: list[Sample] = []
    key_device = fallback
    for index, raw in enumerate(raw_events):
        where = f"event {index}: " if len(raw_events) > 1 else ""
        if not isinstance(raw, dict):
            raise PayloadError("schema", f"{where}an event must be a JSON object")
        event = validate(ImpinjEvent, raw, where)
        device = _device(event, ctx, fallback, where)
        if index == 0:
            key_device = device
        sample = _sample(event, raw, device, ctx, where)
        if sample is not None:
            samples.append(sample)
    return Decoded(samples, None, device_key(ctx.site, KIND, key_device))


def _load_events(payload: bytes) -> list[Any]:
    """The events of a message: one object, an array, or newline-delimited objects."""
    try:
        parsed = load_json(payload)
    except PayloadError as whole_error:
        lines = [line for line in payload.splitlines() if line.strip()]
        if len(lines) < 2 or whole_error.reason != "invalid_json":
            raise
        events: list[Any] = []
        for number, line in enumerate(lines, start=1):
            try:
                events.append(load_json(line))
            except PayloadError as exc:
                raise PayloadError(exc.reason, f"line {number}: {exc.detail}") from None
        return events
    if isinstance(parsed, list):
        return parsed
    return [parsed]


def _device(event: ImpinjEvent, ctx: AdapterContext, fallback: str, where: str) -> str:
    if ctx.device is not None:
        return ctx.device
    if event.hostname is not None:
        return check_name(event.hostname, f"{where}hostname")
    return fallback


def _ts_ms(value: str | int, what: str) -> int:
    if isinstance(value, int):
        # Integer timestamps on this interface are epoch nanoseconds.
        return check_ts_ms(value // _NS_PER_MS, what)
    return parse_iso(value, what)


def _sample(
    event: ImpinjEvent, raw: dict[str, Any], device: str, ctx: AdapterContext, where: str
) -> Sample | None:
    ts = _ts_ms(event.timestamp, f"{where}timestamp")
    if event.event_type == "tagInventory":
        tag = event.tag_inventory_event
        if tag is None:
            raise PayloadError("missing_field", f"{where}tagInventoryEvent: Field required")
        return _tag(tag, ts, device, ctx, where)
    if event.event_type in STATUS_EVENTS:
        return DeviceStatus(
            site=ctx.site,
            kind=KIND,
            device=device,
            ts_ms=ts,
            online=True,
            reason=_status_reason(event.event_type, raw.get(f"{event.event_type}Event")),
        )
    if event.tag_inventory_event is not None:
        # Tag data under another event type is not a format we know: refuse it rather than
        # lose the reads.
        raise PayloadError(
            "schema", f"{where}eventType {event.event_type!r} carries a tagInventoryEvent"
        )
    logger.debug("impinj event type %s from %s ignored", event.event_type, device)
    return None


def _status_reason(event_type: str, body: Any) -> str:
    details = []
    if isinstance(body, dict):
        for field in ("antennaPort", "status"):
            value = body.get(field)
            if isinstance(value, str) and not value.isprintable():
                # Control characters and lone surrogates (valid in JSON text) are escaped: a
                # surrogate cannot be encoded as UTF-8 for the InfluxDB write.
                value = value.encode("unicode_escape").decode("ascii")
            if isinstance(value, str | int) and not isinstance(value, bool):
                details.append(f"{field}={value}")
    return " ".join([event_type, *details])[:256]


def _tag(
    tag: TagInventoryEvent, ts: int, device: str, ctx: AdapterContext, where: str
) -> TagSample:
    epc = _epc(tag, where)
    rssi = None
    cdbm = tag.peak_rssi_cdbm
    if cdbm is not None:
        # Range-checked as an integer first: dividing a huge one raises OverflowError.
        if not RSSI_DBM.low * 100 <= cdbm <= RSSI_DBM.high * 100:
            raise PayloadError(
                "out_of_range",
                f"{where}peakRssiCdbm {cdbm} is outside {RSSI_DBM.low * 100:.0f}..0 centi-dBm",
            )
        rssi = cdbm / 100
    if tag.last_seen_time is not None:
        ts = _ts_ms(tag.last_seen_time, f"{where}lastSeenTime")
    return TagSample(
        site=ctx.site,
        device=device,
        antenna=tag.antenna_port if tag.antenna_port is not None else 1,
        ts_ms=ts,
        epc=epc,
        rssi=rssi,
    )


def _epc(tag: TagInventoryEvent, where: str) -> str:
    from_hex = None
    if tag.epc_hex is not None:
        if not EPC_HEX_RE.fullmatch(tag.epc_hex):
            raise PayloadError("schema", f"{where}epcHex {tag.epc_hex!r} is not 8..128 hex digits")
        from_hex = tag.epc_hex.upper()
    from_b64 = None
    if tag.epc is not None:
        from_b64 = _b64url_to_hex(tag.epc, where)
    if from_hex is not None and from_b64 is not None and from_hex != from_b64:
        raise PayloadError("schema", f"{where}epc {tag.epc!r} and epcHex {tag.epc_hex!r} disagree")
    epc = from_hex or from_b64
    if epc is None:
        raise PayloadError("missing_field", f"{where}tagInventoryEvent: epc or epcHex required")
    return epc


def _b64url_to_hex(text: str, where: str) -> str:
    if not _B64URL_RE.fullmatch(text):
        raise PayloadError("schema", f"{where}epc {text!r} is not base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise PayloadError("schema", f"{where}epc {text!r} is not base64url") from None
    epc = raw.hex().upper()
    if not EPC_HEX_RE.fullmatch(epc):
        raise PayloadError("schema", f"{where}epc {text!r} decodes to {len(raw)} bytes, not 4..64")
    return epc
