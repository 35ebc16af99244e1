"""Stock from weight shelves: unit counts from settled load-cell readings.

Each cell runs a small state machine over its readings:

1. **Tare**: net grams = reported grams - the cell's tare.
2. **Hampel filter** (trailing median/MAD window, k = 3): a reading further than k robust
   standard deviations from the window median is replaced by the median, so the odd spike of a
   bumped shelf or a flaky HX711 read never reaches the counting logic.
3. **Stability**: act only on settled readings — the last N filtered readings within a band
   (or the device's own ``stable`` flag, when the cell is configured to trust it).
4. **Counting**: a settled level away from the baseline is a change of
   Δ/unit units; it is accepted only when ``|Δ/unit - round(Δ/unit)| ≤ tolerance``, otherwise an
   :class:`AmbiguousChange` is reported instead of a guess.
5. **Drift compensation**: while idle, settled readings within ``drift_limit_grams`` of the
   baseline move the baseline with them, so the slow creep of a load cell (10-100 g over hours)
   never turns into a phantom pick, while a step of a whole unit still does.

Readings arrive with their own ``ts_ms``; nothing here reads the clock.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

from core.readings import WeightSample
from rules.inventory import InvalidParameterError

logger = logging.getLogger(__name__)

MAD_TO_SIGMA = 1.4826  # scales the median absolute deviation to sigma for Gaussian noise

CellPhase = Literal["unknown", "idle", "moving"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CellConfig:
    """What a shelf cell holds and how its readings are judged.

    ``tolerance`` is a fraction of a unit; ``stable_band_grams`` and ``drift_limit_grams``
    default to fractions of the unit weight, which suits units from a few grams to kilograms.
    """

    site: str
    device: str
    cell: str
    sku: str
    unit_grams: float
    tare_grams: float = 0.0
    tolerance: float = 0.2
    settle_readings: int = 5
    stable_band_grams: float | None = None
    drift_limit_grams: float | None = None
    hampel_window: int = 7
    hampel_k: float = 3.0
    drift_tau_s: float = 60.0
    trust_device_stable: bool = False

    def __post_init__(self) -> None:
        if self.unit_grams <= 0:
            raise InvalidParameterError(f"{self.cell}: unit weight must be positive")
        if not 0 < self.tolerance < 0.5:
            raise InvalidParameterError(f"{self.cell}: tolerance must be in (0, 0.5) of a unit")
        if self.drift_tau_s <= 0:
            raise InvalidParameterError(f"{self.cell}: drift time constant must be positive")
        if self.settle_readings < 2 or self.hampel_window < 3:
            raise InvalidParameterError(
                f"{self.cell}: need at least 2 settle readings and a Hampel window of 3"
            )

    @property
    def key(self) -> tuple[str, str, str]:
        """(site, device, cell): how readings find their cell."""
        return (self.site, self.device, self.cell)

    @property
    def band(self) -> float:
        """Max spread of the settle window, in grams."""
        if self.stable_band_grams is not None:
            return self.stable_band_grams
        return 0.1 * self.unit_grams

    @property
    def drift_limit(self) -> float:
        """Largest settled offset from the baseline still treated as drift, in grams."""
        if self.drift_limit_grams is not None:
            return self.drift_limit_grams
        return self.tolerance * self.unit_grams


@dataclass(frozen=True, slots=True, kw_only=True)
class Movement:
    """An accepted change of whole units on a cell."""

    kind: Literal["pick", "put"]
    units: int
    ts_ms: int
    cell: str
    sku: str
    site: str = ""
    device: str = ""
    delta_grams: float = 0.0
    # The last reading that still showed the old level: the change happened after it. The
    # filter and the settle window put ``ts_ms`` several readings after the change itself.
    since_ms: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AmbiguousChange:
    """A settled change that is not a whole number of units within tolerance; not counted."""

    ts_ms: int
    cell: str
    sku: str
    delta_grams: float
    units_estimate: float
    site: str = ""
    device: str = ""


WeightEvent = Movement | AmbiguousChange


class HampelFilter:
    """Trailing-window Hampel filter: replace outliers by the window median.

    A reading is an outlier when ``|x - median| > k · 1.4826 · MAD`` over the last ``window``
    raw readings (itself included). Because the window trails, a genuine step is passed through
    once it holds the majority of the window — about ``window // 2`` readings of delay.
    """

    __slots__ = ("_k", "_values", "_window", "spikes")

    def __init__(self, *, window: int = 7, k: float = 3.0) -> None:
        self._window = window
        self._k = k
        self._values: deque[float] = deque(maxlen=window)
        self.spikes = 0

    def update(self, x: float) -> float:
        """Add a raw reading; return it, or the window median if it is an outlier."""
        values = self._values
        values.append(x)
        n = len(values)
        if n < 3:
            return x
        ordered = sorted(values)
        mid = n // 2
        median = ordered[mid] if n % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])
        deviation = abs(x - median)
        if deviation == 0.0:
            return x
        spread = sorted([abs(v - median) for v in ordered])
        mad = spread[mid] if n % 2 else 0.5 * (spread[mid - 1] + spread[mid])
        if deviation > self._k * MAD_TO_SIGMA * mad:
            self.spikes += 1
            return median
        return x


@dataclass(slots=True)
class _CellState:
    tare: float
    window: deque[float]
    phase: CellPhase = "unknown"
    baseline: float = 0.0
    last_ts_ms: int | None = None
    settled_ts_ms: int | None = None
    steady_ts_ms: int | None = None  # last raw reading at the settled level
    drift_grams: float = 0.0


class CellTracker:
    """The state machine of one shelf cell; feed it readings, get movements back."""

    def __init__(self, config: CellConfig) -> None:
        self.config = config
        self._hampel = HampelFilter(window=config.hampel_window, k=config.hampel_k)
        self._state = self._fresh_state(config.tare_grams)

    def _fresh_state(self, tare: float) -> _CellState:
        return _CellState(tare=tare, window=deque(maxlen=self.config.settle_readings))

    @property
    def phase(self) -> CellPhase:
        """``unknown`` before the first settled level, ``idle`` when settled, else ``moving``."""
        return self._state.phase

    @property
    def seen(self) -> bool:
        """Whether the cell has sent a reading yet."""
        return self._state.last_ts_ms is not None

    @property
    def drift_grams(self) -> float:
        """Total drift absorbed into the baseline since start (a sensor-health signal)."""
        return self._state.drift_grams

    @property
    def spikes(self) -> int:
        """Readings the Hampel filter replaced."""
        return self._hampel.spikes

    @property
    def units_on_shelf(self) -> int:
        """Whole units the baseline corresponds to (meaningful when tare is the empty shelf)."""
        return round(self._state.baseline / self.config.unit_grams)

    def update(self, sample: WeightSample) -> list[WeightEvent]:
        """Process one reading; returns the movements or ambiguous changes it settles."""
        return self.update_raw(sample.ts_ms, sample.grams, sample.stable)

    def update_raw(self, ts_ms: int, grams: float, stable: bool | None = None) -> list[WeightEvent]:
        """Like :meth:`update`, without building a :class:`WeightSample`."""
        state = self._state
        if state.last_ts_ms is not None and ts_ms <= state.last_ts_ms:
            return []  # late or repeated reading: a cell's time only moves forward
        state.last_ts_ms = ts_ms
        cfg = self.config
        raw = grams - state.tare
        value = self._hampel.update(raw)
        if state.phase == "idle" and abs(raw - state.baseline) <= cfg.drift_limit:
            state.steady_ts_ms = ts_ms
        window = state.window
        window.append(value)

        if cfg.trust_device_stable and stable is not None:
            settled = stable
            level = value
        elif len(window) < cfg.settle_readings:
            return []
        else:
            settled = max(window) - min(window) <= cfg.band
            level = sorted(window)[len(window) // 2]  # median: robust to a residual outlier

        if not settled:
            if state.phase == "idle":
                state.phase = "moving"
            return []
        if state.phase == "unknown":
            state.baseline = level
            state.phase = "idle"
            state.settled_ts_ms = state.steady_ts_ms = ts_ms
            logger.debug("cell %s settled at %.1f g", cfg.cell, level)
            return []
        return self._settled(ts_ms, level)

    def _settled(self, ts_ms: int, level: float) -> list[WeightEvent]:
        state = self._state
        cfg = self.config
        delta = level - state.baseline
        was_moving = state.phase == "moving"
        since_ms = ts_ms - (state.settled_ts_ms if state.settled_ts_ms is not None else ts_ms)
        state.phase = "idle"
        state.settled_ts_ms = ts_ms
        if abs(delta) <= cfg.drift_limit:
            # Close to the baseline: creep of the cell (or noise). The baseline follows with a
            # time constant, so a slow ramp that keeps going still builds up into a change
            # instead of being swallowed step by step.
            alpha = 1.0 - math.exp(-since_ms / (cfg.drift_tau_s * 1000.0))
            if not was_moving:
                state.drift_grams += alpha * delta
            state.baseline += alpha * delta
            return []
        estimate = delta / cfg.unit_grams
        units = round(estimate)
        steady_ms = state.steady_ts_ms
        state.baseline = level  # later changes are measured from the new level either way
        state.steady_ts_ms = ts_ms
        if units == 0 or abs(estimate - units) > cfg.tolerance:
            logger.info(
                "cell %s: ambiguous change of %.1f g (%.2f units)", cfg.cell, delta, estimate
            )
            return [
                AmbiguousChange(
                    ts_ms=ts_ms,
                    cell=cfg.cell,
                    sku=cfg.sku,
                    delta_grams=delta,
                    units_estimate=estimate,
                    site=cfg.site,
                    device=cfg.device,
                )
            ]
        return [
            Movement(
                kind="put" if units > 0 else "pick",
                units=abs(units),
                ts_ms=ts_ms,
                cell=cfg.cell,
                sku=cfg.sku,
                site=cfg.site,
                device=cfg.device,
                delta_grams=delta,
                since_ms=steady_ms,
            )
        ]
