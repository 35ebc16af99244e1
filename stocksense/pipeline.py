"""One process running ingest, rules and the notifier: ``stocksense run`` and the demo."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Collection, Sequence

from core import db
from core.alerts import AlertStore
from core.influx import InfluxClient
from core.influx_writer import BatchWriter, StoreRejectingAlarm
from core.settings import Settings
from ingest.service import IngestService
from rules.anomaly import build_processors
from rules.engine import Processor, RulesEngine
from rules.inventory.service import InventoryProcessor, build_inventory_processor
from rules.lifecycle import AlertLifecycle, channel_health_hooks
from rules.notify.base import Channel
from rules.notify.service import Notifier, build_channels
from rules.seed import Seed, load_seed

logger = logging.getLogger(__name__)


class Pipeline:
    """Wires the services together through the in-process hand-off and the shared database."""

    def __init__(
        self,
        settings: Settings,
        *,
        seed: Seed | None = None,
        processors: Sequence[Processor] = (),
        inventory: InventoryProcessor | None = None,
        anomaly_sites: Collection[str] | None = None,
        tick_interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``processors`` run after the built-in ones; ``inventory`` replaces the default
        inventory processor; ``anomaly_sites`` limits offline detection to those sites;
        ``clock`` drives time-based rules (tests and replays pass a simulated one)."""
        self.settings = settings
        if seed is None:
            seed = load_seed(settings.rules.seed_file) if settings.rules.seed_file else Seed()
        self.conn = db.connect(settings.sqlite_path)
        self._alert_influx = InfluxClient(settings.influx)
        self.channels: list[Channel] = build_channels(settings, self._alert_influx)
        self.store = AlertStore(
            self.conn, [c.name for c in self.channels], alerting=settings.alerting
        )
        # The one lifecycle every rule raises and clears alerts through (debounce, severity).
        self.lifecycle = AlertLifecycle(self.store, settings.alerting)
        self.anomaly = build_processors(
            seed,
            self.store,
            settings.alerting,
            sites=anomaly_sites,
            clock=clock,
            lifecycle=self.lifecycle,
        )
        self._clock = clock
        self.inventory = inventory or build_inventory_processor(
            settings, self.conn, self.store, self._alert_influx, lifecycle=self.lifecycle
        )
        self.rules = RulesEngine(
            seed,
            self.lifecycle,
            processors=[self.inventory, *self.anomaly.all(), *processors],
            queue_size=settings.ingest.rules_queue_size,
        )
        self._tick_interval_s = tick_interval_s
        self.notifier = Notifier(
            self.store,
            self.channels,
            poll_interval_s=settings.notifier.poll_interval_s,
            max_attempts=settings.notifier.max_attempts,
        )
        # Deliver as soon as an alert is recorded instead of at the next poll.
        self.store.on_enqueue = self.notifier.wake
        self.notifier.on_channel_problem, self.notifier.on_channel_recovered = channel_health_hooks(
            self.lifecycle
        )
        self.ingest = IngestService(settings, sink=self.rules.offer)
        # Points InfluxDB refuses raise a store_rejecting alert, cleared after a quiet time.
        writers: dict[str, BatchWriter] = {"influxdb/ingest": self.ingest.writer}
        if self.inventory.influx is not None:
            writers["influxdb/inventory"] = self.inventory.influx
        self.store_alarm = StoreRejectingAlarm(self.lifecycle, writers)
        self.rules.processors.append(self.store_alarm)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start every part; returns once ingest is subscribed."""
        self._tasks = [
            asyncio.create_task(self.rules.run(), name="rules"),
            asyncio.create_task(
                self.rules.run_clock(self._tick_interval_s, self._clock), name="rules-clock"
            ),
            asyncio.create_task(self.notifier.run(), name="notifier"),
        ]
        await self.ingest.start()

    async def stop(self) -> None:
        """Stop ingest first (flushes its buffer), then rules and the notifier."""
        await self.ingest.stop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.rules.drain(), timeout=5)
        await self.notifier.deliver_due()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.notifier.aclose()
        await self.inventory.aclose()
        await self._alert_influx.aclose()
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
