"""Live inventory: the rules-engine processor that turns shelf and RFID readings into stock.

Readings → trackers (:mod:`rules.inventory.weight`, :mod:`rules.inventory.rfid`) → ledger
movements in the relational store → reorder evaluation → purchase suggestions and alerts.
Time-based rules (lot dates, dead stock, supply/demand imbalance, unexplained loss, misplaced
tags) run from :meth:`InventoryProcessor.tick` with an explicit ``now_ms``, after the picks
recorded through the API are sorted out (:class:`~rules.inventory.picks.RecordedPicks`).

Settling: reorder (and its suggestions), dead-stock and imbalance rules wait for a SKU's stock to
be known (:meth:`InventoryProcessor.stock_known`): every reporting shelf cell of it settled and
its first count booked; for a SKU with no shelf (or only cells that never reported), once
``settle_s`` has passed since the processor's first reading or tick. A shelf that counts low
still raises its reorder at that count; a stale ledger before the count raises nothing.

The processor routes; its collaborators do the work, each over the stores it needs:
:class:`~rules.inventory.shelves.WeightShelves` (weight cells),
:class:`~rules.inventory.portals.RfidPortals` (RFID zones),
:class:`~rules.inventory.reorder.Replenisher` (reorder rules and suggestions),
:class:`~rules.inventory.sweeps.StockSweeps` (lot dates, dead stock, imbalance) and
:class:`~rules.inventory.checks.StockChecks` (unexplained loss, misplaced items).

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
``suggestions``) through the process's durable writer, so the rules loop never waits on
InfluxDB and an outage only delays the points.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence

from core import db
from core.alerts import AlertStateStore
from core.influx_writer import BatchWriter
from core.inventory import InventoryStores, Sku, Suggestion
from core.readings import DeviceStatus, Sample, TagSample, WeightSample
from core.settings import InventorySettings, Settings
from rules.inventory.alerting import InventoryAlerts
from rules.inventory.bookings import Bookings
from rules.inventory.checks import StockChecks
from rules.inventory.picks import RecordedPicks
from rules.inventory.portals import RfidPortals
from rules.inventory.reorder import ForecastPlanner, Replenisher
from rules.inventory.rfid import RfidEvent, RfidTracker
from rules.inventory.shelves import Touched, WeightShelves
from rules.inventory.sweeps import StockSweeps
from rules.inventory.weight import CellTracker
from rules.lifecycle import AlertLifecycle
from rules.seed import Seed
from rules.sites import keeps

logger = logging.getLogger(__name__)


class InventoryProcessor:
    """Stock from weight shelves and RFID, reorder, expiry, ageing, imbalance and stock anomalies.

    Built from the catalog in the database; catalog changes made through the API are picked
    up at the next periodic evaluation.
    """

    sample_types = (WeightSample, TagSample, DeviceStatus)

    def __init__(
        self,
        *,
        store: InventoryStores,
        alerts: AlertStateStore,
        lifecycle: AlertLifecycle | None = None,
        writer: BatchWriter | None = None,
        config: InventorySettings | None = None,
        timezones: Mapping[str, str] | None = None,
        sites: Collection[str] = (),
    ) -> None:
        """``writer`` is the process's durable InfluxDB writer (started and closed by its
        owner); without one, stock, movement and suggestion points are not written.
        ``timezones`` (site → IANA name) set the local days demand history is counted in;
        sweeps cover only ``sites`` (empty: every site)."""
        self._sites = sites
        self.store = store
        self.alerts = alerts
        # Alerts are raised and cleared only through the lifecycle (debounce, severity).
        self.lifecycle = lifecycle or AlertLifecycle(alerts)
        self.config = config = config or InventorySettings()
        # Stock, movement and suggestion points go through the same durable writer as the
        # readings: batched, never blocking the rules loop, spooled to disk while InfluxDB is
        # down.
        self.influx = writer
        reporter = InventoryAlerts(self.lifecycle)
        bookings = Bookings(store.ledger, self._write)
        self._shelves = WeightShelves(
            ledger=store.ledger,
            bookings=bookings,
            alerts=reporter,
            settle_readings=config.settle_readings,
            loss_window_ms=round(config.loss_window_s * 1000),
        )
        self._portals = RfidPortals(
            bookings=bookings,
            shelves=self._shelves,
            dedup_window_ms=round(config.rfid_dedup_window_s * 1000),
            exit_after_ms=round(config.rfid_exit_after_s * 1000),
        )
        self._reorder = Replenisher(
            stores=store,
            alerts=reporter,
            write=self._write,
            demand_history_days=config.demand_history_days,
            timezones=timezones,
        )
        self._sweeps = StockSweeps(
            stores=store, alerts=reporter, config=config, known=self.stock_known, sites=sites
        )
        self._picks = RecordedPicks(
            stores=store,
            shelves=self._shelves,
            bookings=bookings,
            window_ms=round(config.loss_window_s * 1000),
        )
        self._checks = StockChecks(
            picks=self._picks,
            shelves=self._shelves,
            portals=self._portals,
            alerts=reporter,
            loss_window_s=config.loss_window_s,
            misplaced_after_s=config.misplaced_after_s,
        )
        self._skus: dict[str, Sku] = {}
        self._signature: object = None
        self._last_sweep_ms: int | None = None
        self._started_ms: int | None = None  # the first reading's or tick's time
        self.reload_catalog()

    # ------------------------------------------------------------------ catalog

    def reload_catalog(self) -> bool:
        """Rebind shelves and RFID zones if the catalog changed; True if it did."""
        catalog = self.store.catalog
        signature = catalog.catalog_signature()
        if signature == self._signature:
            return False
        self._signature = signature
        self._skus = {s.sku: s for s in catalog.skus()}
        self._shelves.reload(self._skus, catalog.shelves())
        zones = catalog.rfid_zones()
        self._portals.reload(zones, self._skus)
        logger.info(
            "inventory catalog: %d SKUs, %d shelf cells, %d RFID antennas",
            len(self._skus),
            len(self._shelves),
            len(zones),
        )
        return True

    def cell(self, site: str, device: str, cell: str) -> CellTracker | None:
        """The tracker of a shelf cell (for health views and tests)."""
        return self._shelves.cell(site, device, cell)

    @property
    def forecasts(self) -> ForecastPlanner:
        """The ``forecast`` policy's levels per site and SKU (for health views and tests)."""
        return self._reorder.forecasts

    @property
    def offline_readers(self) -> dict[tuple[str, str], int]:
        """RFID readers reported offline, (site, device) → since when."""
        return self._portals.offline_readers

    def rfid(self, site: str) -> RfidTracker | None:
        """The RFID tracker of a site."""
        return self._portals.tracker(site)

    def stock_known(self, site: str, sku: str, at_ms: int) -> bool:
        """Whether the stock of ``sku`` at ``site`` is known at ``at_ms`` (see the module)."""
        started = self._started_ms
        settled_time = started is not None and at_ms - started >= self.config.settle_s * 1000
        shelves = self._shelves.settled(site, sku, silent_known=settled_time)
        return settled_time if shelves is None else shelves

    def _start(self, at_ms: int) -> None:
        if self._started_ms is None or at_ms < self._started_ms:
            self._started_ms = at_ms

    # ------------------------------------------------------------------ readings

    def process(self, samples: Sequence[Sample]) -> None:
        """Feed weight, tag and reader-status readings to the trackers and book what they see."""
        touched: Touched = {}
        if samples and self._started_ms is None:
            self._start(min(s.ts_ms for s in samples))
        for sample in samples:
            if isinstance(sample, WeightSample):
                self._shelves.observe(sample, touched)
            elif isinstance(sample, TagSample):
                self._rfid_events(sample.site, self._portals.observe(sample), touched)
            elif isinstance(sample, DeviceStatus) and sample.kind == "rfid":
                self._portals.reader_status(sample)
        self._reorder_touched(touched)

    def _rfid_events(self, site: str, events: Sequence[RfidEvent], touched: Touched) -> None:
        self._portals.handle(site, events, touched)

    def evaluate_reorder(self, site: str, sku_id: str, *, at_ms: int) -> Suggestion | None:
        """Suggest (or revise) a purchase for a SKU at a site; see :meth:`Replenisher.evaluate`."""
        sku = self._skus.get(sku_id)
        if sku is None:
            return None
        return self._reorder.evaluate(site, sku, at_ms=at_ms)

    def _reorder_touched(self, touched: Touched) -> None:
        for (site, sku), ts in touched.items():
            self._reorder_if_known(site, sku, ts)

    def _reorder_if_known(self, site: str, sku: str, at_ms: int) -> None:
        # No suggestion or alert from a stock that is not known yet: a ledger left by the last
        # run, or one cell of a SKU counted while another is still settling.
        if self.stock_known(site, sku, at_ms):
            self.evaluate_reorder(site, sku, at_ms=at_ms)

    # ------------------------------------------------------------------ time

    def tick(self, now_ms: int) -> None:
        """RFID exits, recorded picks, loss and misplaced checks; every ``evaluate_interval_s``
        the sweep."""
        if self._started_ms is None:
            self._start(now_ms)
        touched: Touched = {}
        for site, events in self._portals.tick(now_ms):
            self._rfid_events(site, events, touched)
        self._picks.sort_pending(now_ms, touched)
        self._reorder_touched(touched)
        # Forecast batches computed off the loop are stored here, and their SKUs re-evaluated.
        for site, sku in self._reorder.forecasts.collect():
            self._reorder_if_known(site, sku, now_ms)
        self._checks.run(now_ms)
        interval_ms = round(self.config.evaluate_interval_s * 1000)
        if self._last_sweep_ms is None or now_ms - self._last_sweep_ms >= interval_ms:
            self._last_sweep_ms = now_ms
            self.sweep(now_ms)

    def sweep(self, now_ms: int) -> None:
        """Catalog reload, lot dates, dead stock, imbalance and reorder for every SKU."""
        if self._started_ms is None:
            self._start(now_ms)
        self.reload_catalog()
        self._sweeps.run(now_ms, {s.sku: s.unit_cost for s in self._skus.values()})
        for site, sku in self.store.ledger.stocked_pairs():
            if keeps(self._sites, site):
                self._reorder_if_known(site, sku, now_ms)

    def _write(self, lines: Sequence[str]) -> None:
        if self.influx is not None:
            self.influx.add_nowait(list(lines))


def build_inventory_processor(
    settings: Settings,
    conn: db.Connection,
    store: AlertStateStore,
    writer: BatchWriter | None,
    *,
    config: InventorySettings | None = None,
    lifecycle: AlertLifecycle | None = None,
    seed: Seed | None = None,
) -> InventoryProcessor:
    """The inventory processor over the pipeline's database connection, alert store and writer.

    Tuning comes from ``config``, else ``settings.inventory``; alerts go through
    ``lifecycle`` (the pipeline's shared one), else a new one over ``store``; sites'
    timezones from ``seed``.
    """
    return InventoryProcessor(
        store=InventoryStores.over(conn),
        alerts=store,
        lifecycle=lifecycle,
        writer=writer,
        config=config or settings.inventory,
        timezones={site.id: site.timezone for site in seed.sites} if seed is not None else None,
        sites=settings.mqtt.sites,
    )
