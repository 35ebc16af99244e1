"""Rules engine: takes readings from ingest through a bounded queue and runs every rule."""

from __future__ import annotations

import asyncio
import logging

from core.alerts import AlertStore
from core.readings import Sample, TempSample
from rules.coldchain import ColdChainRule
from rules.seed import Seed

logger = logging.getLogger(__name__)


class RulesEngine:
    """Owns the rule instances; ``offer`` is the ingest hand-off, ``run`` the consumer loop."""

    def __init__(self, seed: Seed, store: AlertStore, *, queue_size: int = 100_000) -> None:
        self.cold_chain = ColdChainRule(seed, store)
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
        for sample in samples:
            if isinstance(sample, TempSample):
                self.cold_chain.evaluate(sample)
        self.processed += len(samples)

    async def run(self) -> None:
        """Consume the queue until cancelled."""
        while True:
            samples = await self._queue.get()
            self.process(samples)
            self._queue.task_done()

    async def drain(self) -> None:
        """Wait until every offered reading has been evaluated."""
        await self._queue.join()
