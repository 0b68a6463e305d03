"""Verdicts on the paper's claims: rules written down before they are applied, that can say yes,
no, or "not enough evidence", over per-seed numbers. numpy only.

With 3 to 5 seeds a bootstrap interval is about [min, max] and means little, so every rule
works on the t-based 95 % interval of a per-seed mean (or of paired per-seed differences), and
every interval is shown with its n. The rules:

- `transfer` (a claim that an auxiliary task helps): reproduces when the interval of the gain
  lies above 0 and its mean reaches a stated minimum effect; does not reproduce when the whole
  interval lies below that minimum (whatever effect there is, it is too small to count);
  otherwise inconclusive (run more seeds).
- `no_transfer` (the controls): an equivalence rule. It reproduces only when the interval of the
  gain lies below a stated margin — "the interval covers 0" is not evidence of no effect, and
  with 3 seeds it almost always holds. It does not reproduce when the interval lies above the
  margin (a real gain), and is inconclusive in between.
- `paired_above` (A beats B, seed by seed: both auxiliaries against one, RoPE against NoPE, the
  paper's ordering of the single auxiliaries, far length ratios against near ones) is `transfer`
  on the paired differences.
- `above` / `below` (a level: in-distribution accuracy stays high, accuracy past the auxiliary
  length stays low): reproduces when the whole interval lies on the claimed side of the
  threshold, does not when it lies wholly on the other side.
- `within` (two numbers are the same, up to a margin: transfer from B to A as large as from A
  to B): a two-sided equivalence rule on paired per-seed differences. Reproduces when the whole
  interval lies inside (-margin, +margin), does not when it lies wholly outside on one side.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# two-sided 95 % quantiles of Student's t by degrees of freedom (scipy is not a dependency)
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
         9: 2.262, 10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000}
REPRODUCES, FAILS, INCONCLUSIVE = "yes", "no", "inconclusive"
MIN_TRANSFER = 0.05  # a transfer gain counts from 5 points of accuracy past the main length


def t_quantile(df: int) -> float:
    """t_{0.975, df}; between tabulated values, the next smaller df's (wider, so conservative)."""
    if df >= 120:
        return 1.960
    return T_975[max(k for k in T_975 if k <= df)]


@dataclass(frozen=True)
class Interval:
    """A mean over seeds with its t-based 95 % interval; nan bounds when n < 2."""

    mean: float
    lo: float
    hi: float
    n: int

    def __str__(self) -> str:
        if self.n == 0:
            return "no data (n = 0)"
        if math.isnan(self.lo):
            return f"{self.mean:+.3f} (n = {self.n}: no interval)"
        return f"{self.mean:+.3f} [{self.lo:+.3f}, {self.hi:+.3f}] (n = {self.n})"


def t_interval(values: Sequence[float] | np.ndarray) -> Interval:
    """Mean and t-based 95 % interval of the non-nan values."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    n = len(v)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(v.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan, n)
    half = t_quantile(n - 1) * float(v.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


@dataclass(frozen=True)
class Verdict:
    outcome: str  # REPRODUCES | FAILS | INCONCLUSIVE
    measured: Interval
    rule: str


def transfer(gains: Sequence[float] | np.ndarray, min_effect: float) -> Verdict:
    """The claim that a gain is real: interval above 0 and mean >= min_effect."""
    iv = t_interval(gains)
    return _decide(iv, yes=iv.lo > 0 and iv.mean >= min_effect, no=iv.hi < min_effect,
                   rule=f"yes if the 95 % t-interval of the per-seed gain is above 0 and its "
                        f"mean is at least {min_effect:g}; no if the interval is below "
                        f"{min_effect:g}")


def no_transfer(gains: Sequence[float] | np.ndarray, margin: float) -> Verdict:
    """The claim that there is no gain (equivalence): interval below +margin."""
    return below(gains, margin, "per-seed gain")


def below(values: Sequence[float] | np.ndarray, threshold: float, what: str) -> Verdict:
    """The claim that a per-seed level is below `threshold`: its whole interval is."""
    iv = t_interval(values)
    return _decide(iv, yes=iv.hi < threshold, no=iv.lo > threshold,
                   rule=f"yes if the 95 % t-interval of the {what} lies below {threshold:g}; "
                        f"no if it lies above it")


def above(values: Sequence[float] | np.ndarray, threshold: float, what: str) -> Verdict:
    """The claim that a per-seed level is above `threshold`: its whole interval is."""
    iv = t_interval(values)
    return _decide(iv, yes=iv.lo > threshold, no=iv.hi < threshold,
                   rule=f"yes if the 95 % t-interval of the {what} lies above {threshold:g}; "
                        f"no if it lies below it")


def paired_differences(a: dict[int, float], b: dict[int, float]) -> list[float]:
    """a[seed] - b[seed] over the seeds both have, in seed order."""
    return [a[s] - b[s] for s in sorted(set(a) & set(b))]


def within(a: dict[int, float], b: dict[int, float], margin: float) -> Verdict:
    """A equals B up to `margin`, seed by seed: the interval of a[seed] - b[seed] over the seeds
    both have lies inside (-margin, +margin)."""
    iv = t_interval(paired_differences(a, b))
    return _decide(iv, yes=-margin < iv.lo and iv.hi < margin,
                   no=iv.lo > margin or iv.hi < -margin,
                   rule=f"yes if the 95 % t-interval of the per-seed difference lies inside "
                        f"(-{margin:g}, +{margin:g}); no if it lies wholly above +{margin:g} "
                        f"or below -{margin:g}")


def _decide(iv: Interval, yes: bool, no: bool, rule: str) -> Verdict:
    """Fewer than 2 seeds give no interval and so no verdict either way."""
    if iv.n < 2:
        return Verdict(INCONCLUSIVE, iv, rule)
    return Verdict(REPRODUCES if yes else FAILS if no else INCONCLUSIVE, iv, rule)


def paired_above(a: dict[int, float], b: dict[int, float], min_effect: float) -> Verdict:
    """A beats B seed by seed: `transfer` on the differences a[seed] - b[seed] over the seeds
    both have."""
    verdict = transfer(paired_differences(a, b), min_effect)
    return Verdict(verdict.outcome, verdict.measured,
                   verdict.rule.replace("per-seed gain", "per-seed difference"))
