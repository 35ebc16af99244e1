"""Site seed: sites, zones and the sensors bound to them, loaded from YAML and validated."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import ConfigError

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:\-]{1,64}$")]


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
    """The whole seed file."""

    sites: list[Site] = Field(default_factory=list)

    def site(self, site_id: str) -> Site | None:
        """Look a site up by id."""
        return next((s for s in self.sites if s.id == site_id), None)


def load_seed(path: Path) -> Seed:
    """Load and validate a seed file; errors name the file and the offending key."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read seed {path}: {exc}") from exc
    try:
        return Seed.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"seed {path} is invalid: {problems}") from None
