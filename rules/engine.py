"""Rules engine: takes readings from ingest through a bounded queue and runs every processor.

A processor is anything with ``process(samples)`` (readings in arrival order) and
``tick(now_ms)`` (time-based rules: timeouts, dates). Ticks carry an explicit time so tests
and replays drive the clock; the engine's own clock task uses wall time. A processor may name
the reading types it evaluates in ``sample_types``; it is then handed only messages of those
types (a message whose readings are of mixed types goes to every processor).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
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


# Messages evaluated in one go before the loop gets a turn (ingest, writer, API).
_SLICE = 2000


class ColdChainProcessor:
    """Feeds temperature samples to the cold-chain rule."""

    sample_types = (TempSample,)

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
        self._processors: list[Processor] = [ColdChainProcessor(self.cold_chain), *processors]
        self._routes: dict[type[Sample], list[Processor]] = {}
        self._pending: deque[list[Sample]] = deque()
        self._queue_size = queue_size
        self._wake = asyncio.Event()
        self._drained: list[asyncio.Future[None]] = []
        self.dropped = 0
        self.processed = 0

    @property
    def processors(self) -> tuple[Processor, ...]:
        """Every processor, in the order they evaluate."""
        return tuple(self._processors)

    @property
    def queued(self) -> int:
        """Messages handed over and not evaluated yet."""
        return len(self._pending)

    def add(self, processor: Processor) -> None:
        """Run ``processor`` after the others."""
        self._processors.append(processor)
        self._routes.clear()

    def offer(self, samples: list[Sample]) -> None:
        """Hand readings over without blocking the ingest hot path; counted if the queue is full."""
        if len(self._pending) >= self._queue_size:
            self.dropped += len(samples)
            logger.warning("rules queue full, %d readings not evaluated", len(samples))
            return
        self._pending.append(samples)
        if not self._wake.is_set():
            self._wake.set()

    def process(self, samples: list[Sample]) -> None:
        """Evaluate readings synchronously."""
        if not samples:
            return
        for processor in self._route(samples):
            processor.process(samples)
        self.processed += len(samples)

    def _route(self, samples: list[Sample]) -> list[Processor]:
        """The processors that evaluate this message's readings, in order."""
        kind = type(samples[0])
        for sample in samples:
            if type(sample) is not kind:
                return self._processors
        route = self._routes.get(kind)
        if route is None:
            route = self._routes[kind] = [p for p in self._processors if _evaluates(p, kind)]
        return route

    def tick(self, now_ms: int) -> None:
        """Run every processor's time-based evaluation at ``now_ms``, after the readings that
        arrived before it: a tick must not judge a device silent while its readings wait."""
        self._evaluate_pending()
        for processor in self._processors:
            processor.tick(now_ms)

    async def run(self) -> None:
        """Evaluate what is offered until cancelled, yielding to the loop between slices."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                self._evaluate_pending(_SLICE)
                if self._pending:
                    await asyncio.sleep(0)

    def _evaluate_pending(self, limit: int | None = None) -> None:
        pending = self._pending
        count = len(pending) if limit is None else min(limit, len(pending))
        for _ in range(count):
            samples = pending.popleft()
            try:
                self.process(samples)
            except Exception:
                # One bad rule evaluation must not stop every other rule.
                logger.exception("rule evaluation failed for %d readings", len(samples))
        if not pending and self._drained:
            waiters, self._drained = self._drained, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

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
        """Wait until every offered reading has been evaluated (by :meth:`run`)."""
        if not self._pending:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._drained.append(waiter)
        await waiter


def _evaluates(processor: Processor, kind: type[Sample]) -> bool:
    types: tuple[type[Sample], ...] | None = getattr(processor, "sample_types", None)
    return types is None or issubclass(kind, types)
