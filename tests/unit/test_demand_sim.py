"""Simulated demand: draws match the known truth, seeds reproduce, time spans add up to days."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from simulators.demand import (
    DAY_S,
    RETAIL_WEEK,
    DemandProfile,
    DemandProfileError,
    DemandStream,
    Promotion,
    daily_demand,
    demand_matrix,
    expected,
    expected_series,
    sku_mix,
    units_between,
)

REGULAR = DemandProfile(
    sku="R",
    kind="regular",
    base_per_day=20.0,
    weekly=RETAIL_WEEK,
    season_amplitude=0.3,
    season_peak_day=180,
    trend_per_year=0.2,
    promotions=(Promotion(start_day=100, length_days=7, lift=2.0),),
    dispersion=10.0,
)
SLOW = DemandProfile(
    sku="S", kind="intermittent", base_per_day=0.5, demand_probability=0.1, dispersion=1.5
)


def test_expected_is_the_documented_formula() -> None:
    day = 103  # inside the promotion
    week = RETAIL_WEEK[day % 7]
    season = 1 + 0.3 * math.cos(2 * math.pi * (day - 180) / 365.25)
    trend = 1 + 0.2 * day / 365.25
    assert expected(REGULAR, day) == pytest.approx(20.0 * week * season * trend * 2.0)
    after = 107  # the promotion ran on days 100..106
    season_after = 1 + 0.3 * math.cos(2 * math.pi * (after - 180) / 365.25)
    assert expected(REGULAR, after) == pytest.approx(
        20.0 * RETAIL_WEEK[after % 7] * season_after * (1 + 0.2 * after / 365.25)
    )
    assert expected_series(REGULAR, 10, start_day=100)[3] == expected(REGULAR, 103)
    assert expected(SLOW, 5) == pytest.approx(0.5)


def test_trend_never_drives_expected_demand_negative() -> None:
    falling = DemandProfile(sku="F", kind="regular", base_per_day=5.0, trend_per_year=-2.0)
    assert expected(falling, 365) == 0.0
    assert expected(falling, 90) == pytest.approx(5.0 * (1 - 2.0 * 90 / 365.25))


@pytest.mark.parametrize("profile", [REGULAR, SLOW], ids=["negative-binomial", "intermittent"])
def test_generated_means_match_expected(profile: DemandProfile) -> None:
    # 4,000 independent replicas of days 0..13: each day's sample mean within 5 standard errors
    # of the truth, the standard error taken from the profile's own variance.
    rng = np.random.default_rng(1)
    reps = 4000
    draws = np.stack([daily_demand(profile, 14, rng) for _ in range(reps)])
    truth = expected_series(profile, 14)
    p = profile.demand_probability
    m = truth / p
    k = profile.dispersion or math.inf
    size_var = m + m**2 / k
    var = p * (size_var + m**2) - truth**2  # law of total variance over occurrence
    se = np.sqrt(var / reps)
    assert np.all(np.abs(draws.mean(axis=0) - truth) < 5 * se)
    assert np.all(draws >= 0)


def test_poisson_variance_equals_mean() -> None:
    profile = DemandProfile(sku="P", kind="regular", base_per_day=12.0)
    series = daily_demand(profile, 20_000, np.random.default_rng(3))
    assert series.mean() == pytest.approx(12.0, rel=0.02)
    assert series.var() == pytest.approx(12.0, rel=0.05)


def test_intermittent_share_of_zero_days() -> None:
    series = daily_demand(SLOW, 20_000, np.random.default_rng(4))
    # Zero days: no occurrence (0.9) plus occurrences that drew 0 from NB(m=5, k=1.5).
    m, k = 5.0, 1.5
    nb_zero = (k / (k + m)) ** k
    assert (series == 0).mean() == pytest.approx(0.9 + 0.1 * nb_zero, abs=0.01)


def test_same_seed_same_series_and_different_seed_differs() -> None:
    a = daily_demand(REGULAR, 365, np.random.default_rng(7))
    b = daily_demand(REGULAR, 365, np.random.default_rng(7))
    c = daily_demand(REGULAR, 365, np.random.default_rng(8))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    mix_a = sku_mix(50, np.random.default_rng(9))
    mix_b = sku_mix(50, np.random.default_rng(9))
    assert mix_a == mix_b
    assert np.array_equal(
        demand_matrix(mix_a, 60, np.random.default_rng(10)),
        demand_matrix(mix_b, 60, np.random.default_rng(10)),
    )


def test_demand_matrix_means_match_truth() -> None:
    profiles = [REGULAR, SLOW] * 2000
    draws = demand_matrix(profiles, 30, np.random.default_rng(11))
    assert draws.shape == (4000, 30)
    assert draws[0::2].mean() == pytest.approx(expected_series(REGULAR, 30).mean(), rel=0.02)
    assert draws[1::2].mean() == pytest.approx(0.5, rel=0.08)


def test_sku_mix_has_every_kind_in_proportion() -> None:
    profiles = sku_mix(2000, np.random.default_rng(12))
    kinds = [p.kind for p in profiles]
    assert kinds.count("regular") / 2000 == pytest.approx(0.5, abs=0.05)
    assert kinds.count("seasonal") / 2000 == pytest.approx(0.2, abs=0.04)
    assert kinds.count("intermittent") / 2000 == pytest.approx(0.3, abs=0.04)
    slow = [p for p in profiles if p.kind == "intermittent"]
    assert max(p.demand_probability for p in slow) <= 0.5
    seasonal = [p for p in profiles if p.kind == "seasonal"]
    assert min(p.season_amplitude for p in seasonal) >= 0.3
    assert len({p.sku for p in profiles}) == 2000
    for p in profiles:
        for promo in p.promotions:
            assert 0 <= promo.start_day < 730


def test_stream_spans_add_up_to_the_day_and_reproduce() -> None:
    stream = DemandStream(REGULAR, seed=5)
    totals = [stream.day_total(d) for d in range(10)]
    # Any slicing of time adds up to the same days: 10 days cut at 500 random instants.
    cuts = np.sort(np.random.default_rng(0).uniform(0.0, 10 * DAY_S, size=500))
    edges = np.concatenate([[0.0], cuts, [10 * DAY_S]])
    sliced = sum(stream.units_between(a, b) for a, b in itertools.pairwise(edges))
    assert sliced == sum(totals)
    assert units_between(REGULAR, 0.0, 10 * DAY_S, seed=5) == sum(totals)
    assert DemandStream(REGULAR, seed=5).day_total(3) == totals[3]
    # Picks happen in opening hours only.
    times = stream.pick_times(2 * DAY_S, 3 * DAY_S)
    hours = (times - 2 * DAY_S) / 3600.0
    assert times.size == totals[2]
    assert np.all((hours >= 8.0) & (hours < 20.0))
    assert np.all(np.diff(times) >= 0)


def test_stream_boundaries() -> None:
    stream = DemandStream(REGULAR, seed=6)
    assert stream.units_between(5.0, 5.0) == 0
    assert stream.units_between(10.0, 5.0) == 0
    assert stream.units_between(-3 * DAY_S, 0.0) == 0
    # Before opening and after closing nothing is picked.
    assert stream.units_between(0.0, 8 * 3600.0) == 0
    assert stream.units_between(20 * 3600.0, DAY_S) == 0


def test_stream_means_match_expected() -> None:
    stream = DemandStream(REGULAR, seed=13)
    totals = np.array([stream.day_total(d) for d in range(700)])
    truth = expected_series(REGULAR, 700)
    assert totals.mean() == pytest.approx(truth.mean(), rel=0.03)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_per_day": -1.0},
        {"weekly": (1.0,) * 6},
        {"season_amplitude": 1.5},
        {"demand_probability": 0.0},
        {"dispersion": 0.0},
        {"start_weekday": 7},
    ],
)
def test_profile_rejects_out_of_domain_parameters(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = {"sku": "X", "kind": "regular", "base_per_day": 1.0}
    with pytest.raises(DemandProfileError):
        DemandProfile(**{**base, **kwargs})  # type: ignore[arg-type]


def test_promotion_and_stream_reject_bad_parameters() -> None:
    with pytest.raises(DemandProfileError):
        Promotion(start_day=0, length_days=0, lift=2.0)
    with pytest.raises(DemandProfileError):
        DemandStream(REGULAR, seed=1, open_hour=20.0, close_hour=8.0)
    with pytest.raises(DemandProfileError):
        daily_demand(REGULAR, -1, np.random.default_rng(0))
