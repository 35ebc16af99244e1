"""Canonical payload decoding: topic + bytes -> validated readings, or a PayloadError."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import TypeAdapter, ValidationError

from core import topics
from core.errors import PayloadError, TopicError
from core.models import RfidMessage, StatusMessage, TempMessage, WeightMessage
from core.readings import DeviceStatus, Sample, TagSample, TempSample, WeightSample

MAX_PAYLOAD_BYTES = 256 * 1024

_weight = TypeAdapter(WeightMessage)
_temp = TypeAdapter(TempMessage)
_rfid = TypeAdapter(RfidMessage)
_status = TypeAdapter(StatusMessage)

# pydantic error types mapped to dead-letter reasons operators can group by.
_REASONS = {
    "json_invalid": "invalid_json",
    "json_type": "invalid_json",
    "finite_number": "not_finite",
    "missing": "missing_field",
    "extra_forbidden": "unknown_field",
    "greater_than_equal": "out_of_range",
    "less_than_equal": "out_of_range",
    "greater_than": "out_of_range",
    "less_than": "out_of_range",
}


def validation_reason(exc: ValidationError) -> tuple[str, str]:
    """A reason code and a readable one-line detail for a pydantic validation error."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    reason = _REASONS.get(first["type"], "schema")
    detail = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in errors[:5]
    )
    if len(errors) > 5:
        detail += f"; and {len(errors) - 5} more"
    return reason, detail


def check_size(payload: bytes) -> None:
    """Refuse payloads above the ingest limit before any parsing."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError("oversize", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES} bytes")


@dataclass(slots=True)
class Decoded:
    """The readings of one message, with its per-device ``seq`` (None for status messages)."""

    samples: list[Sample]
    seq: int | None
    device_key: str


def decode_canonical(topic: str, payload: bytes, received_ms: int) -> Decoded:
    """Decode one canonical v1 message into readings.

    ``received_ms`` stamps status messages that carry no ``ts`` (a Last Will is composed at
    connect time, so it cannot know when it will be sent).
    """
    check_size(payload)
    try:
        parsed = topics.parse(topic)
    except TopicError as exc:
        raise PayloadError("bad_topic", str(exc)) from None
    site, device, key = parsed.site, parsed.device, parsed.device_key
    try:
        if parsed.channel == "status":
            status = _status.validate_json(payload)
            ts = status.ts if status.ts is not None else received_ms
            sample = DeviceStatus(
                site=site,
                kind=parsed.kind,
                device=device,
                ts_ms=ts,
                online=status.online,
                interval_s=status.interval_s,
                reason=status.reason,
            )
            return Decoded([sample], None, key)
        samples: list[Sample]
        if parsed.kind == "temp":
            temp = _temp.validate_json(payload)
            # Positional arguments: this is the hottest constructor of the ingest path.
            samples = [
                TempSample(
                    site, device, r.sensor, temp.ts if r.ts is None else r.ts, r.celsius, r.humidity
                )
                for r in temp.readings
            ]
            return Decoded(samples, temp.seq, key)
        if parsed.kind == "weight":
            weight = _weight.validate_json(payload)
            samples = [
                WeightSample(
                    site, device, r.cell, weight.ts if r.ts is None else r.ts, r.grams, r.stable
                )
                for r in weight.readings
            ]
            return Decoded(samples, weight.seq, key)
        rfid = _rfid.validate_json(payload)
        samples = [
            TagSample(
                site=site,
                device=device,
                antenna=r.antenna,
                ts_ms=r.ts if r.ts is not None else rfid.ts,
                epc=r.epc.upper(),
                rssi=r.rssi,
                count=r.count,
            )
            for r in rfid.reads
        ]
        return Decoded(samples, rfid.seq, key)
    except ValidationError as exc:
        reason, detail = validation_reason(exc)
        raise PayloadError(reason, detail) from None
