"""The turnout intervals (``rollcall_client.intervals``), offline.

Pure post-processing of a release's public figures, so these run without a
server: the noise sampler against the discrete Laplace distribution the
server draws from (opendp's ``make_laplace`` on integers, ``P(k) ∝
exp(-|k|/b)``), and the intervals' coverage on counts noised here the same
way, tiny groups included. Every random draw has a fixed seed.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from rollcall_client.intervals import (
    DID_NOT_VOTE,
    NOT_REGISTERED,
    dlap_sum,
    dlap_variance,
    ratio_interval,
    seed_for,
    turnout_table,
)

METHODS = ["election_day", "early", "mail"]
CATEGORIES = [DID_NOT_VOTE, NOT_REGISTERED, *METHODS]


def dlap_pmf(j: np.ndarray, scale: float) -> np.ndarray:
    """``P(j) = (1 - q) / (1 + q) · q^|j|``, ``q = exp(-1/scale)``."""
    q = math.exp(-1.0 / scale)
    return (1 - q) / (1 + q) * q ** np.abs(j)


# -- the sampler -------------------------------------------------------------------


@pytest.mark.parametrize("scale", [0.5, 1.0, 4.0])
def test_one_draw_has_the_discrete_laplace_pmf(scale: float) -> None:
    n = 400_000
    x = dlap_sum(np.random.default_rng(1), 1, scale, (n,))
    assert np.array_equal(x, np.rint(x)), "discrete Laplace draws are integers"
    for j in range(-6, 7):
        p = dlap_pmf(np.array(j), scale)
        got = np.mean(x == j)
        se = math.sqrt(p * (1 - p) / n)
        assert abs(got - p) < 5 * se + 1e-6, f"P({j}) = {got:.5f}, want {p:.5f}"
    assert abs(x.mean()) < 5 * math.sqrt(dlap_variance(scale) / n)


@pytest.mark.parametrize(("k", "scale"), [(1, 2.0), (7, 3.0), (40, 0.7), (3, 250.0)])
def test_sum_variance_is_k_times_one_variance(k: int, scale: float) -> None:
    n = 200_000
    x = dlap_sum(np.random.default_rng(2), k, scale, (n,))
    want = k * dlap_variance(scale)
    # the sample variance of n draws has a relative SE of about sqrt(2/n) (more with heavy tails)
    assert x.var() == pytest.approx(want, rel=0.03)


def test_sum_has_the_distribution_of_k_separate_draws() -> None:
    """The exact sum (two negative binomials) against k draws added up."""
    rng = np.random.default_rng(3)
    k, scale, n = 5, 1.5, 200_000
    summed = dlap_sum(rng, k, scale, (n,))
    separate = sum(dlap_sum(rng, 1, scale, (n,)) for _ in range(k))
    for j in range(-8, 9):
        a, b = np.mean(summed == j), np.mean(separate == j)
        p = (a + b) / 2
        assert abs(a - b) < 5 * math.sqrt(2 * p * (1 - p) / n) + 1e-6, (j, a, b)


def test_variance_formula_is_the_pmf_s() -> None:
    j = np.arange(-20_000, 20_001)
    for scale in (0.3, 1.0, 10.0, 100.0):
        p = dlap_pmf(j, scale)
        assert p.sum() == pytest.approx(1.0, rel=1e-9)
        assert (p * j * j).sum() == pytest.approx(dlap_variance(scale), rel=1e-6)


def test_continuous_limit_at_huge_scales() -> None:
    scale = 5e6
    x = dlap_sum(np.random.default_rng(4), 3, scale, (100_000,))
    assert np.array_equal(x, np.rint(x))
    assert x.var() == pytest.approx(3 * dlap_variance(scale), rel=0.03)
    assert dlap_variance(scale) == pytest.approx(2 * scale * scale, rel=1e-6)


def test_zero_scale_and_bad_scales() -> None:
    rng = np.random.default_rng(5)
    assert not dlap_sum(rng, 4, 0.0, (10,)).any()
    assert not dlap_sum(rng, 0, 3.0, (10,)).any()
    for bad in (-1.0, math.inf, math.nan):
        with pytest.raises(ValueError):
            dlap_sum(rng, 1, bad, (10,))


# -- the interval --------------------------------------------------------------------


def test_positive_denominators_give_the_percentile_interval() -> None:
    rng = np.random.default_rng(6)
    draws, level = 1000, 0.9
    num = rng.integers(20, 60, size=(3, draws)).astype(float)
    den = num + rng.integers(1, 60, size=(3, draws))
    low, high = ratio_interval(num, den, level)
    tail = math.ceil((1 - level) / 2 * draws)
    x = np.sort(num / den, axis=1)
    np.testing.assert_array_equal(low, x[:, tail - 1])
    np.testing.assert_array_equal(high, x[:, draws - tail])


def test_no_ratio_fits() -> None:
    # every redrawn numerator above its denominator: no r in [0, 1] passes
    num = np.full((1, 200), 10.0)
    den = np.full((1, 200), 5.0)
    low, high = ratio_interval(num, den, 0.95)
    assert np.isnan(low[0]) and np.isnan(high[0])


def simulate(
    true: list[tuple[int, int]], scale: float, trials: int, seed: int
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """``trials`` noisy releases of each (registered, voted) group: the noisy
    cells (voted split over three methods), the true rates and the true
    shares of ``election_day``."""
    rng = np.random.default_rng(seed)
    rows, rates, shares = [], [], []
    for registered, voted in true:
        day = voted // 2
        early = (voted - day) // 2
        cells = np.array([registered - voted, 3, day, early, voted - day - early], float)
        noise = np.stack([dlap_sum(rng, 1, scale, (trials,)) for _ in CATEGORIES], axis=1)
        rows.append(cells + noise)
        rates += [voted / registered] * trials
        shares += [day / voted if voted else np.nan] * trials
    counts = pd.DataFrame(np.concatenate(rows).astype("int64"), columns=CATEGORIES)
    return counts, np.array(rates), np.array(shares)


#: (registered, voted): tiny groups (where noise can make `registered` ≤ 0)
#: to large ones, turnout from 0 to 100%.
GROUPS = [(1, 1), (1, 0), (2, 1), (3, 3), (5, 2), (10, 7), (30, 3), (80, 60), (400, 250),
          (5000, 3100)]


def covered(df: pd.DataFrame, truth: np.ndarray, col: str) -> np.ndarray:
    low, high = df[f"{col}_low"].to_numpy(), df[f"{col}_high"].to_numpy()
    return (low <= truth + 1e-12) & (truth - 1e-12 <= high)


@pytest.mark.parametrize("scale", [1.0, 4.0, 20.0])
def test_rate_interval_covers_the_true_rate(scale: float) -> None:
    trials = 600
    counts, rates, _ = simulate(GROUPS, scale, trials, seed=int(scale * 10))
    out = turnout_table(counts, scale, draws=1000, seed=11)
    hit = covered(out, rates, "rate")
    per_group = hit.reshape(len(GROUPS), trials).mean(axis=1)
    # per group, about 3.5 standard errors below 95% at 600 trials; all groups together
    assert per_group.min() >= 0.92, dict(zip(GROUPS, per_group.round(3), strict=True))
    assert hit.mean() >= 0.95, hit.mean()
    assert (out["rate_low"] <= out["rate"].fillna(out["rate_low"])).all()
    assert (out["rate"].fillna(out["rate_high"]) <= out["rate_high"]).all()


def test_share_interval_covers_the_true_share() -> None:
    scale, trials = 3.0, 500
    groups = [g for g in GROUPS if g[1] > 0]
    counts, _, shares = simulate(groups, scale, trials, seed=12)
    out = turnout_table(counts, scale, methods=True, draws=1000, seed=13)
    hit = covered(out, shares, "share_election_day")
    per_group = hit.reshape(len(groups), trials).mean(axis=1)
    assert per_group.min() >= 0.92, dict(zip(groups, per_group.round(3), strict=True))
    assert hit.mean() >= 0.95, hit.mean()


def test_coverage_check_catches_a_wrong_noise_scale() -> None:
    """The coverage test has teeth: intervals computed for a quarter of the
    real noise miss far more often than 5% of the time."""
    scale, trials = 8.0, 600
    counts, rates, _ = simulate([(30, 12), (80, 60), (200, 90)], scale, trials, seed=14)
    out = turnout_table(counts, scale / 4, draws=1000, seed=15)
    assert covered(out, rates, "rate").mean() < 0.8


def test_intervals_narrow_as_groups_grow() -> None:
    counts = pd.DataFrame(
        [[n // 2, 0, n // 4, n // 8, n // 2 - n // 4 - n // 8] for n in (40, 400, 4000, 40000)],
        columns=CATEGORIES,
    )
    out = turnout_table(counts, 2.0, draws=2000, seed=16)
    width = (out["rate_high"] - out["rate_low"]).to_numpy()
    assert (np.diff(width) < 0).all(), width
    # about 1/registered: ten times the voters, about a tenth of the width
    assert 0.05 < width[3] / width[2] < 0.2


# -- the table's arithmetic ------------------------------------------------------


def test_turnout_table_sums_and_rates() -> None:
    counts = pd.DataFrame(
        {DID_NOT_VOTE: [60, 0, -3], NOT_REGISTERED: [9, 4, 2], "election_day": [20, 1, 1],
         "early": [15, 0, 0], "mail": [5, -1, 0]},
        index=pd.Index(["A", "B", "C"], name="county"),
    )
    out = turnout_table(counts, 0.0, methods=True, draws=100)
    assert list(out.index) == ["A", "B", "C"]
    assert list(out["registered"]) == [100, 0, -2]   # not_registered left out
    assert list(out["voted"]) == [40, 0, 1]
    assert out.loc["A", "rate"] == 0.4
    # no noise: the interval is the point
    assert (out.loc["A", "rate_low"], out.loc["A", "rate_high"]) == (0.4, 0.4)
    assert (out.loc["A", "share_early_low"], out.loc["A", "share_early_high"]) == (0.375, 0.375)
    # registered ≤ 0: no rate, the interval is everything
    for g in ("B", "C"):
        assert math.isnan(out.loc[g, "rate"])
        assert (out.loc[g, "rate_low"], out.loc[g, "rate_high"]) == (0.0, 1.0)
    shares = out.loc["A", ["share_election_day", "share_early", "share_mail"]]
    assert shares.sum() == pytest.approx(1.0)
    assert list(out.columns) == [
        "registered", "voted", "rate", "rate_low", "rate_high",
        "share_election_day", "share_election_day_low", "share_election_day_high",
        "share_early", "share_early_low", "share_early_high",
        "share_mail", "share_mail_low", "share_mail_high",
    ]


def test_turnout_table_clamps_the_point_rate() -> None:
    counts = pd.DataFrame({DID_NOT_VOTE: [-5], NOT_REGISTERED: [0], "election_day": [12],
                           "early": [0], "mail": [0]})
    out = turnout_table(counts, 2.0, draws=500, seed=1)
    assert out["rate"].iloc[0] == 1.0  # 12 / 7, clamped
    assert out["rate_low"].iloc[0] <= 1.0 == out["rate_high"].iloc[0]


def test_column_order_does_not_matter_for_rates() -> None:
    counts, _, _ = simulate([(50, 20), (7, 3)], 2.0, 5, seed=2)
    a = turnout_table(counts, 2.0, draws=500, seed=3)
    b = turnout_table(counts[list(reversed(CATEGORIES))], 2.0, draws=500, seed=3)
    pd.testing.assert_frame_equal(a, b)


def test_same_seed_same_intervals() -> None:
    counts, _, _ = simulate([(50, 20)], 2.0, 3, seed=4)
    a = turnout_table(counts, 2.0, draws=500, seed=seed_for("r1"))
    b = turnout_table(counts, 2.0, draws=500, seed=seed_for("r1"))
    pd.testing.assert_frame_equal(a, b)
    assert seed_for("r1") == seed_for("r1") != seed_for("r2")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"level": 1.0}, "level"),
        ({"level": 0}, "level"),
        ({"draws": 50}, "draws"),
        ({"draws": 1000.0}, "draws"),
    ],
)
def test_turnout_table_refuses_bad_arguments(kwargs: dict, match: str) -> None:
    counts = pd.DataFrame([[1, 0, 1, 0, 0]], columns=CATEGORIES)
    with pytest.raises(ValueError, match=match):
        turnout_table(counts, 1.0, **kwargs)


def test_turnout_table_needs_the_two_non_ballot_columns() -> None:
    with pytest.raises(ValueError, match="not_registered"):
        turnout_table(pd.DataFrame({DID_NOT_VOTE: [1], "mail": [2]}), 1.0)
    with pytest.raises(ValueError, match="method"):
        turnout_table(pd.DataFrame({DID_NOT_VOTE: [1], NOT_REGISTERED: [2]}), 1.0)
    with pytest.raises(ValueError, match="noise scale"):
        turnout_table(pd.DataFrame([[1, 0, 1, 0, 0]], columns=CATEGORIES), -1.0)
