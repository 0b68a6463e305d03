"""Task groups (Figs 3, 4, 6, 7): the main task alone fails past its training length, and with
the auxiliary tasks it extrapolates further: `verdicts.transfer` on the per-seed gain."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lgtransfer.config.schema import MAIN_ONLY, SAME_EXAMPLES, WITH_AUX
from lgtransfer.metrics import LEARNED
from lgtransfer.report.figures.registry import (
    claims_table,
    experiment_figures,
    figure,
    num,
    per_seed_values,
    seed_mean,
)
from lgtransfer.report.render import Section
from lgtransfer.results import in_distribution
from lgtransfer.verdicts import MIN_TRANSFER, transfer


@figure("3a", "3b", "3c", "4a", "4c", "6", "7", title="Task groups (Figs 3, 4, 6, 7)")
def groups(df: pd.DataFrame, seeds: pd.DataFrame, out: Path) -> Section:
    rows = []
    for exp in seeds.experiment.unique():
        with_aux, alone = (seed_mean(seeds, exp, c) for c in (
            "acc_past_main_with_aux", "acc_past_main_main_only"))
        gains = list(per_seed_values(seeds, exp, "acc_past_main_gain").values())
        ours = (f"acc. past L_main {num(with_aux)} with aux vs {num(alone)} alone"
                f"{unlearned_note(df, exp, MAIN_ONLY)}; gain")
        rows.append((exp, "with the aux tasks the main task extrapolates past L_main; alone it "
                     "does not", ours, transfer(gains, MIN_TRANSFER)))
        same_examples = per_seed_values(seeds, exp, "acc_past_main_gain_same_examples")
        if same_examples:  # the second baseline: as many main-task examples, fewer steps
            alone = seed_mean(seeds, exp, "acc_past_main_main_only_same_examples")
            rows.append((f"{exp} (same main examples)", "as above, against the baseline trained "
                         "on as many main-task examples as the with-aux run",
                         f"acc. past L_main {num(with_aux)} with aux vs {num(alone)} alone"
                         f"{unlearned_note(df, exp, SAME_EXAMPLES)}; gain",
                         transfer(list(same_examples.values()), MIN_TRANSFER)))
    return Section("", TEXT, experiment_figures(df, out), [claims_table(rows)])


def unlearned_note(df: pd.DataFrame, exp: str, baseline: str) -> str:
    """Where a task of the with-aux run or of this baseline did not learn its own training
    range (the Calibration rule), say on how many seeds: the verdict stands, but it is no
    evidence about a task that was never learned."""
    per_run = in_distribution(df[(df.experiment == exp) & df.variant.isin([WITH_AUX, baseline])])
    seeds = per_run.seed.nunique()
    short = per_run[per_run.accuracy < LEARNED]
    if not len(short):
        return ""
    tasks = ", ".join(sorted(set(short.task)))
    return (f" ({tasks} below {LEARNED} in distribution on {short.seed.nunique()} of {seeds} "
            "seeds)")


TEXT = ("Gain = with-aux minus alone, per seed, in main-task accuracy on (L_main, L_aux]; the "
        "verdict rule is written beside each result.")
