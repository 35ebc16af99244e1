"""Helpers shared by the vendor adapters: context, JSON loading, timestamps, names, limits.

Kept apart from ``ingest.adapters`` so the adapter modules can import it without an import
cycle through the registry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, ValidationError

from core.bounds import MAX_TS_MS, MIN_TS_MS, Bounds
from core.errors import ConfigError, PayloadError
from core.identifiers import NAME_RE, SEGMENT_RE
from core.models import datetime_to_ms
from core.settings import WeightUnit
from ingest.decode import validation_reason

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class AdapterContext:
    """What an adapter needs beyond the message: where it comes from and how to read it.

    ``device`` is set when the route names the topic segment holding the device id; it then
    wins over ids found in the payload. ``kind`` is the canonical kind used for status
    messages of devices whose payload does not say (Tasmota, Shelly); ``weight_unit`` is the
    unit Tasmota reports HX711 ``Weight`` in.
    """

    site: str
    timezone: str = "UTC"
    device: str | None = None
    kind: str | None = None
    weight_unit: WeightUnit = "kg"

    def __post_init__(self) -> None:
        if not SEGMENT_RE.fullmatch(self.site):
            raise ConfigError(f"site {self.site!r} must match {SEGMENT_RE.pattern}")
        zone(self.timezone)

    @property
    def tz(self) -> ZoneInfo:
        """The context's time zone (ZoneInfo caches instances by key)."""
        return zone(self.timezone)


def zone(name: str) -> ZoneInfo:
    """The ZoneInfo for ``name`` or a ConfigError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {name!r}") from None


class VendorModel(BaseModel):
    """Base of vendor payload models: strict types and finite numbers.

    Unknown fields are ignored rather than forbidden: vendors add fields between firmware
    versions and a new field must not dead-letter every message of a fleet.
    """

    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False, frozen=True)


def _reject_constant(name: str) -> Any:
    raise PayloadError("not_finite", f"JSON constant {name} is not a finite number")


def load_json(payload: bytes | str) -> Any:
    """Parse JSON text, refusing NaN/Infinity; errors become PayloadError("invalid_json")."""
    try:
        return json.loads(payload, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise PayloadError("invalid_json", f"payload is not UTF-8 text: {exc.reason}") from None
    except json.JSONDecodeError as exc:
        detail = f"{exc.msg} (line {exc.lineno}, column {exc.colno})"
        raise PayloadError("invalid_json", detail) from None
    except RecursionError:
        raise PayloadError("invalid_json", "JSON nested too deeply") from None
    except ValueError as exc:
        # CPython refuses integers of more than 4,300 digits (sys.get_int_max_str_digits) with
        # a plain ValueError; no sensor reports such a number.
        raise PayloadError("invalid_json", f"number too long: {exc}") from None


def validate(model: type[M], value: Any, where: str = "") -> M:
    """Validate one parsed JSON value against a vendor model, mapping errors to reasons."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        reason, detail = validation_reason(exc)
        raise PayloadError(reason, f"{where}{detail}") from None


ms_from_datetime = datetime_to_ms


def ms_from_seconds(seconds: float, what: str) -> int:
    """Epoch ms of epoch seconds, refusing values outside 2000..2100 before converting them.

    Checked first: ``1e308 * 1000`` is infinite and ``round()`` of it raises OverflowError.
    """
    if not MIN_TS_MS / 1000 <= seconds < MAX_TS_MS / 1000:
        raise PayloadError("out_of_range", f"{what} {seconds} s is outside 2000..2100")
    return check_ts_ms(round(seconds * 1000), what)


def check_ts_ms(ts_ms: int, what: str) -> int:
    """Refuse timestamps outside 2000..2100: they are unit mistakes (s vs ms vs ns)."""
    if not MIN_TS_MS <= ts_ms < MAX_TS_MS:
        raise PayloadError("out_of_range", f"{what} {ts_ms} ms is outside 2000..2100")
    return ts_ms


def parse_iso(text: str, what: str, *, local: ZoneInfo | None = None) -> int:
    """Epoch ms of ISO 8601 text.

    Accepts ``Z``, ``+00:00`` and ``+0000`` offsets and any number of fraction digits. Text
    without an offset is refused unless ``local`` says which zone the device clock is in.
    """
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError("schema", f"{what} {text!r} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        if local is None:
            raise PayloadError("schema", f"{what} {text!r} has no UTC offset")
        parsed = parsed.replace(tzinfo=local)
    return check_ts_ms(ms_from_datetime(parsed), what)


def check_range(value: float, bounds: Bounds, what: str) -> float:
    """Refuse a value outside its physical range (usually a unit mistake)."""
    if not bounds.low <= value <= bounds.high:
        raise PayloadError("out_of_range", f"{what} {value} is outside {bounds.low}..{bounds.high}")
    return value


def check_name(value: str, what: str, reason: str = "schema") -> str:
    """A device or sensor name usable as an InfluxDB tag and in device keys."""
    if not NAME_RE.fullmatch(value):
        raise PayloadError(reason, f"{what} {value!r} must match {NAME_RE.pattern}")
    return value


def device_at(topic: str, index: int) -> str:
    """The device id in level ``index`` of ``topic`` (negative counts from the end)."""
    parts = topic.split("/")
    if not -len(parts) <= index < len(parts):
        raise PayloadError("bad_topic", f"topic {topic!r} has no device segment {index}")
    return check_name(parts[index], f"device segment of {topic!r}", "bad_topic")


def topic_device(topic: str, ctx: AdapterContext, index: int) -> str:
    """The device id: the route's explicit segment (``ctx.device``) or segment ``index``."""
    return ctx.device if ctx.device is not None else device_at(topic, index)


def fahrenheit_to_celsius(value: float) -> float:
    """Degrees Fahrenheit to Celsius, rounded to 1/1000 degree to drop float noise."""
    return round((value - 32.0) * 5.0 / 9.0, 3)


def device_key(site: str, kind: str, device: str) -> str:
    """The per-device key used for ``seq`` tracking, same shape as the canonical decoder's."""
    return f"{site}/{kind}/{device}"
