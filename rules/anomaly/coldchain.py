"""Cold chain beyond the excursion rule: Mean Kinetic Temperature and daily time out of band.

**MKT** (USP <1079.2>): ``MKT = (ΔH/R) / (-ln(mean(exp(-ΔH/(R·T_i)))))`` with T in kelvin and
ΔH/R = 10,000 K, over a sliding window of the zone's readings (every probe of the zone, each
reading weighted equally, so probes are expected to report at a regular interval). The
exponentials are scaled by a reference temperature so the running sum stays near 1 and
keeps its precision; the sum is recomputed now and then so rounding cannot accumulate.
Alert ``cold_chain_mkt`` when the window's MKT is above the threshold (default: the top of
the band) with at least ``mkt_min_samples`` readings; it clears below threshold - margin.

**Cumulative time out of band per day**: the interval up to a probe's next reading counts as
out of band when the reading was (gaps longer than ``max_gap_s`` do not count: an offline
probe is not an excursion). Intervals are cut at local midnight: the part before it counts for
the old day, the part after for the new one. Totals are kept per zone, local day and probe and
only ever grow; the zone's current day is the latest any of its probes has reached, so a late
reading of another probe for a past day adds to that day and never resets today. Alert
``cold_chain_cumulative`` when any probe of the zone has been out longer than
``daily_out_limit_s`` in the current local day; a new day clears it. A past day that goes over
the limit only through late readings is logged, not alerted after the fact.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from core.alerts import AlertCondition
from core.readings import Sample, TempSample
from core.settings import AlertingSettings, ColdChainPolicy
from rules.lifecycle import AlertLifecycle
from rules.seed import ProbeZones, Seed, TempBand, Zone

logger = logging.getLogger(__name__)

MKT_TYPE = "cold_chain_mkt"
CUMULATIVE_TYPE = "cold_chain_cumulative"
DH_R_K = 10_000.0  # ΔH/R for MKT, kelvin
KELVIN = 273.15
_T_REF_K = 278.15  # scaling reference: keeps exp() terms near 1 for cold-chain temperatures
_RESUM_EVERY = 10_000
_DAYS_KEPT = 8  # local days of out-of-band totals kept for late readings: today and a week back


def mean_kinetic_temperature(celsius: npt.ArrayLike) -> float:
    """MKT in °C of equally weighted readings in °C."""
    kelvin = np.asarray(celsius, dtype=np.float64) + KELVIN
    if kelvin.size == 0:
        raise ValueError("MKT of no readings")
    scaled = np.exp(-DH_R_K * (1.0 / kelvin - 1.0 / _T_REF_K))
    return float(DH_R_K / (DH_R_K / _T_REF_K - np.log(scaled.mean())) - KELVIN)


class MktWindow:
    """Streaming MKT over the last ``window_ms`` of reading time, O(1) per reading."""

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self._items: deque[tuple[int, float]] = deque()
        self._sum = 0.0
        self._newest = -(2**62)
        self._adds = 0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, ts_ms: int, celsius: float) -> None:
        """Add one reading; readings older than the window are dropped."""
        self._newest = max(self._newest, ts_ms)
        horizon = self._newest - self.window_ms
        if ts_ms <= horizon:
            return
        term = math.exp(-DH_R_K * (1.0 / (celsius + KELVIN) - 1.0 / _T_REF_K))
        self._items.append((ts_ms, term))
        self._sum += term
        while self._items and self._items[0][0] <= horizon:
            self._sum -= self._items.popleft()[1]
        self._adds += 1
        if self._adds >= _RESUM_EVERY:
            self._adds = 0
            self._sum = math.fsum(t for _, t in self._items)

    def span_ms(self) -> int:
        """Time between the oldest and the newest reading in the window."""
        return self._items[-1][0] - self._items[0][0] if self._items else 0

    def value(self) -> float | None:
        """MKT in °C of the window, None when empty."""
        if not self._items:
            return None
        mean = self._sum / len(self._items)
        return DH_R_K / (DH_R_K / _T_REF_K - math.log(mean)) - KELVIN


@dataclass(slots=True)
class _ZoneState:
    site: str
    zone: Zone
    band: TempBand
    policy: ColdChainPolicy
    tz: ZoneInfo
    mkt: MktWindow
    probes: dict[str, tuple[int, bool]] = field(default_factory=dict)
    out_ms: dict[str, dict[str, int]] = field(default_factory=dict)  # day -> probe -> ms out
    day: str = ""  # the current local day (ISO date): only ever moves forward
    day_end_ms: int = 0  # the local midnight that ends ``day``
    oldest_day: str = ""  # totals of earlier days are dropped

    @property
    def source(self) -> str:
        return f"{self.site}/{self.zone.id}"


def _local_day(ts_ms: int, tz: ZoneInfo) -> tuple[str, int]:
    """The local day (ISO date) of ``ts_ms`` and the epoch ms of the midnight ending it."""
    local = datetime.fromtimestamp(ts_ms // 1000, tz=tz)  # midnights fall on whole seconds
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    end = start + timedelta(days=1)  # wall-clock arithmetic: the next local midnight
    return start.date().isoformat(), int(end.timestamp() * 1000)


def _split_by_day(start_ms: int, end_ms: int, tz: ZoneInfo) -> Iterator[tuple[str, int, int]]:
    """``(day, from, to)`` pieces of ``[start_ms, end_ms)`` cut at local midnights."""
    at = start_ms
    while at < end_ms:
        day, day_end = _local_day(at, tz)
        to = min(end_ms, day_end)
        yield day, at, to
        at = to


class ColdChainMonitor:
    """MKT and cumulative out-of-band time per cold zone of the seed (a processor)."""

    sample_types = (TempSample,)

    def __init__(
        self, seed: Seed, lifecycle: AlertLifecycle, settings: AlertingSettings | None = None
    ) -> None:
        self._lifecycle = lifecycle
        alerting = settings or lifecycle.settings
        self._probe_zones = ProbeZones(seed)
        self._states: dict[tuple[str, str], _ZoneState] = {}
        for site in seed.sites:
            tz = ZoneInfo(site.timezone)
            for zone in site.zones:
                if zone.temp_band is None:
                    continue
                policy = alerting.cold_chain_for(site.id, zone.id)
                state = _ZoneState(
                    site=site.id,
                    zone=zone,
                    band=zone.temp_band,
                    policy=policy,
                    tz=tz,
                    mkt=MktWindow(int(policy.mkt_window_s * 1000)),
                )
                self._states[(site.id, zone.id)] = state

    def zone_states(self, site: str, zone: str) -> _ZoneState | None:
        """The state of one zone (for inspection and tests)."""
        return self._states.get((site, zone))

    def mkt(self, site: str, zone: str) -> float | None:
        """The current windowed MKT of a zone, °C."""
        state = self.zone_states(site, zone)
        return None if state is None else state.mkt.value()

    def out_of_band_s(self, site: str, zone: str, day: str | None = None) -> dict[str, float]:
        """Seconds out of band per probe on a local day (ISO date; default: the current day)."""
        state = self.zone_states(site, zone)
        if state is None:
            return {}
        totals = state.out_ms.get(state.day if day is None else day, {})
        return {probe: ms / 1000 for probe, ms in totals.items()}

    def process(self, samples: Sequence[Sample]) -> None:
        """Evaluate every temperature sample of a cold zone."""
        for sample in samples:
            if not isinstance(sample, TempSample):
                continue
            for zone in self._probe_zones.zones(sample.site, sample.device, sample.sensor):
                self._evaluate(self._states[(sample.site, zone.id)], sample)

    def tick(self, now_ms: int) -> None:
        """Both measures run on reading time."""
        del now_ms

    def _evaluate(self, state: _ZoneState, sample: TempSample) -> None:
        probe = f"{sample.device}/{sample.sensor}"
        previous = state.probes.get(probe)
        if previous is not None and sample.ts_ms <= previous[0]:
            return  # late or repeated reading
        out = not state.band.low <= sample.celsius <= state.band.high
        state.probes[probe] = (sample.ts_ms, out)
        self._cumulative(state, probe, previous, sample)
        state.mkt.add(sample.ts_ms, sample.celsius)
        self._check_mkt(state, sample)

    def _advance_day(self, state: _ZoneState, ts_ms: int) -> None:
        """Move the zone's current day forward to the local day of ``ts_ms``, never back."""
        if ts_ms < state.day_end_ms:
            return  # the current day, or a past one: a late reading
        day, state.day_end_ms = _local_day(ts_ms, state.tz)
        if state.day:
            self._lifecycle.resolve(state.source, CUMULATIVE_TYPE, at_ms=ts_ms, note="a new day")
        state.day = day
        state.oldest_day = (date.fromisoformat(day) - timedelta(days=_DAYS_KEPT - 1)).isoformat()
        for old in [d for d in state.out_ms if d < state.oldest_day]:
            del state.out_ms[old]

    def _cumulative(
        self,
        state: _ZoneState,
        probe: str,
        previous: tuple[int, bool] | None,
        sample: TempSample,
    ) -> None:
        if state.policy.daily_out_limit_s is None:
            return
        if (
            previous is not None
            and previous[1]
            and sample.ts_ms - previous[0] <= state.policy.max_gap_s * 1000
        ):
            # In time order, so the part before midnight is judged while its day is current.
            for day, start, end in _split_by_day(previous[0], sample.ts_ms, state.tz):
                self._advance_day(state, start)
                self._add_out(state, probe, day, end - start, sample=sample, at_ms=end)
        self._advance_day(state, sample.ts_ms)

    def _add_out(
        self, state: _ZoneState, probe: str, day: str, ms: int, *, sample: TempSample, at_ms: int
    ) -> None:
        limit_s = state.policy.daily_out_limit_s
        if limit_s is None or day < state.oldest_day:
            return
        totals = state.out_ms.setdefault(day, {})
        before = totals.get(probe, 0)
        total_ms = before + ms
        totals[probe] = total_ms
        if total_ms <= limit_s * 1000:
            return
        if day != state.day:
            if before <= limit_s * 1000:
                logger.warning(
                    "%s: %s was out of band %.0f s on %s (limit %g s), known only from late"
                    " readings: not alerted after the day",
                    state.source,
                    probe,
                    total_ms / 1000,
                    day,
                    limit_s,
                )
            return
        self._lifecycle.report(
            AlertCondition(
                source=state.source,
                type=CUMULATIVE_TYPE,
                severity="major",
                site=state.site,
                zone=state.zone.id,
                title=f"Cold-chain time out of range today in {state.zone.name or state.zone.id}",
                message=(
                    f"{probe} has been outside {state.band.low:g}–{state.band.high:g} °C for "
                    f"{total_ms / 1000:.0f} s on {day} (limit {limit_s:g} s)"
                ),
                value=round(total_ms / 1000, 1),
                threshold=limit_s,
                details={
                    "device": sample.device,
                    "sensor": sample.sensor,
                    "day": day,
                    "unit": "s",
                    "band_low": state.band.low,
                    "band_high": state.band.high,
                },
                at_ms=at_ms,
            ),
        )

    def _check_mkt(self, state: _ZoneState, sample: TempSample) -> None:
        policy = state.policy
        if len(state.mkt) < policy.mkt_min_samples or (
            state.mkt.span_ms() < policy.mkt_min_coverage * state.mkt.window_ms
        ):
            return
        mkt = state.mkt.value()
        if mkt is None:
            return
        threshold = (
            policy.mkt_threshold_c if policy.mkt_threshold_c is not None else state.band.high
        )
        if mkt > threshold:
            self._lifecycle.report(
                AlertCondition(
                    source=state.source,
                    type=MKT_TYPE,
                    severity="major",
                    site=state.site,
                    zone=state.zone.id,
                    title=(
                        f"Mean kinetic temperature over limit in {state.zone.name or state.zone.id}"
                    ),
                    message=(
                        f"MKT over the last {policy.mkt_window_s / 3600:g} h is {mkt:.2f} °C, "
                        f"above {threshold:g} °C ({len(state.mkt)} readings)"
                    ),
                    value=round(mkt, 3),
                    threshold=threshold,
                    details={
                        "window_s": policy.mkt_window_s,
                        "readings": len(state.mkt),
                        "device": sample.device,
                        "sensor": sample.sensor,
                    },
                    at_ms=sample.ts_ms,
                ),
            )
        elif mkt <= threshold - policy.mkt_clear_margin_c:
            self._lifecycle.resolve(
                state.source, MKT_TYPE, at_ms=sample.ts_ms, note=f"MKT {mkt:.2f} °C"
            )
