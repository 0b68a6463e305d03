"""Controls (Fig 8): unrelated auxiliary tasks give no transfer."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lgtransfer.report.figures.registry import (
    claims_table,
    experiment_figures,
    figure,
    per_seed_values,
)
from lgtransfer.report.render import Section
from lgtransfer.verdicts import no_transfer


@figure("8", title="Controls (Fig 8)")
def controls(df: pd.DataFrame, seeds: pd.DataFrame, out: Path) -> Section:
    rows = []
    for exp in seeds.experiment.unique():
        gains = list(per_seed_values(seeds, exp, "acc_past_main_gain").values())
        rows.append((exp, "no transfer from an unrelated auxiliary task",
                     "gain in acc. past L_main", no_transfer(gains, MARGIN)))
    return Section("", TEXT, experiment_figures(df, out), [claims_table(rows)])


MARGIN = 0.05  # "no transfer": the gain is credibly below 5 points of accuracy past L_main
TEXT = ("Gain = with-aux minus alone, per seed, in main-task accuracy on (L_main, L_aux]. No "
        "transfer is an equivalence claim: an interval that merely covers 0 is not evidence.")
