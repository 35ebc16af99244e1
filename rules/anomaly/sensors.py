"""Sensor health: drift against the zone's other probes, and stuck (flat-lined) probes.

**Drift** (``sensor_drift``): the residual of a probe is its reading minus the median of the
zone's probes (its own reading included, each no older than ``peer_max_age_s``). We compare
with the zone rather than with the probe's own history because the room itself moves (doors,
defrost cycles, a warm afternoon): that moves every probe alike and cancels in the residual,
while a drifting probe walks away from the others. Each probe's fixed offset (placement near a
door or a coil) is learned as its mean residual over its first ``drift_warmup_samples`` and
subtracted from its readings; the median of the corrected readings is the reference, and an
EWMA (``drift_alpha``) of the probe's corrected residual is compared with
``drift_threshold_c`` (clears below ``drift_clear_c``). It needs at least ``drift_min_peers``
other probes (default 2: with a single peer one cannot tell which of the two drifts).

**Stuck** (``sensor_stuck``): the same reading (within ``stuck_epsilon``) for
``stuck_samples`` samples *and* ``stuck_s`` seconds, on a probe that has shown noise before
(its readings changed at least twice); a changed reading clears it. Any temperature probe is
checked, whether or not it belongs to a zone.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from core.alerts import AlertCondition
from core.readings import Sample, TempSample
from core.settings import SensorHealthPolicy
from rules.lifecycle import AlertLifecycle
from rules.seed import ProbeZones, Seed

logger = logging.getLogger(__name__)

DRIFT_TYPE = "sensor_drift"
STUCK_TYPE = "sensor_stuck"
_NOISE_CHANGES = 2


@dataclass(slots=True)
class ProbeHealth:
    """What the detector remembers about one probe."""

    source: str
    last_ts_ms: int
    value: float
    same_since_ms: int
    same_count: int = 1
    changes: int = 0
    offset_sum: float = 0.0
    offset_n: int = 0
    ewma: float = 0.0

    @property
    def offset(self) -> float:
        """The probe's usual difference from the zone median (placement), learned at start."""
        return self.offset_sum / self.offset_n if self.offset_n else 0.0


class SensorHealthDetector:
    """Drift and flat-line detection for temperature probes (a processor)."""

    sample_types = (TempSample,)

    def __init__(
        self, seed: Seed, lifecycle: AlertLifecycle, policy: SensorHealthPolicy | None = None
    ) -> None:
        self._lifecycle = lifecycle
        self.policy = policy or lifecycle.settings.sensor_health
        self.probes: dict[tuple[str, str, str], ProbeHealth] = {}
        self._probe_zones = ProbeZones(seed, banded_only=False)
        # The zone of each probe (first match), and the probes seen in each zone.
        self._probe_zone: dict[tuple[str, str, str], str | None] = {}
        self._members: dict[str, set[tuple[str, str, str]]] = {}

    def process(self, samples: Sequence[Sample]) -> None:
        """Evaluate every temperature sample."""
        for sample in samples:
            if isinstance(sample, TempSample):
                self._evaluate(sample)

    def tick(self, now_ms: int) -> None:
        """Both checks run on reading time."""
        del now_ms

    def _zone_of(self, key: tuple[str, str, str], sample: TempSample) -> str | None:
        if key in self._probe_zone:
            return self._probe_zone[key]
        zone_key: str | None = None
        zones = self._probe_zones.zones(sample.site, sample.device, sample.sensor)
        if zones:
            zone_key = f"{sample.site}/{zones[0].id}"
            self._members.setdefault(zone_key, set()).add(key)
        self._probe_zone[key] = zone_key
        return zone_key

    def _evaluate(self, sample: TempSample) -> None:
        key = (sample.site, sample.device, sample.sensor)
        probe = self.probes.get(key)
        if probe is None:
            probe = ProbeHealth(
                source=f"{sample.site}/temp/{sample.device}/{sample.sensor}",
                last_ts_ms=sample.ts_ms,
                value=sample.celsius,
                same_since_ms=sample.ts_ms,
            )
            self.probes[key] = probe
            self._zone_of(key, sample)
            return
        if sample.ts_ms <= probe.last_ts_ms:
            return  # late or repeated reading
        self._stuck(probe, sample)
        probe.last_ts_ms = sample.ts_ms
        probe.value = sample.celsius
        zone_key = self._zone_of(key, sample)
        if zone_key is not None:
            self._drift(probe, zone_key, sample)

    # -- flat-line ------------------------------------------------------------------------

    def _stuck(self, probe: ProbeHealth, sample: TempSample) -> None:
        policy = self.policy
        if abs(sample.celsius - probe.value) > policy.stuck_epsilon:
            probe.changes += 1
            probe.same_count = 1
            probe.same_since_ms = sample.ts_ms
            if self._lifecycle.is_tracked(probe.source, STUCK_TYPE):
                self._lifecycle.resolve(
                    probe.source,
                    STUCK_TYPE,
                    at_ms=sample.ts_ms,
                    note=f"reads {sample.celsius:g} °C again",
                )
            return
        probe.same_count += 1
        held_s = (sample.ts_ms - probe.same_since_ms) / 1000
        if (
            probe.changes < _NOISE_CHANGES
            or probe.same_count < policy.stuck_samples
            or held_s < policy.stuck_s
        ):
            return
        self._lifecycle.report(
            AlertCondition(
                source=probe.source,
                type=STUCK_TYPE,
                severity="minor",
                site=sample.site,
                zone=self._zone_id(sample, probe),
                title=f"Sensor {sample.device}/{sample.sensor} stuck",
                message=(
                    f"{sample.device}/{sample.sensor} has read exactly {sample.celsius:g} °C "
                    f"{probe.same_count} times over {held_s:.0f} s"
                ),
                value=sample.celsius,
                threshold=None,
                details={
                    "device": sample.device,
                    "sensor": sample.sensor,
                    "samples": probe.same_count,
                    "duration_s": round(held_s, 1),
                },
                at_ms=sample.ts_ms,
            ),
        )

    # -- drift ----------------------------------------------------------------------------

    def _zone_values(self, zone_key: str, ts_ms: int, *, corrected: bool) -> list[float] | None:
        """Latest readings of the zone's fresh probes (the probe itself included)."""
        max_age_ms = self.policy.peer_max_age_s * 1000
        values = [
            peer.value - (peer.offset if corrected else 0.0)
            for other in self._members.get(zone_key, ())
            if (peer := self.probes.get(other)) is not None
            and abs(ts_ms - peer.last_ts_ms) <= max_age_ms
        ]
        return values if len(values) > self.policy.drift_min_peers else None

    def _drift(self, probe: ProbeHealth, zone_key: str, sample: TempSample) -> None:
        policy = self.policy
        if probe.offset_n < policy.drift_warmup_samples:
            raw = self._zone_values(zone_key, sample.ts_ms, corrected=False)
            if raw is not None:
                probe.offset_sum += sample.celsius - statistics.median(raw)
                probe.offset_n += 1
            return
        values = self._zone_values(zone_key, sample.ts_ms, corrected=True)
        if values is None:
            return
        # The median of offset-corrected readings, this probe's included, ignores one bad probe
        # among three; a median of its two peers alone would be their mean.
        reference = statistics.median(values)
        offset = probe.offset
        probe.ewma += policy.drift_alpha * (sample.celsius - offset - reference - probe.ewma)
        drift = probe.ewma
        if abs(drift) > policy.drift_threshold_c:
            self._lifecycle.report(
                AlertCondition(
                    source=probe.source,
                    type=DRIFT_TYPE,
                    severity="minor",
                    site=sample.site,
                    zone=zone_key.split("/", 1)[1],
                    title=f"Sensor {sample.device}/{sample.sensor} drifting",
                    message=(
                        f"{sample.device}/{sample.sensor} reads {drift:+.2f} °C away from the "
                        f"zone's other probes (reference {reference:.2f} °C, usual offset "
                        f"{offset:+.2f} °C)"
                    ),
                    value=round(drift, 3),
                    threshold=policy.drift_threshold_c,
                    details={
                        "device": sample.device,
                        "sensor": sample.sensor,
                        "reference_c": round(reference, 3),
                        "offset_c": round(offset, 3),
                    },
                    at_ms=sample.ts_ms,
                ),
            )
        elif abs(drift) < policy.drift_clear_c and self._lifecycle.is_tracked(
            probe.source, DRIFT_TYPE
        ):
            self._lifecycle.resolve(
                probe.source, DRIFT_TYPE, at_ms=sample.ts_ms, note=f"drift {drift:+.2f} °C"
            )

    def _zone_id(self, sample: TempSample, probe: ProbeHealth) -> str | None:
        zone_key = self._probe_zone.get((sample.site, sample.device, sample.sensor))
        del probe
        return None if zone_key is None else zone_key.split("/", 1)[1]
