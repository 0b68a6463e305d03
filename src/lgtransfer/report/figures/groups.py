"""Task groups (Figs 3, 4, 6, 7): the main task alone fails past its training length, and with
the auxiliary tasks it extrapolates further."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lgtransfer.report.figures.registry import (
    claims_table,
    experiment_figures,
    figure,
    seed_mean,
)
from lgtransfer.report.render import Section


@figure("3a", "3b", "3c", "4a", "4c", "6", "7", title="Task groups (Figs 3, 4, 6, 7)")
def groups(df: pd.DataFrame, seeds: pd.DataFrame, out: Path) -> Section:
    rows = []
    for exp in seeds.experiment.unique():
        alone, mgl_with, mgl_alone = (seed_mean(seeds, exp, c) for c in (
            "acc_past_main_main_only", "max_gen_length_with_aux", "max_gen_length_main_only"))
        n = int((seeds.experiment == exp).sum())
        ours = (f"alone {alone:.1%} past L_main; max gen. length {mgl_with:.1f} with aux vs "
                f"{mgl_alone:.1f} alone (mean of {n} seeds)")
        ok = None if np.isnan(alone) or np.isnan(mgl_with) else bool(
            alone <= 0.05 and mgl_with > mgl_alone)
        rows.append((exp, "alone fails past L_main; with aux it extrapolates further", ours, ok))
    return Section("", "", experiment_figures(df, out), [claims_table(rows)])
