"""Zebra IoT Connector (FX7500/FX9600/ATR7000) data and management events -> canonical readings.

Payload: one event object or a JSON array of events (batched output). Each event is
``{"type": ..., "timestamp": ..., "data": {...}}``; timestamps are ISO 8601 with ``Z``,
``+00:00`` or ``+0000`` offsets.

* ``SIMPLE``, ``CUSTOM`` and ``INVENTORY`` events: one TagSample from ``data.idHex``.
  ``antenna`` and ``peakRssi`` (dBm) appear only when tag metadata is enabled on the
  connector; a missing antenna becomes 1, the canonical contract's default, and a missing
  RSSI stays None. ``reads`` is the read count. A ``format`` other than ``epc`` means
  ``idHex`` is not an EPC, so the event is refused. CUSTOM events are accepted when their
  ``data`` keeps the SIMPLE field names.
* ``heartbeat`` events: a DeviceStatus with ``online=True``.
* Any other type (management responses, alerts...) is skipped and logged at debug level.

A malformed event rejects the whole message (dead-lettered with its payload), so reads are
never dropped silently. Device id: the route's device segment, else the second-to-last topic
segment (``zebra/<reader>/data``): the tag events do not name the reader.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from pydantic import Field

from core.bounds import RSSI_DBM
from core.errors import PayloadError
from core.identifiers import EPC_HEX_RE
from core.readings import DeviceStatus, Sample, TagSample
from ingest.adapters._common import (
    AdapterContext,
    VendorModel,
    check_range,
    device_key,
    load_json,
    parse_iso,
    topic_device,
    validate,
)
from ingest.decode import Decoded, check_size

logger = logging.getLogger(__name__)

KIND = "rfid"
TAG_TYPES = frozenset({"SIMPLE", "CUSTOM", "INVENTORY"})
HEARTBEAT_TYPES = frozenset({"HEARTBEAT"})


class ZebraTagData(VendorModel):
    """The ``data`` object of a tag event (fields StockSense uses; others are ignored)."""

    id_hex: str = Field(alias="idHex")
    format: str | None = None
    antenna: Annotated[int, Field(ge=1, le=64)] | None = None
    peak_rssi: float | None = Field(default=None, alias="peakRssi")
    reads: Annotated[int, Field(ge=1, le=1_000_000)] | None = None


class ZebraEvent(VendorModel):
    """One IoT Connector event envelope; ``data`` is checked per type."""

    type: str
    timestamp: str
    data: dict[str, Any] | None = None


def adapt(topic: str, payload: bytes, received_ms: int, ctx: AdapterContext) -> Decoded:
    """Decode one Zebra IoT Connector message into TagSamples and DeviceStatus readings."""
    del received_ms  # every event carries its own timestamp
    check_size(payload)
    parsed = load_json(payload)
    raw_events: list[Any] = parsed if isinstance(parsed, list) else [parsed]
    device = topic_device(topic, ctx, -2)
    samples: list[Sample] = []
    for index, raw in enumerate(raw_events):
        where = f"event {index}: " if len(raw_events) > 1 else ""
        if not isinstance(raw, dict):
            raise PayloadError("schema", f"{where}an event must be a JSON object")
        event = validate(ZebraEvent, raw, where)
        sample = _sample(event, device, ctx, where)
        if sample is not None:
            samples.append(sample)
    return Decoded(samples, None, device_key(ctx.site, KIND, device))


def _sample(event: ZebraEvent, device: str, ctx: AdapterContext, where: str) -> Sample | None:
    kind = event.type.upper()
    ts = parse_iso(event.timestamp, f"{where}timestamp")
    if kind in TAG_TYPES:
        if event.data is None:
            raise PayloadError("missing_field", f"{where}data: Field required")
        data = validate(ZebraTagData, event.data, f"{where}data.")
        return _tag(data, ts, device, ctx, where)
    if kind in HEARTBEAT_TYPES:
        return DeviceStatus(site=ctx.site, kind=KIND, device=device, ts_ms=ts, online=True)
    logger.debug("zebra event type %s from %s ignored", event.type, device)
    return None


def _tag(data: ZebraTagData, ts: int, device: str, ctx: AdapterContext, where: str) -> TagSample:
    if data.format is not None and data.format.lower() != "epc":
        raise PayloadError("schema", f"{where}data.format {data.format!r}: idHex is not an EPC")
    if not EPC_HEX_RE.fullmatch(data.id_hex):
        raise PayloadError("schema", f"{where}data.idHex {data.id_hex!r} is not 8..128 hex digits")
    rssi = None
    if data.peak_rssi is not None:
        rssi = check_range(data.peak_rssi, RSSI_DBM, f"{where}data.peakRssi dBm")
    return TagSample(
        site=ctx.site,
        device=device,
        antenna=data.antenna if data.antenna is not None else 1,
        ts_ms=ts,
        epc=data.id_hex.upper(),
        rssi=rssi,
        count=data.reads if data.reads is not None else 1,
    )
