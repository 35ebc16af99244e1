"""Prometheus ``/metrics`` of ``stocksense run``: the ingest worker's own metrics, plus gauges
of the rules, the notifier and both InfluxDB writers, all computed here at scrape time so that
nothing is updated on the hot path.

The collectors run on the event loop (the metrics server is an ASGI app of the same loop),
so they may read the pipeline's queues and its SQLite connection safely.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, make_asgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.influx_writer import BatchWriter
from stocksense.pipeline import Pipeline

OUTBOX_WAITING = ("pending", "sending", "dead")


class _Registered(Collector):
    """Everything another registry collects (the ingest worker keeps its own)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self._registry.collect()


class PipelineCollector(Collector):
    """Rules queue, notifier outbox and channels, writer spools of one running pipeline."""

    def __init__(self, pipeline: Pipeline, *, clock: Callable[[], float] = time.time) -> None:
        self._pipeline = pipeline
        self._clock = clock

    def writers(self) -> dict[str, BatchWriter]:
        """The durable InfluxDB writers of the pipeline, by name (one per process)."""
        return {"influxdb": self._pipeline.writer}

    def spool_batches(self) -> int:
        """Batches waiting on disk for InfluxDB, over every writer (also served by /health)."""
        return sum(len(writer.spool) for writer in self.writers().values())

    def collect(self) -> Iterator[Metric]:
        """Every gauge and counter, read now."""
        yield from self._rules()
        yield from self._notifier()
        yield from self._writers()

    def _rules(self) -> Iterator[Metric]:
        rules = self._pipeline.rules
        yield GaugeMetricFamily(
            "stocksense_rules_queue_batches",
            "Reading batches handed to the rules and not evaluated yet",
            value=rules.queued,
        )
        yield CounterMetricFamily(
            "stocksense_rules_readings_processed", "Readings evaluated", value=rules.processed
        )
        yield CounterMetricFamily(
            "stocksense_rules_readings_dropped",
            "Readings not evaluated because the rules queue was full",
            value=rules.dropped,
        )

    def _notifier(self) -> Iterator[Metric]:
        outbox = GaugeMetricFamily(
            "stocksense_notifier_outbox_rows",
            "Alert deliveries not done: pending and sending wait, dead were given up",
            labels=["status"],
        )
        # Counted in SQL (indexed by status): the outbox keeps every sent row forever.
        rows = self._pipeline.conn.execute(
            "SELECT status, COUNT(*) FROM outbox WHERE status IN (?, ?, ?) GROUP BY status",
            OUTBOX_WAITING,
        ).fetchall()
        counts: dict[str, int] = dict(rows)
        for status in OUTBOX_WAITING:
            outbox.add_metric([status], counts.get(status, 0))
        yield outbox
        notifier = self._pipeline.notifier
        up = GaugeMetricFamily(
            "stocksense_notifier_channel_up",
            "1 while a channel accepts messages, 0 while it fails permanently",
            labels=["channel"],
        )
        sent = CounterMetricFamily(
            "stocksense_notifier_delivered", "Outbox rows a channel accepted", labels=["channel"]
        )
        failed = CounterMetricFamily(
            "stocksense_notifier_failed", "Failed delivery attempts", labels=["channel"]
        )
        throttled = CounterMetricFamily(
            "stocksense_notifier_throttled", "Rate-limit answers from a robot", labels=["channel"]
        )
        for name, health in sorted(notifier.health.items()):
            up.add_metric([name], 0 if health.problem else 1)
            sent.add_metric([name], health.sent)
            failed.add_metric([name], health.failed)
            throttled.add_metric([name], health.throttled)
        paused = GaugeMetricFamily(
            "stocksense_notifier_channel_paused_seconds",
            "Seconds a robot still waits after a rate limit or an outage",
            labels=["channel"],
        )
        now = self._clock()
        for name, bucket in sorted(notifier.buckets.items()):
            paused.add_metric([name], max(0.0, bucket.paused_until - now))
        yield from (up, paused, sent, failed, throttled)

    def _writers(self) -> Iterator[Metric]:
        spool = GaugeMetricFamily(
            "stocksense_writer_spool_batches",
            "Batches waiting on disk until InfluxDB takes them",
            labels=["writer"],
        )
        buffered = GaugeMetricFamily(
            "stocksense_writer_buffer_lines", "Lines waiting in memory", labels=["writer"]
        )
        for name, writer in self.writers().items():
            spool.add_metric([name], len(writer.spool))
            buffered.add_metric([name], writer.buffered)
        yield from (spool, buffered)


def metrics_app(pipeline: Pipeline, collector: PipelineCollector) -> object:
    """The ASGI app serving ``/metrics`` for ``pipeline``."""
    registry = CollectorRegistry()
    registry.register(_Registered(pipeline.ingest.metrics.registry))
    registry.register(collector)
    return make_asgi_app(registry)
