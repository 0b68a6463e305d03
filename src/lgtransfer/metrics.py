"""Summary metrics of accuracy-vs-length curves: plain numpy, no torch.

A curve is `{length: exact-match accuracy}` for one task of one run at one step. The paper argues
with three numbers derived from such curves: how far a task generalizes (max generalized
length), how closely the main task follows its auxiliary tasks between the two training lengths
(the generalization gap, PAPER.md §6), and the mean accuracy over a range of lengths.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def max_generalized_length(curve: dict[int, float], threshold: float = 0.9) -> int:
    """Largest L such that accuracy >= threshold at every evaluated length up to L (0 if none)."""
    best = 0
    for n in sorted(curve):
        if curve[n] < threshold:
            break
        best = n
    return best


def generalization_gap(main: dict[int, float], aux: Sequence[dict[int, float]],
                       main_max: int, aux_max: int) -> float:
    """Mean |acc_aux - acc_main| over evaluated lengths strictly between the two training lengths.

    With several auxiliary tasks, acc_aux is their mean. Undefined (nan, never 0, which would
    mean perfect transfer) when no evaluated length lies in between or there is no aux curve.
    """
    lo, hi = min(main_max, aux_max), max(main_max, aux_max)
    lengths = [n for n in main if lo < n < hi and all(n in a for a in aux)]
    if not lengths or not aux:
        return math.nan
    diffs = [abs(float(np.mean([a[n] for a in aux])) - main[n]) for n in lengths]
    return float(np.mean(diffs))


def mean_accuracy(curve: dict[int, float], lo: int, hi: float = math.inf) -> float:
    """Mean accuracy over evaluated lengths in (lo, hi]; nan when there are none."""
    values = [a for n, a in curve.items() if lo < n <= hi]
    return float(np.mean(values)) if values else float("nan")
