"""Rules engine: takes readings from ingest through a bounded queue and runs every processor.

A processor is anything with ``process(samples)`` (readings in arrival order) and
``tick(now_ms)`` (time-based rules: timeouts, dates). Ticks carry an explicit time so tests
and replays drive the clock; the engine's own clock task uses wall time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from core.readings import Sample, TempSample
from rules.coldchain import ColdChainRule
from rules.lifecycle import AlertLifecycle
from rules.seed import Seed

logger = logging.getLogger(__name__)


class Processor(Protocol):
    """A rule or tracker fed by the engine."""

    def process(self, samples: Sequence[Sample]) -> None:
        """Evaluate readings (one message's worth, in arrival order)."""
        ...

    def tick(self, now_ms: int) -> None:
        """Evaluate what depends on time alone."""
        ...


class ColdChainProcessor:
    """Feeds temperature samples to the cold-chain rule."""

    def __init__(self, rule: ColdChainRule) -> None:
        self.rule = rule

    def process(self, samples: Sequence[Sample]) -> None:
        """Evaluate every temperature sample."""
        for sample in samples:
            if isinstance(sample, TempSample):
                self.rule.evaluate(sample)

    def tick(self, now_ms: int) -> None:
        """The excursion clock runs on reading time; nothing to do on wall time."""
        del now_ms


class RulesEngine:
    """Owns the processors; ``offer`` is the ingest hand-off, ``run`` the consumer loop."""

    def __init__(
        self,
        seed: Seed,
        lifecycle: AlertLifecycle,
        *,
        processors: Sequence[Processor] = (),
        queue_size: int = 100_000,
    ) -> None:
        self.cold_chain = ColdChainRule(seed, lifecycle)
        self.processors: list[Processor] = [ColdChainProcessor(self.cold_chain), *processors]
        self._queue: asyncio.Queue[list[Sample]] = asyncio.Queue(maxsize=queue_size)
        self.dropped = 0
        self.processed = 0

    def offer(self, samples: list[Sample]) -> None:
        """Hand readings over without blocking the ingest hot path; counted if the queue is full."""
        try:
            self._queue.put_nowait(samples)
        except asyncio.QueueFull:
            self.dropped += len(samples)
            logger.warning("rules queue full, %d readings not evaluated", len(samples))

    def process(self, samples: list[Sample]) -> None:
        """Evaluate readings synchronously."""
        for processor in self.processors:
            processor.process(samples)
        self.processed += len(samples)

    def tick(self, now_ms: int) -> None:
        """Run every processor's time-based evaluation at ``now_ms``."""
        for processor in self.processors:
            processor.tick(now_ms)

    async def run(self) -> None:
        """Consume the queue until cancelled."""
        while True:
            samples = await self._queue.get()
            try:
                self.process(samples)
            except Exception:
                # One bad rule evaluation must not stop every other rule.
                logger.exception("rule evaluation failed for %d readings", len(samples))
            finally:
                self._queue.task_done()

    async def run_clock(
        self, interval_s: float = 1.0, clock: Callable[[], float] = time.time
    ) -> None:
        """Tick every processor every ``interval_s`` with ``clock()`` until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                self.tick(int(clock() * 1000))
            except Exception:
                logger.exception("time-based rule evaluation failed")

    async def drain(self) -> None:
        """Wait until every offered reading has been evaluated."""
        await self._queue.join()
