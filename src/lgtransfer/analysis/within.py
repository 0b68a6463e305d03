"""The across-run claim held within experiments (issue 33): does a run whose tasks share more
heads transfer more than the other runs of its own experiment? Runs of different experiments
differ in their tasks as well as in their transfer, so a pooled correlation over every run can
come from the experiments alone. The primary test shuffles the gains only among the runs of one
experiment (`signflip.permutation_p` with strata), over the experiments whose gain varies (an
experiment whose runs all have one gain, often exactly 0, cannot say anything within itself).
Its statistic, and the effect the claim's minimum applies to, is the mean of each such
experiment's own Spearman rho weighted by its runs (`within_rho`): a rho over the union of the
experiments would still carry their differences in its size. The pooled rho over every run is
printed beside it as secondary.

How small can its p be? Shuffling within experiments reaches at most the distinct orderings of
each experiment's gains (n! / the tied groups' factorials), multiplied over experiments; the
Monte Carlo test reports at least 1 / (draws + 1). `smallest_p` says, for a design, what that
floor is, and `design_check` whether the design can pass at alpha / m before any run.
numpy only.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lgtransfer.analysis.signflip import permutation_p
from lgtransfer.analysis.stats import spearman


def orderings(gains: Sequence[float]) -> int:
    """Distinct orderings of one experiment's gains: n! over the factorial of each tie."""
    ties = Counter(round(float(g), 12) for g in gains)
    out = math.factorial(len(gains))
    for count in ties.values():
        out //= math.factorial(count)
    return out


def smallest_p(experiments: Sequence[Sequence[float]], draws: int) -> float:
    """The smallest p the within-experiment test can give on these experiments' gains (only
    the orderings of the gains limit it, and the draws: 1 / (draws + 1))."""
    total = math.prod(orderings(g) for g in experiments) if experiments else 1
    return max(1.0 / total, 1.0 / (draws + 1))


def design_check(runs_per_experiment: Sequence[int], tied: Sequence[int], alpha: float,
                 m: int, draws: int, min_experiments: int) -> str:
    """Before the runs: whether a design can pass (empty string) or why not. Each experiment
    has its number of runs and how many of them are expected at one tied gain (exactly 0);
    an experiment whose runs would all tie does not count."""
    gains = [[0.0] * t + [float(i + 1) for i in range(n - t)]
             for n, t in zip(runs_per_experiment, tied, strict=True) if n - t >= 1 and n >= 2]
    if len(gains) < min_experiments:
        return (f"{len(gains)} experiments whose gain can vary; the registration needs at least "
                f"{min_experiments}")
    floor = smallest_p(gains, draws)
    if floor > alpha / m:
        return f"the smallest attainable p is {floor:.3g}, above alpha / m = {alpha / m:.3g}"
    return ""


@dataclass(frozen=True)
class WithinResult:
    rho: float  # within_rho over the experiments whose gain varies, in the claim's direction
    p: float  # one-sided, gains shuffled within experiments
    p_opposite: float
    runs: int
    experiments: list[str]  # those whose gain varies (used)
    floor: float  # the smallest p this design could give
    pooled_rho: float  # over every run, as before (secondary)
    pooled_runs: int
    x: np.ndarray  # the runs used: the metric, in the claim's direction, and the gain
    y: np.ndarray
    strata: np.ndarray  # and each one's experiment


def within_experiments(x: np.ndarray, gains: np.ndarray, experiments: Sequence[str],
                       positive: bool, draws: int, seed: int = 0) -> WithinResult:
    """The primary test on the runs with both values: `x` a head metric per run, `gains` its
    transfer gain, `positive` whether the claim is rho > 0 (else rho < 0, tested as -x)."""
    x, gains = np.asarray(x, dtype=float), np.asarray(gains, dtype=float)
    exps = np.asarray(experiments, dtype=object)
    keep = ~(np.isnan(x) | np.isnan(gains))
    x, gains, exps = x[keep], gains[keep], exps[keep]
    pooled = spearman(x, gains) if len(x) >= 3 else math.nan
    varies = [e for e in sorted(set(exps)) if np.ptp(gains[exps == e]) > 0]
    use = np.isin(exps, varies)
    xs, ys, strata = (1 if positive else -1) * x[use], gains[use], exps[use]
    if use.sum() < 3:
        return WithinResult(math.nan, math.nan, math.nan, int(use.sum()), varies, 1.0, pooled,
                            len(x), xs, ys, strata)
    def statistic(a: np.ndarray, b: np.ndarray) -> float:
        return within_rho(a, b, strata)

    if math.isnan(statistic(xs, ys)):  # the metric constant within every such experiment
        return WithinResult(math.nan, math.nan, math.nan, int(use.sum()), varies, 1.0, pooled,
                            len(x), xs, ys, strata)
    p = permutation_p(xs, ys, statistic, draws=draws, seed=seed, strata=strata)
    p_opp = permutation_p(xs, ys, statistic, greater=False, draws=draws, seed=seed,
                          strata=strata)
    floor = smallest_p([ys[strata == e] for e in varies], draws)
    return WithinResult(statistic(xs, ys), p, p_opp, int(use.sum()), varies, floor, pooled,
                        len(x), xs, ys, strata)


def within_rho(x: np.ndarray, y: np.ndarray, strata: np.ndarray) -> float:
    """The mean of each stratum's Spearman rho of x and y, weighted by its pairs (a stratum
    where either side is constant has no rho and is left out; nan when none has one)."""
    rhos, weights = [], []
    for label in dict.fromkeys(strata.tolist()):
        idx = strata == label
        if idx.sum() >= 2 and np.ptp(x[idx]) > 0 and np.ptp(y[idx]) > 0:
            rhos.append(spearman(x[idx], y[idx]))
            weights.append(int(idx.sum()))
    return float(np.average(rhos, weights=weights)) if rhos else math.nan
