"""Verdicts on the paper's claims, by the registered test (results/cpu/registration.yaml): an
exact one-sided sign-flip test on per-seed differences, Holm within each family of claims, and
four states. numpy only.

A rule returns a `Verdict` holding the per-seed values, its two raw p-values (`p_yes`: the
claim's own direction; `p_no`: its opposite) and the outcome it would have alone in its family.
`settle` then adjusts the p-values of every verdict of a family together (Holm) and decides
again. The mean with its 95 % t-interval and n is printed as the effect size; it decides
nothing (gains are bounded, skewed and often exactly 0: no normality).

- `transfer` (an auxiliary task helps; A beats B seed by seed: `paired_above`): yes when the
  adjusted p of "mean > 0" is below alpha and the mean reaches the minimum effect; no when the
  adjusted p of "mean < minimum effect" is below alpha; else inconclusive.
- `no_transfer` (the controls), `within` (symmetry): equivalence. Yes when the adjusted p of
  "mean < margin" (and, for `within`, "mean > -margin") is below alpha; no when the opposite
  is; `uninformative (floor)` when the caller says both sides sit at the floor, where
  "nothing moves" says nothing about the claim.
- `above` / `below` (a level): the same test on value - threshold.
- `n/a` (`not_applicable`): the runs did not learn their own training range; `pending`: fewer
  than the registered seeds are in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from lgtransfer.analysis.signflip import holm, sign_flip_p

# two-sided 95 % quantiles of Student's t by degrees of freedom (scipy is not a dependency)
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
         9: 2.262, 10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000}
REPRODUCES, FAILS, INCONCLUSIVE = "yes", "no", "inconclusive"
NOT_APPLICABLE, FLOOR, PENDING = "n/a", "uninformative (floor)", "pending"
ALPHA = 0.05
MIN_TRANSFER = 0.05  # a transfer gain counts from 5 points of accuracy past the main length
FLOOR_LEVEL = 0.02  # both sides' mean accuracy past L_main below this: the floor
# the other numbers the registered rules name (registration-confirm.yaml must agree: confirm.py)
MIN_CORRELATION = 0.1  # the smallest effect on a correlation that counts
REACH = 0.75  # "about the auxiliary length": three quarters of the way from L_main to L_aux
EQUIVALENCE_MARGIN = 0.05  # "no transfer": the gain credibly below 5 points past L_main
TRACKING_COUNTED = 0.9  # App. B: a head point counts once the main task reaches this in_dist
TRACKING_MIN_POINTS = 4  # fewer counted points: no rho for that run


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
    outcome: str
    measured: Interval
    rule: str
    p_yes: float = math.nan  # raw one-sided p of the claim's direction
    p_no: float = math.nan  # raw one-sided p of its opposite
    p_adj: float = math.nan  # p_yes after Holm within the family (`settle`)
    p_no_adj: float = math.nan
    min_effect: float = 0.0  # the mean a "yes" must reach (transfer)
    family: str = ""
    note: str = ""  # why n/a, floor or pending

    def decided(self) -> Verdict:
        """The outcome from the adjusted p-values (the raw ones while unsettled)."""
        if self.outcome in (NOT_APPLICABLE, FLOOR, PENDING) or self.measured.n == 0:
            return self
        p_yes = self.p_yes if math.isnan(self.p_adj) else self.p_adj
        p_no = self.p_no if math.isnan(self.p_no_adj) else self.p_no_adj
        yes = p_yes < ALPHA and self.measured.mean >= self.min_effect
        outcome = REPRODUCES if yes else FAILS if p_no < ALPHA else INCONCLUSIVE
        return replace(self, outcome=outcome)


def _verdict(values: Sequence[float] | np.ndarray, p_yes: float, p_no: float, rule: str,
             min_effect: float = -math.inf) -> Verdict:
    return Verdict(INCONCLUSIVE, t_interval(values), rule, p_yes, p_no,
                   min_effect=min_effect).decided()


def transfer(gains: Sequence[float] | np.ndarray, min_effect: float) -> Verdict:
    """The claim that a gain is real: mean > 0 by the test, and mean >= min_effect."""
    return _verdict(gains, sign_flip_p(gains), sign_flip_p(gains, min_effect, greater=False),
                    f"yes if the exact sign-flip p (Holm) of mean gain > 0 is below {ALPHA} "
                    f"and the mean is at least {min_effect:g}; no if that of mean < "
                    f"{min_effect:g} is", min_effect)


def no_transfer(gains: Sequence[float] | np.ndarray, margin: float,
                floor: bool = False) -> Verdict:
    """The claim that there is no gain (equivalence): mean below +margin."""
    v = below(gains, margin, "per-seed gain")
    return floored(v) if floor else v


def below(values: Sequence[float] | np.ndarray, threshold: float, what: str) -> Verdict:
    """The claim that a per-seed level is below `threshold`."""
    return _verdict(values, sign_flip_p(values, threshold, greater=False),
                    sign_flip_p(values, threshold),
                    f"yes if the exact sign-flip p (Holm) of mean {what} < {threshold:g} is "
                    f"below {ALPHA}; no if that of > {threshold:g} is")


def above(values: Sequence[float] | np.ndarray, threshold: float, what: str) -> Verdict:
    """The claim that a per-seed level is above `threshold`."""
    return _verdict(values, sign_flip_p(values, threshold),
                    sign_flip_p(values, threshold, greater=False),
                    f"yes if the exact sign-flip p (Holm) of mean {what} > {threshold:g} is "
                    f"below {ALPHA}; no if that of < {threshold:g} is")


def paired_differences(a: dict[int, float], b: dict[int, float]) -> list[float]:
    """a[seed] - b[seed] over the seeds both have, in seed order."""
    return [a[s] - b[s] for s in sorted(set(a) & set(b))]


def paired_above(a: dict[int, float], b: dict[int, float], min_effect: float) -> Verdict:
    """A beats B seed by seed: `transfer` on a[seed] - b[seed] over the seeds both have."""
    v = transfer(paired_differences(a, b), min_effect)
    return replace(v, rule=v.rule.replace("mean gain", "mean difference"))


def within(a: dict[int, float], b: dict[int, float], margin: float,
           floor: bool = False) -> Verdict:
    """A equals B up to `margin`, seed by seed (two one-sided tests on a - b)."""
    d = paired_differences(a, b)
    p_yes = max(sign_flip_p(d, margin, greater=False), sign_flip_p(d, -margin))
    p_no = min(1.0, 2 * min(sign_flip_p(d, margin), sign_flip_p(d, -margin, greater=False)))
    v = _verdict(d, p_yes, p_no, f"yes if the exact sign-flip p (Holm) of the per-seed "
                 f"difference inside (-{margin:g}, +{margin:g}) is below {ALPHA} (two "
                 f"one-sided tests); no if it lies outside by the test")
    return floored(v) if floor else v


def floored(v: Verdict) -> Verdict:
    """Both sides at the floor: an equivalence that says nothing."""
    return replace(v, outcome=FLOOR, note=f"both sides' mean accuracy past L_main below "
                   f"{FLOOR_LEVEL}")


def contrast_at_floor(v: Verdict, levels: dict[str, float], why: str) -> Verdict:
    """A contrast whose sides both sit at the floor (`levels`: side -> mean accuracy past
    L_main) compares 0 with 0: `uninformative (floor)`, not `no`. Pending and n/a stand."""
    if v.outcome in (PENDING, NOT_APPLICABLE) or not all(x < FLOOR_LEVEL for x in
                                                           levels.values()):
        return v
    at = " and ".join(f"{x:.3f} ({side})" for side, x in levels.items())
    return replace(v, outcome=FLOOR, note=f"the main task's accuracy past L_main with aux is "
                   f"{at}, below {FLOOR_LEVEL}: {why}")


def not_applicable(v: Verdict, why: str) -> Verdict:
    return replace(v, outcome=NOT_APPLICABLE, note=why)


def pending(v: Verdict, have: int, registered: int) -> Verdict:
    return replace(v, outcome=PENDING, note=f"{have} of {registered} registered seeds in")


def settle(verdicts: list[Verdict], sizes: dict[str, int] | None = None) -> list[Verdict]:
    """Holm within each family, then each verdict decided again. n/a and floor verdicts make no
    claim of the family; a pending one with some seeds in counts with p = 1 (not tested yet: the
    others are corrected as if it will be). A claim with no run in yet has no row and does not
    count, so an early verdict's m can still grow as rows appear; unless `sizes` registers the
    family's number of claims: then every registered claim without a test here (no data yet,
    n/a, floor) counts with p = 1, and m is fixed from the first verdict on."""
    out, sizes = list(verdicts), sizes or {}
    for family in dict.fromkeys(v.family for v in verdicts):
        if family in sizes:  # registered: m fixed, the same rule as settle_fixed's
            members = [i for i, v in enumerate(verdicts) if v.family == family]
            fixed = settle_fixed([verdicts[i] for i in members]
                                 + [None] * max(0, sizes[family] - len(members)))
            for i, v in zip(members, fixed, strict=False):
                out[i] = v
            continue
        idx = [i for i, v in enumerate(verdicts) if v.family == family
               and v.outcome not in (NOT_APPLICABLE, FLOOR) and v.measured.n > 0]
        pending_ = [verdicts[i].outcome == PENDING for i in idx]
        adj_yes = holm([1.0 if w else verdicts[i].p_yes for i, w in zip(idx, pending_,
                                                                        strict=True)])
        adj_no = holm([1.0 if w else verdicts[i].p_no for i, w in zip(idx, pending_,
                                                                      strict=True)])
        for i, w, py, pn in zip(idx, pending_, adj_yes, adj_no, strict=True):
            if not w:
                out[i] = replace(verdicts[i], p_adj=py, p_no_adj=pn).decided()
    return out


def untested(v: Verdict | None) -> bool:
    """A claim with no test result to correct: missing, n/a, floor, pending or without data."""
    return (v is None or v.outcome in (NOT_APPLICABLE, FLOOR, PENDING) or v.measured.n == 0
            or math.isnan(v.p_yes))


def settle_fixed(family: Sequence[Verdict | None]) -> list[Verdict | None]:
    """Holm over a family whose claims a registration lists (registration-confirm.yaml): m is
    the length of the list, fixed before the runs. A claim without a test result (None: no
    result yet; n/a, floor, pending) keeps its place and counts with p = 1 and its own outcome;
    the others are adjusted at that m and decided again. Unlike `settle`, no claim ever leaves
    the family, so no verdict can move because another turned out n/a."""
    gaps = [untested(v) for v in family]
    p_yes = [1.0 if g else v.p_yes for v, g in zip(family, gaps, strict=True)]
    p_no = [1.0 if g or math.isnan(v.p_no) else v.p_no for v, g in zip(family, gaps, strict=True)]
    adj_yes, adj_no = holm(p_yes), holm(p_no)
    return [v if g else replace(v, p_adj=py, p_no_adj=pn).decided()
            for v, g, py, pn in zip(family, gaps, adj_yes, adj_no, strict=True)]
