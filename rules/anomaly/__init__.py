"""Anomaly detectors: streaming rules-engine processors that report through the lifecycle.

- :mod:`rules.anomaly.coldchain` — Mean Kinetic Temperature over a sliding window and
  cumulative time out of band per day, per cold zone (the band + allowance excursion rule
  stays in :mod:`rules.coldchain`).
- :mod:`rules.anomaly.offline` — heartbeat timeout and Last Will.
- :mod:`rules.anomaly.sensors` — drift against the zone's other probes, and flat-lines.

:func:`build_processors` builds them all for a pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

from core.alerts import AlertStateStore
from core.settings import AlertingSettings
from rules.anomaly.coldchain import ColdChainMonitor
from rules.anomaly.offline import OfflineDetector
from rules.anomaly.sensors import SensorHealthDetector
from rules.lifecycle import AlertLifecycle
from rules.seed import Seed

__all__ = [
    "AnomalyProcessors",
    "ColdChainMonitor",
    "OfflineDetector",
    "SensorHealthDetector",
    "build_processors",
]


class AnomalyProcessors:
    """The lifecycle and every detector sharing it, in engine order."""

    def __init__(
        self,
        lifecycle: AlertLifecycle,
        cold_chain: ColdChainMonitor,
        offline: OfflineDetector,
        sensors: SensorHealthDetector,
    ) -> None:
        self.lifecycle = lifecycle
        self.cold_chain = cold_chain
        self.offline = offline
        self.sensors = sensors

    def all(
        self,
    ) -> list[ColdChainMonitor | OfflineDetector | SensorHealthDetector | AlertLifecycle]:
        """Processors for the rules engine (the lifecycle last, so its tick sees new alerts)."""
        return [self.cold_chain, self.offline, self.sensors, self.lifecycle]


def build_processors(
    seed: Seed,
    store: AlertStateStore,
    settings: AlertingSettings | None = None,
    *,
    sites: Collection[str] | None = None,
    clock: Callable[[], float] = time.time,
    lifecycle: AlertLifecycle | None = None,
) -> AnomalyProcessors:
    """Every anomaly detector over one lifecycle (``lifecycle``, shared with the other rules,
    else a new one); ``sites`` limits offline detection and ``clock`` stamps the arrival of
    readings for it."""
    alerting = settings or store.alerting
    lifecycle = lifecycle or AlertLifecycle(store, alerting)
    return AnomalyProcessors(
        lifecycle=lifecycle,
        cold_chain=ColdChainMonitor(seed, lifecycle, alerting),
        offline=OfflineDetector(lifecycle, alerting.offline, sites=sites, clock=clock),
        sensors=SensorHealthDetector(seed, lifecycle, alerting.sensor_health),
    )
