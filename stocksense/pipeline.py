"""One process running ingest, rules and the notifier: ``stocksense run`` and the demo."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Collection, Sequence

from core import db
from core.alerts import AlertStores
from core.influx import InfluxClient
from core.influx_writer import BatchWriter, StoreRejectingAlarm
from core.settings import Settings
from ingest.metrics import IngestMetrics
from ingest.service import IngestService, build_writer
from rules.anomaly import build_processors
from rules.engine import Processor, RulesEngine
from rules.inventory.service import InventoryProcessor, build_inventory_processor
from rules.kpi.service import build_kpi_processor
from rules.lifecycle import AlertLifecycle
from rules.notify.base import Channel
from rules.notify.service import build_channels, build_notifier
from rules.seed import Seed, load_seed
from stocksense.erp import build_pusher

logger = logging.getLogger(__name__)

# Where the inventory processor spooled its points when it had a writer of its own; batches
# left there are moved into the process's spool and replayed with it.
LEGACY_INVENTORY_SPOOL = "inventory"


class Pipeline:
    """Wires the services together through the in-process hand-off and the shared database."""

    def __init__(
        self,
        settings: Settings,
        *,
        seed: Seed | None = None,
        processors: Sequence[Processor] = (),
        inventory: Callable[[BatchWriter], InventoryProcessor] | None = None,
        anomaly_sites: Collection[str] | None = None,
        tick_interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``processors`` run after the built-in ones; ``inventory`` builds a replacement for
        the default inventory processor over the pipeline's writer; ``anomaly_sites`` limits
        offline detection to those sites; ``clock`` drives time-based rules (tests and replays
        pass a simulated one)."""
        self.settings = settings
        if seed is None:
            seed = load_seed(settings.rules.seed_file) if settings.rules.seed_file else Seed()
        self.conn = db.connect(settings.database)
        # One InfluxDB client, and one durable writer with one spool, for the whole process:
        # readings from ingest and stock points from the rules share batches and the spool.
        self.influx = InfluxClient(settings.influx)
        self.ingest_metrics = IngestMetrics()
        self.writer = build_writer(
            settings, self.influx, self.ingest_metrics, settings.mqtt.client_id
        )
        self.writer.spool.adopt(settings.data_dir / "spool" / LEGACY_INVENTORY_SPOOL)
        self.channels: list[Channel] = build_channels(settings, self.influx, seed=seed)
        self.alerts = AlertStores.over(
            self.conn, [c.name for c in self.channels], alerting=settings.alerting
        )
        # The one lifecycle every rule raises and clears alerts through (debounce, severity).
        # A worker partitioned by site (mqtt.sites) keeps only its sites' alerts, stock and
        # KPIs; the other workers on the same database keep theirs.
        self.lifecycle = AlertLifecycle(
            self.alerts.state, settings.alerting, sites=settings.mqtt.sites
        )
        self.anomaly = build_processors(
            seed,
            self.alerts.state,
            settings.alerting,
            sites=anomaly_sites if anomaly_sites is not None else settings.mqtt.sites or None,
            clock=clock,
            lifecycle=self.lifecycle,
        )
        self._clock = clock
        if inventory is not None:
            self.inventory = inventory(self.writer)
        else:
            self.inventory = build_inventory_processor(
                settings,
                self.conn,
                self.alerts.state,
                self.writer,
                lifecycle=self.lifecycle,
                seed=seed,
            )
        self.kpi = build_kpi_processor(
            settings, self.conn, self.alerts.state.raised_between, self.writer, seed
        )
        self.rules = RulesEngine(
            seed,
            self.lifecycle,
            processors=[self.inventory, *self.anomaly.all(), self.kpi, *processors],
            queue_size=settings.ingest.rules_queue_size,
        )
        self._tick_interval_s = tick_interval_s
        self.notifier = build_notifier(settings, self.alerts, self.channels, self.lifecycle)
        # Deliver as soon as an alert is recorded instead of at the next poll.
        self.alerts.outbox.on_enqueue = self.notifier.wake
        self.ingest = IngestService(
            settings, sink=self.rules.offer, metrics=self.ingest_metrics, writer=self.writer
        )
        # Points InfluxDB refuses raise a store_rejecting alert, cleared after a quiet time.
        self.store_alarm = StoreRejectingAlarm(self.lifecycle, {"influxdb": self.writer})
        self.rules.add(self.store_alarm)
        # Approved requisitions to the ERP, when one is configured (None otherwise).
        self.erp = build_pusher(settings, conn=self.conn)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start every part; returns once ingest is subscribed."""
        await self.influx.ensure_database()
        self.writer.start()
        self._tasks = [
            asyncio.create_task(self.rules.run(), name="rules"),
            asyncio.create_task(
                self.rules.run_clock(self._tick_interval_s, self._clock), name="rules-clock"
            ),
            asyncio.create_task(self.notifier.run(), name="notifier"),
        ]
        if self.erp is not None:
            self._tasks.append(asyncio.create_task(self.erp.run(), name="erp-pusher"))
        await self.ingest.start()

    async def stop(self) -> None:
        """Stop ingest first (acknowledges what is durable), then rules, the writer (what the
        rules wrote last is made durable) and the notifier."""
        await self.ingest.stop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.rules.drain(), timeout=5)
        # KPI snapshots still being computed are stored (and written) before the writer closes.
        await asyncio.to_thread(self.kpi.wait, 30.0)
        self.kpi.close()
        await self.notifier.deliver_due()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.writer.close()
        await self.notifier.aclose()
        if self.erp is not None:
            await self.erp.aclose()
        await self.influx.aclose()
        self.conn.close()

    async def run_forever(self) -> None:
        """Start, then run until SIGINT or SIGTERM (or cancellation), and stop cleanly."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()
