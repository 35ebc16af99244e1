"""Seeded SKU demand with known parameters: the simulated truth forecasts are judged against.

Each SKU has a frozen :class:`DemandProfile`. Its expected demand on day ``d`` is

    E[d] = base · weekly[(d + start_weekday) mod 7]
                · (1 + amplitude · cos(2π (d - peak_day) / 365.25))
                · max(0, 1 + trend_per_year · d / 365.25)
                · lift of any promotion running on day d

and :func:`expected` returns exactly that. A day has demand with probability
``demand_probability`` (intermittency); on such a day the quantity is negative binomial with
mean ``E[d] / demand_probability`` and size ``dispersion`` (variance ``m + m²/dispersion``), or
Poisson when ``dispersion`` is ``None``. The mean over both draws is ``E[d]``.

:func:`daily_demand` draws one SKU's series, :func:`demand_matrix` many at once,
:func:`sku_mix` a realistic assortment, and :class:`DemandStream` / :func:`units_between` the
units falling in a span of simulated seconds, so a warehouse on an accelerated clock can draw
picks that add up to the same daily series however it slices time.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from core.errors import StockSenseError

DAY_S = 86_400.0
YEAR_DAYS = 365.25

DemandKind = Literal["regular", "seasonal", "intermittent"]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

# Retail-like week (Monday first): quiet early week, busy Friday and Saturday, low Sunday.
RETAIL_WEEK: tuple[float, ...] = (0.85, 0.9, 0.95, 1.0, 1.2, 1.3, 0.8)
FLAT_WEEK: tuple[float, ...] = (1.0,) * 7


class DemandProfileError(StockSenseError, ValueError):
    """A demand profile was given parameters outside their domain."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Promotion:
    """Demand multiplied by ``lift`` on days ``start_day`` .. ``start_day + length_days - 1``."""

    start_day: int
    length_days: int
    lift: float

    def __post_init__(self) -> None:
        if self.length_days < 1 or self.lift < 0:
            raise DemandProfileError(f"promotion needs length ≥ 1 and lift ≥ 0, got {self}")

    def covers(self, day: int) -> bool:
        """True when the promotion runs on ``day``."""
        return self.start_day <= day < self.start_day + self.length_days


@dataclass(frozen=True, slots=True, kw_only=True)
class DemandProfile:
    """Known demand parameters of one SKU (see the module docstring for the formula)."""

    sku: str
    kind: DemandKind
    base_per_day: float
    weekly: tuple[float, ...] = FLAT_WEEK
    season_amplitude: float = 0.0
    season_peak_day: int = 0
    trend_per_year: float = 0.0
    promotions: tuple[Promotion, ...] = field(default_factory=tuple)
    demand_probability: float = 1.0
    dispersion: float | None = None
    start_weekday: int = 0

    def __post_init__(self) -> None:
        if len(self.weekly) != 7 or min(self.weekly) < 0:
            raise DemandProfileError(f"{self.sku}: weekly needs 7 multipliers ≥ 0")
        if self.base_per_day < 0:
            raise DemandProfileError(f"{self.sku}: base demand must not be negative")
        if not 0.0 <= self.season_amplitude <= 1.0:
            raise DemandProfileError(f"{self.sku}: seasonal amplitude must be in [0, 1]")
        if not 0.0 < self.demand_probability <= 1.0:
            raise DemandProfileError(f"{self.sku}: demand probability must be in (0, 1]")
        if self.dispersion is not None and self.dispersion <= 0:
            raise DemandProfileError(f"{self.sku}: dispersion must be > 0 (or None for Poisson)")
        if not 0 <= self.start_weekday < 7:
            raise DemandProfileError(f"{self.sku}: start weekday must be 0..6")


# --------------------------------------------------------------------------- truth


def expected_series(profile: DemandProfile, days: int, *, start_day: int = 0) -> FloatArray:
    """Expected demand on days ``start_day .. start_day + days - 1`` (the truth, vectorised)."""
    d = np.arange(start_day, start_day + days, dtype=np.int64)
    weekly = np.asarray(profile.weekly, dtype=np.float64)[(d + profile.start_weekday) % 7]
    season = 1.0 + profile.season_amplitude * np.cos(
        2.0 * math.pi * (d - profile.season_peak_day) / YEAR_DAYS
    )
    trend = np.maximum(0.0, 1.0 + profile.trend_per_year * d / YEAR_DAYS)
    lift = np.ones(days, dtype=np.float64)
    for promo in profile.promotions:
        lift[(d >= promo.start_day) & (d < promo.start_day + promo.length_days)] *= promo.lift
    out: FloatArray = profile.base_per_day * weekly * season * trend * lift
    return out


def expected(profile: DemandProfile, day: int) -> float:
    """Expected demand of ``profile`` on ``day`` (day 0 is the first simulated day)."""
    return float(expected_series(profile, 1, start_day=day)[0])


# --------------------------------------------------------------------------- draws


def _draw(
    mean: FloatArray,
    probability: FloatArray,
    dispersion: FloatArray,
    rng: np.random.Generator,
) -> IntArray:
    """Draw demand with the given per-cell mean, occurrence probability and NB size (inf=Poisson).

    All arrays broadcast to ``mean``'s shape.
    """
    mean = np.asarray(mean, dtype=np.float64)
    prob = np.broadcast_to(probability, mean.shape)
    disp = np.broadcast_to(dispersion, mean.shape)
    occurs = rng.random(mean.shape) < prob
    size_mean = np.where(prob > 0, mean / prob, 0.0)
    poisson = ~np.isfinite(disp)
    # A gamma-Poisson mixture is the negative binomial with mean m and size k, and it draws
    # Poisson and NB cells in one pass: the gamma rate is exact m for the Poisson cells.
    k = np.where(poisson, 1.0, disp)
    rate = np.where(poisson, size_mean, rng.gamma(shape=k, scale=1.0) * (size_mean / k))
    qty = rng.poisson(np.maximum(rate, 0.0))
    out: IntArray = np.where(occurs, qty, 0).astype(np.int64)
    return out


def daily_demand(
    profile: DemandProfile, days: int, rng: np.random.Generator, *, start_day: int = 0
) -> IntArray:
    """One SKU's daily demand for ``days`` days from ``start_day``; same rng state → same series."""
    if days < 0:
        raise DemandProfileError(f"days must not be negative, got {days}")
    disp = math.inf if profile.dispersion is None else profile.dispersion
    return _draw(
        expected_series(profile, days, start_day=start_day),
        np.asarray(profile.demand_probability, dtype=np.float64),
        np.asarray(disp, dtype=np.float64),
        rng,
    )


def expected_matrix(profiles: Sequence[DemandProfile], days: int) -> FloatArray:
    """Expected demand ``[skus, days]`` for many profiles."""
    out = np.empty((len(profiles), days), dtype=np.float64)
    for i, profile in enumerate(profiles):
        out[i] = expected_series(profile, days)
    return out


def demand_matrix(
    profiles: Sequence[DemandProfile], days: int, rng: np.random.Generator
) -> IntArray:
    """Daily demand ``[skus, days]`` for many profiles, drawn in one vectorised pass."""
    mean = expected_matrix(profiles, days)
    prob = np.array([p.demand_probability for p in profiles], dtype=np.float64)[:, None]
    disp = np.array(
        [math.inf if p.dispersion is None else p.dispersion for p in profiles], dtype=np.float64
    )[:, None]
    return _draw(mean, prob, disp, rng)


# --------------------------------------------------------------------------- assortment


def sku_mix(
    n: int,
    rng: np.random.Generator,
    *,
    days: int = 730,
    shares: tuple[float, float, float] = (0.5, 0.2, 0.3),
) -> list[DemandProfile]:
    """A realistic assortment of ``n`` SKUs: regular, seasonal and intermittent/slow movers.

    ``shares`` are the fractions of regular, seasonal and intermittent SKUs (default
    50/20/30 %). Regular and seasonal SKUs sell most days with a retail week and a few
    promotions within ``days``; intermittent ones sell on 5-50 % of days in lumpy quantities.
    """
    if n < 0:
        raise DemandProfileError(f"n must not be negative, got {n}")
    if not math.isclose(sum(shares), 1.0) or min(shares) < 0:
        raise DemandProfileError(f"shares must be ≥ 0 and add up to 1, got {shares}")
    kinds: list[DemandKind] = ["regular", "seasonal", "intermittent"]
    chosen = rng.choice(3, size=n, p=np.asarray(shares))
    profiles: list[DemandProfile] = []
    for i in range(n):
        kind = kinds[int(chosen[i])]
        sku = f"SKU-{i:06d}"
        start_weekday = int(rng.integers(0, 7))
        if kind == "intermittent":
            profiles.append(
                DemandProfile(
                    sku=sku,
                    kind=kind,
                    base_per_day=float(rng.lognormal(mean=math.log(0.4), sigma=0.8)),
                    demand_probability=float(rng.uniform(0.05, 0.5)),
                    dispersion=float(rng.uniform(0.8, 4.0)),
                    trend_per_year=float(rng.uniform(-0.1, 0.1)),
                    start_weekday=start_weekday,
                )
            )
            continue
        # Retail week, each SKU a little different; normalised so the week averages 1.
        week = np.asarray(RETAIL_WEEK) * rng.uniform(0.9, 1.1, size=7)
        week = week / week.mean()
        promos: list[Promotion] = []
        for _ in range(int(rng.poisson(1.5 * days / YEAR_DAYS))):
            length = int(rng.integers(3, 15))
            promos.append(
                Promotion(
                    start_day=int(rng.integers(0, max(1, days - length))),
                    length_days=length,
                    lift=float(rng.uniform(1.3, 2.5)),
                )
            )
        profiles.append(
            DemandProfile(
                sku=sku,
                kind=kind,
                base_per_day=float(rng.lognormal(mean=math.log(20.0), sigma=1.0)),
                weekly=tuple(float(w) for w in week),
                season_amplitude=float(
                    rng.uniform(0.3, 0.8) if kind == "seasonal" else rng.uniform(0.0, 0.1)
                ),
                season_peak_day=int(rng.integers(0, 365)),
                trend_per_year=float(rng.uniform(-0.15, 0.25)),
                promotions=tuple(sorted(promos, key=lambda p: p.start_day)),
                demand_probability=float(rng.uniform(0.97, 1.0)),
                dispersion=float(rng.uniform(5.0, 40.0)),
                start_weekday=start_weekday,
            )
        )
    return profiles


# --------------------------------------------------------------------------- time spans


def _day_seed(seed: int, sku: str, day: int) -> np.random.SeedSequence:
    # crc32 rather than hash(): str hashes change between interpreter runs.
    return np.random.SeedSequence([seed, zlib.crc32(sku.encode()), day])


@dataclass(slots=True)
class DemandStream:
    """Units of one SKU demanded in spans of simulated seconds, consistent with whole days.

    Day ``d`` covers ``[d·86400, (d+1)·86400)`` simulated seconds from the stream's epoch. Its
    total is drawn from a generator seeded by ``(seed, sku, d)`` and its units are spread over
    the opening hours ``[open_hour, close_hour)``; so any partition of time adds up to the same
    daily series, and the same seed gives the same picks on every run.
    """

    profile: DemandProfile
    seed: int
    open_hour: float = 8.0
    close_hour: float = 20.0
    _cache: dict[int, FloatArray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.open_hour < self.close_hour <= 24.0:
            raise DemandProfileError("opening hours need 0 ≤ open < close ≤ 24")

    def day_total(self, day: int) -> int:
        """Units demanded on simulated ``day``."""
        return int(self._pick_times(day).size)

    def pick_times(self, t0_s: float, t1_s: float) -> FloatArray:
        """Simulated timestamps (seconds) of the single-unit picks in ``[t0_s, t1_s)``, sorted."""
        if t1_s <= t0_s:
            return np.empty(0, dtype=np.float64)
        first, last = math.floor(t0_s / DAY_S), math.floor(t1_s / DAY_S)
        parts = []
        for day in range(max(first, 0), last + 1):
            times = self._pick_times(day)
            parts.append(times[(times >= t0_s) & (times < t1_s)])
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.float64)

    def units_between(self, t0_s: float, t1_s: float) -> int:
        """Units demanded in ``[t0_s, t1_s)`` simulated seconds (0 before day 0)."""
        return int(self.pick_times(t0_s, t1_s).size)

    def _pick_times(self, day: int) -> FloatArray:
        cached = self._cache.get(day)
        if cached is not None:
            return cached
        rng = np.random.default_rng(_day_seed(self.seed, self.profile.sku, day))
        total = int(daily_demand(self.profile, 1, rng, start_day=day)[0])
        start = day * DAY_S + self.open_hour * 3600.0
        width = (self.close_hour - self.open_hour) * 3600.0
        times = np.sort(start + rng.random(total) * width)
        if len(self._cache) > 64:  # a warehouse walks forward in time: keep the recent days
            self._cache.pop(min(self._cache))
        self._cache[day] = times
        return times


def units_between(profile: DemandProfile, t0_s: float, t1_s: float, *, seed: int) -> int:
    """Units of ``profile`` demanded in ``[t0_s, t1_s)`` simulated seconds (stateless form)."""
    return DemandStream(profile, seed).units_between(t0_s, t1_s)


__all__ = [
    "DAY_S",
    "FLAT_WEEK",
    "RETAIL_WEEK",
    "DemandKind",
    "DemandProfile",
    "DemandProfileError",
    "DemandStream",
    "Promotion",
    "daily_demand",
    "demand_matrix",
    "expected",
    "expected_matrix",
    "expected_series",
    "sku_mix",
    "units_between",
]
