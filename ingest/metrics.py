"""Prometheus metrics of one ingest worker, in its own registry (several can share a process)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from core.influx_writer import WriterMetrics


class _HotCounters(Collector):
    """Per-message counters kept as plain integers: a prometheus Counter takes a lock on every
    increment, which is measurable at tens of thousands of messages per second."""

    def __init__(self) -> None:
        self.received = 0
        self.readings = 0

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(
            "stocksense_ingest_messages_received", "MQTT messages received", value=self.received
        )
        yield CounterMetricFamily(
            "stocksense_ingest_readings", "Readings decoded from messages", value=self.readings
        )


class IngestMetrics:
    """Counters and gauges exported at ``/metrics``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.hot = _HotCounters()
        r.register(self.hot)
        self.writer = WriterMetrics("stocksense_ingest", r)
        self.deadlettered = Counter(
            "stocksense_ingest_deadlettered",
            "Messages sent to the dead-letter topic",
            ["reason"],
            registry=r,
        )
        self.seq_gaps = Counter(
            "stocksense_ingest_seq_gaps", "Messages missing by per-device seq", registry=r
        )
        self.ignored = Counter(
            "stocksense_ingest_messages_ignored",
            "Well-formed vendor messages that carry no reading",
            registry=r,
        )
        self.clock_skew = Counter(
            "stocksense_ingest_clock_skew",
            "Readings whose device time was replaced by the receive time",
            registry=r,
        )

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Current value of a sample, 0 when it does not exist yet (tests and CLIs)."""
        found = self.registry.get_sample_value(name, labels or {})
        return 0.0 if found is None else found
