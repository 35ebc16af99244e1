"""Weight shelves: readings → cell trackers → ledger movements and ambiguous-change alerts.

The first settled level of a cell is a count of the shelf, so the ledger follows the shelf;
later settled changes of whole units are picks and puts. Until every reporting cell of a SKU has
settled and booked that count, the SKU's stock is not known (:meth:`WeightShelves.settled`), and
no stock alert is raised for it. Picks are remembered for a while: the shipping portal asks
whether a unit it sees leave was already picked, and the loss check whether a drop was explained.
Portal issues no pick explained are remembered too: a shelf that senses the pick only after the
unit passed the portal books the pick and takes the portal's issue back, so stock falls once.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from core.alerts import AlertCondition
from core.inventory import LedgerStore, Shelf, Sku
from core.readings import WeightSample
from rules.inventory.alerting import InventoryAlerts
from rules.inventory.bookings import Bookings
from rules.inventory.weight import AmbiguousChange, CellConfig, CellTracker, Movement

logger = logging.getLogger(__name__)

PICK_MEMORY = 10_000  # shelf picks remembered per (site, SKU) to explain shipping reads
ISSUE_MEMORY = 10_000  # portal issues remembered per (site, SKU) for a pick sensed after them

Touched = dict[tuple[str, str], int]  # (site, SKU) → time of its latest booking


@dataclass(slots=True)
class _Cell:
    shelf: Shelf
    tracker: CellTracker
    last_put_ms: int | None = None
    last_ambiguous_ms: int | None = None
    counted: bool = False  # settled, and its first level booked as a count


@dataclass(frozen=True, slots=True)
class _Issue:
    """A unit a shipping portal booked out before any shelf pick explained it."""

    ts_ms: int
    zone: str
    ref: str


@dataclass(slots=True)
class LossCheck:
    """A sensed drop to check for an explanation once the loss window has passed.

    The weight left between ``since_ms`` (the last reading at the old level) and ``ts_ms``
    (the settled new level); ``explained`` units of it were matched to recorded picks so far.
    """

    site: str
    device: str
    cell: str
    sku: str
    units: int
    ts_ms: int
    since_ms: int
    location: str
    ledger_id: int | None = None
    explained: float = 0.0

    @property
    def unexplained(self) -> float:
        """Units no recorded pick accounts for."""
        return max(self.units - self.explained, 0.0)


class WeightShelves:
    """The shelf cells of every site, their trackers and the picks they saw."""

    def __init__(
        self,
        *,
        ledger: LedgerStore,
        bookings: Bookings,
        alerts: InventoryAlerts,
        settle_readings: int,
        loss_window_ms: int,
    ) -> None:
        self._ledger = ledger
        self._bookings = bookings
        self._alerts = alerts
        self._settle_readings = settle_readings
        self._window_ms = loss_window_ms
        self._cells: dict[tuple[str, str, str], _Cell] = {}
        # Recent shelf picks per (site, SKU) as [ts, units not yet seen leaving]: a unit picked
        # from a shelf and then read at the shipping portal must not leave stock twice.
        self._picked: dict[tuple[str, str], deque[list[int]]] = {}
        # Recent portal issues per (site, SKU) that no pick explained, for the opposite order.
        self._issued: dict[tuple[str, str], deque[_Issue]] = {}
        self._loss_checks: deque[LossCheck] = deque()
        self._new_checks: list[LossCheck] = []
        self._by_sku: dict[tuple[str, str], list[_Cell]] = {}

    def __len__(self) -> int:
        return len(self._cells)

    def reload(self, skus: Mapping[str, Sku], shelves: Iterable[Shelf]) -> None:
        """Bind cells to the catalog; cells whose binding is unchanged keep their state.

        A kept cell keeps its baseline and filter window, so a catalog edit elsewhere never
        turns into a phantom movement.
        """
        cells: dict[tuple[str, str, str], _Cell] = {}
        for shelf in shelves:
            sku = skus.get(shelf.sku)
            if sku is None or sku.unit_grams is None:
                logger.warning(
                    "shelf %s/%s/%s: SKU has no unit weight", shelf.site, shelf.device, shelf.cell
                )
                continue
            config = CellConfig(
                site=shelf.site,
                device=shelf.device,
                cell=shelf.cell,
                sku=shelf.sku,
                unit_grams=sku.unit_grams,
                tare_grams=shelf.tare_grams,
                tolerance=sku.weight_tolerance,
                settle_readings=self._settle_readings,
            )
            existing = self._cells.get(config.key)
            if existing is not None and existing.tracker.config == config:
                existing.shelf = shelf
                cells[config.key] = existing
            else:
                cells[config.key] = _Cell(shelf=shelf, tracker=CellTracker(config))
        self._cells = cells
        self._by_sku = {}
        for entry in cells.values():
            self._by_sku.setdefault((entry.shelf.site, entry.shelf.sku), []).append(entry)

    def cell(self, site: str, device: str, cell: str) -> CellTracker | None:
        """The tracker of a shelf cell, if one is bound."""
        entry = self._cells.get((site, device, cell))
        return entry.tracker if entry is not None else None

    def settled(self, site: str, sku: str, *, silent_known: bool) -> bool | None:
        """Whether the stock of ``sku`` at ``site`` is known from its shelves: every cell of it
        settled and counted (None when no cell holds it).

        With ``silent_known`` (the settle time after start has passed), a cell that has sent no
        reading at all does not hold the SKU back: the ledger's stock stands for it.
        """
        cells = self._by_sku.get((site, sku))
        if not cells:
            return None
        return all(c.counted or (silent_known and not c.tracker.seen) for c in cells)

    def tracks(self, site: str, sku: str, location: str | None) -> bool:
        """Whether a shelf cell holds ``sku`` at ``site`` (at ``location``, when given)."""
        cells = self._by_sku.get((site, sku), [])
        return any(location is None or c.shelf.location_id == location for c in cells)

    def observe(self, sample: WeightSample, touched: Touched) -> None:
        """Feed one reading to its cell and book what it settles; unbound cells are ignored."""
        entry = self._cells.get((sample.site, sample.device, sample.cell))
        if entry is None:
            return
        tracker = entry.tracker
        was_unknown = tracker.phase == "unknown"
        events = tracker.update(sample)
        if was_unknown and tracker.phase == "idle":
            self._shelf_count(entry, sample.ts_ms, touched)
            entry.counted = True
        for event in events:
            if isinstance(event, Movement):
                self._movement(entry, event, touched)
            else:
                self._ambiguous(entry, event)

    def take_shipped(self, site: str, sku: str, ts_ms: int) -> bool:
        """True (and one unit fewer remembered) if a recent pick already took this unit out."""
        picks = self._picked.get((site, sku))
        while picks and picks[0][0] < ts_ms - self._window_ms:
            picks.popleft()
        if not picks:
            return False
        picks[0][1] -= 1
        if picks[0][1] <= 0:
            picks.popleft()
        return True

    def issued_unpicked(self, site: str, sku: str, zone: str, ts_ms: int, ref: str) -> None:
        """Remember a unit the portal at ``zone`` booked out with no pick behind it yet."""
        issued = self._issued.setdefault((site, sku), deque(maxlen=ISSUE_MEMORY))
        issued.append(_Issue(ts_ms=ts_ms, zone=zone, ref=ref))

    def _claim_issues(self, site: str, sku: str, units: int, ts_ms: int) -> list[_Issue]:
        """Up to ``units`` recent portal issues of ``sku``, oldest first, taken from memory."""
        issued = self._issued.get((site, sku))
        claimed: list[_Issue] = []
        while issued and len(claimed) < units:
            issue = issued.popleft()
            if issue.ts_ms >= ts_ms - self._window_ms:
                claimed.append(issue)
        return claimed

    def due_loss_checks(self, now_ms: int) -> list[LossCheck]:
        """Picks whose loss window has passed by ``now_ms``, oldest first (each given once)."""
        due: list[LossCheck] = []
        while self._loss_checks and self._loss_checks[0].ts_ms + self._window_ms <= now_ms:
            due.append(self._loss_checks.popleft())
        return due

    def new_loss_checks(self) -> list[LossCheck]:
        """Drops sensed since the last call (still queued for their due check)."""
        fresh, self._new_checks = self._new_checks, []
        return fresh

    def was_handled(self, check: LossCheck, lo_ms: int, hi_ms: int) -> bool:
        """True if the cell was being handled around the drop (moving, a put, an ambiguity).

        A cell no longer bound counts as handled: nothing can be said about it.
        """
        entry = self._cells.get((check.site, check.device, check.cell))
        if entry is None:
            return True
        unstable = [t for t in (entry.last_put_ms, entry.last_ambiguous_ms) if t is not None]
        return entry.tracker.phase == "moving" or any(lo_ms <= t <= hi_ms for t in unstable)

    def _shelf_count(self, entry: _Cell, ts_ms: int, touched: Touched) -> None:
        shelf = entry.shelf
        counted = float(max(entry.tracker.units_on_shelf, 0))
        booked = self._ledger.qty_at(shelf.site, shelf.location_id, shelf.sku)
        diff = counted - booked
        # Counted either way: the SKU's stock may be known now, and is evaluated.
        touched[(shelf.site, shelf.sku)] = ts_ms
        if math.isclose(diff, 0.0, abs_tol=1e-9):
            return
        logger.info(
            "shelf %s counts %g %s, ledger had %g: adjusting",
            shelf.location_id,
            counted,
            shelf.sku,
            booked,
        )
        self._bookings.book(
            shelf.site, shelf.location_id, shelf.sku, diff, "adjust", ts_ms=ts_ms, ref="shelf count"
        )

    def _movement(self, entry: _Cell, mv: Movement, touched: Touched) -> None:
        shelf = entry.shelf
        qty = float(mv.units if mv.kind == "put" else -mv.units)
        ref = f"{shelf.device}/{shelf.cell}"
        entries = self._bookings.book(
            shelf.site, shelf.location_id, shelf.sku, qty, mv.kind, ts_ms=mv.ts_ms, ref=ref
        )
        touched[(shelf.site, shelf.sku)] = mv.ts_ms
        if mv.kind == "put":
            entry.last_put_ms = mv.ts_ms
            return
        # Units the shipping portal already booked out left the site from this shelf: their
        # issue is taken back, so the pick alone takes them out of stock.
        claimed = self._claim_issues(shelf.site, shelf.sku, mv.units, mv.ts_ms)
        for issue in claimed:
            self._bookings.book(
                shelf.site, issue.zone, shelf.sku, 1.0, "issue", ts_ms=mv.ts_ms,
                ref=f"{issue.ref} picked from {shelf.location_id}: issue taken back",
            )  # fmt: skip
        if mv.units > len(claimed):
            picked = self._picked.setdefault((shelf.site, shelf.sku), deque(maxlen=PICK_MEMORY))
            picked.append([mv.ts_ms, mv.units - len(claimed)])
        check = LossCheck(
            site=shelf.site,
            device=shelf.device,
            cell=shelf.cell,
            sku=shelf.sku,
            units=mv.units,
            ts_ms=mv.ts_ms,
            since_ms=mv.since_ms if mv.since_ms is not None else mv.ts_ms,
            location=shelf.location_id,
            ledger_id=entries[0].id if entries else None,
        )
        self._loss_checks.append(check)
        self._new_checks.append(check)

    def _ambiguous(self, entry: _Cell, change: AmbiguousChange) -> None:
        shelf = entry.shelf
        entry.last_ambiguous_ms = change.ts_ms
        self._alerts.report(
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
