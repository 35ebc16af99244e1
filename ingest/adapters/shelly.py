"""Shelly Gen2 (Plus H&T, Plus AddOn probes...) MQTT notifications -> canonical readings.

* ``<prefix>/events/rpc`` with ``method`` ``NotifyStatus`` or ``NotifyFullStatus``: each
  ``temperature:N`` component becomes a TempSample (sensor ``temperature:N``, ``tC``, or
  ``tF`` converted when only that is given) with the ``rh`` of ``humidity:N`` merged in when
  the same message carries it. ``params.ts`` is epoch seconds (float). NotifyStatus carries
  only what changed: a humidity-only change has no temperature to attach to and is skipped
  (the next NotifyFullStatus or temperature change carries both).
* ``<prefix>/events/rpc`` with any other method (``NotifyEvent``: button presses, scheduled
  restarts...): ignored.
* ``<prefix>/online``: the Gen2 availability topic, plain ``true``/``false`` (retained, the
  Last Will is ``false``) -> DeviceStatus stamped on receipt.

Device id: the route's device segment, else ``src``, else the segment before
``events/rpc`` (``<prefix>`` defaults to the device id). Status kind: the route's ``kind``,
else ``temp``.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import Field

from core.bounds import CELSIUS, HUMIDITY_PERCENT
from core.errors import PayloadError
from core.readings import DeviceStatus, Sample, TempSample
from ingest.adapters._common import (
    AdapterContext,
    VendorModel,
    check_name,
    check_range,
    device_key,
    fahrenheit_to_celsius,
    load_json,
    ms_from_seconds,
    topic_device,
    validate,
)
from ingest.decode import Decoded, check_size

logger = logging.getLogger(__name__)

DEFAULT_KIND = "temp"
STATUS_METHODS = frozenset({"NotifyStatus", "NotifyFullStatus"})
TEMPERATURE = "temperature:"
HUMIDITY = "humidity:"


class ShellyNotification(VendorModel):
    """The RPC notification envelope."""

    src: str | None = None
    method: str
    params: dict[str, Any] | None = None


class ShellyStatusParams(VendorModel):
    """The part of ``params`` every status notification has."""

    ts: float


class ShellyTemperature(VendorModel):
    """A ``temperature:N`` component (``tC``/``tF`` are null while the sensor is in error)."""

    t_c: float | None = Field(default=None, alias="tC")
    t_f: float | None = Field(default=None, alias="tF")


class ShellyHumidity(VendorModel):
    """A ``humidity:N`` component."""

    rh: float | None = None


def adapt(topic: str, payload: bytes, received_ms: int, ctx: AdapterContext) -> Decoded:
    """Decode one Shelly Gen2 MQTT message."""
    check_size(payload)
    kind = ctx.kind or DEFAULT_KIND
    parts = topic.split("/")
    if parts[-1] == "online":
        device = topic_device(topic, ctx, -2)
        status = _online(payload, device, kind, received_ms, ctx)
        return Decoded([status], None, device_key(ctx.site, kind, device))
    if len(parts) < 3 or parts[-2:] != ["events", "rpc"]:
        device = topic_device(topic, ctx, 0)
        logger.debug("shelly topic %s ignored", topic)
        return Decoded([], None, device_key(ctx.site, kind, device))
    body = load_json(payload)
    if not isinstance(body, dict):
        raise PayloadError("schema", "an RPC notification must be a JSON object")
    note = validate(ShellyNotification, body)
    if ctx.device is not None:
        device = ctx.device
    elif note.src is not None:
        device = check_name(note.src, "src")
    else:
        device = topic_device(topic, ctx, -3)
    key = device_key(ctx.site, kind, device)
    if note.method not in STATUS_METHODS:
        logger.debug("shelly %s from %s ignored", note.method, device)
        return Decoded([], None, key)
    if note.params is None:
        raise PayloadError("missing_field", "params: Field required")
    return Decoded(_temperatures(note.params, device, ctx), None, key)


def _temperatures(params: dict[str, Any], device: str, ctx: AdapterContext) -> list[Sample]:
    head = validate(ShellyStatusParams, {"ts": params["ts"]} if "ts" in params else {}, "params.")
    ts = ms_from_seconds(head.ts, "params.ts")
    samples: list[Sample] = []
    for name, value in params.items():
        if not name.startswith(TEMPERATURE):
            continue
        if not isinstance(value, dict):
            raise PayloadError("schema", f"params.{name}: must be an object")
        temp = validate(ShellyTemperature, value, f"params.{name}.")
        if temp.t_c is not None:
            celsius = temp.t_c
        elif temp.t_f is not None:
            celsius = fahrenheit_to_celsius(temp.t_f)
        else:
            logger.debug("shelly %s %s has no temperature value", device, name)
            continue
        samples.append(
            TempSample(
                site=ctx.site,
                device=device,
                sensor=check_name(name, "component"),
                ts_ms=ts,
                celsius=check_range(celsius, CELSIUS, f"params.{name} °C"),
                humidity=_humidity(params, name.removeprefix(TEMPERATURE)),
            )
        )
    return samples


def _humidity(params: dict[str, Any], component_id: str) -> float | None:
    name = f"{HUMIDITY}{component_id}"
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise PayloadError("schema", f"params.{name}: must be an object")
    rh = validate(ShellyHumidity, value, f"params.{name}.").rh
    return None if rh is None else check_range(rh, HUMIDITY_PERCENT, f"params.{name}.rh")


def _online(
    payload: bytes, device: str, kind: str, received_ms: int, ctx: AdapterContext
) -> Sample:
    text = payload.strip()
    if text not in (b"true", b"false"):
        raise PayloadError("schema", f"online payload {text[:40]!r} is not true or false")
    online = text == b"true"
    return DeviceStatus(
        site=ctx.site,
        kind=kind,
        device=device,
        ts_ms=received_ms,
        online=online,
        reason=None if online else "offline (Last Will)",
    )
