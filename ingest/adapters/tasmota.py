"""Tasmota telemetry (``tele/<device>/SENSOR``, ``/STATE``, ``/LWT``) -> canonical readings.

* ``SENSOR``: every top-level object with a ``Temperature`` becomes a TempSample named after
  its key (``DS18B20``, ``DS18B20-1``, ``SHT3X``, ``AM2301``...), with its ``Humidity`` if
  present. ``TempUnit`` ``F`` is converted to Celsius (``C`` is assumed when absent). The
  chip's own ``ESP32``/``ESP8266`` temperature is not a warehouse reading and is skipped.
  ``HX711`` becomes a WeightSample (cell ``HX711``) from ``Weight``, which Tasmota reports in
  kilograms by default; a route with ``weight_unit: g`` reads it as grams (for firmware
  configured or patched to report grams). ``WeightRaw`` counts are not usable without the
  calibration and are ignored. A SENSOR message with none of these (e.g. only ``ENERGY``)
  is ignored.
* ``STATE`` (periodic, every TelePeriod): DeviceStatus ``online=True`` — a heartbeat.
* ``LWT``: plain text ``Online``/``Offline`` (retained) -> DeviceStatus, stamped on receipt.
* Anything else (``INFO1``, ``RESULT``...): ignored.

``Time`` is the device's local clock with no offset; it is read in the route's time zone. A
``Time`` with an offset is honoured. Before NTP sync Tasmota counts from 1970-01-01, so a
``Time`` before 2000 (or none) means "clock not set" and the receive time is used instead.
Device id: the route's device segment, else the segment before the suffix. Status kind: the
route's ``kind``, else ``temp`` (set ``kind: weight`` on routes of HX711 shelves).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from core.bounds import CELSIUS, GRAMS, HUMIDITY_PERCENT
from core.errors import PayloadError
from core.readings import DeviceStatus, Sample, TempSample, WeightSample
from ingest.adapters._common import (
    AdapterContext,
    VendorModel,
    check_name,
    check_range,
    check_ts_ms,
    device_key,
    fahrenheit_to_celsius,
    load_json,
    ms_from_datetime,
    topic_device,
    validate,
)
from ingest.decode import Decoded, check_size

logger = logging.getLogger(__name__)

DEFAULT_KIND = "temp"
CHIP_SENSORS = frozenset({"ESP32", "ESP8266"})
WEIGHT_SENSOR = "HX711"
_CLOCK_NOT_SET_YEAR = 2000


class TasmotaSensorHeader(VendorModel):
    """The message-wide fields of a SENSOR message."""

    time: str | None = Field(default=None, alias="Time")
    temp_unit: Literal["C", "F"] = Field(default="C", alias="TempUnit")


class TasmotaClimate(VendorModel):
    """A temperature sensor object (DS18B20, SHT3X, AM2301, BME280...)."""

    temperature: float = Field(alias="Temperature")
    humidity: float | None = Field(default=None, alias="Humidity")


class TasmotaScale(VendorModel):
    """The HX711 object: ``Weight`` in kg by default, ``WeightRaw`` in ADC counts."""

    weight: float = Field(alias="Weight")


def adapt(topic: str, payload: bytes, received_ms: int, ctx: AdapterContext) -> Decoded:
    """Decode one Tasmota telemetry message."""
    check_size(payload)
    device = topic_device(topic, ctx, -2)
    kind = ctx.kind or DEFAULT_KIND
    key = device_key(ctx.site, kind, device)
    suffix = topic.rsplit("/", 1)[-1]
    if suffix == "SENSOR":
        return Decoded(_sensor(payload, device, received_ms, ctx), None, key)
    if suffix == "LWT":
        return Decoded([_lwt(payload, device, kind, received_ms, ctx)], None, key)
    if suffix == "STATE":
        body = _object(payload)
        header = validate(TasmotaSensorHeader, {"Time": body.get("Time")})
        ts = _time(header.time, received_ms, ctx)
        status = DeviceStatus(site=ctx.site, kind=kind, device=device, ts_ms=ts, online=True)
        return Decoded([status], None, key)
    logger.debug("tasmota %s message from %s ignored", suffix, device)
    return Decoded([], None, key)


def _object(payload: bytes) -> dict[str, Any]:
    body = load_json(payload)
    if not isinstance(body, dict):
        raise PayloadError("schema", "Tasmota telemetry must be a JSON object")
    return body


def _sensor(payload: bytes, device: str, received_ms: int, ctx: AdapterContext) -> list[Sample]:
    body = _object(payload)
    header = validate(TasmotaSensorHeader, {k: body[k] for k in ("Time", "TempUnit") if k in body})
    ts = _time(header.time, received_ms, ctx)
    samples: list[Sample] = []
    for name, value in body.items():
        if not isinstance(value, dict) or name in CHIP_SENSORS:
            continue
        if name == WEIGHT_SENSOR or name.startswith(f"{WEIGHT_SENSOR}-"):
            scale = validate(TasmotaScale, value, f"{name}.")
            factor = 1000.0 if ctx.weight_unit == "kg" else 1.0
            # Rounded to the milligram: kg * 1000 otherwise leaves float noise in the series.
            grams = round(scale.weight * factor, 3)
            samples.append(
                WeightSample(
                    site=ctx.site,
                    device=device,
                    cell=check_name(name, "sensor name"),
                    ts_ms=ts,
                    grams=check_range(grams, GRAMS, f"{name}.Weight grams"),
                )
            )
        elif "Temperature" in value:
            climate = validate(TasmotaClimate, value, f"{name}.")
            celsius = climate.temperature
            if header.temp_unit == "F":
                celsius = fahrenheit_to_celsius(celsius)
            humidity = climate.humidity
            if humidity is not None:
                check_range(humidity, HUMIDITY_PERCENT, f"{name}.Humidity")
            samples.append(
                TempSample(
                    site=ctx.site,
                    device=device,
                    sensor=check_name(name, "sensor name"),
                    ts_ms=ts,
                    celsius=check_range(celsius, CELSIUS, f"{name}.Temperature °C"),
                    humidity=humidity,
                )
            )
    if not samples:
        logger.debug("tasmota SENSOR message from %s has no temperature or weight", device)
    return samples


def _time(text: str | None, received_ms: int, ctx: AdapterContext) -> int:
    if text is None:
        return received_ms
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError("schema", f"Time {text!r} is not an ISO 8601 timestamp") from None
    if parsed.year < _CLOCK_NOT_SET_YEAR:
        return received_ms
    if parsed.tzinfo is None:
        # fold=0: in the repeated hour after a DST change the earlier instant is taken.
        parsed = parsed.replace(tzinfo=ctx.tz)
    return check_ts_ms(ms_from_datetime(parsed), "Time")


def _lwt(payload: bytes, device: str, kind: str, received_ms: int, ctx: AdapterContext) -> Sample:
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise PayloadError("schema", "LWT payload is not UTF-8 text") from None
    state = text.lower()
    if state not in ("online", "offline"):
        raise PayloadError("schema", f"LWT payload {text[:40]!r} is not Online or Offline")
    return DeviceStatus(
        site=ctx.site,
        kind=kind,
        device=device,
        ts_ms=received_ms,
        online=state == "online",
        reason=None if state == "online" else "LWT Offline",
    )
