"""The pretrained-model claims (Figs 9, 15; family `pretrained`), as registered in a folder's
`registration-pretrained.yaml` (results/cpu/): per seed, Spearman of each stage's pretraining
step with how fast (in-distribution accuracy at the first evaluation) or how far (accuracy past
L_main) the main task is learned after fine-tuning; or, for a model against its architecture
from scratch, the per-seed difference. A claim whose experiment has no complete run prints
`not run` with the registered reason and the command that would run it; one an amendment
withdrew before any of its runs (`withdrawn`: when and why) reads n/a with that note (where
its family's m is fixed, it keeps its place with p = 1). Torch-free.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pandas as pd
import yaml

from lgtransfer.analysis.metrics import LEARNED
from lgtransfer.analysis.report.figures.registry import claims_table
from lgtransfer.analysis.report.render import Section
from lgtransfer.analysis.report.smollm2_claims import smollm2_claims
from lgtransfer.analysis.report.stages import stage_rows
from lgtransfer.analysis.stats import spearman
from lgtransfer.analysis.verdicts import (
    FLOOR_LEVEL,
    Interval,
    Verdict,
    floored,
    not_applicable,
    pending,
    transfer,
)
from lgtransfer.runtime import rundir

FILE = "registration-pretrained.yaml"
NOT_RUN = "not run"


def pretrained_claims(df: pd.DataFrame, root: Path) -> Section | None:
    """The registered pretrained claims of the folder `root` (and its SmolLM2-135M family,
    `smollm2_claims.py`, when registered), or None without a registration."""
    smollm2 = smollm2_claims(df, root)
    if not (root / FILE).is_file():
        return None if smollm2 is None else Section(TITLE, SMOLLM2_TEXT, tables=[smollm2])
    reg = yaml.safe_load((root / FILE).read_text()) or {}
    rows: dict[str, list] = {}  # family -> rows; an amendment's claims may form their own
    for claim in reg.get("claims") or []:
        sel = df[df.experiment == claim["experiment"]] if len(df) else df
        seeds = [int(s) for s in claim.get("seeds") or []]
        none = Verdict(NOT_RUN, Interval(math.nan, math.nan, math.nan, 0), "")
        if "withdrawn" in claim:  # by a dated amendment, before any of its runs
            why = " ".join(str(claim["withdrawn"]).split())
            verdict = not_applicable(none, f"withdrawn: {why}")
        else:
            verdict = judge(claim, sel, seeds, root) if len(sel) else None
        if verdict is None:
            verdict = replace(none, note=f"{' '.join(str(claim['why_not_run']).split())}; "
                                         f"command: `{' '.join(str(claim['command']).split())}`")
        rows.setdefault(claim.get("family", reg.get("family", "pretrained")), []).append(
            (claim["experiment"], claim["name"], " ".join(claim["statistic"].split()), verdict))
    tables = [claims_table(family_rows, family) for family, family_rows in rows.items()]
    for table, family in zip(tables[1:], list(rows)[1:], strict=True):
        # a family registered by an amendment has its m fixed: every claim it lists (the first
        # family keeps the rule its seeds were judged by)
        table.attrs["family_size"] = {family: len(rows[family])}
    if smollm2 is None:
        return Section(TITLE, TEXT, tables=tables)
    return Section(TITLE, f"{TEXT} {SMOLLM2_TEXT}", tables=[*tables, smollm2])


def judge(claim: dict, df: pd.DataFrame, seeds: list[int], root: Path) -> Verdict | None:
    """The claim's verdict from its runs: a stage sweep's per-seed rank correlation with the
    pretraining step over every stage of the seed (a seed counts once all its listed stage runs
    are in: pending until then); n/a when some stage's run misses its own range on more than
    half the seeds, floor when every stage stays below it past L_main."""
    if "stage" not in df or df.stage.isna().all():
        return None
    variant = "main_only" if (df.variant == "main_only").any() else "with_aux"
    rows = stage_rows(df[df.variant == variant])
    column = ("first_eval_in_dist_acc" if "faster" in claim["name"] else "acc_past_train")
    if column not in rows:
        return None
    listed = listed_runs(root / claim["experiment"], variant)
    per_stage = claim.get("learning") == "per_stage"  # the amendment's rule (`amended`)
    rhos, thin, undefined = {}, [], []
    for seed, sel in rows[rows.seed.isin(seeds)].groupby("seed"):
        sel = sel.dropna(subset=["step", column])
        if len(sel) < max(3, listed.get(int(seed), 0)):
            continue
        if per_stage and column == "acc_past_train":  # how far: runs that learned their range
            sel = sel[sel.in_dist_acc >= LEARNED]
            if len(sel) < 3:
                thin.append(int(seed))
                continue
        rhos[int(seed)] = spearman(sel.step.astype(float), sel[column].astype(float))
        if math.isnan(rhos[int(seed)]) and claim.get("undefined_correlation") == "zero":
            rhos[int(seed)] = 0.0  # amendment 4: every counted run alike, no ordering
            undefined.append(int(seed))
    v = transfer(list(rhos.values()), float(claim.get("min_effect", 0.1)))
    if set(seeds) - set(rhos) - set(thin):
        return pending(v, len(set(seeds) & (set(rhos) | set(thin))), len(seeds))
    rows = rows[rows.seed.isin(seeds)]
    if per_stage:
        return amended(v, rows, column, thin, undefined)
    short = rows[rows.in_dist_acc < LEARNED]
    counted = (f"{short.task.iloc[0] if len(short) else 'the main task'} below {LEARNED} at "
               f"the end on {short.seed.nunique()} of {rows.seed.nunique()} seeds "
               f"({len(short)} of {len(rows)} runs: " + ", ".join(
                   f"{stage} on {n}" for stage, n in short.groupby("stage").seed.nunique().items())
               + ")")
    floor = None
    if column == "acc_past_train" and rows[column].max() < FLOOR_LEVEL:
        floor = (f"every stage below {FLOOR_LEVEL} past L_main on every seed (at most "
                 f"{rows[column].max():.3f} over {len(rows)} runs)")
    if 2 * short.seed.nunique() > rows.seed.nunique():
        return not_applicable(v, "; ".join(filter(None, [counted, floor])))
    if floor:
        return replace(floored(v), note=floor)
    return replace(v, note=counted) if len(short) else v


def amended(v: Verdict, rows: pd.DataFrame, column: str, thin: list[int],
            undefined: list[int]) -> Verdict:
    """The learning rule of the ladder's amendment (`learning: per_stage`), counted per run and
    per stage: n/a when some stage's runs miss their range on more than half of the seeds (for
    how fast, only when every stage's do: a slow stage is that claim's evidence); for how far,
    a run that missed its range is left out of its seed's correlation, and a seed with fewer
    than 3 such runs left out of the test (`thin`); floor as before. Amendment 4: a seed whose
    correlation is undefined (every run counted for it alike) counts as 0, named in the note."""
    n = rows.seed.nunique()
    missed = rows[rows.in_dist_acc < LEARNED].groupby("stage").seed.nunique()
    counted = ", ".join(f"{stage} on {k}" for stage, k in missed.items())
    counted = (f"{rows.task.iloc[0]} below {LEARNED} at the end: {counted} of {n} seeds"
               if len(missed) else "")
    if thin:
        counted += f"; seeds {', '.join(map(str, thin))} left out (under 3 runs learned)"
    if undefined:
        counted += (f"{'; ' if counted else ''}seeds {', '.join(map(str, undefined))} counted "
                    "as 0 (rank correlation undefined: every run alike; amendment 4)")
    failing = missed[2 * missed > n]
    stages = rows.stage.nunique()
    if (len(failing) == stages) if column == "first_eval_in_dist_acc" else len(failing):
        return not_applicable(v, counted)
    learned = rows[rows.in_dist_acc >= LEARNED]
    if column == "acc_past_train" and len(learned) and learned[column].max() < FLOOR_LEVEL:
        return replace(floored(v), note=f"every learned run below {FLOOR_LEVEL} past L_main "
                       f"(at most {learned[column].max():.3f} over {len(learned)} runs)")
    return replace(v, note=counted) if counted else v


def listed_runs(exp_dir: Path, variant: str) -> dict[int, int]:
    """seed -> how many runs of `variant` the experiment folder's index lists (every stage)."""
    index = rundir.read_experiment_index(exp_dir) or {}
    seeds = [re.search(rf"^{variant}_seed(\d+)_", Path(r).name) for r in index.get("runs", [])]
    return dict(Counter(int(m.group(1)) for m in seeds if m))


TITLE = "Pretrained models: registered claims (Figs 9, 15)"
TEXT = ("Registered in registration-pretrained.yaml before any of their runs. `not run`: the "
        "runs are not in; the reason and the command are beside each.")
SMOLLM2_TEXT = ("SmolLM2-135M against its architecture from scratch: registered in "
                "registration-smollm2.yaml before any of their runs, Holm over its registered "
                "claims (one not in yet counts with p = 1).")
