"""The SmolLM2-135M claims (family `pretrained-smollm2`, issue 34), as registered in a folder's
`registration-smollm2.yaml` (template: docs/registration-smollm2.example.yaml): one stage sweep
fine-tunes the real SmolLM2-135M and its architecture from scratch on G1's main task, alone and
with its auxiliary tasks, and three per-seed differences are tested, pretrained minus scratch:

- `extrapolation`: the main task's accuracy past L_main at the end, alone;
- `speed`: its in-distribution accuracy at the first evaluation (an early step), alone;
- `gain`: the transfer gain (with aux minus alone, past L_main at the end);
- `transfer`: the pretrained model's own transfer gain (with aux minus alone, past L_main at
  the end, both from SmolLM2): that a pretrained language model shows the transfer at all.

Each is the exact one-sided sign-flip test (`verdicts.transfer`), Holm within the family at its
registered number of claims (a claim not in yet counts with p = 1). A seed counts once every run
the claim compares is complete; `pending` until all registered seeds are (its note lists the
learning misses so far, or with no seed whole yet how many of its runs are in), `not run` (with
the reason and the command) before any of its runs is. The
learning rule (a task has learned its range at a mean in-distribution accuracy of `LEARNED` at
the end) makes a claim `n/a` when some run it compares misses its range on more than half of
the seeds; for `speed`, only when both arms do (the slower arm missing its range is that
claim's evidence, not a defect). The floor rule makes `extrapolation` and `gain`
`uninformative (floor)` when both sides' accuracy past L_main (with aux, for `gain`) is below
`FLOOR_LEVEL`. Torch-free.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pandas as pd
import yaml

from lgtransfer.analysis.metrics import LEARNED
from lgtransfer.analysis.report.figures.registry import claims_table
from lgtransfer.analysis.report.stages import stage_rows
from lgtransfer.analysis.results import final_curves
from lgtransfer.analysis.verdicts import (
    Interval,
    Verdict,
    contrast_at_floor,
    not_applicable,
    pending,
    transfer,
)
from lgtransfer.config.schema import MAIN_ONLY, WITH_AUX
from lgtransfer.errors import UsageError

FILE = "registration-smollm2.yaml"
NOT_RUN = "not run"
# measure -> the (arm, variant) runs a seed needs; arms: `pretrained` and `scratch`
RUNS = {"extrapolation": [(a, MAIN_ONLY) for a in ("pretrained", "scratch")],
        "speed": [(a, MAIN_ONLY) for a in ("pretrained", "scratch")],
        "gain": [(a, v) for a in ("pretrained", "scratch") for v in (WITH_AUX, MAIN_ONLY)],
        "transfer": [("pretrained", v) for v in (WITH_AUX, MAIN_ONLY)]}


def smollm2_claims(df: pd.DataFrame, root: Path) -> pd.DataFrame | None:
    """The claims table of `root`'s registration (its `verdict` column still to be settled,
    its family's registered size in `attrs`), or None without a registration."""
    if not (root / FILE).is_file():
        return None
    reg = yaml.safe_load((root / FILE).read_text()) or {}
    claims = reg.get("claims") or []
    missing = [k for k in ("experiment", "seeds", "command", "why_not_run") if k not in reg]
    missing += [f"stages.{arm}" for arm in ("pretrained", "scratch")
                if arm not in (reg.get("stages") or {})]
    if missing:
        raise UsageError(f"{root / FILE}: no {missing[0]} (see "
                         "docs/registration-smollm2.example.yaml)")
    if any(c.get("measure") not in RUNS for c in claims):
        raise UsageError(f"{root / FILE}: each claim's measure must be one of {', '.join(RUNS)}")
    stages = {"pretrained": reg["stages"]["pretrained"], "scratch": reg["stages"]["scratch"]}
    seeds = [int(s) for s in reg.get("seeds") or []]
    sel = df[df.experiment == reg["experiment"]] if len(df) else df
    have_stages = len(sel) and "stage" in sel and sel.stage.notna().any()
    values = per_run(sel, stages) if have_stages else pd.DataFrame()
    rows = []
    for claim in claims:
        verdict = judge(claim, values, seeds) if len(values) else None
        if verdict is None:
            verdict = Verdict(NOT_RUN, Interval(math.nan, math.nan, math.nan, 0), "",
                              note=f"{' '.join(str(reg['why_not_run']).split())}; command: "
                                   f"`{' '.join(str(reg['command']).split())}`")
            done = runs_in(values, claim["measure"], seeds)
            if done:  # its runs have begun, no seed is whole yet: pending, not "not run"
                waiting = pending(verdict, 0, len(seeds))
                verdict = replace(waiting, note=f"{waiting.note} ({done} of "
                                  f"{len(RUNS[claim['measure']]) * len(seeds)} of its runs)")
        rows.append((reg["experiment"], claim["name"], " ".join(claim["statistic"].split()),
                     verdict))
    family = reg.get("family", "pretrained-smollm2")
    table = claims_table(rows, family)
    table.attrs["family_size"] = {family: len(claims)}
    return table


def per_run(df: pd.DataFrame, stages: dict[str, str]) -> pd.DataFrame:
    """One row per complete run of the two arms: arm, variant, seed, the main task's accuracy
    past L_main and in distribution (at the end and at the first evaluation), and whether every
    task of the run learned its range (`learned`; `missed`: those that did not)."""
    arm_of = {stage: arm for arm, stage in stages.items()}
    df = df[df.stage.isin(list(arm_of))]
    if not len(df):
        return pd.DataFrame()
    final = final_curves(df)
    final = final[final.length <= final.train_max_length]
    in_dist = final.groupby(["stage", "variant", "seed", "task"]).accuracy.mean()
    out = []
    for r in stage_rows(df).itertuples(index=False):
        tasks = in_dist.loc[(r.stage, r.variant, r.seed)]
        missed = sorted(t for t, acc in tasks.items() if acc < LEARNED)
        out.append({"arm": arm_of[r.stage], "variant": r.variant, "seed": int(r.seed),
                    "past": r.acc_past_train, "in_dist": r.in_dist_acc,
                    "first": getattr(r, "first_eval_in_dist_acc", math.nan),
                    "missed": missed})
    return pd.DataFrame(out)


def runs_in(values: pd.DataFrame, measure: str, seeds: list[int]) -> int:
    """How many complete runs of the registered seeds the claim compares."""
    if not len(values):
        return 0
    pairs = set(RUNS[measure])
    return sum((a, v) in pairs and s in seeds
               for a, v, s in zip(values.arm, values.variant, values.seed, strict=True))


def seed_values(values: pd.DataFrame, measure: str) -> dict[int, float]:
    """seed -> the claim's per-seed difference, over the seeds whose runs are all in."""
    table = values.set_index(["arm", "variant", "seed"])
    out = {}
    for seed in sorted(values.seed.unique()):
        if not all((a, v, seed) in table.index for a, v in RUNS[measure]):
            continue
        at = {(a, v): table.loc[(a, v, seed)] for a, v in RUNS[measure]}
        if measure == "gain":
            d = (at["pretrained", WITH_AUX].past - at["pretrained", MAIN_ONLY].past) - \
                (at["scratch", WITH_AUX].past - at["scratch", MAIN_ONLY].past)
        elif measure == "transfer":
            d = at["pretrained", WITH_AUX].past - at["pretrained", MAIN_ONLY].past
        else:
            column = "past" if measure == "extrapolation" else "first"
            d = at["pretrained", MAIN_ONLY][column] - at["scratch", MAIN_ONLY][column]
        if not math.isnan(d):
            out[int(seed)] = float(d)
    return out


def judge(claim: dict, values: pd.DataFrame, seeds: list[int]) -> Verdict | None:
    """The claim's verdict over the registered seeds (None: no seed of it is in)."""
    measure = claim["measure"]
    diffs = {s: d for s, d in seed_values(values, measure).items() if s in seeds}
    if not diffs:
        return None
    v = transfer([diffs[s] for s in sorted(diffs)], float(claim.get("min_effect", 0.05)))
    v = replace(v, rule=v.rule.replace("mean gain", "mean difference"))
    runs = values[values.seed.isin(list(diffs))]
    runs = runs[[(a, var) in RUNS[measure] for a, var in zip(runs.arm, runs.variant,
                                                              strict=True)]]
    why, note = learning(runs, both=measure == "speed")
    if len(diffs) < len(seeds):  # the misses so far, so that a reader sees where it is heading
        waiting = pending(v, len(diffs), len(seeds))
        so_far = why or note
        return replace(waiting, note=f"{waiting.note}; so far {so_far}") if so_far else waiting
    if why:
        return not_applicable(v, "; ".join(filter(None, [why, note])))
    if measure == "transfer":  # the floor: with aux and alone, both from SmolLM2
        levels = {f"pretrained {'with aux' if var == WITH_AUX else 'alone'}":
                  float(runs[runs.variant == var].past.mean()) for var in (WITH_AUX, MAIN_ONLY)}
        floored = contrast_at_floor(v, levels, "both sides compare 0 with 0")
        if floored is not v:
            return replace(floored, note=floored.note.replace("with aux is", "is"))
        return replace(v, note=note) if note else v
    if measure != "speed":
        variant = WITH_AUX if measure == "gain" else MAIN_ONLY
        side = runs[runs.variant == variant]
        levels = {f"{arm} {'with aux' if measure == 'gain' else 'alone'}":
                  float(side[side.arm == arm].past.mean()) for arm in ("pretrained", "scratch")}
        floored = contrast_at_floor(v, levels, "both sides compare 0 with 0")
        if floored is not v:
            return replace(floored, note=floored.note.replace("with aux is", "is"))
    return replace(v, note=note) if note else v


def learning(runs: pd.DataFrame, both: bool) -> tuple[str, str]:
    """(why n/a, note): per arm, variant and task, the seeds whose run missed its range. n/a
    when one of them misses on more than half of the seeds (`both`: when every arm has a task
    that does); a note of the misses otherwise."""
    n = runs.seed.nunique()
    counts: dict[tuple[str, str, str], int] = {}
    for r in runs.itertuples(index=False):
        for task in r.missed:
            counts[(r.arm, r.variant, task)] = counts.get((r.arm, r.variant, task), 0) + 1
    text = [f"{task} {'with aux' if variant == WITH_AUX else 'alone'} from {arm} below "
            f"{LEARNED} on {k} of {n} seeds" for (arm, variant, task), k in sorted(counts.items())]
    failing = {arm for (arm, _, _), k in counts.items() if 2 * k > n}
    decisive = failing == {"pretrained", "scratch"} if both else bool(failing)
    return ("; ".join(text), "") if decisive else ("", "; ".join(text))
