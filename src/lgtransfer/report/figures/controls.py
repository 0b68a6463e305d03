"""Controls (Fig 8): unrelated auxiliary tasks give no transfer."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lgtransfer.report.figures.registry import claims_table, experiment_figures, figure
from lgtransfer.report.render import Section
from lgtransfer.stats import mean_ci


@figure("8", title="Controls (Fig 8)")
def controls(df: pd.DataFrame, seeds: pd.DataFrame, out: Path) -> Section:
    rows = []
    for exp in seeds.experiment.unique():
        gains = seeds.loc[seeds.experiment == exp, "max_gen_length_gain"].dropna().to_numpy(float)
        if not len(gains):
            rows.append((exp, "no transfer", "no baseline to compare with", None))
            continue
        lo, hi = mean_ci(gains)
        spread = gains.std(ddof=1) if len(gains) > 1 else 0.0
        ours = (f"max gen. length gain {gains.mean():+.2f} lengths "
                f"(95% CI {lo:+.2f}..{hi:+.2f})")
        rows.append((exp, "no transfer: gain within the seed spread", ours,
                     bool(abs(gains.mean()) <= max(spread, 0.5) or lo <= 0 <= hi)))
    return Section("", "", experiment_figures(df, out), [claims_table(rows)])
