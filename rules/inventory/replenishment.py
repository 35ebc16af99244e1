"""Replenishment: safety stock, reorder point, min/max rules and purchase suggestions.

The formulas are the textbook ones the field uses, with demand and lead time both uncertain:

    SS  = z · √(L · sd² + d² · sL²)
    ROP = d · L + SS

where ``d``/``sd`` are the mean and sample standard deviation of daily demand, ``L``/``sL`` the
mean and standard deviation of the lead time in days, and ``z`` the standard normal quantile of
the cycle service level.

Two reorder rule flavours follow the ERPs buyers already know:

- :class:`MinMaxRule` (Odoo reordering rule): when the projected quantity (on hand + on order -
  reserved) is strictly below ``min_qty`` (Odoo: ``float_compare(qty_forecast, product_min_qty)
  < 0``), order up to ``max_qty``, rounded *up* to the pack multiple.
- :class:`ReorderPointRule` (the dynamic policy): the same order-up-to quantity, but it fires
  *at or below* the reorder point (projected ≤ ROP), as the reorder-point method defines it.
- :class:`ReorderLevelRule` (ERPNext item reorder): when the projected quantity is below the
  reorder level, order ``max(reorder_qty, level - projected)``.

:func:`suggestion_change` decides from a rule and the open suggestions whether to suggest a
purchase, revise a pending one or do nothing, and never suggests twice for a gap that open
suggestions already cover.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import ClassVar, Protocol

import numpy as np
import numpy.typing as npt

from rules.inventory import InvalidParameterError

FloatArray = npt.NDArray[np.float64]

_STANDARD_NORMAL = NormalDist()
_QTY_EPS = 1e-9  # quantities this close to a level count as equal to it (Odoo's float_compare)


# --------------------------------------------------------------------------- formulas


def z_for_service_level(p: float) -> float:
    """Standard normal quantile for a cycle service level ``p`` (0 < p < 1); z(0.95) ≈ 1.645."""
    if not 0.0 < p < 1.0:
        raise InvalidParameterError(f"service level {p!r} must be strictly between 0 and 1")
    return _STANDARD_NORMAL.inv_cdf(p)


def safety_stock(
    z: float, d_mean: float, d_sigma: float, lead_mean: float, lead_sigma: float
) -> float:
    """Safety stock with uncertain demand and lead time: ``z·√(L·sd² + d²·sL²)``.

    Demand figures are per day, lead times in days.
    """
    if min(d_mean, d_sigma, lead_mean, lead_sigma) < 0:
        raise InvalidParameterError(
            "demand and lead-time means and deviations must not be negative: "
            f"d={d_mean}, sd={d_sigma}, L={lead_mean}, sL={lead_sigma}"
        )
    return z * math.sqrt(lead_mean * d_sigma**2 + d_mean**2 * lead_sigma**2)


def horizon_safety_stock(z: float, horizon_error: float, d_mean: float, lead_sigma: float) -> float:
    """Safety stock from a measured h-day forecast error: ``z·√(e_h² + d²·sL²)``.

    ``horizon_error`` is the root mean square error of forecasts of the demand over the whole
    protection interval, measured over that interval, so it already holds what ``√L·sd``
    would only approximate (autocorrelation, level uncertainty); the lead time's own
    variation ``d·sL`` is not in it and adds in quadrature. Equals :func:`safety_stock` with
    ``d_sigma = horizon_error / √L``.
    """
    if min(horizon_error, d_mean, lead_sigma) < 0:
        raise InvalidParameterError(
            "forecast error, demand and lead-time deviation must not be negative: "
            f"e_h={horizon_error}, d={d_mean}, sL={lead_sigma}"
        )
    return z * math.sqrt(horizon_error**2 + d_mean**2 * lead_sigma**2)


def negative_binomial_quantile(
    mean: npt.ArrayLike, variance: npt.ArrayLike, p: npt.ArrayLike, *, max_units: int = 100_000
) -> FloatArray:
    """Smallest whole ``k`` with ``P(X ≤ k) ≥ p`` for a count of the given mean and variance.

    The count is negative binomial (Poisson when the variance does not exceed the mean), the
    usual model of demand over a lead time for slow and lumpy items, whose upper tail the
    normal approximation understates. Arrays broadcast; a mean of 0 gives 0. Where the
    quantile lies beyond ``max_units`` the result is NaN (the caller falls back to the normal
    approximation).
    """
    m, v, q = np.broadcast_arrays(
        np.asarray(mean, dtype=np.float64),
        np.asarray(variance, dtype=np.float64),
        np.asarray(p, dtype=np.float64),
    )
    if np.any(m < 0) or np.any(v < 0) or not np.all((q > 0) & (q < 1)):
        raise InvalidParameterError("mean and variance must not be negative, 0 < p < 1")
    shape = m.shape
    m, v, q = m.ravel(), v.ravel(), q.ravel()
    out = np.zeros(m.size)
    active = np.flatnonzero(m > 0)
    over = v[active] > m[active] * (1.0 + 1e-9)
    mi = m[active]
    # NB(r, s): P(0) = s^r, P(k+1) = P(k) · (k + r) / (k + 1) · (1 - s), with s = m / v.
    s_ = np.where(over, mi / np.where(over, v[active], 1.0), 1.0)
    r = np.where(over, mi * s_ / np.maximum(1.0 - s_, 1e-300), 0.0)  # unused where Poisson
    pk = np.where(over, np.exp(r * np.log(np.maximum(s_, 1e-300))), np.exp(-mi))
    # A P(0) that underflows means a mean far too large to sum term by term.
    out[active[pk < 1e-300]] = np.nan
    keep = pk >= 1e-300
    active, over, mi, s_, r, pk = active[keep], over[keep], mi[keep], s_[keep], r[keep], pk[keep]
    cdf = pk.copy()
    target = q[active]
    k = 0
    while active.size and k < max_units:
        done = cdf >= target - 1e-12
        if done.any():
            out[active[done]] = k
            keep = ~done
            active, over, mi, s_, r = active[keep], over[keep], mi[keep], s_[keep], r[keep]
            pk, cdf, target = pk[keep], cdf[keep], target[keep]
            if not active.size:
                break
        ratio = np.where(over, (k + r) / (k + 1) * (1.0 - s_), mi / (k + 1))
        pk = pk * ratio
        cdf = cdf + pk
        k += 1
    out[active] = np.nan
    return out.reshape(shape)


def reorder_point(d_mean: float, lead_mean: float, ss: float) -> float:
    """Reorder point: expected demand over the lead time plus safety stock (``d·L + SS``)."""
    return d_mean * lead_mean + ss


def projected_qty(*, on_hand: float, on_order: float = 0.0, reserved: float = 0.0) -> float:
    """Projected (forecast) quantity as both ERPs define it: on hand + on order - reserved."""
    return on_hand + on_order - reserved


def round_up_to_multiple(qty: float, multiple: float) -> float:
    """Round a positive quantity up to the pack multiple (a multiple ≤ 0 means no rounding)."""
    if multiple <= 0 or qty <= 0:
        return qty
    packs = math.ceil(qty / multiple - 1e-9)  # 1e-9: 36/6 must stay 6 packs despite float noise
    return packs * multiple


def dynamic_levels(
    demand: FloatArray,
    lead_mean: FloatArray,
    lead_sigma: FloatArray,
    service_level: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Safety stock and reorder point for many SKUs at once.

    ``demand`` is ``[skus, days]`` of daily demand; the other arrays are per SKU (lead times in
    days, service levels in (0, 1)). Returns ``(d_mean, d_sigma, ss, rop)``, with ``d_sigma``
    the sample standard deviation (ddof=1).
    """
    demand = np.asarray(demand, dtype=np.float64)
    if demand.ndim != 2 or demand.shape[1] < 2:
        raise InvalidParameterError(
            f"demand must be [skus, days] with at least 2 days, got shape {demand.shape}"
        )
    n_skus = demand.shape[0]
    lead_mean = np.broadcast_to(np.asarray(lead_mean, dtype=np.float64), (n_skus,))
    lead_sigma = np.broadcast_to(np.asarray(lead_sigma, dtype=np.float64), (n_skus,))
    service_level = np.broadcast_to(np.asarray(service_level, dtype=np.float64), (n_skus,))
    if np.any(lead_mean < 0) or np.any(lead_sigma < 0):
        raise InvalidParameterError("lead-time means and deviations must not be negative")
    if np.any(service_level <= 0) or np.any(service_level >= 1):
        raise InvalidParameterError("service levels must be strictly between 0 and 1")

    d_mean: FloatArray = demand.mean(axis=1)
    d_sigma: FloatArray = demand.std(axis=1, ddof=1)
    # Service levels come from a handful of policy classes, so the scalar inverse CDF runs once
    # per distinct level rather than once per SKU.
    levels, inverse = np.unique(service_level, return_inverse=True)
    z_levels = np.fromiter(
        (_STANDARD_NORMAL.inv_cdf(float(p)) for p in levels), dtype=np.float64, count=levels.size
    )
    z = z_levels[inverse.reshape(-1)]
    ss: FloatArray = z * np.sqrt(lead_mean * d_sigma**2 + d_mean**2 * lead_sigma**2)
    rop: FloatArray = d_mean * lead_mean + ss
    return d_mean, d_sigma, ss, rop


# --------------------------------------------------------------------------- reorder rules


@dataclass(frozen=True, slots=True, kw_only=True)
class _OrderUpToRule:
    """Order ``max_qty - projected`` rounded up to ``multiple`` once the rule fires."""

    site: str
    sku: str
    min_qty: float
    max_qty: float
    multiple: float = 1.0

    trigger_op: ClassVar[str]  # how messages state the trigger: "<" or "≤"

    def __post_init__(self) -> None:
        if self.min_qty < 0 or self.max_qty < 0 or self.multiple < 0:
            raise InvalidParameterError(f"{self.sku}: min, max and multiple must not be negative")

    @property
    def trigger_level(self) -> float:
        """The level the projected quantity is compared with."""
        return self.min_qty

    def triggered(self, projected: float) -> bool:
        """True when the rule fires for this projected quantity."""
        raise NotImplementedError

    def order_qty(self, projected: float) -> float:
        """Quantity to order for this projected quantity (0 when the rule does not fire)."""
        if not self.triggered(projected):
            return 0.0
        # Odoo orders up to max(min, max) so a misconfigured max below min still refills.
        return round_up_to_multiple(max(self.min_qty, self.max_qty) - projected, self.multiple)


@dataclass(frozen=True, slots=True, kw_only=True)
class MinMaxRule(_OrderUpToRule):
    """Odoo-style reordering rule for one SKU at one site.

    Fires when projected is strictly below ``min_qty`` and orders ``max_qty - projected``
    rounded up to ``multiple``: min 10, max 40, multiple 6, projected 10 → nothing,
    projected 9 → 31 → 36.
    """

    trigger_op: ClassVar[str] = "<"

    def triggered(self, projected: float) -> bool:
        """True when the projected quantity is below the minimum (the minimum itself is enough)."""
        return projected < self.min_qty - _QTY_EPS


@dataclass(frozen=True, slots=True, kw_only=True)
class ReorderPointRule(_OrderUpToRule):
    """Dynamic (reorder-point) rule: fires at or below the reorder point ``min_qty``.

    Unlike :class:`MinMaxRule` the level itself triggers (projected ≤ ROP); the order goes up to
    ``max_qty`` (ROP + order quantity), rounded up to ``multiple``.
    """

    trigger_op: ClassVar[str] = "≤"

    @classmethod
    def dynamic(
        cls, *, site: str, sku: str, reorder_point: float, order_qty: float, multiple: float = 1.0
    ) -> ReorderPointRule:
        """Trigger at the reorder point and order up to ROP + ``order_qty``."""
        return cls(
            site=site,
            sku=sku,
            min_qty=reorder_point,
            max_qty=reorder_point + order_qty,
            multiple=multiple,
        )

    def triggered(self, projected: float) -> bool:
        """True when the projected quantity is at or below the reorder point."""
        return projected <= self.min_qty + _QTY_EPS


@dataclass(frozen=True, slots=True, kw_only=True)
class ReorderLevelRule:
    """ERPNext-style item reorder: below ``reorder_level``, order max(reorder_qty, gap)."""

    site: str
    sku: str
    reorder_level: float
    reorder_qty: float

    trigger_op: ClassVar[str] = "<"  # how messages state the trigger

    def __post_init__(self) -> None:
        if self.reorder_level < 0 or self.reorder_qty < 0:
            raise InvalidParameterError(f"{self.sku}: reorder level and qty must not be negative")

    @property
    def trigger_level(self) -> float:
        """The projected quantity below which the rule fires."""
        return self.reorder_level

    def triggered(self, projected: float) -> bool:
        """ERPNext fires strictly below the level (``projected_qty < reorder_level``)."""
        return projected < self.reorder_level

    def order_qty(self, projected: float) -> float:
        """``max(reorder_qty, reorder_level - projected)`` when triggered, else 0."""
        if not self.triggered(projected):
            return 0.0
        return max(self.reorder_qty, self.reorder_level - projected)


ReorderRule = MinMaxRule | ReorderPointRule | ReorderLevelRule


# --------------------------------------------------------------------------- suggestions


class OpenSuggestion(Protocol):
    """What the decision needs of a suggested or ordered purchase (a stored suggestion)."""

    @property
    def id(self) -> int: ...

    @property
    def state(self) -> str: ...

    @property
    def qty(self) -> float: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class NewSuggestion:
    """Suggest buying ``qty``."""

    qty: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RevisedSuggestion:
    """Change the quantity of pending (not yet ordered) suggestion ``id`` to ``qty``."""

    id: int
    qty: float


SuggestionChange = NewSuggestion | RevisedSuggestion


def suggestion_change(
    rule: ReorderRule, *, projected: float, open_suggestions: Sequence[OpenSuggestion]
) -> SuggestionChange | None:
    """What to do about purchase suggestions for ``rule``'s SKU, or ``None`` for nothing.

    ``projected`` is on hand + on order - reserved, where on order already holds the ordered
    suggestions; ``open_suggestions`` are the suggested or ordered ones, oldest first. A gap
    that pending suggestions cover is not suggested again; a gap that grew before the buyer
    ordered revises the pending suggestion instead of adding a second one. The same inputs
    always give the same answer, so evaluating again changes nothing.
    """
    pending = [s for s in open_suggestions if s.state == "suggested"]
    covered = projected + sum(s.qty for s in pending)
    if open_suggestions and not rule.triggered(covered):
        return None
    qty = rule.order_qty(projected)
    if qty <= 0:
        return None
    if not pending:
        return NewSuggestion(qty=qty)
    current = pending[0]
    if math.isclose(current.qty, qty):
        return None
    return RevisedSuggestion(id=current.id, qty=qty)
