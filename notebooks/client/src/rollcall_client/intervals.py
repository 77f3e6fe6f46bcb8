"""Intervals for ratios of noisy counts (turnout rates, method shares).

Post-processing of one release's public figures: nothing here touches data
or spends ε. The noise model is the server's: every cell of a release gets
independent discrete Laplace noise, ``P(k) ∝ exp(-|k| / b)``, with the
release's ``noise_scale`` ``b``.

A ratio ``A / B`` of sums of cells (``A`` a part of ``B``: voters among
registered, mail ballots among voters) gets its interval by **inverting a
test**, with the noise distribution simulated by Monte Carlo:

* For a candidate ratio ``r``, the statistic ``T(r) = A_obs - r·B_obs`` has
  true part ``A - r·B`` (zero exactly when ``r`` is the true ratio) plus the
  noise ``W(r) = N_A - r·N_B``, whose distribution is known.
* ``r`` is kept when ``T(r)`` lies inside the central ``level`` part of the
  distribution of ``W(r)``. The interval is the hull of the kept ``r`` in
  ``[0, 1]``. At the true ratio ``T`` *is* ``W``, so the true ratio is kept
  with probability at least ``level``, however small the counts are.
* The distribution of ``W(r)`` is simulated: ``N_A``, ``N_B`` are drawn
  ``draws`` times (cell by cell, or as the exact sums: a sum of ``k`` discrete
  Laplace variables is the difference of two negative binomials). Written with
  the redrawn counts ``a_s = A_obs - N_A^s`` and ``b_s = B_obs - N_B^s``, the
  test keeps ``r`` iff the share of draws with ``a_s ≥ r·b_s`` and the share
  with ``a_s ≤ r·b_s`` are both at least ``(1 - level) / 2``.

When every redrawn denominator ``b_s`` is positive this is exactly the plain
percentile interval of the recomputed ratios ``a_s / b_s`` ("redraw the noise
around the noisy counts, recompute the rate, take quantiles"), cut to
``[0, 1]``. When some are not (small groups, large noise) the percentile
interval has to drop or clip the meaningless ratios of those draws and has
no coverage guarantee left; the inversion keeps its guarantee, because draws
with ``b_s ≤ 0`` still count on the right side of the test. (In simulations,
``tests/test_intervals.py``, both cover about 95% or more in tiny groups; only
the inversion is sure to.)

The only approximation is the Monte Carlo: with ``draws = 4000`` the tail
shares are known to about ±0.25 percentage points, so the coverage is
``level`` ± about half a point. The discrete noise makes the test slightly
conservative (ties at ``r = a_s / b_s`` count on both sides).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd

__all__ = [
    "DID_NOT_VOTE",
    "NOT_REGISTERED",
    "dlap_sum",
    "dlap_variance",
    "ratio_interval",
    "seed_for",
    "turnout_table",
]

#: The two values of every ``vote_<id>`` dimension that are not a ballot.
DID_NOT_VOTE = "did_not_vote"
NOT_REGISTERED = "not_registered"

#: Above this noise scale the geometric distributions inside the discrete
#: Laplace are replaced by their continuous limit (exponentials, summed as
#: gammas): the difference is far below one voter in a million.
_CONTINUOUS_FROM = 1e6


def dlap_sum(rng: np.random.Generator, k: int, scale: float, size: tuple[int, ...]) -> np.ndarray:
    """Draws of the sum of ``k`` independent discrete Laplace(``scale``) variables.

    One discrete Laplace variable with ``P(j) ∝ q^|j|``, ``q = exp(-1/scale)``,
    is the difference of two independent geometric counts of failures with
    success probability ``1 - q``; a sum of ``k`` of those counts is negative
    binomial ``(k, 1 - q)``. So the sum is drawn exactly with two negative
    binomial draws, whatever ``k``. ``scale == 0`` gives zeros.
    """
    if k <= 0 or scale == 0:
        return np.zeros(size, dtype=np.float64)
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"noise scale must be a finite number ≥ 0, not {scale}")
    if scale >= _CONTINUOUS_FROM:
        diff = rng.gamma(k, scale, size) - rng.gamma(k, scale, size)
        return np.rint(diff)
    p = -math.expm1(-1.0 / scale)  # 1 - q, accurate for large scales
    a = rng.negative_binomial(k, p, size)
    b = rng.negative_binomial(k, p, size)
    return (a - b).astype(np.float64)


def dlap_variance(scale: float) -> float:
    """Variance of one discrete Laplace(``scale``) variable: ``2q / (1 - q)²``,
    ``q = exp(-1/scale)``."""
    if scale == 0:
        return 0.0
    q = math.exp(-1.0 / scale)
    return 2.0 * q / (-math.expm1(-1.0 / scale)) ** 2


def ratio_interval(num: np.ndarray, den: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The test-inversion interval in ``[0, 1]`` of a ratio, one per row.

    Args:
        num, den: ``(groups, draws)`` redrawn counts ``a_s = A_obs - N_A^s``
            and ``b_s = B_obs - N_B^s`` (see the module docstring).
        level: coverage, e.g. ``0.95``.

    Returns:
        ``(low, high)``, each of shape ``(groups,)``; ``nan`` in a row where no
        ratio in ``[0, 1]`` passes the test (the counts are inconsistent with
        any ratio at this level; the caller decides what to show).
    """
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    if num.shape != den.shape or num.ndim != 2:
        raise ValueError("num and den must be arrays of the same shape (groups, draws)")
    groups, draws = num.shape
    if groups == 0:
        return np.empty(0), np.empty(0)
    need = (1.0 - level) / 2.0 * draws  # a tail must hold at least this many draws

    pos = den > 0
    neg = den < 0
    zero = ~(pos | neg)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(zero, 0.0, num / np.where(zero, 1.0, den))
    # Only the side of 0 and 1 a ratio outside [0, 1] falls on matters for
    # candidates inside [0, 1]: clip, then give every row its own band
    # [10g - 1, 10g + 2] so that one flat sorted array answers per-row counts.
    offset = 10.0 * np.arange(groups, dtype=np.float64)[:, None]
    xo = np.clip(x, -1.0, 2.0) + offset

    def flat(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        values = np.sort(xo[mask])  # boolean indexing keeps row-major order
        n = mask.sum(axis=1)
        start = np.concatenate(([0], np.cumsum(n)[:-1]))
        return values, start[:, None], n[:, None]

    p_vals, p_start, p_n = flat(pos)
    n_vals, n_start, n_n = flat(neg)
    z_ge = (zero & (num >= 0)).sum(axis=1)[:, None]  # b_s = 0: a_s ≥ r·0 iff a_s ≥ 0
    z_le = (zero & (num <= 0)).sum(axis=1)[:, None]

    # Candidates: every breakpoint a_s / b_s inside [0, 1], and 0 and 1. The
    # tail counts are piecewise constant between breakpoints and at least as
    # large at a breakpoint as on either side of it, so the hull of the kept
    # candidates is the hull of every kept ratio.
    inside = ~zero & (x >= 0.0) & (x <= 1.0)
    cand = np.where(inside, np.clip(x, -1.0, 2.0), 0.0)
    cand = np.concatenate([cand, np.zeros((groups, 1)), np.ones((groups, 1))], axis=1)
    q = cand + offset

    def below(vals: np.ndarray, start: np.ndarray, side: str) -> np.ndarray:
        return np.searchsorted(vals, q, side=side) - start

    # a_s ≥ r·b_s: b_s > 0 and a_s/b_s ≥ r, or b_s < 0 and a_s/b_s ≤ r, or b_s = 0 and a_s ≥ 0
    ge = (p_n - below(p_vals, p_start, "left")) + below(n_vals, n_start, "right") + z_ge
    # a_s ≤ r·b_s: b_s > 0 and a_s/b_s ≤ r, or b_s < 0 and a_s/b_s ≥ r, or b_s = 0 and a_s ≤ 0
    le = below(p_vals, p_start, "right") + (n_n - below(n_vals, n_start, "left")) + z_le
    kept = (ge >= need) & (le >= need)
    low = np.where(kept, cand, np.inf).min(axis=1)
    high = np.where(kept, cand, -np.inf).max(axis=1)
    none = ~kept.any(axis=1)
    low[none] = np.nan
    high[none] = np.nan
    return low, high


def seed_for(release_id: object) -> int:
    """A seed derived from a release id: the same release always gets the same intervals."""
    digest = hashlib.sha256(str(release_id).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _finish(
    num: np.ndarray, den: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point ratio clamped to ``[0, 1]`` (``NaN`` when ``den ≤ 0``) and its
    interval: ``[0, 1]`` when ``den ≤ 0`` (no information), else the test's
    interval stretched to reach the point (a row no ratio passed gets the point)."""
    positive = den > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        point = np.where(positive, np.clip(num / np.where(positive, den, 1.0), 0.0, 1.0), np.nan)
    lo = np.where(positive, np.fmin(lo, point), 0.0)  # fmin/fmax: a NaN bound takes the point
    hi = np.where(positive, np.fmax(hi, point), 1.0)
    return point, lo, hi


def turnout_table(
    counts: pd.DataFrame,
    noise_scale: float,
    *,
    methods: bool = False,
    level: float = 0.95,
    draws: int = 4000,
    seed: int = 0,
) -> pd.DataFrame:
    """Turnout, rates and their intervals from the noisy cells of one release.

    Pure post-processing (no server, no ε): what :meth:`Client.turnout
    <rollcall_client.Client.turnout>` does after its one query.

    Args:
        counts: one row per group, one column per value of the election's
            dimension (``did_not_vote``, ``not_registered`` and every method
            category, in any order): the noisy counts of one release.
        noise_scale: the release's ``noise_scale``; every cell has independent
            discrete Laplace noise of that scale.
        methods: also the share of each method among voters.
        level, draws, seed: coverage, Monte Carlo draws per group, their seed.

    Returns:
        A frame with ``counts``'s index: ``registered`` (every cell but
        ``not_registered``), ``voted`` (every method cell), ``rate``,
        ``rate_low``, ``rate_high``, and with ``methods`` ``share_<m>``,
        ``share_<m>_low``, ``share_<m>_high`` per method ``m`` in column order.
        See the module docstring for the interval.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, not {level}")
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 100:
        raise ValueError(f"draws must be an integer ≥ 100, not {draws!r}")
    if not (math.isfinite(noise_scale) and noise_scale >= 0):
        raise ValueError(f"noise scale must be a finite number ≥ 0, not {noise_scale!r}")
    for need in (DID_NOT_VOTE, NOT_REGISTERED):
        if need not in counts.columns:
            raise ValueError(f"counts has no {need!r} column: {list(counts.columns)}")
    if counts.isna().any().any():
        raise ValueError("counts has missing cells")
    voted_cats = [c for c in counts.columns if c not in (DID_NOT_VOTE, NOT_REGISTERED)]
    if not voted_cats:
        raise ValueError("counts has no method column (nothing counts as a ballot)")
    did_not = counts[DID_NOT_VOTE].to_numpy(np.float64)
    by_method = counts[voted_cats].to_numpy(np.float64)  # (groups, methods)
    voted = by_method.sum(axis=1)
    registered = voted + did_not
    groups = len(counts)

    rng = np.random.default_rng(seed)
    rate_lo = np.empty(groups)
    rate_hi = np.empty(groups)
    share_lo = np.empty((groups, len(voted_cats)))
    share_hi = np.empty((groups, len(voted_cats)))
    chunk = max(1, 200_000 // draws)  # groups per step: bounded memory
    for start in range(0, groups, chunk):
        sl = slice(start, min(groups, start + chunk))
        n = sl.stop - sl.start
        # The redrawn counts: each cell's noise drawn again around its noisy count.
        d_s = did_not[sl, None] - dlap_sum(rng, 1, noise_scale, (n, draws))
        if methods:
            m_s = by_method[sl, :, None] - np.stack(
                [dlap_sum(rng, 1, noise_scale, (n, draws)) for _ in voted_cats], axis=1
            )
            v_s = m_s.sum(axis=1)
            for j in range(len(voted_cats)):
                share_lo[sl, j], share_hi[sl, j] = ratio_interval(m_s[:, j], v_s, level)
        else:
            # The sum of the method cells' noise, drawn exactly in one go.
            v_s = voted[sl, None] - dlap_sum(rng, len(voted_cats), noise_scale, (n, draws))
        rate_lo[sl], rate_hi[sl] = ratio_interval(v_s, v_s + d_s, level)

    out = pd.DataFrame(index=counts.index)
    out["registered"] = registered.astype("int64")
    out["voted"] = voted.astype("int64")
    out["rate"], out["rate_low"], out["rate_high"] = _finish(voted, registered, rate_lo, rate_hi)
    if methods:
        for j, m in enumerate(voted_cats):
            p, lo, hi = _finish(by_method[:, j], voted, share_lo[:, j], share_hi[:, j])
            out[f"share_{m}"], out[f"share_{m}_low"], out[f"share_{m}_high"] = p, lo, hi
    return out
