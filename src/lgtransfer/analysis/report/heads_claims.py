"""The mechanism's verdicts (family `heads`, results/cpu/registration.yaml), from the head
metrics each with-aux run recorded while training (`heads.jsonl`, `heads/record.py`).

- **Tracks the gap**, per group and metric: per run, Spearman's rho of the metric (band
  in_dist, mean over heads and aux pairs) with the generalization gap over the measurement
  points where the main task works in distribution (in_dist accuracy >= COUNTED; at least
  MIN_POINTS of them, else that run has no rho); per group, the per-seed rhos, directional.
- **Not in the controls**: the group's rho minus its control's, seed by seed (G1 - C1, G4 - C2).
- **Across runs**: every with-aux run's metric at its last point against its transfer gain
  (with aux - alone, accuracy past L_main, same seed), Spearman with a permutation p (10,000
  orders) and a bootstrap interval; sharing means a small importance difference (rho < 0) and
  a large top-k overlap (rho > 0).
- **Causal specificity**: the main task's extra drop past L_main (band transfer) when the k
  heads most important to the auxiliary tasks are ablated, in the group minus its control;
  `uninformative (floor)` where the main task does not extrapolate on either side.
- **A maze group** (`registration-heads-maze.yaml`, an amendment): the tracking claim for the
  group it names, at its seeds, in a Holm family of its own.
Torch-free: it reads JSON lines.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from lgtransfer.analysis import registration
from lgtransfer.analysis.report.figures.registry import (
    claims_table,
    per_seed_values,
    registered,
    registered_values,
)
from lgtransfer.analysis.report.render import Section, pyplot
from lgtransfer.analysis.signflip import permutation_p
from lgtransfer.analysis.stats import bootstrap_ci, spearman
from lgtransfer.analysis.verdicts import (
    MIN_CORRELATION,
    PENDING,
    TRACKING_COUNTED,
    TRACKING_MIN_POINTS,
    Interval,
    Verdict,
    contrast_at_floor,
    not_applicable,
    paired_above,
    pending,
    transfer,
)
from lgtransfer.config.schema import WITH_AUX
from lgtransfer.runtime import rundir

COUNTED = TRACKING_COUNTED  # a point counts once the main task's in_dist accuracy reaches this
MIN_POINTS = TRACKING_MIN_POINTS  # fewer counted points: no rho for that run
MIN_RHO = MIN_CORRELATION  # the smallest effect on a correlation that counts
TRACKING = ("importance_diff", "attn_diff")
GROUPS = ("g1", "g2", "g5")
CONTROLS = {"g1": "c1", "g4": "c2"}  # group -> the control sharing its main task and lengths
ACROSS = {"importance_diff": False, "topk_jaccard": True}  # metric -> sharing means rho > 0
AMENDMENT = "registration-heads-maze.yaml"


def amendment(root: Path) -> tuple[str, list[int], str] | None:
    """(experiment, seeds, family) of the maze amendment beside the evidence, if there is one."""
    path = root / AMENDMENT
    if not path.is_file():
        return None
    raw = yaml.safe_load(path.read_text()) or {}
    return str(raw["experiment"]), [int(s) for s in raw["seeds"]], str(raw["family"])


def run_series(rows: list[dict]) -> pd.DataFrame:
    """One row per step: gap, main in_dist accuracy, each metric (band in_dist, mean over heads
    and aux pairs), the causal extra drop (band transfer, where measured)."""
    main = next((r["task"] for r in rows if r["metric"] == "gap"), None)
    out: dict[int, dict[str, list[float]]] = {}
    for r in rows:
        if r["layer"] is not None or r["value"] is None:
            continue
        key = None
        if r["metric"] == "gap":
            key = "gap"
        elif r["metric"] == "accuracy" and r["band"] == "in_dist" and r["task"] == main:
            key = "main_acc"
        elif r["metric"] in (*TRACKING, "topk_jaccard") and r["band"] == "in_dist":
            key = r["metric"]
        elif r["metric"] == "causal_extra_drop" and r["band"] == "transfer":
            key = "causal"
        if key:
            out.setdefault(r["step"], {}).setdefault(key, []).append(r["value"])
    return pd.DataFrame({s: {k: float(np.mean(v)) for k, v in d.items()}
                         for s, d in out.items()}).T.sort_index()


def per_run(df: pd.DataFrame, root: Path) -> pd.DataFrame:
    """experiment, seed, run, each metric's rho with the gap, last values, causal drop."""
    rows = []
    for run in df[df.variant == WITH_AUX].run.unique():
        path = root / run / "heads.jsonl"
        if not path.is_file():
            continue
        s = run_series(rundir.read_jsonl(path))
        if "gap" not in s or "main_acc" not in s:
            continue
        counted = s[(s.main_acc >= COUNTED) & s.gap.notna()]
        sel = df[df.run == run].iloc[0]
        row = {"experiment": sel.experiment, "seed": int(sel.seed), "run": run,
               "points": len(counted)}
        for m in TRACKING:
            ok = m in counted and len(counted) >= MIN_POINTS
            row[f"rho_{m}"] = spearman(counted[m], counted.gap) if ok else math.nan
        last = s.iloc[-1]
        for m in (*ACROSS, "causal"):
            row[f"last_{m}"] = float(last[m]) if m in s and last[m] == last[m] else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def heads_claims(df: pd.DataFrame, seeds: pd.DataFrame, root: Path) -> Section | None:
    """The heads family's claims and figure, or None where no run recorded head metrics."""
    runs = per_run(df, root)
    if not len(runs):
        return None
    maze = amendment(root)
    by = {(e, m): dict(zip(g.seed, g[m], strict=True)) for e, g in runs.groupby("experiment")
          for m in runs.columns if m.startswith(("rho_", "last_"))}
    rows = []
    for m in TRACKING:
        for g in GROUPS:
            rhos = registered_values(by.get((g, f"rho_{m}"), {}), g, root)
            if (runs.experiment == g).any():
                rows.append((g, f"{m} tracks the gap over training", "per-seed Spearman "
                             "with the gap", judged(transfer(list(rhos.values()), MIN_RHO),
                                                    df, g, rhos, root, runs=runs)))
        for g, c in CONTROLS.items():
            a, b = (registered_values(by.get((e, f"rho_{m}"), {}), e, root) for e in (g, c))
            if (runs.experiment == g).any() and (runs.experiment == c).any():
                rows.append((f"{g} - {c}", f"{m} tracks the gap in the group, not in its "
                             "control", "per-seed Spearman, group - control",
                             judged(paired_above(a, b, MIN_RHO), df, g,
                                    {k: a[k] for k in set(a) & set(b)}, root, c, runs)))
        if maze and (runs.experiment == maze[0]).any():
            g, wanted, family = maze
            rhos = {s: v for s, v in by.get((g, f"rho_{m}"), {}).items()
                    if v == v and s in wanted}
            v = judged(transfer(list(rhos.values()), MIN_RHO), df, g, rhos, root, runs=runs,
                       wanted=wanted)
            rows.append((g, f"{m} tracks the gap over training (a maze group)",
                         "per-seed Spearman with the gap", replace(v, family=family)))
    gains = run_gains(runs, seeds, df)
    for m, positive in ACROSS.items():
        x, y = runs[f"last_{m}"].to_numpy(), gains
        keep = ~(np.isnan(x) | np.isnan(y))
        rows.append(("all with-aux runs", f"(beyond the paper) runs whose tasks share heads "
                     f"({m} {'high' if positive else 'low'}) transfer more",
                     f"Spearman of {m} at the last point with the run's gain",
                     across_runs(x[keep], y[keep], positive, root, runs, maze)))
    for g, c in CONTROLS.items():
        a, b = (registered_values(by.get((e, "last_causal"), {}), e, root) for e in (g, c))
        if a and b:
            v = judged(paired_above(a, b, 0.05), df, g, a, root, c)
            rows.append((f"{g} - {c}", "ablating the aux tasks' top-k heads hurts the main task "
                         "past L_main more with the related auxiliary than with the control's",
                         "extra drop (top-k vs random k heads), group - control",
                         at_floor(v, seeds, (g, c), set(a) & set(b))))
    return Section("Attention heads (App. B)", TEXT + within_experiments(runs, gains),
                   [per_seed_figure(runs, root), scatter(runs, gains, root)],
                   [claims_table(rows, "heads")])


def judged(v: Verdict, df: pd.DataFrame, g: str, values: dict[int, float], root: Path,
           control: str | None = None, runs: pd.DataFrame | None = None,
           wanted: list[int] | None = None) -> Verdict:
    """The registered conditions: pending until every registered seed (`wanted` where an
    amendment names them) has its run with head metrics (on both sides); a seed whose rho is
    undefined (fewer than MIN_POINTS points where the main task works) counts and is said; more
    than half of them undefined makes it n/a."""
    exps = [(g, WITH_AUX)] + ([(control, WITH_AUX)] if control else [])
    have = set(values)
    if runs is not None:  # the seeds whose runs recorded heads, on every side
        sides = [set(runs[runs.experiment == e].seed) for e, _ in exps]
        have = set.intersection(*sides) if sides else have
        wanted = wanted or registration.load(root).seeds_for(g)
        if wanted is not None:
            have &= set(wanted)
            if not set(wanted) <= have:
                return pending(v, len(have), len(wanted))
    v = registered(v, df, exps, have, root)
    undefined = len(have - set(values))
    if v.outcome == PENDING or not undefined:
        return v
    why = (f"rho undefined on {undefined} of {len(have)} seeds (fewer than {MIN_POINTS} "
           f"points where the main task works in distribution)")
    if 2 * undefined > len(have):
        return not_applicable(v, "; ".join(filter(None, [why, v.note])))
    return replace(v, note="; ".join(filter(None, [v.note, why])))


def at_floor(v: Verdict, seeds: pd.DataFrame, exps: tuple[str, str], have: set[int]) -> Verdict:
    """The causal test where the main task does not extrapolate with aux on either side: an
    ablation cannot lower an accuracy already at 0, so the drop is 0 by construction."""
    levels = {e: float(np.mean([x for s, x in per_seed_values(seeds, e, "acc_past_main_with_aux")
                                .items() if s in have] or [math.nan])) for e in exps}
    return contrast_at_floor(v, levels, "ablating heads has nothing to lower")


def run_gains(runs: pd.DataFrame, seeds: pd.DataFrame, df: pd.DataFrame) -> np.ndarray:
    """Each run's gain: its accuracy past L_main with aux minus the main task alone at that
    seed (its experiment's baseline, or for one without (an ablation) that of an experiment
    with the same main task and length: the same main-only run)."""
    main = df[df.role == "main"].drop_duplicates("experiment").set_index("experiment")
    signature = {e: (r.task, int(r.train_max_length)) for e, r in main.iterrows()}
    alone = seeds.dropna(subset=["acc_past_main_main_only"])
    out = []
    for r in runs.itertuples():
        with_aux = per_seed_values(seeds, r.experiment, "acc_past_main_with_aux")
        same = alone[(alone.seed == r.seed) & alone.experiment.map(
            lambda e, r=r: signature.get(e) == signature.get(r.experiment))]
        base = float(same.acc_past_main_main_only.iloc[0]) if len(same) else math.nan
        out.append(with_aux.get(r.seed, math.nan) - base)
    return np.asarray(out, dtype=float)


def across_runs(x: np.ndarray, y: np.ndarray, positive: bool, root: Path,
                runs: pd.DataFrame, maze: tuple[str, list[int], str] | None) -> Verdict:
    rho = spearman(x, y) if len(x) >= 3 else math.nan
    lo, hi = bootstrap_ci(x, y, spearman)
    sign = 1 if positive else -1  # the claim's direction, as a positive correlation
    p_yes = permutation_p(sign * x, y, spearman) if len(x) >= 3 else math.nan
    p_no = permutation_p(sign * x, y, spearman, greater=False) if len(x) >= 3 else math.nan
    v = Verdict("inconclusive", Interval(rho, lo, hi, len(x)), "yes if the one-sided "
                "permutation p (10,000 orders, Holm) of Spearman's rho in the claimed direction "
                "is below 0.05", p_yes, p_no).decided()
    v = replace(v, min_effect=-math.inf)
    reg = registration.load(root)  # pending until every registered with-aux run has heads
    wanted = {e: reg.seeds_for(e) for e in (*GROUPS, *CONTROLS, *CONTROLS.values())}
    if maze:
        wanted[maze[0]] = maze[1]
    short = [e for e, w in wanted.items()
             if w and not set(w) <= set(runs[runs.experiment == e].seed)]
    note = (f"{len(x)} runs so far; not all registered runs of "
            f"{', '.join(short)} have head metrics yet")
    return replace(v, outcome=PENDING, note=note) if short else v


def within_experiments(runs: pd.DataFrame, gains: np.ndarray) -> str:
    """The across-run correlation with the experiments held apart (exploratory, not registered):
    runs of different experiments differ in tasks as well as in transfer, so the pooled rho
    could come from the experiments alone. Gains are shuffled only among runs of the same
    experiment, and each experiment's own rho is listed."""
    out = []
    for m, positive in ACROSS.items():
        x = runs[f"last_{m}"].to_numpy()
        keep = ~(np.isnan(x) | np.isnan(gains))
        if keep.sum() < 3:
            continue
        exps = runs.experiment.to_numpy()[keep]
        sign = 1 if positive else -1
        p = permutation_p(sign * x[keep], gains[keep], spearman, strata=exps)
        own = [f"{e} {spearman(x[keep][exps == e], gains[keep][exps == e]):+.2f}"
               for e in sorted(set(exps)) if np.ptp(gains[keep][exps == e]) > 0]
        out.append(f"{m}: rho {spearman(x[keep], gains[keep]):+.3f}, p {p:.3g} with gains "
                   f"shuffled within experiments; per experiment whose gain varies: "
                   f"{', '.join(own)}")
    if not out:
        return ""
    return (" Across runs, with the experiments held apart (exploratory, not registered; "
            f"one-sided, 10,000 within-experiment shuffles): {'; '.join(out)}.")


def per_seed_figure(runs: pd.DataFrame, root: Path) -> Path:
    """The tracking and causal claims seed by seed: each run's rho with the gap per metric, and
    its causal extra drop, by experiment (groups and their controls side by side)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    names = sorted(runs.experiment.unique())
    for ax, col, label in zip(axes, [f"rho_{m}" for m in TRACKING] + ["last_causal"],
                              [f"Spearman of {m} with the gap" for m in TRACKING]
                              + ["causal extra drop past L_main"], strict=True):
        for i, name in enumerate(names):
            v = runs.loc[runs.experiment == name, col].dropna()
            ax.scatter(np.full(len(v), i), v, s=16)
        ax.axhline(0, color="0.6", lw=0.8)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set(ylabel=label)
    fig.tight_layout()
    path = root / "fig_heads_per_seed.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def scatter(runs: pd.DataFrame, gains: np.ndarray, root: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    family = runs.experiment.str.extract(r"^([a-z]+\d?)", expand=False)
    for name in sorted(family.unique()):
        sel = (family == name).to_numpy()
        for ax, m in zip(axes, ACROSS, strict=True):
            ax.scatter(runs[f"last_{m}"][sel], gains[sel], label=name, s=18)
    for ax, m in zip(axes, ACROSS, strict=True):
        ax.set(xlabel=f"{m} at the last point (band in_dist)", ylabel="transfer gain")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path = root / "fig_heads_across_runs.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


TEXT = (f"Recorded while training (10 points a run). A run's rho: Spearman of the metric with "
        f"the generalization gap over the points where the main task's in-distribution "
        f"accuracy is at least {COUNTED} (at least {MIN_POINTS} points). Figures: per seed, "
        "each run's rho for each metric and its causal extra drop, by experiment; each with-aux "
        "run's head sharing at its last point against its transfer gain, coloured by "
        "experiment family.")
