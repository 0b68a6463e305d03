"""The pretrained-model claims (Figs 9, 15; family `pretrained`), as registered in a folder's
`registration-pretrained.yaml` (results/cpu/): per seed, Spearman of each stage's pretraining
step with how fast (in-distribution accuracy at the first evaluation) or how far (accuracy past
L_main) the main task is learned after fine-tuning; or, for a model against its architecture
from scratch, the per-seed difference. A claim whose experiment has no complete run prints
`not run` with the registered reason and the command that would run it. Torch-free.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pandas as pd
import yaml

from lgtransfer.analysis.report.figures.registry import claims_table
from lgtransfer.analysis.report.render import Section
from lgtransfer.analysis.report.stages import stage_rows
from lgtransfer.analysis.stats import spearman
from lgtransfer.analysis.verdicts import FLOOR_LEVEL, Interval, Verdict, floored, pending, transfer

FILE = "registration-pretrained.yaml"
NOT_RUN = "not run"


def pretrained_claims(df: pd.DataFrame, root: Path) -> Section | None:
    """The registered pretrained claims of the folder `root`, or None without a registration."""
    if not (root / FILE).is_file():
        return None
    reg = yaml.safe_load((root / FILE).read_text()) or {}
    rows = []
    for claim in reg.get("claims") or []:
        sel = df[df.experiment == claim["experiment"]] if len(df) else df
        seeds = [int(s) for s in claim.get("seeds") or []]
        verdict = judge(claim, sel, seeds) if len(sel) else None
        if verdict is None:
            verdict = Verdict(NOT_RUN, Interval(math.nan, math.nan, math.nan, 0), "",
                              note=f"{' '.join(str(claim['why_not_run']).split())}; command: "
                                   f"`{' '.join(str(claim['command']).split())}`")
        rows.append((claim["experiment"], claim["name"], " ".join(claim["statistic"].split()),
                     verdict))
    table = claims_table(rows, reg.get("family", "pretrained"))
    return Section("Pretrained models: registered claims (Figs 9, 15)", TEXT, tables=[table])


def judge(claim: dict, df: pd.DataFrame, seeds: list[int]) -> Verdict | None:
    """The claim's verdict from its runs: a stage sweep's per-seed rank correlation with the
    pretraining step, pending until every registered seed is in."""
    if "stage" not in df or df.stage.isna().all():
        return None
    rows = stage_rows(df[df.variant == "main_only"] if (df.variant == "main_only").any()
                      else df)
    column = ("first_eval_in_dist_acc" if "faster" in claim["name"] else "acc_past_train")
    if column not in rows:
        return None
    rhos = {}
    for seed, sel in rows[rows.seed.isin(seeds)].groupby("seed"):
        sel = sel.dropna(subset=["step", column])
        if len(sel) >= 3:
            rhos[int(seed)] = spearman(sel.step.astype(float), sel[column].astype(float))
    v = transfer(list(rhos.values()), float(claim.get("min_effect", 0.1)))
    if set(seeds) - set(rhos):
        return pending(v, len(set(seeds) & set(rhos)), len(seeds))
    if column == "acc_past_train" and rows[column].max() < FLOOR_LEVEL:
        return floored(replace(v, note=""))
    return v


TEXT = ("Registered in registration-pretrained.yaml before any of their runs. `not run`: the "
        "runs are not in; the reason and the command are beside each.")
