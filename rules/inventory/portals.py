"""RFID portals: tag events → receipts at receiving zones, issues at shipping zones, presence.

A tag entering a receiving zone is received once (however long it lingers at the dock); one
entering a shipping zone is issued, unless a shelf pick already took that unit out of stock (and
a shelf that senses the pick later takes the issue back, see :mod:`rules.inventory.shelves`).
A tag settling in a storage zone other than its SKU's home zone becomes a misplaced candidate.
Exits and reader outages are remembered as evidence for the loss check.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from core.inventory import RfidZone, Sku, ZoneRole
from core.readings import DeviceStatus, TagSample
from rules.inventory.bookings import Bookings
from rules.inventory.rfid import RfidEvent, RfidTracker, ZoneEnter, ZoneExit
from rules.inventory.shelves import Touched, WeightShelves

logger = logging.getLogger(__name__)

EXIT_MEMORY = 10_000  # RFID exits remembered per (site, SKU) to explain weight drops
RECEIVED_MEMORY = 100_000  # EPCs remembered as received, so a lingering tag is booked once
BLIND_MEMORY = 1_000  # reader outages remembered per site to judge drops checked later


@dataclass(frozen=True, slots=True)
class Misplaced:
    """A tag of ``sku`` seen entering ``zone``, away from its ``home`` zone."""

    site: str
    epc: str
    zone: str
    sku: str
    home: str
    ts_ms: int


class RfidPortals:
    """The RFID trackers of every site and what their events mean for stock."""

    def __init__(
        self,
        *,
        bookings: Bookings,
        shelves: WeightShelves,
        dedup_window_ms: int,
        exit_after_ms: int,
    ) -> None:
        self._bookings = bookings
        self._shelves = shelves
        self._dedup_ms = dedup_window_ms
        self._exit_ms = exit_after_ms
        self._trackers: dict[str, RfidTracker] = {}
        self._roles: dict[tuple[str, str], ZoneRole] = {}
        self._homes: dict[str, str] = {}
        self._key: object = None
        self._offline: dict[tuple[str, str], int] = {}  # reader -> offline since
        # Per site, the (from, to) times its readers were offline, for a drop judged later.
        self._blind: dict[str, deque[tuple[int, int]]] = {}
        self._exits: dict[tuple[str, str], deque[int]] = {}
        self._received: OrderedDict[str, None] = OrderedDict()
        self._misplaced: dict[tuple[str, str], Misplaced] = {}

    def reload(self, zones: Sequence[RfidZone], skus: Mapping[str, Sku]) -> None:
        """Rebuild the trackers when antenna bindings or GTINs changed (else keep presence)."""
        self._homes = {s.sku: s.home_zone for s in skus.values() if s.home_zone is not None}
        gtins = {s.gtin: s.sku for s in skus.values() if s.gtin is not None}
        key = (tuple(zones), tuple(sorted(gtins.items())))
        if key == self._key:
            return
        self._key = key
        by_site: dict[str, dict[tuple[str, int], str]] = {}
        for zone in zones:
            by_site.setdefault(zone.site, {})[(zone.device, zone.antenna)] = zone.zone
        self._roles = {(z.site, z.zone): z.role for z in zones}
        self._trackers = {
            site: RfidTracker(
                antenna_zones=antennas,
                gtin_to_sku=gtins,
                dedup_window_ms=self._dedup_ms,
                exit_after_ms=self._exit_ms,
            )
            for site, antennas in by_site.items()
        }

    def tracker(self, site: str) -> RfidTracker | None:
        """The RFID tracker of a site."""
        return self._trackers.get(site)

    @property
    def offline_readers(self) -> dict[tuple[str, str], int]:
        """RFID readers reported offline, (site, device) → since when."""
        return dict(self._offline)

    def observe(self, sample: TagSample) -> list[RfidEvent]:
        """The tracker events of one tag read (none for a site without antennas)."""
        tracker = self._trackers.get(sample.site)
        return tracker.observe(sample) if tracker is not None else []

    def tick(self, now_ms: int) -> list[tuple[str, list[RfidEvent]]]:
        """Per site, the exits of tags unseen for too long at ``now_ms``."""
        return [(site, tracker.tick(now_ms)) for site, tracker in self._trackers.items()]

    def handle(self, site: str, events: Iterable[RfidEvent], touched: Touched) -> None:
        """Book and remember what the tracker events of ``site`` mean."""
        for event in events:
            if isinstance(event, ZoneEnter):
                self._enter(site, event, touched)
            elif isinstance(event, ZoneExit):
                self._exit(site, event)

    def reader_status(self, status: DeviceStatus) -> None:
        """A reader went offline or came back: no exits are seen while it is away."""
        key = (status.site, status.device)
        if not status.online:
            self._offline.setdefault(key, status.ts_ms)
        elif key in self._offline:
            since = self._offline.pop(key)
            blind = self._blind.setdefault(status.site, deque(maxlen=BLIND_MEMORY))
            blind.append((since, status.ts_ms))

    def exit_seen(self, site: str, sku: str, lo_ms: int, hi_ms: int) -> bool:
        """True if a tag of ``sku`` left a zone (or the site) between ``lo_ms`` and ``hi_ms``."""
        return any(lo_ms <= ts <= hi_ms for ts in self._exits.get((site, sku), ()))

    def blind_between(self, site: str, lo_ms: int, hi_ms: int) -> bool:
        """True if a reader of ``site`` was offline at some time between ``lo_ms`` and ``hi_ms``.

        Judged by the readers' own times, so a drop checked late (the rules behind a backlog)
        is not excused by an outage that began after it.
        """
        if any(s == site and since <= hi_ms for (s, _), since in self._offline.items()):
            return True
        return any(start <= hi_ms and lo_ms <= end for start, end in self._blind.get(site, ()))

    def settled_misplaced(self, now_ms: int, settle_ms: int) -> list[Misplaced]:
        """Candidates seen ``settle_ms`` ago or more and still in that zone (each given once)."""
        settled: list[Misplaced] = []
        for key, item in list(self._misplaced.items()):
            if now_ms - item.ts_ms < settle_ms:
                continue
            del self._misplaced[key]
            tracker = self._trackers.get(item.site)
            if tracker is not None and tracker.zone_of(item.epc) == item.zone:
                settled.append(item)
        return settled

    def count(self, site: str, zone: str, sku: str) -> int:
        """Tags of ``sku`` present in ``zone`` of ``site``."""
        tracker = self._trackers.get(site)
        return tracker.count(zone, sku) if tracker is not None else 0

    def _enter(self, site: str, event: ZoneEnter, touched: Touched) -> None:
        sku = event.sku
        if sku is None:
            return
        self._count_point(site, event.zone, sku, event.ts_ms)
        role = self._roles.get((site, event.zone), "storage")
        ref = f"epc {event.epc}"
        if role == "receiving":
            if event.epc in self._received:
                return  # the same tag lingering at the dock: received once
            self._received[event.epc] = None
            if len(self._received) > RECEIVED_MEMORY:
                self._received.popitem(last=False)
            self._bookings.book(site, event.zone, sku, 1.0, "receipt", ts_ms=event.ts_ms, ref=ref)
            touched[(site, sku)] = event.ts_ms
        elif role == "shipping":
            self._received.pop(event.epc, None)
            self._remember_exit(site, sku, event.ts_ms)
            if self._shelves.take_shipped(site, sku, event.ts_ms):
                return  # a shelf pick already took this unit out of stock
            self._bookings.book(site, event.zone, sku, -1.0, "issue", ts_ms=event.ts_ms, ref=ref)
            self._shelves.issued_unpicked(site, sku, event.zone, event.ts_ms, ref)
            touched[(site, sku)] = event.ts_ms
        else:
            home = self._homes.get(sku)
            if home is not None and home != event.zone:
                self._misplaced[(site, event.epc)] = Misplaced(
                    site=site, epc=event.epc, zone=event.zone, sku=sku, home=home, ts_ms=event.ts_ms
                )

    def _exit(self, site: str, event: ZoneExit) -> None:
        self._misplaced.pop((site, event.epc), None)
        if event.sku is None:
            return
        self._count_point(site, event.zone, event.sku, event.ts_ms)
        self._remember_exit(site, event.sku, event.ts_ms)

    def _remember_exit(self, site: str, sku: str, ts_ms: int) -> None:
        self._exits.setdefault((site, sku), deque(maxlen=EXIT_MEMORY)).append(ts_ms)

    def _count_point(self, site: str, zone: str, sku: str, ts_ms: int) -> None:
        self._bookings.rfid_count(site, zone, sku, self.count(site, zone, sku), ts_ms)
