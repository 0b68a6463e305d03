"""The causal test over k, from heads.jsonl rows (`engine/heads/causal_curve.py` writes them):
per run and k, the main task's drop past L_main when the auxiliary tasks' top-k heads are
ablated against random k-head sets with the same per-layer counts, and the verdicts on it.
Torch-free.

- drop_aux(k) = intact - top-k accuracy, drop_rand(k) = intact - the mean over draws, each per
  length of the band; a seed's **statistic** at k is drop_aux(k) - drop_rand(k) averaged over
  the band's lengths (each length alike). Intact cancels: it is random - top-k accuracy, the old
  test's "extra drop", here over the whole band and against layer-matched random heads.
- Two **measures** of the main task, each with its own rows: exact match (`acc`) and token
  accuracy (`tok`, the share of answer tokens right, teacher-forced); every number below is in
  the one chosen (a registration's `causal_over_k.measure`; default `acc`). Where one head's
  ablation already zeroes exact match past L_main, token accuracy still grades the damage.
- **Saturated** k: top-k ablation puts the main task at the floor (band mean below
  `FLOOR_LEVEL` above what it keeps with every attention head ablated, `noattn`: 0 in exact
  match, about 0.2 in G1's token accuracy) on at least half of the seeds; a k is tested only
  where it is not (the main task off the floor on more than half of the seeds), since a drop
  to the floor says nothing about which heads matter beyond "both hurt".
- The claim "the auxiliary heads' drop exceeds random heads', seed by seed" (G1, G5): `transfer`
  on the per-seed statistic at the registered k (exact sign-flip, Holm by `settle`), n/a where
  k is saturated or not measured. The group - control contrast (`control_contrast`) is withheld
  (`uninformative (floor)`, "control at floor") where the control's main task sits at the
  floor past L_main, where its drops are 0 by construction.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd

from lgtransfer.analysis.verdicts import (
    FLOOR,
    FLOOR_LEVEL,
    MIN_TRANSFER,
    Verdict,
    not_applicable,
    paired_above,
    transfer,
)

PREFIX = "kcausal_"
MEASURES = ("acc", "tok")  # exact match, token accuracy (engine/heads/causal_curve.py)
COLUMNS = ["experiment", "seed", "run", "k", "intact", "topk", "random", "drop_aux",
           "drop_rand", "statistic", "noattn", "at_floor", "lengths"]


def is_curve_row(row: dict) -> bool:
    return str(row.get("metric", "")).startswith(PREFIX)


def run_curve(rows: list[dict], measure: str = "acc") -> pd.DataFrame:
    """One row per k of one run's causal test over k (its last step that has one): band means
    of intact, top-k and random accuracy in `measure`, the two drops, the statistic and the
    floor flag (empty where the run has no rows of that measure)."""
    rows = [r for r in rows if is_curve_row(r) and r.get("value") is not None]
    if not rows:
        return pd.DataFrame(columns=COLUMNS[3:])
    step = max(r["step"] for r in rows)
    acc: dict[tuple[str, int | None, int], float] = {}
    for r in rows:
        if r["step"] == step and r["length"] is not None and r["draw"] is None:
            acc[(r["metric"][len(PREFIX):], r["k"], r["length"])] = r["value"]
    intact_m, topk_m, random_m = (f"{what}_{measure}" for what in ("intact", "topk", "random"))
    lengths = sorted({n for m, _, n in acc if m == intact_m})
    # the floor: what the main task keeps with no attention at all (runs recorded before that
    # row: 0, exact match's floor), plus FLOOR_LEVEL
    noattn = sum(acc.get((f"noattn_{measure}", None, n), 0.0) for n in lengths) / max(
        len(lengths), 1)
    out = []
    for k in sorted({k for m, k, _ in acc if m == topk_m}):
        per = {m: np.array([acc.get((m, None if m == intact_m else k, n), math.nan)
                            for n in lengths]) for m in (intact_m, topk_m, random_m)}
        intact, topk, rand = (float(np.mean(per[m])) for m in per)
        drop_aux = float(np.mean(per[intact_m] - per[topk_m]))
        drop_rand = float(np.mean(per[intact_m] - per[random_m]))
        out.append({"k": k, "intact": intact, "topk": topk, "random": rand,
                    "drop_aux": drop_aux, "drop_rand": drop_rand,
                    "statistic": drop_aux - drop_rand, "noattn": noattn,
                    "at_floor": topk < noattn + FLOOR_LEVEL, "lengths": len(lengths)})
    return pd.DataFrame(out, columns=COLUMNS[3:])


def curves(rows_by_run: dict[str, tuple[str, int, list[dict]]],
           measure: str = "acc") -> pd.DataFrame:
    """Every run's curve in `measure`: run -> (experiment, seed, its heads.jsonl rows) into
    one table."""
    parts = [run_curve(rows, measure).assign(experiment=exp, seed=seed, run=run)
             for run, (exp, seed, rows) in rows_by_run.items()]
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(parts, ignore_index=True)[COLUMNS]


def seed_statistic(table: pd.DataFrame, experiment: str, k: int) -> dict[int, float]:
    """seed -> the statistic at k (drop_aux - drop_rand, band mean)."""
    sel = table[(table.experiment == experiment) & (table.k == k)]
    return {int(s): float(v) for s, v in zip(sel.seed, sel.statistic, strict=True)}


def saturation(table: pd.DataFrame, experiment: str, k: int) -> tuple[int, int]:
    """(seeds at the floor under top-k ablation at k, seeds measured at k)."""
    sel = table[(table.experiment == experiment) & (table.k == k)]
    return int(sel.at_floor.sum()), len(sel)


def saturated(table: pd.DataFrame, experiment: str, k: int) -> bool:
    """Whether k is saturated: the main task at the floor under top-k ablation on at least
    half of the seeds (not saturated: off the floor on more than half)."""
    at, n = saturation(table, experiment, k)
    return n > 0 and not 2 * (n - at) > n


def curve_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per experiment and k: seeds, mean and standard deviation over seeds of each drop and
    of the statistic, seeds at the floor under top-k ablation, and whether k is saturated."""
    out = []
    for (exp, k), sel in table.groupby(["experiment", "k"], sort=True):
        row = {"experiment": exp, "k": int(k), "n": len(sel)}
        for col in ("intact", "drop_aux", "drop_rand", "statistic"):
            row[col] = float(sel[col].mean())
            row[f"{col}_sd"] = float(sel[col].std(ddof=1)) if len(sel) > 1 else math.nan
        row["at_floor"] = int(sel.at_floor.sum())
        row["saturated"] = saturated(table, exp, int(k))
        out.append(row)
    return pd.DataFrame(out)


def causal_k_verdict(table: pd.DataFrame, experiment: str, k: int,
                     min_effect: float = MIN_TRANSFER) -> Verdict:
    """The claim at the registered k: the auxiliary heads' drop exceeds random heads', seed by
    seed (`transfer` on the per-seed statistic). n/a where k was not measured or is
    saturated."""
    values = seed_statistic(table, experiment, k)
    v = transfer(list(values.values()), min_effect)
    v = replace(v, rule=v.rule.replace("mean gain", "mean drop(aux heads) - drop(random heads)"))
    if not values:
        return not_applicable(v, f"k = {k} not measured")
    at, n = saturation(table, experiment, k)
    if saturated(table, experiment, k):
        return not_applicable(v, f"saturated at k = {k}: top-k ablation puts the main task at "
                              f"the floor (within {FLOOR_LEVEL} of its level with every "
                              f"attention head ablated) on {at} of {n} seeds")
    return v


def control_contrast(group: dict[int, float], control: dict[int, float],
                     control_level: float, min_effect: float = MIN_TRANSFER) -> Verdict:
    """The group's statistic above its control's, seed by seed, where the control's main task
    is not at the floor past L_main (`control_level`: its mean intact accuracy over the band
    and seeds, above its no-attention floor); where it is, the control's drops are 0 by
    construction: `uninformative (floor)`, noted "control at floor"."""
    v = paired_above(group, control, min_effect)
    if control_level < FLOOR_LEVEL or math.isnan(control_level):
        return replace(v, outcome=FLOOR, note=f"control at floor: its main task's accuracy "
                       f"past L_main is {control_level:.3f} above its floor, below "
                       f"{FLOOR_LEVEL}; an ablation has nothing to lower there")
    return v


def intact_level(table: pd.DataFrame, experiment: str, seeds: set[int] | None = None) -> float:
    """The main task's mean intact accuracy over the band (past L_main) and the seeds, above
    its floor (`noattn`: 0 in exact match), so that `control_contrast` sees how much an
    ablation could lower."""
    sel = table[table.experiment == experiment].drop_duplicates("seed")
    if seeds is not None:
        sel = sel[sel.seed.isin(seeds)]
    return float((sel.intact - sel.noattn).mean()) if len(sel) else math.nan
