"""Demand forecasts per SKU and site, and the safety stock and reorder point they justify.

From a daily demand history this module forecasts demand over the protection interval
``h = lead time + review period`` (days), backtests the forecast on rolling origins, and turns
the backtest's h-step errors into safety stock with :mod:`rules.inventory.replenishment`:

    SS  = z · √(e_h² + d² · sL²)     e_h = RMSE of the h-day forecasts over the latest year
    ROP = forecast over h + SS                 (sigma_e = e_h / √h per day)

so the error of the forecast, not the spread of raw demand, sets the buffer (seasonality, trend
and weekday swings that the forecast follows no longer inflate it). For slow movers the reorder
point is instead the quantile of a negative binomial count with the forecast as mean and
``e_h² + d² · sL²`` as variance: their demand over h is mostly zero or a few lumps, and the
normal approximation understates its upper tail.

Models, chosen per SKU by the Syntetos-Boylan demand class (ADI cut-off 1.32, CV² 0.49):

- smooth and erratic SKUs: Holt-Winters exponential smoothing with a damped trend and
  multiplicative weekly seasonality, learning from Huber-cleaned days so that a promotion does
  not lift the level for weeks after it;
- intermittent and lumpy SKUs: SBA (Croston with the Syntetos-Boylan correction) or TSB
  (Teunter-Syntetos-Babai, which lets the demand probability decay for dying items);

each family with a small grid of smoothing constants, the member picked on the earlier
backtest origins and judged on the latest ones. The judged MASE is the model's mean absolute
h-day error scaled by that of seasonal naive (period 7) on the same origins: a SKU whose model
does not beat seasonal naive (MASE ≥ 1) is planned with seasonal naive, and says so.

Everything is vectorised over SKUs (one pass of the recursions over time gives the forecasts of
every origin at once), so a nightly run over 100,000 SKUs needs no per-series fitting.

Inputs that leave nothing to forecast never raise and never give NaN levels; each case has a
documented result (see :func:`plan_levels`).

The ``forecast`` reorder policy (:class:`rules.inventory.reorder.ForecastPlanner`) plans each
site's SKUs with :func:`plan_levels_batch` once a day, and a SKU planned alone with
:func:`plan_levels`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from rules.inventory import InvalidParameterError
from rules.inventory.replenishment import (
    horizon_safety_stock,
    negative_binomial_quantile,
    reorder_point,
    z_for_service_level,
)

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

ModelName = Literal["ets", "sba", "tsb", "seasonal_naive", "mean", "none"]
DemandClass = Literal["smooth", "erratic", "intermittent", "lumpy", "no_demand"]

ADI_CUTOFF = 1.32
CV2_CUTOFF = 0.49
SEASON = 7
WARMUP_DAYS = 28  # four weeks initialise the level and the weekday indices
MIN_ORIGINS = 14  # fewer backtest origins than this give no usable error estimate
EVAL_ORIGINS = 91  # the latest quarter of origins judges the model; earlier ones pick it
# The latest year of origins measures the h-day error behind the safety stock: a quarter holds
# only about 91 / h independent horizons, too few for a stable sigma, and a year sees the error
# at every phase of the season.
SIGMA_ORIGINS = 364
# Huber cleaning of the observations the smoothing learns from (Gelper, Fried and Croux 2010):
# a day further than HUBER_K sigma from its one-step forecast counts as that far, so a
# promotion or a one-off bulk order neither lifts the level for weeks nor bends the trend.
HUBER_K = 2.0
SCALE_SMOOTHING = 0.02  # per day, for the running mean absolute one-step error

# Smoothing constants of each candidate; the backtest picks one per SKU. A slow level (alpha
# 0.02) suits steady sellers, whose h-day error is mostly the level's own noise; the lightly
# damped trends (phi per day) follow a season's slope over the horizon.
_ETS_GRID: tuple[tuple[float, float, float, float], ...] = (  # (alpha, gamma, beta, phi)
    (0.02, 0.02, 0.0, 0.95),
    (0.05, 0.05, 0.0, 0.95),
    (0.1, 0.05, 0.0, 0.95),
    (0.2, 0.05, 0.0, 0.95),
    (0.1, 0.15, 0.0, 0.95),
    (0.05, 0.05, 0.02, 0.99),
    (0.1, 0.05, 0.02, 0.98),
    (0.05, 0.05, 0.05, 0.98),
    (0.1, 0.05, 0.05, 0.98),
    (0.2, 0.05, 0.05, 0.95),
    (0.35, 0.1, 0.05, 0.95),
)
_SBA_GRID: tuple[float, ...] = (0.05, 0.1, 0.2)
_TSB_GRID: tuple[tuple[float, float], ...] = ((0.1, 0.02), (0.1, 0.05), (0.2, 0.1))

_CLASS_NAMES: tuple[DemandClass, ...] = ("smooth", "erratic", "intermittent", "lumpy", "no_demand")
_MODEL_NAMES: tuple[ModelName, ...] = ("ets", "sba", "tsb", "seasonal_naive", "mean", "none")


@dataclass(frozen=True, slots=True, kw_only=True)
class ForecastLevels:
    """Forecast-based replenishment levels of one SKU at one site.

    ``forecast_per_day`` is the mean daily demand forecast over the next ``horizon_days``
    (lead time + review period); ``sigma_per_day`` the per-day forecast error sigma_e behind the
    safety stock (the h-day RMSE over the latest year of backtest origins, divided by √h).
    ``mase``, ``bias`` (mean h-day error / mean h-day demand, positive = over-forecast) and
    ``pis`` (scaled periods in stock of the one-day forecasts, for intermittent SKUs:
    positive = stock would have piled up, negative = shortages) come from the backtest
    and are ``None`` when the history was too short for one. ``fell_back_to`` names the model
    used instead of the class's own when that one was not used, and ``reason`` says why.
    """

    forecast_per_day: float
    forecast_horizon: float
    horizon_days: int
    sigma_per_day: float
    safety_stock: float
    reorder_point: float
    model: ModelName
    demand_class: DemandClass
    adi: float | None
    cv2: float | None
    mase: float | None
    bias: float | None
    pis: float | None
    fell_back_to: ModelName | None
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchLevels:
    """:class:`ForecastLevels` of many SKUs as columns (row ``i`` is history row ``i``).

    ``mase``, ``bias``, ``pis``, ``adi`` and ``cv2`` hold NaN where the single form says
    ``None``; ``model``, ``demand_class`` and ``fell_back_to`` are indices into
    :attr:`MODEL_NAMES` / :attr:`CLASS_NAMES` (``fell_back_to`` is -1 when the class's model
    stood).
    """

    MODEL_NAMES = _MODEL_NAMES
    CLASS_NAMES = _CLASS_NAMES

    forecast_per_day: FloatArray
    forecast_horizon: FloatArray
    horizon_days: IntArray
    sigma_per_day: FloatArray
    safety_stock: FloatArray
    reorder_point: FloatArray
    model: IntArray
    demand_class: IntArray
    adi: FloatArray
    cv2: FloatArray
    mase: FloatArray
    bias: FloatArray
    pis: FloatArray
    fell_back_to: IntArray
    reasons: tuple[str, ...]

    def row(self, i: int) -> ForecastLevels:
        """The levels of SKU row ``i`` as a :class:`ForecastLevels`."""

        def opt(a: FloatArray) -> float | None:
            v = float(a[i])
            return None if math.isnan(v) else v

        fell = int(self.fell_back_to[i])
        return ForecastLevels(
            forecast_per_day=float(self.forecast_per_day[i]),
            forecast_horizon=float(self.forecast_horizon[i]),
            horizon_days=int(self.horizon_days[i]),
            sigma_per_day=float(self.sigma_per_day[i]),
            safety_stock=float(self.safety_stock[i]),
            reorder_point=float(self.reorder_point[i]),
            model=_MODEL_NAMES[int(self.model[i])],
            demand_class=_CLASS_NAMES[int(self.demand_class[i])],
            adi=opt(self.adi),
            cv2=opt(self.cv2),
            mase=opt(self.mase),
            bias=opt(self.bias),
            pis=opt(self.pis),
            fell_back_to=None if fell < 0 else _MODEL_NAMES[fell],
            reason=self.reasons[i],
        )


# --------------------------------------------------------------------------- demand class


def _classify(y: FloatArray) -> tuple[IntArray, FloatArray, FloatArray]:
    nonzero = y > 0
    nnz = nonzero.sum(axis=1)
    has = nnz > 0
    safe_nnz = np.maximum(nnz, 1)
    adi = np.where(has, y.shape[1] / safe_nnz, np.nan)
    size_mean = np.where(nonzero, y, 0.0).sum(axis=1) / safe_nnz
    size_sq = np.where(nonzero, y * y, 0.0).sum(axis=1) / safe_nnz
    size_var = np.maximum(size_sq - size_mean**2, 0.0)
    cv2 = np.where(has, size_var / np.maximum(size_mean, 1e-12) ** 2, np.nan)
    high_adi = adi >= ADI_CUTOFF
    high_cv2 = cv2 >= CV2_CUTOFF
    cls = np.where(high_adi, np.where(high_cv2, 3, 2), np.where(high_cv2, 1, 0))
    cls = np.where(has, cls, 4).astype(np.int64)
    return cls, adi, cv2


def _clean(y: FloatArray) -> FloatArray:
    # Returns (negative) and gaps (NaN, inf) are not demand: they count as days without any.
    out: FloatArray = np.where(np.isfinite(y) & (y > 0), y, 0.0)
    return out


# --------------------------------------------------------------------------- recursions


@dataclass(slots=True)
class _Scores:
    """Backtest sums per (SKU, candidate)."""

    sel_abs: FloatArray
    ev_abs: FloatArray
    ev_err: FloatArray
    sig_sq: FloatArray
    ev_act: FloatArray
    pis: FloatArray
    cfe: FloatArray
    final_h: FloatArray

    @classmethod
    def zeros(cls, n: int, c: int) -> _Scores:
        return cls(*(np.zeros((n, c)) for _ in range(8)))

    def record(
        self,
        fc_h: FloatArray,
        actual_h: FloatArray,
        masks: tuple[BoolArray, BoolArray, BoolArray, BoolArray],
    ) -> None:
        sel, ev, sig, _ = masks
        err = fc_h - actual_h[:, None]
        self.sel_abs += np.where(sel[:, None], np.abs(err), 0.0)
        evc = ev[:, None]
        self.ev_abs += np.where(evc, np.abs(err), 0.0)
        self.ev_err += np.where(evc, err, 0.0)
        self.sig_sq += np.where(sig[:, None], err * err, 0.0)
        self.ev_act += np.where(ev, actual_h, 0.0)[:, None]

    def record_daily(self, fc_1: FloatArray, actual_1: FloatArray, ev1: BoolArray) -> None:
        # Periods in stock: the running sum of the cumulative forecast error (Wallström and
        # Segerstedt); a forecast that is right on average keeps it near zero.
        evc = ev1[:, None]
        self.cfe += np.where(evc, fc_1 - actual_1[:, None], 0.0)
        self.pis += np.where(evc, self.cfe, 0.0)


@dataclass(slots=True)
class _Windows:
    """Which days are selection and evaluation origins, per SKU (horizons differ per SKU)."""

    n_days: int
    h: IntArray
    q: IntArray
    r: IntArray
    sel_lo: IntArray
    ev_lo: IntArray
    sig_lo: IntArray
    last: IntArray
    ev1_lo: IntArray

    @classmethod
    def build(cls, n_days: int, h: IntArray) -> _Windows:
        # Origin t (0-based index of the last observed day) forecasts days t+1 .. t+h; the
        # latest origin with an observed target is n - 1 - h.
        last = n_days - 1 - h
        origins = last - (WARMUP_DAYS - 1) + 1
        n_eval = np.minimum(EVAL_ORIGINS, origins // 2)
        ev_lo = last - n_eval + 1
        sel_lo = np.full_like(h, WARMUP_DAYS - 1)
        return cls(
            n_days=n_days,
            h=h,
            q=h // SEASON,
            r=h % SEASON,
            sel_lo=sel_lo,
            ev_lo=ev_lo,
            sig_lo=np.maximum(sel_lo, last - SIGMA_ORIGINS + 1),
            last=last,
            ev1_lo=n_days - n_eval,  # the one-day forecasts of the same evaluation span
        )

    def masks(self, t: int) -> tuple[BoolArray, BoolArray, BoolArray, BoolArray]:
        """Whether origin ``t`` selects, judges, measures sigma, and judges the one-day forecast."""
        sel = (t >= self.sel_lo) & (t < self.ev_lo)
        ev = (t >= self.ev_lo) & (t <= self.last)
        sig = (t >= self.sig_lo) & (t <= self.last)
        ev1 = (t + 1 >= self.ev1_lo) & (t + 1 < self.n_days)
        return sel, ev, sig, ev1

    def rows(self, rows: IntArray) -> _Windows:
        """The windows of SKU rows ``rows`` only."""
        return _Windows(
            n_days=self.n_days,
            h=self.h[rows],
            q=self.q[rows],
            r=self.r[rows],
            sel_lo=self.sel_lo[rows],
            ev_lo=self.ev_lo[rows],
            sig_lo=self.sig_lo[rows],
            last=self.last[rows],
            ev1_lo=self.ev1_lo[rows],
        )


def _horizon_weights(h: IntArray, phi: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per SKU and start phase, how the h forecast days weigh each weekday index.

    Returns ``count`` of shape ``[skus, 7 start phases, 7 weekday phases]`` and ``damped`` of
    shape ``[skus, candidates, 7, 7]``: for a forecast whose first day has phase ``o``,
    ``count[o, p]`` is the number of its days with phase ``p`` and ``damped[c, o, p]`` the sum
    of candidate ``c``'s damped-trend multipliers ``φ + φ² + … + φ^j`` over those days ``j``.
    """
    distinct, inverse = np.unique(h, return_inverse=True)
    count = np.zeros((distinct.size, SEASON, SEASON))
    damped = np.zeros((distinct.size, phi.size, SEASON, SEASON))
    for k, hk in enumerate(distinct):
        j = np.arange(1, int(hk) + 1)
        for o in range(SEASON):
            phase = (o + j - 1) % SEASON
            count[k, o] = np.bincount(phase, minlength=SEASON)
            for c, phi_c in enumerate(phi.tolist()):
                phi_j = np.cumsum(phi_c ** j.astype(np.float64))
                damped[k, c, o] = np.bincount(phase, weights=phi_j, minlength=SEASON)
    idx = inverse.reshape(-1)
    return count[idx], damped[idx]


def _huber_clean(
    y_t: FloatArray, fit: FloatArray, mad: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Day ``y_t`` with its one-step error clipped to ``HUBER_K`` sigma, and the updated mean
    absolute error ``mad`` (of the clipped errors, so an outlier does not widen the bound)."""
    # 1.25 · mean absolute error ≈ sigma; counts are never steadier than Poisson, which keeps
    # a series that was flat in the warm-up able to move.
    bound = HUBER_K * np.maximum(1.25 * mad, np.sqrt(np.maximum(fit, 1.0)))
    resid = np.clip(y_t - fit, -bound, bound)
    new_mad: FloatArray = SCALE_SMOOTHING * np.abs(resid) + (1.0 - SCALE_SMOOTHING) * mad
    cleaned: FloatArray = np.maximum(fit + resid, 0.0)
    return cleaned, new_mad


def _run_ets(y: FloatArray, w: _Windows, csum: FloatArray) -> _Scores:
    """Holt-Winters (level, damped trend, multiplicative weekly indices) over every candidate,
    learning from Huber-cleaned observations."""
    n, days = y.shape
    alpha, gamma, beta, phi = (np.array(col)[None, :] for col in zip(*_ETS_GRID, strict=True))
    c = alpha.shape[1]
    warm = y[:, :WARMUP_DAYS]
    level0 = warm.mean(axis=1)
    # Weekday index of each phase (day index mod 7) over the warm-up, relative to its mean.
    phase_means = np.stack([warm[:, p::SEASON].mean(axis=1) for p in range(SEASON)], axis=1)
    safe_level0 = np.where(level0 > 0, level0, 1.0)
    season0 = np.where(level0[:, None] > 0, phase_means / safe_level0[:, None], 1.0)
    level = np.repeat(level0[:, None], c, axis=1)
    trend = np.zeros((n, c))
    season = np.repeat(season0[:, None, :], c, axis=1)  # [n, c, 7]
    # Mean absolute one-step error, first from day-to-day changes over the warm-up
    # (E|y_t - y_t-1| = √2 · E|y - mean| for independent days).
    mad0 = np.abs(np.diff(warm, axis=1)).mean(axis=1) / math.sqrt(2.0)
    mad = np.repeat(mad0[:, None], c, axis=1)
    count, damped = _horizon_weights(w.h, phi[0])
    rows = np.arange(n)
    scores = _Scores.zeros(n, c)

    def forecast_h(origin: int) -> FloatArray:
        o = (origin + 1) % SEASON
        by_count = np.einsum("ncp,np->nc", season, count[:, o, :])
        by_damped = np.einsum("ncp,ncp->nc", season, damped[:, :, o, :])
        out: FloatArray = np.maximum(level * by_count + trend * by_damped, 0.0)
        return out

    for t in range(WARMUP_DAYS, days + 1):
        origin = t - 1  # the state now holds days 0 .. t-1
        if t == days:
            scores.final_h = forecast_h(origin)
            break
        masks = w.masks(origin)
        sel, ev, _, ev1 = masks
        if sel.any() or ev.any():
            target = np.minimum(origin + 1 + w.h, days)
            actual_h = csum[rows, target] - csum[:, origin + 1]
            scores.record(forecast_h(origin), actual_h, masks)
        p = t % SEASON
        s_p = season[:, :, p]
        damped_trend = phi * trend
        fit = np.maximum(level + damped_trend, 0.0) * s_p
        if ev1.any():
            scores.record_daily(fit, y[:, t], ev1)
        yt, mad = _huber_clean(y[:, t][:, None], fit, mad)
        new_level = alpha * (yt / np.maximum(s_p, 0.05)) + (1.0 - alpha) * (level + damped_trend)
        new_level = np.maximum(new_level, 0.0)
        trend = beta * (new_level - level) + (1.0 - beta) * damped_trend
        level = new_level
        ratio = np.clip(yt / np.maximum(level, 1e-9), 0.0, 10.0)
        season[:, :, p] = np.where(level > 1e-9, gamma * ratio + (1.0 - gamma) * s_p, s_p)
        if p == SEASON - 1:
            # Keep the indices averaging 1 so the level stays in units per day.
            mean = season.mean(axis=2, keepdims=True)
            season = np.where(mean > 1e-9, season / np.maximum(mean, 1e-9), 1.0)
    return scores


def _run_intermittent(y: FloatArray, w: _Windows, csum: FloatArray) -> _Scores:
    """SBA and TSB over every candidate at once (columns: SBA grid, then TSB grid)."""
    n, days = y.shape
    n_sba = len(_SBA_GRID)
    alpha = np.array([*_SBA_GRID, *(a for a, _ in _TSB_GRID)])[None, :]
    beta = np.array([0.0] * n_sba + [b for _, b in _TSB_GRID])[None, :]
    is_tsb = np.array([False] * n_sba + [True] * len(_TSB_GRID))[None, :]
    c = alpha.shape[1]
    warm = y[:, :WARMUP_DAYS]
    nz = warm > 0
    nnz = nz.sum(axis=1)
    size0 = np.where(nnz > 0, np.where(nz, warm, 0.0).sum(axis=1) / np.maximum(nnz, 1), 0.0)
    interval0 = np.where(nnz > 0, WARMUP_DAYS / np.maximum(nnz, 1), float(WARMUP_DAYS))
    # Days since the last demand at the end of the warm-up.
    last_nz = np.where(nnz > 0, WARMUP_DAYS - 1 - np.argmax(nz[:, ::-1], axis=1), -1)
    size = np.repeat(size0[:, None], c, axis=1)
    interval = np.repeat(interval0[:, None], c, axis=1)
    prob = np.repeat((nnz / WARMUP_DAYS)[:, None], c, axis=1)
    since = np.repeat((WARMUP_DAYS - last_nz)[:, None].astype(np.float64), c, axis=1)
    seen = np.repeat((nnz > 0)[:, None], c, axis=1)
    scores = _Scores.zeros(n, c)

    def per_day() -> FloatArray:
        sba = (1.0 - alpha / 2.0) * size / np.maximum(interval, 1.0)
        out: FloatArray = np.where(is_tsb, prob * size, sba)
        return out

    for t in range(WARMUP_DAYS, days + 1):
        origin = t - 1
        masks = w.masks(origin)
        sel, ev, _, ev1 = masks
        rate = per_day()
        if sel.any() or ev.any():
            target = np.minimum(origin + 1 + w.h, days)
            actual_h = csum[np.arange(n), target] - csum[:, origin + 1]
            scores.record(rate * w.h[:, None], actual_h, masks)
        if t == days:
            scores.final_h = rate * w.h[:, None]
            break
        if ev1.any():
            scores.record_daily(rate, y[:, t], ev1)
        yt = y[:, t][:, None]
        occurred = yt > 0
        first = occurred & ~seen
        size = np.where(first, yt, np.where(occurred, size + alpha * (yt - size), size))
        interval = np.where(
            first,
            since,
            np.where(occurred & ~is_tsb, interval + alpha * (since - interval), interval),
        )
        prob = np.where(is_tsb, prob + beta * (occurred - prob), prob)
        seen = seen | occurred
        since = np.where(occurred, 1.0, since + 1.0)
    return scores


def _seasonal_naive(y: FloatArray, w: _Windows, csum: FloatArray) -> _Scores:
    """Seasonal naive (repeat the last week) on the same origins, vectorised over time."""
    n, days = y.shape
    scores = _Scores.zeros(n, 1)
    rows = np.arange(n)
    for origin in range(WARMUP_DAYS - 1, days):
        masks = w.masks(origin)
        sel, ev, _, ev1 = masks
        end = origin + 1
        week = csum[:, end] - csum[:, end - SEASON]
        fc_h = w.q * week + (csum[rows, end - SEASON + w.r] - csum[:, end - SEASON])
        if origin == days - 1:
            scores.final_h = fc_h[:, None]
            break
        if sel.any() or ev.any():
            target = np.minimum(end + w.h, days)
            scores.record(fc_h[:, None], csum[rows, target] - csum[:, end], masks)
        if ev1.any():
            scores.record_daily(y[:, end - SEASON][:, None], y[:, end], ev1)
    return scores


# --------------------------------------------------------------------------- planning


def _validate(
    lead_time_days: FloatArray,
    review_days: FloatArray,
    service_level: FloatArray,
    lead_time_sd_days: FloatArray,
) -> None:
    for name, v in (
        ("lead time", lead_time_days),
        ("review period", review_days),
        ("lead-time deviation", lead_time_sd_days),
    ):
        if not np.all(np.isfinite(v)) or np.any(v < 0):
            raise InvalidParameterError(f"{name} must be finite and not negative")
    if not np.all((service_level > 0) & (service_level < 1)):
        raise InvalidParameterError("service levels must be strictly between 0 and 1")


def plan_levels_batch(
    histories: npt.ArrayLike,
    *,
    lead_time_days: npt.ArrayLike,
    review_days: npt.ArrayLike = 0.0,
    service_level: npt.ArrayLike = 0.95,
    lead_time_sd_days: npt.ArrayLike = 0.0,
    chunk_skus: int = 4096,
) -> BatchLevels:
    """:func:`plan_levels` for many SKUs: ``histories`` is ``[skus, days]``, oldest day first.

    The keyword arguments are scalars or per-SKU arrays. Rows are processed in chunks of
    ``chunk_skus`` so memory stays bounded whatever the number of SKUs.
    """
    y = np.asarray(histories, dtype=np.float64)
    if y.ndim == 1:
        y = y[None, :]
    if y.ndim != 2:
        raise InvalidParameterError(f"histories must be [skus, days], got shape {y.shape}")
    n = y.shape[0]
    lead = np.broadcast_to(np.asarray(lead_time_days, dtype=np.float64), (n,))
    review = np.broadcast_to(np.asarray(review_days, dtype=np.float64), (n,))
    service = np.broadcast_to(np.asarray(service_level, dtype=np.float64), (n,))
    lead_sd = np.broadcast_to(np.asarray(lead_time_sd_days, dtype=np.float64), (n,))
    _validate(lead, review, service, lead_sd)
    parts = [
        _plan_chunk(
            _clean(y[i : i + chunk_skus]),
            lead[i : i + chunk_skus],
            review[i : i + chunk_skus],
            service[i : i + chunk_skus],
            lead_sd[i : i + chunk_skus],
        )
        for i in range(0, n, max(1, chunk_skus))
    ]
    if not parts:
        return _plan_chunk(np.zeros((0, y.shape[1])), lead, review, service, lead_sd)
    return BatchLevels(
        **{
            name: np.concatenate([getattr(p, name) for p in parts])
            for name in BatchLevels.__dataclass_fields__
            if name != "reasons"
        },
        reasons=tuple(r for p in parts for r in p.reasons),
    )


def plan_levels(
    history: npt.ArrayLike,
    *,
    lead_time_days: float,
    review_days: float = 0.0,
    service_level: float = 0.95,
    lead_time_sd_days: float = 0.0,
) -> ForecastLevels:
    """Forecast, safety stock and reorder point of one SKU from its daily demand history.

    ``history`` is daily demand, oldest first. The horizon is ``ceil(lead_time_days +
    review_days)`` days (at least 1). Results for histories with nothing to forecast:

    - empty or all zero: model ``none``, forecast, safety stock and reorder point 0;
    - constant non-zero: model ``mean``, the constant as forecast, sigma_e 0 (only lead-time
      variation adds safety stock);
    - shorter than the warm-up (28 days) plus the horizon plus 14 backtest origins: model
      ``mean``, mean and sample sigma of the raw daily demand (sigma 0 with a single day), no
      backtest figures;
    - otherwise the class's model, or seasonal naive when that does not beat it.

    Negative, NaN and infinite days count as days without demand. Invalid parameters (negative
    lead time, service level outside (0, 1)) raise :class:`InvalidParameterError`.
    """
    batch = plan_levels_batch(
        np.asarray(history, dtype=np.float64).reshape(1, -1),
        lead_time_days=lead_time_days,
        review_days=review_days,
        service_level=service_level,
        lead_time_sd_days=lead_time_sd_days,
    )
    return batch.row(0)


def _plan_chunk(
    y: FloatArray,
    lead: FloatArray,
    review: FloatArray,
    service: FloatArray,
    lead_sd: FloatArray,
) -> BatchLevels:
    n, days = y.shape
    h = np.maximum(1, np.ceil(lead + review - 1e-9)).astype(np.int64)
    cls, adi, cv2 = (
        _classify(y)
        if days
        else (
            np.full(n, 4, dtype=np.int64),
            np.full(n, np.nan),
            np.full(n, np.nan),
        )
    )
    fc_h = np.zeros(n)
    sigma_h = np.zeros(n)
    model = np.full(n, _MODEL_NAMES.index("none"), dtype=np.int64)
    fell = np.full(n, -1, dtype=np.int64)
    mase = np.full(n, np.nan)
    bias = np.full(n, np.nan)
    pis = np.full(n, np.nan)
    reasons = ["no demand in the history: nothing to stock"] * n

    no_demand = cls == 4
    constant = ~no_demand & (np.ptp(y, axis=1) == 0 if days else np.zeros(n, dtype=bool))
    w = _Windows.build(days, h)
    origins = w.last - (WARMUP_DAYS - 1) + 1
    short = ~no_demand & ~constant & (origins < MIN_ORIGINS)
    full = ~no_demand & ~constant & ~short

    mean_idx = _MODEL_NAMES.index("mean")
    for i in np.flatnonzero(constant).tolist():
        fc_h[i] = y[i, 0] * h[i]
        model[i] = mean_idx
        reasons[i] = "constant history: its value is the forecast, with no forecast error"
    for i in np.flatnonzero(short).tolist():
        d = y[i].mean()
        sd = y[i].std(ddof=1) if days > 1 else 0.0
        fc_h[i] = d * h[i]
        sigma_h[i] = sd * math.sqrt(h[i])
        model[i] = mean_idx
        reasons[i] = (
            f"{days} days of history, fewer than the {WARMUP_DAYS + MIN_ORIGINS + int(h[i])} "
            "a backtest needs: mean and sigma of raw demand"
        )

    if full.any():
        _plan_backtested(
            y,
            w,
            cls=cls,
            full=full,
            fc_h=fc_h,
            sigma_h=sigma_h,
            model=model,
            fell=fell,
            mase=mase,
            bias=bias,
            pis=pis,
            reasons=reasons,
        )

    fc_day = fc_h / h
    sigma_day = sigma_h / np.sqrt(h)
    ss = np.empty(n)
    rop = np.empty(n)
    z_cache: dict[float, float] = {}
    for i in range(n):
        p = float(service[i])
        z = z_cache.get(p)
        if z is None:
            z = z_cache[p] = z_for_service_level(p)
        if model[i] == _MODEL_NAMES.index("none"):
            ss[i] = rop[i] = 0.0
            continue
        ss[i] = max(0.0, horizon_safety_stock(z, sigma_h[i], fc_day[i], float(lead_sd[i])))
    # Slow movers: the quantile of a negative binomial count with the forecast's mean and the
    # measured variance, whose upper tail the normal approximation understates (demand over
    # the horizon is mostly zero or a few lumps).
    slow = np.flatnonzero(full & (cls >= 2) & (cls <= 3) & (fc_h > 0))
    if slow.size:
        variance = sigma_h[slow] ** 2 + (fc_day[slow] * lead_sd[slow]) ** 2
        quantile = negative_binomial_quantile(fc_h[slow], variance, service[slow])
        ok = np.isfinite(quantile)
        ss[slow[ok]] = np.maximum(quantile[ok] - fc_h[slow[ok]], 0.0)
    for i in range(n):
        rop[i] = reorder_point(fc_day[i], float(h[i]), ss[i])
    return BatchLevels(
        forecast_per_day=fc_day,
        forecast_horizon=fc_h,
        horizon_days=h,
        sigma_per_day=sigma_day,
        safety_stock=ss,
        reorder_point=rop,
        model=model,
        demand_class=cls,
        adi=adi,
        cv2=cv2,
        mase=mase,
        bias=bias,
        pis=pis,
        fell_back_to=fell,
        reasons=tuple(reasons),
    )


def _plan_backtested(
    y: FloatArray,
    w: _Windows,
    *,
    cls: IntArray,
    full: BoolArray,
    fc_h: FloatArray,
    sigma_h: FloatArray,
    model: IntArray,
    fell: IntArray,
    mase: FloatArray,
    bias: FloatArray,
    pis: FloatArray,
    reasons: list[str],
) -> None:
    """Backtest the rows in ``full`` and write their results into the output arrays."""
    smooth_rows = np.flatnonzero(full & (cls <= 1))
    slow_rows = np.flatnonzero(full & (cls >= 2) & (cls <= 3))
    snaive_idx = _MODEL_NAMES.index("seasonal_naive")
    n_sba = len(_SBA_GRID)
    for rows, runner in ((smooth_rows, _run_ets), (slow_rows, _run_intermittent)):
        if rows.size == 0:
            continue
        sub = y[rows]
        sw = w.rows(rows)
        csum = np.concatenate([np.zeros((rows.size, 1)), np.cumsum(sub, axis=1)], axis=1)
        cand = runner(sub, sw, csum)
        naive = _seasonal_naive(sub, sw, csum)
        best = np.argmin(cand.sel_abs, axis=1)
        pick = np.arange(rows.size), best
        n_eval = (sw.last - sw.ev_lo + 1).astype(np.float64)
        n_sig = (sw.last - sw.sig_lo + 1).astype(np.float64)
        model_mae = cand.ev_abs[pick] / n_eval
        naive_mae = naive.ev_abs[:, 0] / n_eval
        both_zero = (model_mae == 0) & (naive_mae == 0)
        ratio = np.where(both_zero, 1.0, model_mae / np.maximum(naive_mae, 1e-12))
        fall = ratio >= 1.0
        mean_demand = np.maximum(sub.mean(axis=1), 1e-12)
        act_mean = cand.ev_act[pick] / n_eval
        for j, i in enumerate(rows):
            if runner is _run_ets:
                own = _MODEL_NAMES.index("ets")
            else:
                own = _MODEL_NAMES.index("sba" if best[j] < n_sba else "tsb")
            if fall[j]:
                src, col = naive, 0
                model[i] = snaive_idx
                fell[i] = snaive_idx
                reasons[i] = (
                    f"{_MODEL_NAMES[own]} did not beat seasonal naive in the backtest "
                    f"(MASE {ratio[j]:.2f}): seasonal naive"
                )
            else:
                src, col = cand, int(best[j])
                model[i] = own
                reasons[i] = f"{_CLASS_NAMES[int(cls[i])]} demand: {_MODEL_NAMES[own]}"
            fc_h[i] = max(0.0, float(src.final_h[j, col]))
            sigma_h[i] = math.sqrt(float(src.sig_sq[j, col]) / n_sig[j])
            mase[i] = float(ratio[j])
            bias[i] = float(src.ev_err[j, col]) / n_eval[j] / max(float(act_mean[j]), 1e-12)
            # Scaled PIS: periods in stock in days of mean demand per evaluated day.
            pis[i] = float(src.pis[j, col]) / mean_demand[j] / n_eval[j]


__all__ = [
    "ADI_CUTOFF",
    "CV2_CUTOFF",
    "BatchLevels",
    "DemandClass",
    "ForecastLevels",
    "ModelName",
    "plan_levels",
    "plan_levels_batch",
]
