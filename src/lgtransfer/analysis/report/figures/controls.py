"""Controls (Fig 8): unrelated auxiliary tasks give no transfer (family `controls`).

"No transfer" is an equivalence claim, and at a scale where the main task never extrapolates
with any auxiliary task it is true of every auxiliary: both sides at the floor make it
`uninformative (floor)`. Its teeth come from the contrast with the related group that shares
its main task and lengths (C1 with G1): related minus unrelated, seed by seed, in main-task
accuracy past L_main with the auxiliary tasks; where neither transfers, that contrast compares
0 with 0 and is `uninformative (floor)` too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lgtransfer.analysis.report.figures.registry import (
    claims_table,
    experiment_figures,
    figure,
    num,
    per_seed_values,
    registered,
    registered_values,
    seed_mean,
)
from lgtransfer.analysis.report.render import Section
from lgtransfer.analysis.verdicts import (
    EQUIVALENCE_MARGIN,
    FLOOR_LEVEL,
    MIN_TRANSFER,
    contrast_at_floor,
    no_transfer,
    paired_above,
)
from lgtransfer.config.schema import MAIN_ONLY, WITH_AUX

GROUP_FIGURES = ("3a", "3b", "3c", "4a", "4c", "6", "7")


@figure("8", title="Controls (Fig 8)")
def controls(df: pd.DataFrame, seeds: pd.DataFrame, out: Path,
             suite: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> Section:
    suite_df, suite_seeds = suite or (df, seeds)
    rows = []
    for exp in seeds.experiment.unique():
        gains = registered_values(per_seed_values(seeds, exp, "acc_past_main_gain"), exp, out)
        with_aux, alone = (seed_mean(seeds, exp, c) for c in (
            "acc_past_main_with_aux", "acc_past_main_main_only"))
        floor = max(with_aux, alone) < FLOOR_LEVEL
        rows.append((exp, "no transfer from an unrelated auxiliary task",
                     f"acc. past L_main {num(with_aux)} with aux vs {num(alone)} alone; gain",
                     registered(no_transfer(list(gains.values()), MARGIN, floor), df,
                                [(exp, WITH_AUX), (exp, MAIN_ONLY)], set(gains), out)))
        related = related_group(suite_df, exp)
        if related is None:
            continue
        a = registered_values(per_seed_values(suite_seeds, related, "acc_past_main_with_aux"),
                              related, out)
        b = registered_values(per_seed_values(seeds, exp, "acc_past_main_with_aux"), exp, out)
        both = set(a) & set(b)
        related_acc = seed_mean(suite_seeds, related, "acc_past_main_with_aux")
        v = registered(paired_above(a, b, MIN_TRANSFER), suite_df,
                       [(related, WITH_AUX), (exp, WITH_AUX)], both, out)
        levels = {e: float(np.mean([x[s] for s in both] or [np.nan])) for e, x in
                  ((related, a), (exp, b))}
        rows.append((f"{related} - {exp}", f"the related auxiliary ({related}) transfers more "
                     "than the unrelated one", f"acc. past L_main with aux {num(related_acc)} "
                     f"vs {num(with_aux)}; related - unrelated",
                     contrast_at_floor(v, levels, "neither auxiliary transfers, so the "
                                       "contrast compares 0 with 0")))
    return Section("", TEXT, experiment_figures(df, out), [claims_table(rows, "controls")])


def related_group(df: pd.DataFrame, control: str) -> str | None:
    """The task group whose main task and lengths are the control's (C1: G1), if it ran."""
    def signature(exp: str) -> tuple:
        sel = df[(df.experiment == exp) & (df.role == "main")]
        return (sel.task.iloc[0], int(sel.train_max_length.iloc[0])) if len(sel) else ()

    mine = signature(control)
    groups = sorted(df[df.figure.isin(GROUP_FIGURES)].experiment.unique())
    return next((g for g in groups if signature(g) == mine and mine), None)


MARGIN = EQUIVALENCE_MARGIN  # "no transfer": the gain credibly below 5 points past L_main
TEXT = ("Gain = with-aux minus alone, per seed, in main-task accuracy on (L_main, L_aux]. No "
        "transfer is an equivalence claim: an interval that merely covers 0 is not evidence, "
        "and both sides at the floor say nothing. The contrast with the related group (the "
        "same main task and lengths) gives the control its teeth.")
