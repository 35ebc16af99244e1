"""Cold-chain rule: a zone's band with a duration allowance.

A probe out of band starts an excursion; only when it has lasted longer than the zone's
allowance is the condition reported to the alert lifecycle (brief door openings do not page
anyone), which raises one alert after the type's debounce. Every later reading out of band is
reported too, so the open alert shows the latest temperature, the peak and how long it has
lasted. The alert clears when every probe of
the zone is back in band. Time is the readings' own time, so replayed or
simulated data behave exactly like live data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from core.alerts import AlertCondition
from core.readings import TempSample
from rules.lifecycle import AlertLifecycle
from rules.seed import ProbeZones, Seed, Zone

logger = logging.getLogger(__name__)

ALERT_TYPE = "cold_chain_excursion"


@dataclass(slots=True)
class ProbeState:
    """What the rule remembers about one probe."""

    last_ts_ms: int
    celsius: float
    out_since_ms: int | None = None


class ColdChainRule:
    """Evaluates temperature samples against the zone bands of the seed."""

    def __init__(self, seed: Seed, lifecycle: AlertLifecycle) -> None:
        self._lifecycle = lifecycle
        self._probe_zones = ProbeZones(seed)
        self._probes: dict[tuple[str, str, str], ProbeState] = {}
        self._out: dict[str, set[str]] = {}

    def zones_for(self, sample: TempSample) -> tuple[Zone, ...]:
        """Cold zones this probe belongs to."""
        return self._probe_zones.zones(sample.site, sample.device, sample.sensor)

    def evaluate(self, sample: TempSample) -> None:
        """Update the probe's state and raise or clear the zone's alert as needed."""
        for zone in self.zones_for(sample):
            self._evaluate_zone(sample, zone)

    def _evaluate_zone(self, sample: TempSample, zone: Zone) -> None:
        band = zone.temp_band
        assert band is not None
        probe = f"{sample.device}/{sample.sensor}"
        key = (sample.site, zone.id, probe)
        state = self._probes.get(key)
        if state is not None and sample.ts_ms <= state.last_ts_ms:
            return  # late or repeated reading: time only moves forward
        if state is None:
            state = ProbeState(last_ts_ms=sample.ts_ms, celsius=sample.celsius)
            self._probes[key] = state
        state.last_ts_ms = sample.ts_ms
        state.celsius = sample.celsius
        source = f"{sample.site}/{zone.id}"
        out_probes = self._out.setdefault(source, set())
        if band.low <= sample.celsius <= band.high:
            state.out_since_ms = None
            out_probes.discard(probe)
            if not out_probes:
                # Also forgets an excursion still debouncing: it ended before it was raised.
                note = f"back in band at {sample.celsius:.1f} °C"
                if self._lifecycle.resolve(source, ALERT_TYPE, at_ms=sample.ts_ms, note=note):
                    logger.info("cold chain back in band: %s", source)
            return
        out_probes.add(probe)
        if state.out_since_ms is None:
            state.out_since_ms = sample.ts_ms
        duration_s = (sample.ts_ms - state.out_since_ms) / 1000
        if duration_s <= zone.allowance_s:
            return
        threshold = band.high if sample.celsius > band.high else band.low
        direction = "above" if sample.celsius > band.high else "below"
        self._lifecycle.report(
            AlertCondition(
                source=source,
                type=ALERT_TYPE,
                severity="critical",
                site=sample.site,
                zone=zone.id,
                title=f"Cold-chain excursion in {zone.name or zone.id}",
                message=(
                    f"{sample.device}/{sample.sensor} reads {sample.celsius:.1f} °C, {direction}"
                    f" the {band.low:g}–{band.high:g} °C band for {duration_s:.0f} s "
                    f"(allowance {zone.allowance_s:g} s)"
                ),
                value=sample.celsius,
                threshold=threshold,
                details={
                    "device": sample.device,
                    "sensor": sample.sensor,
                    "band_low": band.low,
                    "band_high": band.high,
                    "allowance_s": zone.allowance_s,
                    "duration_s": round(duration_s, 1),
                    "out_since_ms": state.out_since_ms,
                },
                at_ms=sample.ts_ms,
            )
        )
