"""Statistics in numpy alone (scipy is not a dependency): rank and linear correlation, and
percentile-bootstrap 95 % intervals, shared by the results tables and the head analysis.

Correlations come with percentile-bootstrap 95 % intervals: pairs (x_i, y_i) are resampled with
replacement and the statistic recomputed; resamples where it is undefined (a constant sample)
are dropped. With the few points these analyses have (10 checkpoints, 3-5 seeds) the intervals
are wide, and they should be: that is the honest statement of what 10 points can show.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

Stat = Callable[[np.ndarray, np.ndarray], float]
# Fewer points than this give no interval: with 4 points a resample has only 256 possible
# values, many of them degenerate, and a percentile interval of those means little.
MIN_BOOTSTRAP = 5


def rankdata(x: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ranks from 1, ties given the average of the ranks they span (scipy's 'average')."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]


def pearson(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Pearson correlation; nan when there are fewer than 2 points or either side is constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2:
        return math.nan
    dx, dy = x - x.mean(), y - y.mean()
    denom = math.sqrt(float((dx * dx).sum() * (dy * dy).sum()))
    # a relative threshold: a "constant" series with rounding noise must not give +-1
    scale = max(float(np.abs(x).max()), 1e-300) * max(float(np.abs(y).max()), 1e-300) * len(x)
    if denom <= 1e-12 * scale:
        return math.nan
    return float(np.clip((dx * dy).sum() / denom, -1.0, 1.0))


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman rank correlation: Pearson on average-tie ranks."""
    return pearson(rankdata(x), rankdata(y))


def bootstrap_ci(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, stat: Stat,
                 n_boot: int = 2000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of `stat(x, y)` over paired resamples (nan, nan if undefined)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < MIN_BOOTSTRAP:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), (n_boot, len(x)))
    values = np.array([stat(x[i], y[i]) for i in idx])
    values = values[np.isfinite(values)]
    if len(values) < n_boot // 2:  # mostly undefined: no interval worth the name
        return math.nan, math.nan
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def correlations(x: Sequence[float], y: Sequence[float], n_boot: int = 2000,
                 seed: int = 0) -> dict:
    """Spearman and Pearson of x against y with bootstrap intervals, as JSON-ready numbers
    (None where undefined: fewer than 3 points, where any correlation is +-1, or a constant).
    Pairs with a nan (an undefined generalization gap) are left out, and `n` counts the rest."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(xs) & np.isfinite(ys)
    x, y = xs[keep], ys[keep]
    out: dict = {"n": len(x), "dropped": int((~keep).sum())}
    for name, stat in (("spearman", spearman), ("pearson", pearson)):
        value = stat(np.asarray(x), np.asarray(y)) if len(x) >= 3 else math.nan
        lo, hi = bootstrap_ci(x, y, stat, n_boot, seed)
        out[name] = {"value": json_number(value), "ci": [json_number(lo), json_number(hi)]}
    return out


def mean_ci(values: Sequence[float] | np.ndarray, n_boot: int = 2000, seed: int = 0,
            level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of a mean (nan, nan for fewer than 2 values)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (n_boot, len(values)))].mean(axis=1)
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(lo), float(hi)


def top_k(values: np.ndarray, k: int) -> set[int]:
    """Flat indices of the k largest entries (ties broken by the lower index)."""
    flat = np.asarray(values, dtype=float).ravel()
    return {int(i) for i in np.argsort(-flat, kind="stable")[:k]}


def jaccard(a: set, b: set) -> float:
    """|a & b| / |a | b|; 1 for two empty sets."""
    return len(a & b) / len(a | b) if a | b else 1.0


def json_number(v: float) -> float | None:
    """A float for JSON: None where undefined."""
    return None if v is None or not math.isfinite(v) else round(float(v), 6)
