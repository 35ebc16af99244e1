"""Site seed: sites, zones and the sensors bound to them, and the inventory catalog (SKUs, shelf
cells, RFID antennas, lots), loaded from YAML and validated."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from core.errors import ConfigError
from core.identifiers import Name
from core.inventory import LotIn, RfidZone, Shelf, Sku


class SeedModel(BaseModel):
    """Strict base: unknown keys in a seed file are mistakes, not extensions."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SensorRef(SeedModel):
    """A temperature probe: the device id, and the sensor name when a device has several."""

    device: Name
    sensor: Name | None = None

    def matches(self, device: str, sensor: str) -> bool:
        """True if this reference covers the probe."""
        return self.device == device and (self.sensor is None or self.sensor == sensor)


class TempBand(SeedModel):
    """Allowed temperature range in degrees Celsius."""

    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> TempBand:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class Zone(SeedModel):
    """An area of a site; cold zones have a band and a duration allowance."""

    id: Name
    name: str = ""
    temp_band: TempBand | None = None
    allowance_s: float = Field(default=300.0, ge=0, le=86_400)
    sensors: list[SensorRef] = Field(default_factory=list)


class Site(SeedModel):
    """A warehouse."""

    id: Name
    name: str = ""
    timezone: str = "UTC"
    zones: list[Zone] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_zones(self) -> Site:
        ids = [z.id for z in self.zones]
        dupes = sorted({z for z in ids if ids.count(z) > 1})
        if dupes:
            raise ValueError(f"zone ids repeat: {', '.join(dupes)}")
        return self


class Seed(SeedModel):
    """The whole seed file: sites and zones, and the inventory catalog bound to the sensors."""

    sites: list[Site] = Field(default_factory=list)
    skus: list[Sku] = Field(default_factory=list)
    shelves: list[Shelf] = Field(default_factory=list)
    rfid_zones: list[RfidZone] = Field(default_factory=list)
    lots: list[LotIn] = Field(default_factory=list)

    def site(self, site_id: str) -> Site | None:
        """Look a site up by id."""
        return next((s for s in self.sites if s.id == site_id), None)

    @model_validator(mode="after")
    def _references(self) -> Seed:
        # Cross-references are checked here so every error names the exact item at fault.
        problems = [*_sku_problems(self.skus), *_binding_problems(self)]
        if problems:
            raise ValidationError.from_exception_data(
                "Seed",
                [
                    {"type": PydanticCustomError("reference", msg), "loc": loc, "input": None}
                    for loc, msg in problems
                ],
            )
        return self


Problem = tuple[tuple[str | int, ...], str]


def _sku_problems(skus: list[Sku]) -> list[Problem]:
    problems: list[Problem] = []
    known: set[str] = set()
    gtins: dict[str, str] = {}
    for i, sku in enumerate(skus):
        if sku.sku in known:
            problems.append((("skus", i, "sku"), f"SKU {sku.sku} is defined twice"))
        known.add(sku.sku)
        if sku.gtin is None:
            continue
        if sku.gtin in gtins:
            problems.append(
                (("skus", i, "gtin"), f"GTIN {sku.gtin} already belongs to {gtins[sku.gtin]}")
            )
        gtins[sku.gtin] = sku.sku
    return problems


def _binding_problems(seed: Seed) -> list[Problem]:
    problems: list[Problem] = []
    by_id = {sku.sku: sku for sku in seed.skus}
    cells: set[tuple[str, str, str]] = set()
    for i, shelf in enumerate(seed.shelves):
        key = (shelf.site, shelf.device, shelf.cell)
        if key in cells:
            problems.append((("shelves", i, "cell"), f"cell {'/'.join(key)} is bound twice"))
        cells.add(key)
        sku = by_id.get(shelf.sku)
        if sku is None:
            problems.append((("shelves", i, "sku"), f"unknown SKU {shelf.sku!r}"))
        elif sku.unit_grams is None:
            problems.append(
                (("shelves", i, "sku"), f"SKU {shelf.sku} on a weight shelf needs unit_grams")
            )
    antennas: set[tuple[str, str, int]] = set()
    for i, zone in enumerate(seed.rfid_zones):
        akey = (zone.site, zone.device, zone.antenna)
        if akey in antennas:
            problems.append(
                (("rfid_zones", i, "antenna"), f"antenna {'/'.join(map(str, akey))} is bound twice")
            )
        antennas.add(akey)
    problems.extend(
        (("lots", i, "sku"), f"unknown SKU {lot.sku!r}")
        for i, lot in enumerate(seed.lots)
        if lot.sku not in by_id
    )
    return problems


class ProbeZones:
    """Which zones of a seed a temperature probe belongs to, memoised per probe.

    Every temperature rule asks this for every sample; each zone is listed once per probe even
    when it names the same device under several sensor references.
    """

    def __init__(self, seed: Seed, *, banded_only: bool = True) -> None:
        self._by_device: dict[tuple[str, str], list[Zone]] = {}
        for site in seed.sites:
            for zone in site.zones:
                if banded_only and zone.temp_band is None:
                    continue
                for ref in zone.sensors:
                    zones = self._by_device.setdefault((site.id, ref.device), [])
                    if zone not in zones:
                        zones.append(zone)
        self._memo: dict[tuple[str, str, str], tuple[Zone, ...]] = {}

    def zones(self, site: str, device: str, sensor: str) -> tuple[Zone, ...]:
        """The zones (in seed order) whose sensor references cover this probe."""
        key = (site, device, sensor)
        found = self._memo.get(key)
        if found is None:
            found = tuple(
                zone
                for zone in self._by_device.get((site, device), ())
                if any(ref.matches(device, sensor) for ref in zone.sensors)
            )
            self._memo[key] = found
        return found


def load_seed(path: Path) -> Seed:
    """Load and validate a seed file; errors name the file and the offending key."""
    return load_yaml_model(path, Seed, "seed")


M = TypeVar("M", bound=BaseModel)


def load_yaml_model(path: Path, model: type[M], what: str) -> M:
    """Load a YAML file of ``what`` (seed, scenario) into ``model``; one-line errors that name
    the file and the offending key."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{what} file {path.absolute()} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} file {path.absolute()}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        # PyYAML's text spans lines (the problem, then a caret under it): keep one line.
        where = " ".join(str(exc).split())
        raise ConfigError(f"{what} file {path} is not valid YAML: {where}") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{what} {path} is invalid: {describe_errors(exc.errors())}") from None


def describe_errors(errors: list[ErrorDetails]) -> str:
    """``loc: message`` per problem, e.g. ``skus.2.gtin: check digit is 3, expected 8``."""
    return "; ".join(_describe(e) for e in errors)


def _describe(error: ErrorDetails) -> str:
    message = error["msg"].removeprefix("Value error, ")
    loc = ".".join(str(p) for p in error["loc"])
    return f"{loc}: {message}" if loc else message
