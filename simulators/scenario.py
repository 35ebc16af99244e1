"""Scenario files of the virtual warehouse: what it contains, how demand and receipts move its
stock, which faults it injects, and how fast and with which random seed it runs.

A scenario describes a warehouse physically (sites with zones, probes, shelf cells holding
SKUs, RFID readers and dock portals) and produces from that the catalog and site seed the
pipeline needs (:meth:`Scenario.catalog`, a :class:`rules.seed.Seed` made of the catalog's own
models), so the simulator and the rules never disagree about a binding. Times inside a
scenario are simulated seconds from its start, written as numbers or as ``2d 3h 30m 10s``.
The format is documented in docs/simulator.md.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from core.identifiers import Ident, Name, Segment
from core.inventory import EpochMs, LotIn, RfidZone, Shelf, Sku
from rules.seed import Seed, SensorRef, Site, Zone, load_yaml_model
from simulators.demand import FLAT_WEEK, DemandKind, DemandProfile

_UNITS = {"d": 86_400.0, "h": 3_600.0, "m": 60.0, "s": 1.0}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([dhms])")
DEFAULT_SENSOR = "t1"  # the sensor name a probe reports under when its reference names none


def _seconds(value: object) -> object:
    """Seconds from a number or a text such as ``1d 2h``, ``90m``, ``1.5h`` or ``45s``."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION_RE.findall(text)
    if not parts or _DURATION_RE.sub("", text).strip():
        raise PydanticCustomError(
            "duration",
            "not a duration: {value} (seconds, or e.g. '2d 3h 30m 10s')",
            {"value": repr(value)},
        )
    return sum(float(n) * _UNITS[unit] for n, unit in parts)


Seconds = Annotated[float, BeforeValidator(_seconds), Field(ge=0, allow_inf_nan=False)]


class ScenarioModel(BaseModel):
    """Strict base: an unknown key in a scenario is a mistake, not an extension."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --------------------------------------------------------------------------- the warehouse


class Antenna(ScenarioModel):
    """An RFID reader's antenna."""

    device: Segment
    antenna: int = Field(default=1, ge=1, le=64)


class SimZone(Zone):
    """A zone of the site seed (band, allowance, probes) with what the simulator adds.

    A zone with a ``temp_band`` is a cold room. Its probes (``sensors``) read ``celsius`` with
    Gaussian noise and a daily swing; ``readers`` make it an RFID storage zone.
    """

    celsius: float | None = Field(default=None, ge=-60, le=80)
    noise_c: float = Field(default=0.15, ge=0, le=10)
    swing_c: float = Field(default=0.0, ge=0, le=30)
    humidity: float | None = Field(default=None, ge=0, le=100)
    readers: list[Antenna] = Field(default_factory=list)

    @model_validator(mode="after")
    def _probes_have_a_temperature(self) -> SimZone:
        if self.sensors and self.celsius is None:
            raise PydanticCustomError(
                "missing_celsius", "zone {zone} has probes: give their temperature as celsius",
                {"zone": self.id},
            )  # fmt: skip
        return self

    def seed_zone(self) -> Zone:
        """The zone as the rules' seed knows it."""
        return Zone.model_validate(self.model_dump(include=set(Zone.model_fields)))


class Cell(ScenarioModel):
    """A load cell of a shelf: the SKU on it (its unit weight is the SKU's ``unit_grams``)."""

    cell: Name
    sku: Ident
    units: int = Field(default=0, ge=0, le=1_000_000)
    location: Ident | None = None
    tare_grams: float = Field(default=0.0, ge=0, le=1_000_000)


class ShelfDevice(ScenarioModel):
    """A weight shelf publishing its cells' grams every round."""

    device: Segment
    cells: list[Cell] = Field(min_length=1)
    noise: float = Field(default=0.005, ge=0, le=0.05, description="Noise, fraction of a unit.")


class PortalAntenna(ScenarioModel):
    """One side of a dock portal."""

    antenna: int = Field(ge=1, le=64)
    zone: Ident


class Portal(ScenarioModel):
    """A dock portal: the outer antenna receives, the inner one ships."""

    device: Segment
    receiving: PortalAntenna = PortalAntenna(antenna=1, zone="dock-in")
    shipping: PortalAntenna = PortalAntenna(antenna=2, zone="dock-out")


class SimSite(ScenarioModel):
    """A warehouse: its zones (cold rooms, ambient areas, RFID zones), shelves and portals."""

    id: Segment
    name: str = ""
    timezone: str = "UTC"
    zones: list[SimZone] = Field(default_factory=list)
    shelves: list[ShelfDevice] = Field(default_factory=list)
    portals: list[Portal] = Field(default_factory=list, max_length=1)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise PydanticCustomError(
                "timezone", "unknown time zone {value}", {"value": repr(value)}
            ) from None
        return value

    def seed_site(self) -> Site:
        """The site as the rules' seed knows it (its zone checks apply)."""
        return Site(
            id=self.id,
            name=self.name,
            timezone=self.timezone,
            zones=[z.seed_zone() for z in self.zones],
        )

    def cells(self) -> Iterator[tuple[ShelfDevice, Cell]]:
        """Every shelf cell of the site."""
        for shelf in self.shelves:
            for cell in shelf.cells:
                yield shelf, cell

    def probes(self) -> Iterator[tuple[SimZone, SensorRef]]:
        """Every temperature probe of the site, with its zone."""
        for zone in self.zones:
            for ref in zone.sensors:
                yield zone, ref

    def portal(self) -> Portal | None:
        """The dock portal, if the site has one."""
        return self.portals[0] if self.portals else None


# --------------------------------------------------------------------------- demand


def _flat_pick_hours() -> dict[int, float]:
    return dict.fromkeys(range(8, 20), 1.0)


class DemandSpec(ScenarioModel):
    """Demand of one SKU (the parameters of :class:`simulators.demand.DemandProfile`), and the
    hours its picks fall in, weighted (the intraday profile)."""

    base_per_day: float = Field(ge=0, le=1_000_000)
    weekly: tuple[float, ...] = Field(default=FLAT_WEEK, min_length=7, max_length=7)
    season_amplitude: float = Field(default=0.0, ge=0, le=1)
    season_peak_day: int = Field(default=0, ge=0, le=366)
    trend_per_year: float = Field(default=0.0, ge=-10, le=10)
    demand_probability: float = Field(default=1.0, gt=0, le=1)
    dispersion: float | None = Field(default=None, gt=0)
    pick_hours: dict[int, float] = Field(default_factory=_flat_pick_hours)

    @field_validator("weekly")
    @classmethod
    def _weekly_not_negative(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if min(value) < 0:
            raise PydanticCustomError("weekly", "weekday multipliers must not be negative", {})
        return value

    @field_validator("pick_hours")
    @classmethod
    def _hours(cls, value: dict[int, float]) -> dict[int, float]:
        bad = sorted(h for h in value if not 0 <= h <= 23)
        if bad:
            raise PydanticCustomError("pick_hours", "hours are 0..23, got {bad}", {"bad": bad})
        if any(w < 0 or not math.isfinite(w) for w in value.values()) or sum(value.values()) <= 0:
            raise PydanticCustomError(
                "pick_hours", "weights must be finite, not negative, and not all zero", {}
            )
        return value

    def profile(self, sku: str, *, start_weekday: int) -> DemandProfile:
        """The demand generator's profile; day 0 is the scenario's first day."""
        kind: DemandKind = (
            "intermittent"
            if self.demand_probability < 1
            else "seasonal"
            if self.season_amplitude > 0
            else "regular"
        )
        return DemandProfile(
            sku=sku,
            kind=kind,
            base_per_day=self.base_per_day,
            weekly=self.weekly,
            season_amplitude=self.season_amplitude,
            season_peak_day=self.season_peak_day,
            trend_per_year=self.trend_per_year,
            demand_probability=self.demand_probability,
            dispersion=self.dispersion,
            start_weekday=start_weekday,
        )

    def hour_weights(self) -> list[float]:
        """The 24 hourly weights, normalised to sum to 1."""
        total = sum(self.pick_hours.values())
        return [self.pick_hours.get(h, 0.0) / total for h in range(24)]


class Receipt(ScenarioModel):
    """Units arriving: tagged SKUs pass the dock portal's receiving antenna at ``at`` and are
    put on their shelf ``put_after`` later; untagged ones go straight onto the shelf."""

    at: Seconds
    sku: Ident
    units: int = Field(gt=0, le=100_000)
    site: Segment | None = None
    put_after: Seconds = 600.0


# --------------------------------------------------------------------------- faults


class Theft(ScenarioModel):
    """Units leave a shelf cell with no pick recorded: no tag passes the shipping antenna."""

    kind: Literal["theft"]
    at: Seconds
    device: Segment
    cell: Name
    units: int = Field(gt=0, le=100_000)
    site: Segment | None = None


class Misplacement(ScenarioModel):
    """A tagged item of ``sku`` is read in ``zone`` (not its home zone) every round."""

    kind: Literal["misplacement"]
    at: Seconds
    duration: Seconds = Field(alias="for")
    sku: Ident
    zone: Ident
    site: Segment | None = None


class SensorDrift(ScenarioModel):
    """A probe reads high by ``rate_c_per_h`` more each hour; recalibrated after ``for``."""

    kind: Literal["sensor_drift"]
    at: Seconds
    duration: Seconds = Field(alias="for")
    device: Segment
    rate_c_per_h: float = Field(ge=-50, le=50)
    site: Segment | None = None


class DeviceOffline(ScenarioModel):
    """A device publishes nothing for ``for``; with ``lwt`` its Last Will is published first.
    It comes back with a birth message."""

    kind: Literal["device_offline"]
    at: Seconds
    duration: Seconds = Field(alias="for")
    device: Segment
    lwt: bool = False
    site: Segment | None = None


class ExpiringLot(ScenarioModel):
    """A lot of ``lots`` reaches its alert date ``alert_after`` the start and its removal date
    ``removal_after`` it (the dates are set relative to the start)."""

    kind: Literal["expiring_lot"]
    lot: Ident
    alert_after: Seconds
    removal_after: Seconds | None = None


class ColdRoomExcursion(ScenarioModel):
    """Every probe of a cold room reads ``celsius`` from ``at`` for ``for``."""

    kind: Literal["cold_room_excursion"]
    at: Seconds
    duration: Seconds = Field(alias="for")
    zone: Name
    celsius: float = Field(default=11.5, ge=-60, le=80)
    site: Segment | None = None


Fault = Annotated[
    Theft | Misplacement | SensorDrift | DeviceOffline | ExpiringLot | ColdRoomExcursion,
    Field(discriminator="kind"),
]


# --------------------------------------------------------------------------- the scenario

Loc = tuple[str | int, ...]


class Scenario(ScenarioModel):
    """A whole scenario file."""

    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    speed: float = Field(default=1.0, gt=0, le=10_000_000, allow_inf_nan=False)
    interval_s: float = Field(default=60.0, gt=0, le=86_400, allow_inf_nan=False)
    duration: Seconds | None = None
    start: EpochMs | None = None
    pick_wave: Seconds = Field(default=3600.0, gt=0)
    ship_after: Seconds | None = None
    sites: list[SimSite] = Field(min_length=1)
    skus: list[Sku] = Field(default_factory=list)
    lots: list[LotIn] = Field(default_factory=list)
    demand: dict[Ident, DemandSpec] = Field(default_factory=dict)
    receipts: list[Receipt] = Field(default_factory=list)
    faults: list[Fault] = Field(default_factory=list)

    @property
    def ship_after_s(self) -> float:
        """Simulated seconds from a pick to its units passing the shipping antenna.

        A shelf settles about 7 readings after a pick; the units must pass the portal after
        that and within the rules' loss window of it, hence 9 rounds by default.
        """
        return self.ship_after if self.ship_after is not None else 9 * self.interval_s

    def start_ms(self, now_ms: int) -> int:
        """The simulated start: ``start``; else, at ``speed`` 1 or below, now (the warehouse
        runs alongside rules on the wall clock); else the local midnight (first site's time
        zone) early enough that the accelerated clock never runs ahead of the wall clock,
        which ingest would take for a device clock from the future."""
        if self.start is not None:
            return self.start
        if self.speed <= 1:
            return now_ms
        lead_s = (self.duration or 0.0) * (1.0 - 1.0 / self.speed)
        return local_midnight_ms(now_ms - math.ceil(lead_s * 1000), self.sites[0].timezone)

    def site(self, site_id: str | None) -> SimSite:
        """A site by id; ``None`` is the first (and, where references allow it, only) site."""
        if site_id is None:
            return self.sites[0]
        return next(s for s in self.sites if s.id == site_id)

    def sku(self, sku_id: str) -> Sku:
        """A SKU by id."""
        return next(s for s in self.skus if s.sku == sku_id)

    def catalog(self, start_ms: int) -> Seed:
        """The seed the pipeline needs: sites and zones, SKUs, shelf cells, antennas and lots
        (expiring lots dated relative to ``start_ms``)."""
        shelves = [
            Shelf(
                site=site.id, device=shelf.device, cell=cell.cell, sku=cell.sku,
                tare_grams=cell.tare_grams, location=cell.location,
            )
            for site in self.sites
            for shelf, cell in site.cells()
        ]  # fmt: skip
        zones: list[RfidZone] = []
        for site in self.sites:
            for zone in site.zones:
                zones += [
                    RfidZone(site=site.id, device=a.device, antenna=a.antenna, zone=zone.id)
                    for a in zone.readers
                ]
            for portal in site.portals:
                zones += [
                    RfidZone(site=site.id, device=portal.device, antenna=side.antenna,
                             zone=side.zone, role=role)
                    for side, role in ((portal.receiving, "receiving"),
                                       (portal.shipping, "shipping"))
                ]  # fmt: skip
        return Seed(
            sites=[s.seed_site() for s in self.sites],
            skus=self.skus,
            shelves=shelves,
            rfid_zones=zones,
            lots=[self._dated(lot, start_ms) for lot in self.lots],
        )

    def _dated(self, lot: LotIn, start_ms: int) -> LotIn:
        update: dict[str, int] = {}
        if lot.received_at is None:
            update["received_at"] = start_ms
        for fault in self.faults:
            if isinstance(fault, ExpiringLot) and fault.lot == lot.lot:
                update["alert_at"] = start_ms + round(fault.alert_after * 1000)
                if fault.removal_after is not None:
                    update["removal_at"] = start_ms + round(fault.removal_after * 1000)
        return lot.model_copy(update=update)

    def expected_alerts(self) -> list[tuple[str, str]]:
        """(alert type, source) each injected fault should raise."""
        return [(type_, source) for type_, source, _, _ in self.expected_alert_times()]

    def expected_alert_times(self) -> list[tuple[str, str, float, float]]:
        """(alert type, source, from, to) of each alert the faults should raise: simulated
        seconds from the start while its fault lasts (an instant for a theft or a lot's date);
        the alert itself comes after ``from``, once the rule's evidence is in."""
        found: list[tuple[str, str, float, float]] = []
        for fault in self.faults:
            if isinstance(fault, ExpiringLot):  # the lot names its site
                lot = next(lot for lot in self.lots if lot.lot == fault.lot)
                source = f"{lot.site}/{lot.sku}/{lot.lot}"
                found.append(("expiry_alert", source, fault.alert_after, fault.alert_after))
                if fault.removal_after is not None:
                    at = fault.removal_after
                    found.append(("expired_on_shelf", source, at, at))
                continue
            site = self.site(fault.site)
            end = fault.at + (0.0 if isinstance(fault, Theft) else fault.duration)
            if isinstance(fault, Theft):
                alert = ("unexplained_loss", f"{site.id}/{fault.device}/{fault.cell}")
            elif isinstance(fault, Misplacement):
                alert = ("misplaced_item", f"{site.id}/{fault.zone}/{fault.sku}")
            elif isinstance(fault, SensorDrift):
                sensor = next(r.sensor for _, r in site.probes() if r.device == fault.device)
                sensor = sensor or DEFAULT_SENSOR
                alert = ("sensor_drift", f"{site.id}/temp/{fault.device}/{sensor}")
            elif isinstance(fault, DeviceOffline):
                alert = ("sensor_offline", f"{site.id}/{_kind(site, fault.device)}/{fault.device}")
            else:
                alert = ("cold_chain_excursion", f"{site.id}/{fault.zone}")
            found.append((*alert, fault.at, end))
        return found

    # ------------------------------------------------------------------ validation

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        # Cross-references are checked here so every error names the exact item at fault.
        problems = [*self._site_problems(), *self._demand_problems(), *self._event_problems()]
        if self.speed > 1 and self.duration is None:
            why = "its clock would run ahead of the wall clock"
            problems.append((("duration",), f"an accelerated scenario needs a duration: {why}"))
        if not problems:
            try:
                self.catalog(self.start or 0)
            except ValidationError as exc:
                problems = [
                    (("catalog", *e["loc"]), e["msg"].removeprefix("Value error, "))
                    for e in exc.errors()
                ]
        if problems:
            raise ValidationError.from_exception_data(
                "Scenario",
                [
                    {"type": PydanticCustomError("reference", msg), "loc": loc, "input": None}
                    for loc, msg in problems
                ],
            )
        return self

    def _site_problems(self) -> list[tuple[Loc, str]]:
        problems: list[tuple[Loc, str]] = []
        site_ids: set[str] = set()
        for i, site in enumerate(self.sites):
            if site.id in site_ids:
                problems.append((("sites", i, "id"), f"site {site.id} is defined twice"))
            site_ids.add(site.id)
            problems += self._cell_problems(("sites", i), site)
            problems += self._device_problems(("sites", i), site)
        return problems

    def _cell_problems(self, loc: Loc, site: SimSite) -> list[tuple[Loc, str]]:
        problems: list[tuple[Loc, str]] = []
        skus = {s.sku: s for s in self.skus}
        for j, shelf in enumerate(site.shelves):
            for k, cell in enumerate(shelf.cells):
                where: Loc = (*loc, "shelves", j, "cells", k)
                sku = skus.get(cell.sku)
                if sku is None:
                    problems.append(((*where, "sku"), f"unknown SKU {cell.sku!r}"))
                elif sku.unit_grams is None:
                    problems.append(((*where, "sku"), f"SKU {cell.sku} needs unit_grams"))
        return problems

    def _device_problems(self, loc: Loc, site: SimSite) -> list[tuple[Loc, str]]:
        # A device id is one topic level: one kind of device per id and site.
        problems: list[tuple[Loc, str]] = []
        devices: dict[str, str] = {}
        named: list[tuple[Loc, str, str]] = [
            ((*loc, "shelves", j, "device"), shelf.device, "weight")
            for j, shelf in enumerate(site.shelves)
        ]
        for j, zone in enumerate(site.zones):
            named += [((*loc, "zones", j, "sensors", k, "device"), ref.device, "temp")
                      for k, ref in enumerate(zone.sensors)]  # fmt: skip
            named += [((*loc, "zones", j, "readers", k, "device"), a.device, "rfid")
                      for k, a in enumerate(zone.readers)]  # fmt: skip
        named += [((*loc, "portals", j, "device"), p.device, "rfid")
                  for j, p in enumerate(site.portals)]  # fmt: skip
        for where, device, kind in named:
            known = devices.setdefault(device, kind)
            if known != kind:
                problems.append((where, f"{device} is already a {known} device"))
        shelves = [s.device for s in site.shelves]
        problems += [
            ((*loc, "shelves", j, "device"), f"shelf {device} is defined twice")
            for j, device in enumerate(shelves)
            if device in shelves[:j]
        ]
        return problems

    def _demand_problems(self) -> list[tuple[Loc, str]]:
        problems: list[tuple[Loc, str]] = []
        skus = {s.sku: s for s in self.skus}
        for sku_id in self.demand:
            loc: Loc = ("demand", sku_id)
            sku = skus.get(sku_id)
            if sku is None:
                problems.append((loc, f"unknown SKU {sku_id!r}"))
                continue
            sites = [s for s in self.sites if any(c.sku == sku_id for _, c in s.cells())]
            if not sites:
                problems.append((loc, f"SKU {sku_id} is on no shelf cell"))
            elif sku.gtin is None or any(s.portal() is None for s in sites):
                # Picked units must pass the shipping antenna, or every pick reads as a loss.
                why = "leave through a dock portal: the SKU needs a gtin and its site a portal"
                problems.append((loc, f"picks of {sku_id} {why}"))
        return problems

    def _event_problems(self) -> list[tuple[Loc, str]]:
        problems: list[tuple[Loc, str]] = []
        skus = {s.sku for s in self.skus}
        for i, receipt in enumerate(self.receipts):
            loc: Loc = ("receipts", i)
            site = self._site_ref(receipt.site, (*loc, "site"), problems)
            if receipt.sku not in skus:
                problems.append(((*loc, "sku"), f"unknown SKU {receipt.sku!r}"))
            elif site is not None and not any(c.sku == receipt.sku for _, c in site.cells()):
                problems.append(((*loc, "sku"), f"no shelf cell of {site.id} holds {receipt.sku}"))
        for i, fault in enumerate(self.faults):
            problems += self._fault_problems(("faults", i), fault)
        return problems

    def _site_ref(
        self, site_id: str | None, loc: Loc, problems: list[tuple[Loc, str]]
    ) -> SimSite | None:
        if site_id is None:
            if len(self.sites) > 1:
                problems.append((loc, "the scenario has several sites: name one"))
                return None
            return self.sites[0]
        found = next((s for s in self.sites if s.id == site_id), None)
        if found is None:
            problems.append((loc, f"unknown site {site_id!r}"))
        return found

    def _fault_problems(self, loc: Loc, fault: Fault) -> list[tuple[Loc, str]]:
        if isinstance(fault, ExpiringLot):
            return self._lot_problems(loc, fault)
        problems: list[tuple[Loc, str]] = []
        site = self._site_ref(fault.site, (*loc, "site"), problems)
        if site is None:
            return problems
        if isinstance(fault, Theft):
            shelf = next((s for s in site.shelves if s.device == fault.device), None)
            if shelf is None:
                problems.append(((*loc, "device"), f"{site.id} has no shelf {fault.device!r}"))
            elif not any(c.cell == fault.cell for c in shelf.cells):
                problems.append(((*loc, "cell"), f"{fault.device} has no cell {fault.cell!r}"))
        elif isinstance(fault, Misplacement):
            problems += self._misplacement_problems(loc, site, fault)
        elif isinstance(fault, SensorDrift):
            if not any(r.device == fault.device for _, r in site.probes()):
                problems.append(((*loc, "device"), f"{site.id} has no probe {fault.device!r}"))
        elif isinstance(fault, DeviceOffline):
            if _kind(site, fault.device) is None:
                problems.append(((*loc, "device"), f"{site.id} has no device {fault.device!r}"))
        elif not any(z.id == fault.zone and z.temp_band for z in site.zones):
            problems.append(((*loc, "zone"), f"{site.id} has no cold room {fault.zone!r}"))
        return problems

    def _misplacement_problems(
        self, loc: Loc, site: SimSite, fault: Misplacement
    ) -> list[tuple[Loc, str]]:
        problems: list[tuple[Loc, str]] = []
        zone = next((z for z in site.zones if z.id == fault.zone), None)
        sku = next((s for s in self.skus if s.sku == fault.sku), None)
        if zone is None or not zone.readers:
            problems.append(((*loc, "zone"), f"{site.id} has no RFID zone {fault.zone!r}"))
        if sku is None or sku.gtin is None:
            problems.append(((*loc, "sku"), f"{fault.sku} is not a SKU with a gtin"))
        elif sku.home_zone is None or sku.home_zone == fault.zone:
            problems.append(
                ((*loc, "zone"), f"{fault.zone} must differ from {fault.sku}'s home_zone")
            )
        return problems

    def _lot_problems(self, loc: Loc, fault: ExpiringLot) -> list[tuple[Loc, str]]:
        lot = next((lot for lot in self.lots if lot.lot == fault.lot), None)
        if lot is None:
            return [((*loc, "lot"), f"unknown lot {fault.lot!r}")]
        if lot.qty <= 0:
            return [((*loc, "lot"), f"lot {fault.lot} holds nothing: no date of it alerts")]
        if fault.removal_after is not None and fault.removal_after < fault.alert_after:
            return [((*loc, "removal_after"), "the removal date comes before the alert date")]
        return []


def _kind(site: SimSite, device: str) -> Literal["temp", "weight", "rfid"] | None:
    if any(s.device == device for s in site.shelves):
        return "weight"
    if any(r.device == device for _, r in site.probes()):
        return "temp"
    readers = {a.device for z in site.zones for a in z.readers}
    if device in readers or any(p.device == device for p in site.portals):
        return "rfid"
    return None


def load_scenario(path: Path) -> Scenario:
    """Load and validate a scenario file; errors name the file and the offending key."""
    return load_yaml_model(path, Scenario, "scenario")


def local_midnight_ms(ts_ms: int, timezone: str) -> int:
    """Epoch ms of the local midnight at or before ``ts_ms`` in ``timezone``."""
    local = dt.datetime.fromtimestamp(ts_ms / 1000, tz=ZoneInfo(timezone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return int(midnight.timestamp() * 1000)
