"""Register decoding, unit conversion and serial-scale line parsing."""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass

from edge.config import Register
from edge.errors import ReadingError

_FORMATS = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f"}
GRAMS_PER = {"g": 1.0, "kg": 1000.0, "lb": 453.59237}


def decode_registers(registers: list[int], reg: Register) -> float:
    """The raw number held by ``registers`` (one or two 16-bit words) for ``reg``'s type/order."""
    if len(registers) != reg.count:
        raise ReadingError(f"expected {reg.count} registers, got {len(registers)}")
    words = list(registers)
    if reg.word_order == "little":
        words.reverse()
    data = b"".join(
        w.to_bytes(2, "big" if reg.byte_order == "big" else "little") for w in words
    )
    (value,) = struct.unpack(">" + _FORMATS[reg.type], data)
    return float(value)


def to_grams(value: float, unit: str | None) -> float:
    """Weight in grams from g, kg or lb."""
    return value * GRAMS_PER[unit or "g"]


def to_celsius(value: float, unit: str | None) -> float:
    """Temperature in °C from C or F."""
    return (value - 32.0) * 5.0 / 9.0 if unit == "F" else value


def convert(raw: float, reg: Register, kind: str, low: float, high: float) -> float:
    """Scaled, offset and unit-converted value; ReadingError when not finite or out of range."""
    value = raw * reg.scale + reg.offset
    value = to_grams(value, reg.unit) if kind == "weight" else to_celsius(value, reg.unit)
    return checked(value, low, high)


def checked(value: float, low: float, high: float) -> float:
    """``value`` rounded to 0.001 when finite and within [low, high], else ReadingError."""
    if not math.isfinite(value):
        raise ReadingError(f"value {value} is not finite")
    if not low <= value <= high:
        raise ReadingError(f"value {value:g} outside the physical range {low:g}..{high:g}")
    return round(value, 3)


@dataclass(frozen=True, slots=True)
class ScaleReading:
    """One weight from a serial scale, in grams."""

    grams: float
    stable: bool


class ScaleBusyError(ReadingError):
    """The scale answered but has no weight to give (busy, overload, underload, error)."""


_SICS = re.compile(r"^S\s+([SD])\s+(-?\d+(?:\.\d+)?)\s+(\S+)\s*$")
_UNITS = {"g": "g", "kg": "kg", "lb": "lb"}


def parse_mt_sics(line: str) -> ScaleReading:
    """Parse an MT-SICS ``S``/``SI`` reply: ``S S      12.345 kg`` (stable), ``S D`` (dynamic)."""
    text = line.strip()
    match = _SICS.match(text)
    if match:
        unit = _UNITS.get(match.group(3))
        if unit is None:
            raise ReadingError(f"unit {match.group(3)!r} is not g, kg or lb")
        return ScaleReading(to_grams(float(match.group(2)), unit), match.group(1) == "S")
    if text in ("S I", "S +", "S -"):
        what = {"S I": "busy", "S +": "overload", "S -": "underload"}[text]
        raise ScaleBusyError(f"scale {what} ({text!r})")
    if text in ("ES", "ET", "EL"):
        what = {"ES": "syntax error", "ET": "transmission error", "EL": "logical error"}[text]
        raise ScaleBusyError(f"scale reports {what} ({text!r})")
    raise ReadingError(f"not an MT-SICS weight reply: {text[:40]!r}")


def parse_regex(line: str, pattern: re.Pattern[str], default_unit: str) -> ScaleReading:
    """Parse a generic line with named groups ``value``, optional ``unit`` and ``stable``."""
    match = pattern.search(line.strip())
    if match is None:
        raise ReadingError(f"line does not match line_regex: {line.strip()[:40]!r}")
    groups = match.groupdict()
    unit = (groups.get("unit") or default_unit).lower()
    if unit not in _UNITS:
        raise ReadingError(f"unit {unit!r} is not g, kg or lb")
    try:
        value = float(groups["value"].replace(" ", ""))
    except ValueError:
        raise ReadingError(f"value {groups['value']!r} is not a number") from None
    stable = groups.get("stable")
    return ScaleReading(to_grams(value, unit), stable is None or bool(stable.strip()))
