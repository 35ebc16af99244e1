"""Live inventory: the rules-engine processor that turns shelf and RFID readings into stock.

Readings → trackers (:mod:`rules.inventory.weight`, :mod:`rules.inventory.rfid`) → ledger
movements in the relational store → reorder evaluation → purchase suggestions and alerts.
Time-based rules (lot dates, dead stock, supply/demand imbalance, unexplained loss, misplaced
tags) run from :meth:`InventoryProcessor.tick` with an explicit ``now_ms``.

Alerts and their sources (one active alert per source and type, enforced by the alert store):

============== =================================== =========================================
type           source                              cleared when
============== =================================== =========================================
weight_ambiguous  ``site/device/cell``             (an incident: acked by ops)
reorder        ``site/sku``                        projected rises above the trigger level
expiry_alert   ``site/sku/lot``                    the lot is empty
expired_on_shelf ``site/sku/lot``                  the lot is empty
dead_stock     ``site/sku``                        the SKU moves again or has no stock
supply_imbalance ``site/sku``                      available + inbound cover the demand
unexplained_loss ``site/device/cell``              (an incident: acked by ops)
misplaced_item ``site/zone/sku``                   no tag of that SKU is left in the zone
============== =================================== =========================================

Stock levels, movements and suggestions also go to InfluxDB (``stock``, ``movements``,
``suggestions``) through a buffer flushed from ``tick``, so the rules loop never waits on
InfluxDB and an outage only delays the points.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from core.alerts import AlertCondition, AlertStore
from core.influx import line
from core.influx_writer import BatchWriter
from core.inventory import (
    InventoryStores,
    LedgerEntry,
    MovementKind,
    Shelf,
    Sku,
    Suggestion,
    ZoneRole,
)
from core.readings import DeviceStatus, Sample, TagSample, WeightSample
from core.settings import InventorySettings, Settings
from rules.inventory.ageing import SkuActivity, ageing_figures
from rules.inventory.imbalance import DemandLine, InboundLine, find_imbalances
from rules.inventory.replenishment import (
    MinMaxRule,
    ReorderLevelRule,
    ReorderPointRule,
    ReorderRule,
    RevisedSuggestion,
    dynamic_levels,
    projected_qty,
    suggestion_change,
)
from rules.inventory.rfid import RfidEvent, RfidTracker, ZoneEnter, ZoneExit
from rules.inventory.weight import AmbiguousChange, CellConfig, CellTracker, Movement
from rules.lifecycle import AlertLifecycle

logger = logging.getLogger(__name__)

DAY_MS = 86_400_000
EXIT_MEMORY = 10_000  # RFID exits remembered per (site, SKU) to explain weight drops
RECEIVED_MEMORY = 100_000  # EPCs remembered as received, so a lingering tag is booked once


@dataclass(slots=True)
class _Cell:
    shelf: Shelf
    tracker: CellTracker
    last_put_ms: int | None = None
    last_ambiguous_ms: int | None = None


@dataclass(frozen=True, slots=True)
class _LossCheck:
    site: str
    device: str
    cell: str
    sku: str
    units: int
    ts_ms: int


@dataclass(frozen=True, slots=True)
class _Misplaced:
    site: str
    epc: str
    zone: str
    sku: str
    home: str
    ts_ms: int


class InventoryProcessor:
    """Stock from weight shelves and RFID, reorder, expiry, ageing, imbalance and stock anomalies.

    Built from the catalog in the database; catalog changes made through the API are picked
    up at the next periodic evaluation.
    """

    def __init__(
        self,
        *,
        store: InventoryStores,
        alerts: AlertStore,
        lifecycle: AlertLifecycle | None = None,
        writer: BatchWriter | None = None,
        config: InventorySettings | None = None,
    ) -> None:
        """``writer`` is the process's durable InfluxDB writer (started and closed by its
        owner); without one, stock, movement and suggestion points are not written."""
        self.store = store
        self.alerts = alerts
        # Alerts are raised and cleared only through the lifecycle (debounce, severity).
        self.lifecycle = lifecycle or AlertLifecycle(alerts)
        self.config = config or InventorySettings()
        # Stock, movement and suggestion points go through the same durable writer as the
        # readings: batched, never blocking the rules loop, spooled to disk while InfluxDB is
        # down.
        self.influx = writer
        self._skus: dict[str, Sku] = {}
        self._cells: dict[tuple[str, str, str], _Cell] = {}
        self._rfid: dict[str, RfidTracker] = {}
        self._zone_roles: dict[tuple[str, str], ZoneRole] = {}
        self._rfid_key: object = None
        self._signature: object = None
        self._offline: dict[tuple[str, str], int] = {}  # reader -> offline since
        self._last_offline: dict[str, int] = {}  # site -> last time a reader was offline
        self._exits: dict[tuple[str, str], deque[int]] = {}
        self._received: OrderedDict[str, None] = OrderedDict()
        # Recent shelf picks per (site, SKU) as [ts, units not yet seen leaving]: a unit picked
        # from a shelf and then read at the shipping portal must not leave stock twice.
        self._picked: dict[tuple[str, str], deque[list[int]]] = {}
        self._loss_checks: deque[_LossCheck] = deque()
        self._misplaced: dict[tuple[str, str], _Misplaced] = {}
        # Settled misplaced tags, with the condition reported for them (again each tick while
        # a debounce holds it back).
        self._misplaced_active: dict[tuple[str, str, str], AlertCondition] = {}
        self._levels: dict[tuple[str, str], tuple[int, float, str]] = {}
        self._last_sweep_ms: int | None = None
        self.reload_catalog()

    # ------------------------------------------------------------------ catalog

    def reload_catalog(self) -> bool:
        """Rebuild trackers from the database if the catalog changed; True if it did.

        Cells whose binding is unchanged keep their state (baseline, filter window), so a
        catalog edit elsewhere never turns into a phantom movement.
        """
        signature = self.store.catalog.catalog_signature()
        if signature == self._signature:
            return False
        self._signature = signature
        self._skus = {s.sku: s for s in self.store.catalog.skus()}
        cells: dict[tuple[str, str, str], _Cell] = {}
        for shelf in self.store.catalog.shelves():
            sku = self._skus.get(shelf.sku)
            if sku is None or sku.unit_grams is None:
                logger.warning("shelf %s/%s/%s: SKU has no unit weight", *_cell_key(shelf))
                continue
            config = CellConfig(
                site=shelf.site,
                device=shelf.device,
                cell=shelf.cell,
                sku=shelf.sku,
                unit_grams=sku.unit_grams,
                tare_grams=shelf.tare_grams,
                tolerance=sku.weight_tolerance,
                settle_readings=self.config.settle_readings,
            )
            existing = self._cells.get(config.key)
            if existing is not None and existing.tracker.config == config:
                existing.shelf = shelf
                cells[config.key] = existing
            else:
                cells[config.key] = _Cell(shelf=shelf, tracker=CellTracker(config))
        self._cells = cells
        zones = self.store.catalog.rfid_zones()
        gtins = {s.gtin: s.sku for s in self._skus.values() if s.gtin is not None}
        rfid_key = (tuple(zones), tuple(sorted(gtins.items())))
        if rfid_key != self._rfid_key:
            self._rfid_key = rfid_key
            by_site: dict[str, dict[tuple[str, int], str]] = {}
            for zone in zones:
                by_site.setdefault(zone.site, {})[(zone.device, zone.antenna)] = zone.zone
            self._zone_roles = {(z.site, z.zone): z.role for z in zones}
            self._rfid = {
                site: RfidTracker(
                    antenna_zones=antennas,
                    gtin_to_sku=gtins,
                    dedup_window_ms=round(self.config.rfid_dedup_window_s * 1000),
                    exit_after_ms=round(self.config.rfid_exit_after_s * 1000),
                )
                for site, antennas in by_site.items()
            }
        logger.info(
            "inventory catalog: %d SKUs, %d shelf cells, %d RFID antennas",
            len(self._skus),
            len(self._cells),
            len(zones),
        )
        return True

    def cell(self, site: str, device: str, cell: str) -> CellTracker | None:
        """The tracker of a shelf cell (for health views and tests)."""
        entry = self._cells.get((site, device, cell))
        return entry.tracker if entry is not None else None

    @property
    def offline_readers(self) -> dict[tuple[str, str], int]:
        """RFID readers reported offline, (site, device) → since when."""
        return dict(self._offline)

    def rfid(self, site: str) -> RfidTracker | None:
        """The RFID tracker of a site."""
        return self._rfid.get(site)

    # ------------------------------------------------------------------ readings

    def process(self, samples: Sequence[Sample]) -> None:
        """Feed weight, tag and reader-status readings to the trackers and book what they see."""
        touched: dict[tuple[str, str], int] = {}
        for sample in samples:
            if isinstance(sample, WeightSample):
                self._weight(sample, touched)
            elif isinstance(sample, TagSample):
                tracker = self._rfid.get(sample.site)
                if tracker is not None:
                    self._rfid_events(sample.site, tracker.observe(sample), touched)
            elif isinstance(sample, DeviceStatus) and sample.kind == "rfid":
                self._reader_status(sample)
        for (site, sku), ts in touched.items():
            self.evaluate_reorder(site, sku, at_ms=ts)

    def _weight(self, sample: WeightSample, touched: dict[tuple[str, str], int]) -> None:
        entry = self._cells.get((sample.site, sample.device, sample.cell))
        if entry is None:
            return
        tracker = entry.tracker
        was_unknown = tracker.phase == "unknown"
        events = tracker.update(sample)
        if was_unknown and tracker.phase == "idle":
            self._shelf_count(entry, sample.ts_ms, touched)
        for event in events:
            if isinstance(event, Movement):
                self._movement(entry, event, touched)
            else:
                self._ambiguous(entry, event)

    def _shelf_count(self, entry: _Cell, ts_ms: int, touched: dict[tuple[str, str], int]) -> None:
        # The first settled level is a count of the shelf: the ledger follows the shelf.
        shelf = entry.shelf
        counted = float(max(entry.tracker.units_on_shelf, 0))
        booked = self.store.ledger.qty_at(shelf.site, shelf.location_id, shelf.sku)
        diff = counted - booked
        if math.isclose(diff, 0.0, abs_tol=1e-9):
            return
        logger.info(
            "shelf %s counts %g %s, ledger had %g: adjusting",
            shelf.location_id,
            counted,
            shelf.sku,
            booked,
        )
        self._book(
            shelf.site, shelf.location_id, shelf.sku, diff, "adjust", ts_ms=ts_ms, ref="shelf count"
        )
        touched[(shelf.site, shelf.sku)] = ts_ms

    def _movement(self, entry: _Cell, mv: Movement, touched: dict[tuple[str, str], int]) -> None:
        shelf = entry.shelf
        qty = float(mv.units if mv.kind == "put" else -mv.units)
        ref = f"{shelf.device}/{shelf.cell}"
        self._book(shelf.site, shelf.location_id, shelf.sku, qty, mv.kind, ts_ms=mv.ts_ms, ref=ref)
        touched[(shelf.site, shelf.sku)] = mv.ts_ms
        if mv.kind == "put":
            entry.last_put_ms = mv.ts_ms
        else:
            picked = self._picked.setdefault((shelf.site, shelf.sku), deque(maxlen=EXIT_MEMORY))
            picked.append([mv.ts_ms, mv.units])
            self._loss_checks.append(
                _LossCheck(
                    site=shelf.site,
                    device=shelf.device,
                    cell=shelf.cell,
                    sku=shelf.sku,
                    units=mv.units,
                    ts_ms=mv.ts_ms,
                )
            )

    def _ambiguous(self, entry: _Cell, change: AmbiguousChange) -> None:
        shelf = entry.shelf
        entry.last_ambiguous_ms = change.ts_ms
        self._raise(
            AlertCondition(
                source=f"{shelf.site}/{shelf.device}/{shelf.cell}",
                type="weight_ambiguous",
                severity="warning",
                site=shelf.site,
                title=f"Ambiguous weight change on {shelf.device}/{shelf.cell}",
                message=(
                    f"{change.delta_grams:+.1f} g is {change.units_estimate:+.2f} units of "
                    f"{shelf.sku}: not a whole number, stock not changed; please count the shelf"
                ),
                value=change.units_estimate,
                threshold=None,
                details={"sku": shelf.sku, "delta_grams": round(change.delta_grams, 1)},
                at_ms=change.ts_ms,
            ),
        )

    def _rfid_events(
        self, site: str, events: Sequence[RfidEvent], touched: dict[tuple[str, str], int]
    ) -> None:
        for event in events:
            if isinstance(event, ZoneEnter):
                self._zone_enter(site, event, touched)
            elif isinstance(event, ZoneExit):
                self._zone_exit(site, event)

    def _zone_enter(self, site: str, event: ZoneEnter, touched: dict[tuple[str, str], int]) -> None:
        sku = event.sku
        if sku is None:
            return
        self._count_line(site, event.zone, sku, event.ts_ms)
        role = self._zone_roles.get((site, event.zone), "storage")
        ref = f"epc {event.epc}"
        if role == "receiving":
            if event.epc in self._received:
                return  # the same tag lingering at the dock: received once
            self._received[event.epc] = None
            if len(self._received) > RECEIVED_MEMORY:
                self._received.popitem(last=False)
            self._book(site, event.zone, sku, 1.0, "receipt", ts_ms=event.ts_ms, ref=ref)
            touched[(site, sku)] = event.ts_ms
        elif role == "shipping":
            self._received.pop(event.epc, None)
            self._exit_seen(site, sku, event.ts_ms)
            if self._shipped_from_pick(site, sku, event.ts_ms):
                return  # a shelf pick already took this unit out of stock
            self._book(site, event.zone, sku, -1.0, "issue", ts_ms=event.ts_ms, ref=ref)
            touched[(site, sku)] = event.ts_ms
        else:
            home = self._skus[sku].home_zone if sku in self._skus else None
            if home is not None and home != event.zone:
                self._misplaced[(site, event.epc)] = _Misplaced(
                    site=site, epc=event.epc, zone=event.zone, sku=sku, home=home, ts_ms=event.ts_ms
                )

    def _shipped_from_pick(self, site: str, sku: str, ts_ms: int) -> bool:
        picks = self._picked.get((site, sku))
        window = round(self.config.loss_window_s * 1000)
        while picks and picks[0][0] < ts_ms - window:
            picks.popleft()
        if not picks:
            return False
        picks[0][1] -= 1
        if picks[0][1] <= 0:
            picks.popleft()
        return True

    def _zone_exit(self, site: str, event: ZoneExit) -> None:
        self._misplaced.pop((site, event.epc), None)
        if event.sku is None:
            return
        self._count_line(site, event.zone, event.sku, event.ts_ms)
        self._exit_seen(site, event.sku, event.ts_ms)

    def _exit_seen(self, site: str, sku: str, ts_ms: int) -> None:
        self._exits.setdefault((site, sku), deque(maxlen=EXIT_MEMORY)).append(ts_ms)

    def _reader_status(self, status: DeviceStatus) -> None:
        key = (status.site, status.device)
        if not status.online:
            self._offline.setdefault(key, status.ts_ms)
            self._last_offline[status.site] = status.ts_ms
        elif key in self._offline:
            del self._offline[key]
            self._last_offline[status.site] = status.ts_ms  # offline until now

    # ------------------------------------------------------------------ bookings

    def _book(
        self,
        site: str,
        location: str,
        sku: str,
        qty: float,
        kind: MovementKind,
        *,
        ts_ms: int,
        ref: str,
    ) -> list[LedgerEntry]:
        if qty < 0:
            entries = self.store.ledger.record_outflow(
                ts_ms=ts_ms,
                site=site,
                location=location,
                sku=sku,
                qty=-qty,
                kind=kind,
                source="sensor",
                ref=ref,
            )
        else:
            entries = [
                self.store.ledger.record(
                    ts_ms=ts_ms,
                    site=site,
                    location=location,
                    sku=sku,
                    qty=qty,
                    kind=kind,
                    source="sensor",
                    ref=ref,
                )
            ]
        ts_ns = ts_ms * 1_000_000
        lines = [
            line(
                "movements",
                {"site": e.site, "sku": e.sku, "kind": e.kind, "source": e.source},
                {
                    "qty": float(e.qty),
                    "location": e.location,
                    "lot": e.lot,
                    "ref": e.ref,
                    "ledger_id": e.id,
                },
                ts_ns + i,  # rows of one movement share a time: keep them apart
            )
            for i, e in enumerate(entries)
        ]
        lines.append(
            line(
                "stock",
                {"site": site, "location": location, "sku": sku, "basis": "ledger"},
                {"qty": self.store.ledger.qty_at(site, location, sku)},
                ts_ns,
            )
        )
        self._write(lines)
        return entries

    def _count_line(self, site: str, zone: str, sku: str, ts_ms: int) -> None:
        tracker = self._rfid.get(site)
        if tracker is None:
            return
        self._write(
            [
                line(
                    "stock",
                    {"site": site, "location": zone, "sku": sku, "basis": "rfid"},
                    {"qty": float(tracker.count(zone, sku))},
                    ts_ms * 1_000_000,
                )
            ]
        )

    # ------------------------------------------------------------------ reorder

    def reorder_rule(self, site: str, sku: Sku, *, at_ms: int) -> tuple[ReorderRule, str] | None:
        """The SKU's reorder rule at a site and a short reason, or None without a policy."""
        if sku.policy == "dynamic":
            rop, reason = self._dynamic_rop(site, sku, at_ms)
            order = sku.reorder_qty or max(sku.max_qty - sku.min_qty, 0.0)
            if order <= 0:
                order = max(sku.pack_multiple, 1.0)
            rule = ReorderPointRule.dynamic(
                site=site,
                sku=sku.sku,
                reorder_point=rop,
                order_qty=order,
                multiple=sku.pack_multiple,
            )
            return rule, reason
        if sku.reorder_level is not None:
            erp = ReorderLevelRule(
                site=site,
                sku=sku.sku,
                reorder_level=sku.reorder_level,
                reorder_qty=sku.reorder_qty or 0.0,
            )
            return erp, f"below reorder level {sku.reorder_level:g}"
        if sku.max_qty <= 0:
            return None
        minmax = MinMaxRule(
            site=site,
            sku=sku.sku,
            min_qty=sku.min_qty,
            max_qty=sku.max_qty,
            multiple=sku.pack_multiple,
        )
        return minmax, f"below min {sku.min_qty:g} (max {sku.max_qty:g})"

    def _dynamic_rop(self, site: str, sku: Sku, at_ms: int) -> tuple[float, str]:
        # Levels move with whole days of history, so they are computed once per day.
        day = at_ms // DAY_MS
        cached = self._levels.get((site, sku.sku))
        if cached is not None and cached[0] == day:
            return cached[1], cached[2]
        days = self.config.demand_history_days
        history = self.store.ledger.daily_outflows(site, sku.sku, end_ms=day * DAY_MS, days=days)
        d_mean, d_sigma, ss, rop = dynamic_levels(
            np.array([history], dtype=np.float64),
            np.array([sku.lead_time_days]),
            np.array([sku.lead_time_sigma_days]),
            np.array([sku.service_level]),
        )
        value = float(rop[0])
        reason = (
            f"dynamic ROP {value:.1f} (d {float(d_mean[0]):.2f}/day, σd {float(d_sigma[0]):.2f},"
            f" SS {float(ss[0]):.1f}, {days} days of history)"
        )
        self._levels[(site, sku.sku)] = (day, value, reason)
        return value, reason

    def evaluate_reorder(self, site: str, sku_id: str, *, at_ms: int) -> Suggestion | None:
        """Suggest (or revise) a purchase when the rule fires and no open one covers the gap.

        The min/max and ERPNext rules fire strictly below their level, the dynamic rule at or
        below its reorder point.

        Projected = available on hand (stock past its removal date excluded) + open inbound
        (ordered suggestions included) - open confirmed demand. Pending (not yet ordered)
        suggestions cover the gap they were made for, so the same gap is never suggested twice.
        """
        sku = self._skus.get(sku_id)
        if sku is None:
            return None
        found = self.reorder_rule(site, sku, at_ms=at_ms)
        if found is None:
            return None
        rule, reason = found
        projected = projected_qty(
            on_hand=self.store.ledger.available(site, sku_id, at_ms=at_ms),
            on_order=self.store.planning.on_order(site, sku_id),
            reserved=self.store.planning.reserved(site, sku_id),
        )
        source = f"{site}/{sku_id}"
        if not rule.triggered(projected):
            self._clear(source, "reorder", at_ms, "projected quantity above the reorder trigger")
            return None
        suggestion = self._suggest(rule, projected=projected, reason=reason, at_ms=at_ms)
        if suggestion is None:
            if not self.lifecycle.is_open(source, "reorder"):
                # Below the trigger with an open suggestion covering the gap: the condition
                # holds, and must keep being seen for a debounce to end and raise it.
                covering = self.store.planning.open_suggestions(site, sku_id)
                pending = [s for s in covering if s.state == "suggested"] or covering
                if pending:
                    self._raise(self._reorder_condition(rule, sku, projected, pending[0], at_ms))
            return None
        logger.info(
            "purchase suggestion %d: %s qty %g (%s)", suggestion.id, source, suggestion.qty, reason
        )
        self._write(
            [
                line(
                    "suggestions",
                    {"site": site, "sku": sku_id, "state": suggestion.state},
                    {
                        "suggestion_id": suggestion.id,
                        "qty": float(suggestion.qty),
                        "projected": float(projected),
                        "trigger_level": float(rule.trigger_level),
                        "reason": reason,
                    },
                    at_ms * 1_000_000,
                )
            ]
        )
        self._raise(self._reorder_condition(rule, sku, projected, suggestion, at_ms))
        return suggestion

    def _reorder_condition(
        self, rule: ReorderRule, sku: Sku, projected: float, suggestion: Suggestion, at_ms: int
    ) -> AlertCondition:
        qty = suggestion.qty
        return AlertCondition(
            source=f"{rule.site}/{rule.sku}",
            type="reorder",
            severity="minor",
            site=rule.site,
            title=f"Reorder {rule.sku} at {rule.site}",
            message=(
                f"{sku.name or rule.sku}: projected {projected:g} {rule.trigger_op} "
                f"{rule.trigger_level:g}; "
                f"suggested purchase of {qty:g}" + (f" from {sku.supplier}" if sku.supplier else "")
            ),
            value=projected,
            threshold=rule.trigger_level,
            details={"suggestion_id": suggestion.id, "qty": qty, "reason": suggestion.reason},
            at_ms=at_ms,
        )

    def _suggest(
        self, rule: ReorderRule, *, projected: float, reason: str, at_ms: int
    ) -> Suggestion | None:
        change = suggestion_change(
            rule,
            projected=projected,
            open_suggestions=self.store.planning.open_suggestions(rule.site, rule.sku),
        )
        if change is None:
            return None
        if isinstance(change, RevisedSuggestion):
            return self.store.planning.revise_suggestion(
                change.id, qty=change.qty, projected=projected, reason=reason, ts_ms=at_ms
            )
        return self.store.planning.add_suggestion(
            site=rule.site,
            sku=rule.sku,
            qty=change.qty,
            reason=reason,
            projected=projected,
            trigger_level=rule.trigger_level,
            ts_ms=at_ms,
        )

    # ------------------------------------------------------------------ time

    def tick(self, now_ms: int) -> None:
        """RFID exits, loss and misplaced checks; every ``evaluate_interval_s`` the sweep."""
        touched: dict[tuple[str, str], int] = {}
        for site, tracker in self._rfid.items():
            self._rfid_events(site, tracker.tick(now_ms), touched)
        for (site, sku), ts in touched.items():
            self.evaluate_reorder(site, sku, at_ms=ts)
        self._check_losses(now_ms)
        self._check_misplaced(now_ms)
        interval_ms = round(self.config.evaluate_interval_s * 1000)
        if self._last_sweep_ms is None or now_ms - self._last_sweep_ms >= interval_ms:
            self._last_sweep_ms = now_ms
            self.sweep(now_ms)

    def sweep(self, now_ms: int) -> None:
        """Catalog reload, lot dates, dead stock, imbalance and reorder for every SKU."""
        self.reload_catalog()
        self._check_expiry(now_ms)
        self._check_dead_stock(now_ms)
        self._check_imbalance(now_ms)
        for site, sku in self.store.ledger.stocked_pairs():
            self.evaluate_reorder(site, sku, at_ms=now_ms)

    def _check_expiry(self, now_ms: int) -> None:
        live: set[tuple[str, str]] = set()
        for lot in self.store.ledger.lots(in_stock=True):
            source = f"{lot.site}/{lot.sku}/{lot.lot}"
            removal = lot.effective_removal_at
            if removal is not None and now_ms >= removal:
                live.add((source, "expired_on_shelf"))
                self._raise(
                    AlertCondition(
                        source=source,
                        type="expired_on_shelf",
                        severity="major",
                        site=lot.site,
                        title=f"Lot {lot.lot} of {lot.sku} past its removal date",
                        message=(
                            f"{lot.qty:g} units of lot {lot.lot} at {lot.location} must be taken "
                            "out of stock; they no longer count as available"
                        ),
                        value=lot.qty,
                        threshold=None,
                        details={"lot": lot.lot, "location": lot.location, "removal_at": removal},
                        at_ms=now_ms,
                    ),
                )
            if lot.alert_at is not None and now_ms >= lot.alert_at:
                live.add((source, "expiry_alert"))
                self._raise(
                    AlertCondition(
                        source=source,
                        type="expiry_alert",
                        severity="warning",
                        site=lot.site,
                        title=f"Lot {lot.lot} of {lot.sku} reached its alert date",
                        message=(
                            f"{lot.qty:g} units at {lot.location}; expires "
                            f"{_date(lot.expiration_at)}, removal {_date(removal)}"
                        ),
                        value=lot.qty,
                        threshold=None,
                        details={
                            "lot": lot.lot,
                            "location": lot.location,
                            "alert_at": lot.alert_at,
                        },
                        at_ms=now_ms,
                    ),
                )
        self._clear_gone(("expired_on_shelf", "expiry_alert"), live, now_ms, "lot is empty")

    def _check_dead_stock(self, now_ms: int) -> None:
        live: set[tuple[str, str]] = set()
        for site, sku in self.store.ledger.stocked_pairs():
            stock = self.store.ledger.on_hand(site, sku)
            figures = ageing_figures(
                SkuActivity(
                    site=site,
                    sku=sku,
                    stock=stock,
                    daily_outflow=(),
                    last_outflow_ms=self.store.ledger.last_outflow(site, sku),
                    stocked_since_ms=self.store.ledger.first_inflow(site, sku),
                ),
                now_ms=now_ms,
                dead_after_days=self.config.dead_after_days,
            )
            if not figures.dead:
                continue
            source = f"{site}/{sku}"
            live.add((source, "dead_stock"))
            days = figures.days_since_outflow or 0.0
            cost = self._skus[sku].unit_cost if sku in self._skus else 0.0
            self._raise(
                AlertCondition(
                    source=source,
                    type="dead_stock",
                    severity="minor",
                    site=site,
                    title=f"Dead stock: {sku} at {site}",
                    message=f"{stock:g} units, no outflow for {days:.0f} days",
                    value=days,
                    threshold=self.config.dead_after_days,
                    details={"sku": sku, "stock": stock, "value": stock * cost},
                    at_ms=now_ms,
                ),
            )
        self._clear_gone(("dead_stock",), live, now_ms, "stock moved again")

    def _check_imbalance(self, now_ms: int) -> None:
        demand = [
            DemandLine(site=d.site, sku=d.sku, qty=d.qty, due_ms=d.due_at)
            for d in self.store.planning.demand(status="confirmed")
        ]
        keys = {(d.site, d.sku) for d in demand}
        items = find_imbalances(
            demand=demand,
            available={k: self.store.ledger.available(*k, at_ms=now_ms) for k in keys},
            in_transit=[
                InboundLine(site=i.site, sku=i.sku, qty=i.qty, eta_ms=i.eta)
                for i in self.store.planning.inbound(status="open")
            ],
            unit_cost={s.sku: s.unit_cost for s in self._skus.values()},
            now_ms=now_ms,
            horizon_days=self.config.imbalance_horizon_days,
        )
        live: set[tuple[str, str]] = set()
        for rank, item in enumerate(items, start=1):
            source = f"{item.site}/{item.sku}"
            live.add((source, "supply_imbalance"))
            self._raise(
                AlertCondition(
                    source=source,
                    type="supply_imbalance",
                    severity="major",
                    site=item.site,
                    title=f"Short of {item.sku} at {item.site}: {item.shortfall:g} units",
                    message=(
                        f"confirmed demand {item.demand:g} due within "
                        f"{self.config.imbalance_horizon_days:g} days; available "
                        f"{item.available:g}, inbound {item.in_transit:g}; "
                        f"value at risk {item.value_at_risk:.2f}"
                    ),
                    value=item.value_at_risk,
                    threshold=None,
                    details={
                        "rank": rank,
                        "shortfall": item.shortfall,
                        "first_due_at": item.first_due_ms,
                    },
                    at_ms=now_ms,
                ),
            )
        self._clear_gone(("supply_imbalance",), live, now_ms, "demand covered")

    def _check_losses(self, now_ms: int) -> None:
        window = round(self.config.loss_window_s * 1000)
        while self._loss_checks and self._loss_checks[0].ts_ms + window <= now_ms:
            check = self._loss_checks.popleft()
            if self._loss_explained(check, window):
                continue
            source = f"{check.site}/{check.device}/{check.cell}"
            self._raise(
                AlertCondition(
                    source=source,
                    type="unexplained_loss",
                    severity="major",
                    site=check.site,
                    title=f"Unexplained loss of {check.units} × {check.sku}",
                    message=(
                        f"{check.device}/{check.cell} lost {check.units} units with no RFID exit "
                        f"and no recorded pick within {self.config.loss_window_s:g} s"
                    ),
                    value=float(check.units),
                    threshold=None,
                    details={"sku": check.sku, "drop_at": check.ts_ms},
                    at_ms=check.ts_ms + window,
                ),
            )

    def _loss_explained(self, check: _LossCheck, window: int) -> bool:
        lo, hi = check.ts_ms - window, check.ts_ms + window
        if any(lo <= ts <= hi for ts in self._exits.get((check.site, check.sku), ())):
            return True
        recorded = self.store.ledger.ledger(
            site=check.site,
            sku=check.sku,
            since_ms=lo,
            until_ms=hi,
            kinds=("pick", "issue"),
            source="api",
            limit=1,
        )
        if recorded:
            return True
        # Not evidence of loss while the RFID side could not see exits, or while the shelf
        # was being handled (a put or an ambiguous change right after the drop).
        if any(site == check.site for site, _ in self._offline):
            return True
        if self._last_offline.get(check.site, -math.inf) >= lo:
            return True
        entry = self._cells.get((check.site, check.device, check.cell))
        if entry is None:
            return True
        unstable = [t for t in (entry.last_put_ms, entry.last_ambiguous_ms) if t is not None]
        return entry.tracker.phase == "moving" or any(lo <= t <= hi for t in unstable)

    def _check_misplaced(self, now_ms: int) -> None:
        settle = round(self.config.misplaced_after_s * 1000)
        fresh: set[tuple[str, str, str]] = set()
        for key, item in list(self._misplaced.items()):
            if now_ms - item.ts_ms < settle:
                continue
            del self._misplaced[key]
            tracker = self._rfid.get(item.site)
            if tracker is None or tracker.zone_of(item.epc) != item.zone:
                continue
            condition = AlertCondition(
                source=f"{item.site}/{item.zone}/{item.sku}",
                type="misplaced_item",
                severity="minor",
                site=item.site,
                zone=item.zone,
                title=f"{item.sku} in {item.zone}, home {item.home}",
                message=(
                    f"tag {item.epc} of {item.sku} settled in {item.zone};"
                    f" it belongs in {item.home}"
                ),
                value=None,
                threshold=None,
                details={"epc": item.epc, "home_zone": item.home},
                at_ms=item.ts_ms + settle,
            )
            self._misplaced_active[(item.site, item.zone, item.sku)] = condition
            fresh.add((item.site, item.zone, item.sku))
            self._raise(condition)
        for where, condition in list(self._misplaced_active.items()):
            site, zone, sku = where
            tracker = self._rfid.get(site)
            if tracker is None or tracker.count(zone, sku) == 0:
                del self._misplaced_active[where]
                self._clear(f"{site}/{zone}/{sku}", "misplaced_item", now_ms, "tag left the zone")
            elif where not in fresh and self.lifecycle.is_pending(condition.source, condition.type):
                self._raise(replace(condition, at_ms=now_ms))

    # ------------------------------------------------------------------ alerts

    def _raise(self, condition: AlertCondition) -> None:
        # Every sweep that still sees the condition reports it: the lifecycle debounces.
        if self.lifecycle.report(condition) is not None:
            logger.info(
                "alert %s raised for %s: %s", condition.type, condition.source, condition.title
            )

    def _clear(self, source: str, type_: str, at_ms: int, note: str) -> None:
        if self.lifecycle.resolve(source, type_, at_ms=at_ms, note=note) is not None:
            logger.info("alert %s cleared for %s: %s", type_, source, note)

    def _clear_gone(
        self, types: tuple[str, ...], live: set[tuple[str, str]], at_ms: int, note: str
    ) -> None:
        # Open alerts and conditions still debouncing alike: a condition gone before its
        # debounce ended must start again from zero.
        for source, type_ in sorted(self.lifecycle.tracked(types) - live):
            self._clear(source, type_, at_ms, note)

    def _write(self, lines: Sequence[str]) -> None:
        if self.influx is not None:
            self.influx.add_nowait(list(lines))


def _cell_key(shelf: Shelf) -> tuple[str, str, str]:
    return (shelf.site, shelf.device, shelf.cell)


def _date(ms: int | None) -> str:
    if ms is None:
        return "-"
    return time.strftime("%Y-%m-%d", time.gmtime(ms / 1000))


def build_inventory_processor(
    settings: Settings,
    conn: sqlite3.Connection,
    store: AlertStore,
    writer: BatchWriter | None,
    *,
    config: InventorySettings | None = None,
    lifecycle: AlertLifecycle | None = None,
) -> InventoryProcessor:
    """The inventory processor over the pipeline's database connection, alert store and writer.

    Tuning comes from ``config``, else ``settings.inventory``; alerts go through
    ``lifecycle`` (the pipeline's shared one), else a new one over ``store``.
    """
    return InventoryProcessor(
        store=InventoryStores.over(conn),
        alerts=store,
        lifecycle=lifecycle,
        writer=writer,
        config=config or settings.inventory,
    )
