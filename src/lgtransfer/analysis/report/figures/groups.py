"""Task groups (Figs 3, 4, 6, 7): the main task alone fails past its training length, and with
the auxiliary tasks it extrapolates further (family `groups`: the gain, with aux - alone; family
`baselines`: the same against as many main-task examples), and how far: the share of the way
from L_main to L_aux the main task generalizes (family `reach`; the paper's main task gets
about all the way)."""

from __future__ import annotations

from pathlib import Path

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
from lgtransfer.analysis.verdicts import MIN_TRANSFER, REACH, above, transfer
from lgtransfer.config.schema import MAIN_ONLY, SAME_EXAMPLES, WITH_AUX


@figure("3a", "3b", "3c", "4a", "4c", "6", "7", title="Task groups (Figs 3, 4, 6, 7)")
def groups(df: pd.DataFrame, seeds: pd.DataFrame, out: Path) -> Section:
    gains, baselines, reach = [], [], []
    for exp in seeds.experiment.unique():
        with_aux = seed_mean(seeds, exp, "acc_past_main_with_aux")
        for col, variant, rows, label, paper in (
                ("acc_past_main_gain", MAIN_ONLY, gains, exp, PAPER),
                ("acc_past_main_gain_same_examples", SAME_EXAMPLES, baselines,
                 f"{exp} (same main examples)", PAPER_SAME_EXAMPLES)):
            values = registered_values(per_seed_values(seeds, exp, col), exp, out)
            if not values:
                continue
            alone = seed_mean(seeds, exp, col.replace("gain", "main_only"))
            verdict = registered(transfer(list(values.values()), MIN_TRANSFER), df,
                                 [(exp, WITH_AUX), (exp, variant)], set(values), out)
            rows.append((label, paper, f"acc. past L_main {num(with_aux)} with aux vs "
                         f"{num(alone)} alone; gain", verdict))
        fractions = registered_values(reach_fractions(df, seeds, exp), exp, out)
        if fractions:
            verdict = registered(above(list(fractions.values()), REACH, "share of the way"),
                                 df, [(exp, WITH_AUX)], set(fractions), out)
            rows_text = (f"max generalized length with aux, share of the way from L_main to "
                         f"L_aux: {' '.join(f'{v:.2f}' for v in fractions.values())}")
            reach.append((exp, "the main task generalizes to about the auxiliary length",
                          rows_text, verdict))
    tables = [claims_table(gains, "groups"), claims_table(baselines, "baselines"),
              claims_table(reach, "reach")]
    return Section("", TEXT, experiment_figures(df, out), [t for t in tables if len(t)])


def reach_fractions(df: pd.DataFrame, seeds: pd.DataFrame, exp: str) -> dict[int, float]:
    """seed -> (max generalized length with aux - L_main) / (L_aux - L_main)."""
    sel = df[(df.experiment == exp) & (df.variant == WITH_AUX)]
    if not len(sel):
        return {}
    l_main = int(sel[sel.role == "main"].train_max_length.max())
    l_aux = int(sel[sel.role == "aux"].train_max_length.max())
    if l_aux <= l_main:
        return {}
    lengths = per_seed_values(seeds, exp, "max_gen_length_with_aux")
    return {s: (v - l_main) / (l_aux - l_main) for s, v in lengths.items() if v == v}


PAPER = "with the aux tasks the main task extrapolates past L_main; alone it does not"
PAPER_SAME_EXAMPLES = ("as above, against the baseline trained on as many main-task examples "
                       "as the with-aux run")
TEXT = ("Gain = with-aux minus alone, per seed, in main-task accuracy on (L_main, L_aux]. "
        "Verdicts: the exact sign-flip test on the per-seed values, Holm within each family "
        "(groups, baselines, reach), n/a where a task of the runs did not learn its own range "
        "on most seeds, pending until the registered seeds are in (results/cpu/"
        "registration.yaml). The reach is the share of the way from L_main to L_aux that the "
        f"main task's max generalized length covers; the paper's claim is about all of it "
        f"(tested: above {REACH}).")
