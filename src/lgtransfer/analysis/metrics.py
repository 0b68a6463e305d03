"""Summary metrics of accuracy-vs-length curves: plain numpy, no torch.

A curve is `{length: exact-match accuracy}` for one task of one run at one step. The paper argues
with three numbers derived from such curves: how far a task generalizes (max generalized
length), how closely the main task follows its auxiliary tasks between the two training lengths
(the generalization gap, docs/paper.md §6), and the mean accuracy over a range of lengths.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

GENERALIZED = 0.9  # max generalized length: accuracy at least this at every length up to it


def max_generalized_length(curve: dict[int, float], threshold: float = GENERALIZED) -> int:
    """Largest L such that accuracy >= threshold at every evaluated length up to L (0 if none)."""
    best = 0
    for n in sorted(curve):
        if curve[n] < threshold:
            break
        best = n
    return best


LEARNED = 0.95  # a task has learned its training range at this mean in-distribution accuracy


def generalization_gap(main: dict[int, float], aux: Sequence[dict[int, float]],
                       main_max: int, aux_max: int, learned: float = 0.0) -> float:
    """Mean |acc_aux - acc_main| over evaluated lengths strictly between the two training lengths.

    With several auxiliary tasks, acc_aux is their mean. Undefined (nan, never 0, which would
    mean perfect transfer) when no evaluated length lies in between or there is no aux curve,
    and, given `learned`, when the main task or the mean of the aux tasks averages less than
    that over its own training lengths: a model that learned neither task has both curves at 0
    past the main length, and a gap of 0 there would read as perfect transfer.
    """
    lo, hi = min(main_max, aux_max), max(main_max, aux_max)
    lengths = [n for n in main if lo < n < hi and all(n in a for a in aux)]
    if not lengths or not aux:
        return math.nan
    aux_mean = {n: float(np.mean([a[n] for a in aux])) for n in set.intersection(
        *(set(a) for a in aux))}
    if min(mean_accuracy(main, 0, main_max), mean_accuracy(aux_mean, 0, aux_max)) < learned:
        return math.nan
    return float(np.mean([abs(aux_mean[n] - main[n]) for n in lengths]))


def mean_accuracy(curve: dict[int, float], lo: int, hi: float = math.inf) -> float:
    """Mean accuracy over evaluated lengths in (lo, hi]; nan when there are none."""
    values = [a for n, a in curve.items() if lo < n <= hi]
    return float(np.mean(values)) if values else float("nan")
