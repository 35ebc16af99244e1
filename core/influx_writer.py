"""Durable batching writer for InfluxDB, shared by ingest (readings) and rules (stock, movements).

Lines are written in gzip batches; when InfluxDB is unreachable or overloaded a batch is
fsynced into an on-disk spool instead and replayed in order when it returns, so nothing is
lost across outages or restarts. A batch is "durable" once InfluxDB answered 204 or it sits in
the spool; only then are the waiters of its lines released (that is when ingest acknowledges
QoS 1 messages).

A batch InfluxDB refuses, wholly or in part, is never counted as written: the refused lines are
isolated (by what InfluxDB names, else by bisection), handed to ``on_rejected`` with the reason,
counted in ``<prefix>_points_rejected_total`` and kept under ``rejected/``; the rest is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from core.alerts import AlertCondition
from core.errors import InfluxWriteError
from core.influx import InfluxClient, InfluxRefusedError, RefusalKind

if TYPE_CHECKING:
    from core.alerts import AlertReporter

logger = logging.getLogger(__name__)


class WriterMetrics:
    """Metrics of one writer, named ``<prefix>_points_written_total`` and so on."""

    def __init__(self, prefix: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.written = Counter(f"{prefix}_points_written", "Points written to InfluxDB", registry=r)
        self.spooled = Counter(f"{prefix}_points_spooled", "Points spooled to disk", registry=r)
        self.rejected = Counter(
            f"{prefix}_points_rejected",
            "Points InfluxDB refused, by reason (handed to the rejection hook, never written)",
            ["reason"],
            registry=r,
        )
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
        self.replace(path, body)
        self._next += 1
        return path

    def replace(self, path: Path, body: bytes) -> None:
        """Write ``path`` durably and atomically (a crash leaves the old or the new content)."""
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.rename(path)

    def adopt(self, other: Path) -> int:
        """Move every batch spooled in ``other`` into this spool; returns how many.

        For a spool directory left by an earlier layout: its batches are replayed with ours
        (points are idempotent, so their place in the order does not matter).
        """
        if not other.is_dir() or other.resolve() == self.directory.resolve():
            return 0
        moved = 0
        for segment in sorted(other.glob("*.lp")):
            path = self.directory / f"{self._next:016d}.lp"
            self._next += 1
            # Same file system (both under the data directory): rename is atomic.
            segment.rename(path)
            moved += 1
        with contextlib.suppress(OSError):  # not empty: something else lives there, keep it
            other.rmdir()
        if moved:
            logger.info("moved %d spooled batches from %s into %s", moved, other, self.directory)
        return moved

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
# Statuses whose answer is about the data sent: refused lines can be told apart from the rest.
DATA_STATUSES = frozenset({400, 413, 422})


@dataclass(frozen=True, slots=True)
class Rejection:
    """One line InfluxDB refused: ``reason`` is a short code, ``message`` InfluxDB's words."""

    line: str
    reason: RefusalKind
    message: str
    status: int


RejectionHook = Callable[[list[Rejection]], None]


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
        on_rejected: RejectionHook | None = None,
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
        # Told the tokens given with the lines of every durable batch, in one call per batch:
        # ingest acknowledges its QoS 1 messages so, without a future and a task per message.
        self.on_tokens_durable: Callable[[list[int]], None] | None = None
        self._tokens: list[int] = []
        # Told about every line InfluxDB refused (ingest dead-letters them).
        self.on_rejected = on_rejected
        self.rejected_total = 0
        self.last_rejection: Rejection | None = None

    @property
    def spool(self) -> Spool:
        """The on-disk spool (for metrics and tests)."""
        return self._spool

    @property
    def buffered(self) -> int:
        """Lines not yet written or spooled."""
        return len(self._lines)

    def start(self) -> None:
        """Start the flush and replay loops (replaying what is already spooled first)."""
        if len(self._spool):
            self._spool_ready.set()
        self._tasks = [
            asyncio.create_task(self._flush_loop(), name="influx-flush"),
            asyncio.create_task(self._replay_loop(), name="influx-replay"),
        ]

    def add_nowait(
        self, lines: list[str], device_ts_ms: int | None = None, token: int | None = None
    ) -> None:
        """Queue lines without waiting. Over the buffer bound, lines go straight to disk.

        ``token`` is handed to ``on_tokens_durable`` once these lines are durable.
        """
        if len(self._lines) >= self._max_buffer:
            self._spill()
        self._lines.extend(lines)
        if token is not None:
            self._tokens.append(token)
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
        batch = _Batch(self._waiters, self._oldest_ms, self._device_ts, self._tokens)
        lines = self._lines
        self._lines, self._waiters, self._oldest_ms, self._device_ts = [], [], None, []
        self._tokens = []
        self._full.clear()
        return lines, batch

    def _durable(self, batch: _Batch) -> None:
        """Release the messages of a batch that is now written or spooled."""
        _release(batch.waiters)
        if self.on_tokens_durable is not None and batch.tokens:
            self.on_tokens_durable(batch.tokens)
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
        except InfluxRefusedError as exc:
            unresolved = await self._isolate(lines, exc)
            if unresolved:
                self._spool_append(unresolved)
        except InfluxWriteError as exc:
            # Every answer that is not a refusal can succeed later (see core.influx).
            logger.warning("InfluxDB write failed, spooling %d lines: %s", len(lines), exc)
            self._spool_append(lines)
        finally:
            self._durable(batch)

    async def _write(self, lines: list[str]) -> None:
        body = ("\n".join(lines) + "\n").encode()
        started = time.perf_counter()
        await self._client.write(body)
        self._metrics.write_latency.observe(time.perf_counter() - started)
        self._metrics.written.inc(len(lines))

    async def _isolate(self, lines: list[str], refusal: InfluxRefusedError) -> list[str]:
        """Store what InfluxDB accepts of a refused batch and report exactly the refused lines.

        Lines InfluxDB names are split off, otherwise the batch is halved, and each part is
        sent again until every line is stored or refused on its own answer. Resending accepted
        points is harmless: the same series and time overwrite. Returns the lines still
        undecided because InfluxDB became unreachable meanwhile (for the spool).
        """
        rejected: list[Rejection] = []
        parts, stored = _settle(lines, refusal, rejected)
        todo = parts[::-1]  # a stack: the next part to send is last
        unresolved: list[str] = []
        while todo:
            part = todo.pop()
            try:
                await self._client.write(_body(part))
            except InfluxRefusedError as again:
                more, known = _settle(part, again, rejected)
                todo.extend(reversed(more))
                stored += known
                continue
            except InfluxWriteError as exc:
                logger.warning("InfluxDB unavailable while isolating refused lines: %s", exc)
                unresolved = [ln for p in (part, *todo) for ln in p]
                break
            stored += len(part)
        self._metrics.written.inc(stored)
        self._report(rejected, len(lines))
        return unresolved

    def _report(self, rejected: list[Rejection], total: int) -> None:
        """Count refused lines, keep them on disk and tell the hook."""
        if not rejected:
            return
        counts: dict[str, int] = {}
        for rejection in rejected:
            counts[rejection.reason] = counts.get(rejection.reason, 0) + 1
        for reason, count in counts.items():
            self._metrics.rejected.labels(reason=reason).inc(count)
        self.rejected_total += len(rejected)
        self.last_rejection = rejected[-1]
        self._rejected_dir.mkdir(parents=True, exist_ok=True)
        path = self._rejected_dir / f"{time.time_ns()}.jsonl"
        path.write_text(
            "".join(
                json.dumps(
                    {"line": r.line, "reason": r.reason, "message": r.message, "status": r.status},
                    ensure_ascii=False,
                )
                + "\n"
                for r in rejected
            )
        )
        logger.error(
            "InfluxDB refused %d of %d lines (%s; kept in %s): %s",
            len(rejected),
            total,
            ", ".join(f"{k}={v}" for k, v in sorted(counts.items())),
            path,
            rejected[0].message,
        )
        if self.on_rejected is not None:
            try:
                self.on_rejected(rejected)
            except Exception:
                logger.exception("the rejection hook failed for %d lines", len(rejected))

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
            except InfluxRefusedError as exc:
                unresolved = await self._isolate(body.decode().splitlines(), exc)
                if unresolved:
                    # Keep only what is still undecided, so nothing is reported twice.
                    self._spool.replace(oldest, _body(unresolved))
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                else:
                    oldest.unlink()
                    self._metrics.spool_batches.set(len(self._spool))
                continue
            except InfluxWriteError as exc:
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


STORE_REJECTING_TYPE = "store_rejecting"
STORE_REJECTING_QUIET_S = 600.0
# Alerts about StockSense itself belong to no warehouse (as channel_health alerts).
SYSTEM_SITE = "system"


class StoreRejectingAlarm:
    """A ``store_rejecting`` alert per writer while InfluxDB refuses its points.

    Runs as a rules-engine processor: a tick raises the alert when the writer refused lines
    since the previous tick, and clears it after ``quiet_s`` without any. Time is the engine's
    clock (``now_ms``), so replays and tests drive the clear.
    """

    sample_types = ()

    def __init__(
        self,
        alerts: AlertReporter,
        writers: Mapping[str, BatchWriter],
        *,
        quiet_s: float = STORE_REJECTING_QUIET_S,
    ) -> None:
        """``writers`` maps an alert source (e.g. ``influxdb``) to its writer; ``alerts``
        is the alert lifecycle."""
        self._alerts = alerts
        self._writers = dict(writers)
        self._quiet_ms = int(quiet_s * 1000)
        self._seen = dict.fromkeys(self._writers, 0)
        self._last_ms: dict[str, int] = {}
        self._adopted = False

    def process(self, samples: Sequence[object]) -> None:
        """Readings are not this alarm's business."""
        del samples

    def tick(self, now_ms: int) -> None:
        """Raise for new refusals, clear after the quiet time."""
        if not self._adopted:
            # An alert left open by an earlier run clears after a quiet time from now.
            self._adopted = True
            for source in self._writers:
                if self._alerts.is_open(source, STORE_REJECTING_TYPE):
                    self._last_ms[source] = now_ms
        for source, writer in self._writers.items():
            total = writer.rejected_total
            if total > self._seen[source]:
                self._raise(source, writer, total - self._seen[source], now_ms)
                self._seen[source] = total
                self._last_ms[source] = now_ms
            elif source in self._last_ms and now_ms - self._last_ms[source] >= self._quiet_ms:
                del self._last_ms[source]
                self._alerts.resolve(
                    source,
                    STORE_REJECTING_TYPE,
                    at_ms=now_ms,
                    note=f"InfluxDB refused no points for {self._quiet_ms // 1000} s",
                )

    def _raise(self, source: str, writer: BatchWriter, new: int, now_ms: int) -> None:
        last = writer.last_rejection
        reason = "" if last is None else f"{last.reason}: {last.message}"
        message = f"{new} points refused ({writer.rejected_total} in all); last {reason}"
        self._alerts.report(
            AlertCondition(
                source=source,
                type=STORE_REJECTING_TYPE,
                severity="major",
                site=SYSTEM_SITE,
                title="InfluxDB is refusing points",
                message=message[:1000],
                value=float(writer.rejected_total),
                details={
                    "writer": source,
                    "reason": None if last is None else last.reason,
                    "message": None if last is None else last.message[:500],
                    "line": None if last is None else last.line[:500],
                },
                at_ms=now_ms,
            )
        )


@dataclass(slots=True)
class _Batch:
    """What a taken batch of lines owes once durable."""

    waiters: list[asyncio.Future[None]]
    oldest_ms: int | None
    device_ts: list[int]
    tokens: list[int]


def _release(waiters: list[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)


def _body(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def _settle(
    group: list[str], refusal: InfluxRefusedError, rejected: list[Rejection]
) -> tuple[list[list[str]], int]:
    """What a refusal of ``group`` settles: refused lines go to ``rejected``.

    Returns the parts to send again, in order, and how many lines are known to be stored.
    """
    if refusal.kind == "unparsable" and refusal.partial and refusal.dropped == 0:
        # 1.x stored every point it could parse and quoted each line it could not.
        named = refusal.named(group)
        if named:
            _refuse(named, refusal, rejected)
            return [], len(group) - len(named)
    status = refusal.status or 400
    if (
        len(group) == 1
        or status not in DATA_STATUSES
        or (refusal.partial and refusal.dropped >= len(group))
    ):
        # InfluxDB counts each refused point once (of one shard only): a lower bound.
        _refuse(group, refusal, rejected)
        return [], 0
    named = [] if refusal.kind == "too_large" else refusal.named(group)
    if named and refusal.kind == "unparsable":
        # A line that cannot be parsed never will be: only the others need sending again.
        _refuse(named, refusal, rejected)
        rest = _without(group, named)
        return ([rest] if rest else []), 0
    if 0 < len(named) < len(group):
        # The rest goes first (for a new field it sets the common type); the named lines go
        # alone after it, so that their refusal is confirmed (field types are per shard).
        rest = _without(group, named)
        if refusal.dropped > len(named) and len(rest) > 1:
            # More refused than named (InfluxDB names one reason): halve the rest rather
            # than resend it whole once per reason.
            return [rest[: len(rest) // 2], rest[len(rest) // 2 :], named], 0
        return [rest, named], 0
    half = len(group) // 2
    return [group[:half], group[half:]], 0


def _without(group: list[str], drop: list[str]) -> list[str]:
    gone = set(drop)
    return [ln for ln in group if ln not in gone]


def _refuse(lines: list[str], refusal: InfluxRefusedError, rejected: list[Rejection]) -> None:
    status = refusal.status or 400
    rejected.extend(
        Rejection(line=ln, reason=refusal.kind, message=refusal.reason_for(ln), status=status)
        for ln in lines
    )
