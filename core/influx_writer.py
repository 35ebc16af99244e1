"""Durable batching writer for InfluxDB, shared by ingest (readings) and rules (stock, movements).

Lines are written in gzip batches; when InfluxDB is unreachable or overloaded a batch is
fsynced into an on-disk spool instead and replayed in order when it returns, so nothing is
lost across outages or restarts. A batch is "durable" once InfluxDB answered 204 or it sits in
the spool; only then are the waiters of its lines released (that is when ingest acknowledges
QoS 1 messages).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from core.errors import InfluxWriteError
from core.influx import InfluxClient

logger = logging.getLogger(__name__)


class WriterMetrics:
    """Metrics of one writer, named ``<prefix>_points_written_total`` and so on."""

    def __init__(self, prefix: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.written = Counter(f"{prefix}_points_written", "Points written to InfluxDB", registry=r)
        self.spooled = Counter(f"{prefix}_points_spooled", "Points spooled to disk", registry=r)
        self.queue_depth = Gauge(f"{prefix}_buffer_lines", "Lines waiting for a write", registry=r)
        self.spool_batches = Gauge(f"{prefix}_spool_batches", "Batches waiting on disk", registry=r)
        self.write_latency = Histogram(
            f"{prefix}_write_seconds",
            "InfluxDB write latency",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.lag = Histogram(
            f"{prefix}_lag_seconds",
            "Device timestamp to durable write",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )


class Spool:
    """Append-only directory of batches; oldest first."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.tmp"):
            stale.unlink()
        existing = self._segments()
        self._next = int(existing[-1].stem) + 1 if existing else 0

    def _segments(self) -> list[Path]:
        return sorted(self.directory.glob("*.lp"))

    def append(self, body: bytes) -> Path:
        """Store one batch durably and return its path."""
        path = self.directory / f"{self._next:016d}.lp"
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.rename(path)
        self._next += 1
        return path

    def oldest(self) -> Path | None:
        """The next batch to replay, if any."""
        segments = self._segments()
        return segments[0] if segments else None

    def __len__(self) -> int:
        return len(self._segments())

    def pending_bytes(self) -> int:
        """Total size of spooled batches."""
        return sum(p.stat().st_size for p in self._segments())


WRITE_CONCURRENCY = 2


class BatchWriter:
    """Collects lines, writes them in batches and never drops a batch."""

    def __init__(
        self,
        client: InfluxClient,
        spool_dir: Path,
        metrics: WriterMetrics,
        *,
        batch_lines: int = 5000,
        flush_interval_s: float = 1.0,
        max_buffer_lines: int | None = None,
    ) -> None:
        self._client = client
        self._spool = Spool(spool_dir)
        self._rejected_dir = spool_dir.parent / "rejected"
        self._metrics = metrics
        self._batch_lines = batch_lines
        self._flush_interval_s = flush_interval_s
        self._max_buffer = max_buffer_lines or batch_lines * 4
        self._lines: list[str] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._oldest_ms: int | None = None
        self._full = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._spool_ready = asyncio.Event()
        if len(self._spool):
            self._spool_ready.set()
        self._closing = False
        self._tasks: list[asyncio.Task[None]] = []
        # Read at scrape time: setting a gauge per message would cost a lock on the hot path.
        metrics.queue_depth.set_function(lambda: len(self._lines))
        self._slots = asyncio.Semaphore(WRITE_CONCURRENCY)
        self._inflight: set[asyncio.Task[None]] = set()
        # Observers (benchmarks, latency probes) get the device times of every durable batch.
        self.on_durable: Callable[[list[int]], None] | None = None
        self._device_ts: list[int] = []

    @property
    def spool(self) -> Spool:
        """The on-disk spool (for metrics and tests)."""
        return self._spool

    @property
    def buffered(self) -> int:
        """Lines not yet written or spooled."""
        return len(self._lines)

    def start(self) -> None:
        """Start the flush and replay loops."""
        self._tasks = [
            asyncio.create_task(self._flush_loop(), name="influx-flush"),
            asyncio.create_task(self._replay_loop(), name="influx-replay"),
        ]

    def add_nowait(self, lines: list[str], device_ts_ms: int | None = None) -> None:
        """Queue lines without waiting (QoS 0). Over the buffer bound, lines go straight to disk."""
        if len(self._lines) >= self._max_buffer:
            self._spill()
        self._lines.extend(lines)
        if device_ts_ms is not None:
            if self._oldest_ms is None:
                self._oldest_ms = device_ts_ms
            if self.on_durable is not None:
                self._device_ts.append(device_ts_ms)
        if len(self._lines) >= self._batch_lines:
            self._full.set()

    async def add(self, lines: list[str], device_ts_ms: int | None = None) -> None:
        """Queue lines and return once they are durable (QoS 1)."""
        while len(self._lines) >= self._max_buffer:
            self._room.clear()
            await self._room.wait()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.add_nowait(lines, device_ts_ms)
        await waiter

    def _take(self) -> tuple[list[str], _Batch]:
        batch = _Batch(self._waiters, self._oldest_ms, self._device_ts)
        lines = self._lines
        self._lines, self._waiters, self._oldest_ms, self._device_ts = [], [], None, []
        self._full.clear()
        return lines, batch

    def _durable(self, batch: _Batch) -> None:
        """Release the messages of a batch that is now written or spooled."""
        _release(batch.waiters)
        if self.on_durable is not None and batch.device_ts:
            self.on_durable(batch.device_ts)

    def _spill(self) -> None:
        """InfluxDB is slower than the input: move the buffer to disk to keep memory flat."""
        lines, batch = self._take()
        self._spool_append(lines)
        self._durable(batch)

    def _spool_append(self, lines: list[str]) -> None:
        self._spool.append(("\n".join(lines) + "\n").encode())
        self._metrics.spooled.inc(len(lines))
        self._metrics.spool_batches.set(len(self._spool))
        self._spool_ready.set()

    async def _flush_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), timeout=self._flush_interval_s)
            if self._lines:
                # Up to WRITE_CONCURRENCY batches in flight: InfluxDB parses one batch while
                # the next is on the wire. Points are idempotent, so order does not matter.
                await self._slots.acquire()
                lines, batch = self._take()
                self._room.set()
                task = asyncio.create_task(self._flush_released(lines, batch))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
            elif self._closing:
                return

    async def _flush_released(self, lines: list[str], batch: _Batch) -> None:
        try:
            await self._flush(lines, batch)
        finally:
            self._slots.release()

    async def _flush(self, lines: list[str], batch: _Batch) -> None:
        try:
            if len(self._spool):
                # Keep order: while older batches wait on disk, newer ones queue behind them.
                self._spool_append(lines)
            else:
                await self._write(lines)
                if batch.oldest_ms is not None:
                    self._metrics.lag.observe(max(0.0, time.time() - batch.oldest_ms / 1000))
        except InfluxWriteError as exc:
            if exc.retryable:
                logger.warning("InfluxDB write failed, spooling %d lines: %s", len(lines), exc)
                self._spool_append(lines)
            else:
                self._reject(lines, exc)
        finally:
            self._durable(batch)

    async def _write(self, lines: list[str]) -> None:
        body = ("\n".join(lines) + "\n").encode()
        started = time.perf_counter()
        await self._client.write(body)
        self._metrics.write_latency.observe(time.perf_counter() - started)
        self._metrics.written.inc(len(lines))

    def _reject(self, lines: list[str], exc: InfluxWriteError) -> None:
        """InfluxDB refused the data itself: keep it on disk for inspection, never drop it."""
        self._rejected_dir.mkdir(parents=True, exist_ok=True)
        path = self._rejected_dir / f"{time.time_ns()}.lp"
        path.write_text("\n".join(lines) + "\n")
        logger.error("InfluxDB rejected %d lines (kept in %s): %s", len(lines), path, exc)

    async def _replay_loop(self) -> None:
        backoff = 0.1
        while True:
            await self._spool_ready.wait()
            oldest = self._spool.oldest()
            if oldest is None:
                self._spool_ready.clear()
                self._metrics.spool_batches.set(0)
                if self._closing:
                    return
                continue
            body = oldest.read_bytes()
            try:
                started = time.perf_counter()
                await self._client.write(body)
            except InfluxWriteError as exc:
                if not exc.retryable:
                    self._reject(body.decode().splitlines(), exc)
                    oldest.unlink()
                    continue
                if self._closing:
                    return
                logger.info(
                    "replay waiting for InfluxDB (%d batches spooled): %s", len(self._spool), exc
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self._metrics.write_latency.observe(time.perf_counter() - started)
            self._metrics.written.inc(body.count(b"\n"))
            oldest.unlink()
            backoff = 0.1
            self._metrics.spool_batches.set(len(self._spool))

    async def close(self) -> None:
        """Flush what is buffered (to InfluxDB or the spool) and stop the loops."""
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # The loops are stopped; finish the batches in flight, then what is still buffered.
        await self.drain()

    async def drain(self) -> None:
        """Make everything added so far durable now, without waiting for the flush timer."""
        if self._inflight:
            await asyncio.gather(*self._inflight)
        if self._lines:
            lines, batch = self._take()
            await self._flush(lines, batch)


@dataclass(slots=True)
class _Batch:
    """What a taken batch of lines owes once durable."""

    waiters: list[asyncio.Future[None]]
    oldest_ms: int | None
    device_ts: list[int]


def _release(waiters: list[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)
