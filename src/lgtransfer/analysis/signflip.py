"""The registered test (results/cpu/registration.yaml): an exact sign-flip permutation test on
per-seed paired differences, Holm-Bonferroni within a family, and the power calculation that
chose the number of seeds. numpy only.

Why this test: per-seed gains are bounded, skewed and often exactly 0, with 3 to 15 seeds; a
t-interval assumes normality they do not have. Under the null hypothesis that the difference is
symmetric about 0 (with aux and alone are exchangeable within a seed), every one of the 2^n
sign patterns of the n differences is equally likely, so the share of patterns whose mean is at
least the observed one is an exact p-value, whatever the distribution. Its smallest value is
2^-n (one pattern, when every difference is positive), so with m claims in a family Holm can
only pass when 2^-n <= alpha / m: n >= 8 for seven claims at alpha 0.05.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np

MAX_EXACT = 20  # 2^20 patterns; more seeds than that would need a Monte Carlo test


def sign_flip_p(diffs: Sequence[float] | np.ndarray, shift: float = 0.0,
                greater: bool = True) -> float:
    """One-sided exact p of H1: mean(diffs) > shift (greater) or < shift (not greater).

    The test runs on d - shift: the share of the 2^n sign patterns of |d - shift| whose sum is
    at least (greater) or at most the observed sum. nan values are dropped; nan without data.
    """
    d = np.asarray(diffs, dtype=float)
    d = d[~np.isnan(d)] - shift
    if not greater:
        d = -d
    n = len(d)
    if n == 0:
        return math.nan
    if n > MAX_EXACT:
        raise ValueError(f"{n} differences: the exact test enumerates at most 2^{MAX_EXACT}")
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    sums = signs @ np.abs(d)
    return float(np.mean(sums >= d.sum() - 1e-12))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order; nan stays nan and does not count)."""
    p = np.asarray(pvalues, dtype=float)
    present = np.flatnonzero(~np.isnan(p))
    m = len(present)
    adjusted = np.full(len(p), math.nan)
    running = 0.0
    for rank, i in enumerate(present[np.argsort(p[present], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def power(diffs: Sequence[float] | np.ndarray, n: int, alpha: float, m: int,
          model: str = "normal", draws: int = 2000, seed: int = 0) -> dict[str, float]:
    """Chance that n seeds drawn like `diffs` pass the one-sided test at alpha / m (Holm's
    first, strictest step) and at alpha (its last). `model`: `normal` draws from a normal with
    the measured mean and standard deviation, clipped to [-1, 1] (accuracy differences);
    `resample` draws the measured values with replacement (optimistic with few seeds: it
    never draws a value worse than the worst one seen)."""
    d = np.asarray(diffs, dtype=float)
    d = d[~np.isnan(d)]
    rng = np.random.default_rng(seed)
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    if model == "resample":
        samples = rng.choice(d, (draws, n), replace=True)
    else:
        sd = float(d.std(ddof=1)) if len(d) > 1 else 0.0
        samples = np.clip(rng.normal(d.mean(), sd, (draws, n)), -1, 1)
    sums = np.abs(samples) @ signs.T  # (draws, 2^n)
    p = np.mean(sums >= samples.sum(axis=1, keepdims=True) - 1e-12, axis=1)
    return {"strictest": float(np.mean(p <= alpha / m)), "loosest": float(np.mean(p <= alpha))}


def permutation_p(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray,
                  statistic: Callable[[np.ndarray, np.ndarray], float], greater: bool = True,
                  draws: int = 10_000, seed: int = 0,
                  strata: Sequence[object] | None = None) -> float:
    """One-sided permutation p of statistic(x, y) (a correlation): the share of orderings of y
    whose statistic is at least (greater) or at most the observed one. Exact over all
    orderings up to 8 pairs; else `draws` random orderings, counting the observed one. With
    `strata` (a label per pair), y is shuffled only among pairs of the same label, so that
    differences between the strata cannot make the statistic."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    observed = statistic(x, y)
    if len(x) <= 8 and strata is None:
        orders = itertools.permutations(range(len(y)))
        stats = np.array([statistic(x, y[list(order)]) for order in orders])
        hits = (stats >= observed - 1e-12) if greater else (stats <= observed + 1e-12)
        return float(np.mean(hits))
    labels = np.zeros(len(y)) if strata is None else np.asarray(strata)
    groups = [np.flatnonzero(labels == label) for label in np.unique(labels)]
    rng = np.random.default_rng(seed)

    def shuffled() -> np.ndarray:
        out = y.copy()
        for idx in groups:
            out[idx] = y[rng.permutation(idx)]
        return out

    stats = np.array([statistic(x, shuffled()) for _ in range(draws)])
    hits = (stats >= observed - 1e-12) if greater else (stats <= observed + 1e-12)
    return float((hits.sum() + 1) / (draws + 1))
