"""The causal test over k in the reports (`analysis/heads_causal.py` computes it): the figure
`fig_causal_k.png` (drop against k, the auxiliary tasks' top-k heads and layer-matched random
heads, one panel per experiment, each seed thin and the mean bold), the curve table, and, in a
folder whose registration names the k it tests (`causal_over_k`), the verdict rows.

- `causal_k_claims`: the suite report of a folder of runs that recorded the test (their own
  heads.jsonl), with the registered claims;
- `causal_k_section`: an experiment's report, from `lgt heads`'s rows (DIR/heads/heads.jsonl)
  or the runs' recorded ones: the curve and figure, no verdict (nothing registered there).
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import replace
from pathlib import Path

import pandas as pd

from lgtransfer.analysis import registration
from lgtransfer.analysis.heads_causal import (
    MEASURES,
    PREFIX,
    causal_k_verdict,
    control_contrast,
    curve_summary,
    curves,
    intact_level,
    is_curve_row,
    seed_statistic,
)
from lgtransfer.analysis.report.figures.registry import claims_table, registered
from lgtransfer.analysis.report.render import Section, pyplot
from lgtransfer.analysis.verdicts import FLOOR_LEVEL, NOT_APPLICABLE, not_applicable, pending
from lgtransfer.config.schema import WITH_AUX

FIGURE = "fig_causal_k.png"
MEASURE_NAMES = {"acc": "exact match", "tok": "token accuracy"}
TEXT = ("The causal test over k, at each with-aux run's last step: the k heads most important "
        "to the auxiliary tasks (importance averaged over them and both bands) ablated "
        "together, against random k-head sets with the same number of heads in each layer "
        "(several draws), on the main task at every length past L_main up to L_aux. "
        "drop = intact accuracy - accuracy under the ablation, averaged over those lengths; a "
        "seed's statistic is drop(aux heads) - drop(random heads). A k is saturated where "
        "top-k ablation puts the main task at the floor on at least half of the seeds (less "
        f"than {FLOOR_LEVEL} above what it keeps with every attention head ablated: 0 in exact "
        "match, above 0 in token accuracy); "
        "only a k that is not can show which heads matter. Figure: drop against k, each seed "
        "thin, the mean over seeds bold.")


def curve_rows(path: Path) -> list[dict]:
    """The test-over-k rows of a heads.jsonl. Only their lines are parsed: a run's file holds
    about 100 times as many other rows, and a report reads every run's (a torn last line, which
    the other readers warn of, is skipped)."""
    rows = []
    with path.open() as f:
        for line in f:
            if PREFIX in line:
                with contextlib.suppress(json.JSONDecodeError):
                    rows.append(json.loads(line))
    return [r for r in rows if is_curve_row(r)]


def runs_rows(root: Path, runs: dict[str, tuple[str, int]]) -> dict[str, tuple]:
    """run -> (experiment, seed, its recorded test-over-k rows), for runs that have some."""
    out = {}
    for run, (exp, seed) in runs.items():
        path = root / run / "heads.jsonl"
        if path.is_file():
            rows = curve_rows(path)
            if rows:
                out[run] = (exp, seed, rows)
    return out


def plot_curves(table: pd.DataFrame, path: Path, measure: str = "acc") -> Path:
    """Drop against k per experiment: aux heads and random heads, seeds thin, mean bold."""
    plt = pyplot()
    names = sorted(table.experiment.unique())
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False,
                             sharey=True)
    for ax, name in zip(axes[0], names, strict=True):
        sel = table[table.experiment == name]
        for col, color, label in (("drop_aux", "C3", "aux tasks' top-k heads"),
                                  ("drop_rand", "C0", "random heads, same layers")):
            for _, g in sel.groupby("seed"):
                g = g.sort_values("k")
                ax.plot(g.k, g[col], color=color, lw=0.6, alpha=0.35)
            mean = sel.groupby("k")[col].mean()
            ax.plot(mean.index, mean.to_numpy(), color=color, lw=2.2, marker="o", ms=4,
                    label=label)
        summary = curve_summary(sel)
        for k in summary[summary.saturated].k:
            ax.axvspan(k - 0.4, k + 0.4, color="0.85", zorder=0)
        ax.set_xticks(sorted(sel.k.unique()))
        ax.set(title=f"{name} ({sel.seed.nunique()} seeds)", xlabel="k (heads ablated)")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(f"main-task drop past L_main ({MEASURE_NAMES[measure]})")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("causal test over k (grey: saturated k, the main task at the floor under "
                 "top-k ablation on at least half of the seeds)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def curve_table(table: pd.DataFrame, measure: str = "acc") -> pd.DataFrame:
    """Per experiment and k: seeds, intact accuracy, the two drops and the statistic as mean
    +- standard deviation over seeds, seeds at the floor under top-k ablation, saturated (all
    in `measure`: acc, exact match; tok, token accuracy)."""
    def pm(mean: float, sd: float) -> str:
        return f"{mean:+.3f}" + ("" if math.isnan(sd) else f" ± {sd:.3f}")

    s = curve_summary(table)
    return pd.DataFrame({
        "experiment": s.experiment, "measure": MEASURE_NAMES[measure], "k": s.k, "seeds": s.n,
        "intact": [f"{x:.3f}" for x in s.intact],
        "drop (aux heads)": [pm(m, d) for m, d in zip(s.drop_aux, s.drop_aux_sd, strict=True)],
        "drop (random heads)": [pm(m, d) for m, d in zip(s.drop_rand, s.drop_rand_sd,
                                                         strict=True)],
        "aux - random": [pm(m, d) for m, d in zip(s.statistic, s.statistic_sd, strict=True)],
        "at floor": [f"{a} of {n}" for a, n in zip(s.at_floor, s.n, strict=True)],
        "saturated": ["yes" if x else "no" for x in s.saturated]})


def causal_k_claims(done: pd.DataFrame, seeds: pd.DataFrame, root: Path,
                    figure: str = FIGURE) -> Section | None:
    """The suite's section: figure (`figure`, in `root`), curve table and, where the folder's
    registration names `causal_over_k`, its claims; None where no run recorded the test."""
    with_aux = done[done.variant == WITH_AUX].drop_duplicates("run")
    runs = {r.run: (r.experiment, int(r.seed)) for r in with_aux.itertuples()}
    by_run = runs_rows(root, runs)
    reg = registration.load(root).causal_k
    table = curves(by_run, reg.measure if reg else "acc")
    if not len(table):
        return None
    tables = measure_tables(by_run)
    text = TEXT
    if reg is None:
        text += " No k is registered here (`causal_over_k`): the curve only, no verdict."
    else:
        rows = [claim_row(c, table, done, root, reg) for c in reg.claims]
        tables.append(claims_table([r for r in rows if r is not None], reg.family))
    return Section("Causal test over k (attention heads)", text,
                   [plot_curves(table, root / figure, reg.measure if reg else "acc")], tables)


def measure_tables(by_run: dict[str, tuple]) -> list[pd.DataFrame]:
    """One curve table in each measure the runs recorded (exact match, token accuracy)."""
    return [curve_table(c, m) for m in MEASURES if len(c := curves(by_run, m))]


def claim_row(claim: str, table: pd.DataFrame, done: pd.DataFrame, root: Path,
              reg: registration.CausalK) -> tuple | None:
    """(experiment, claim, measured, verdict) of one registered claim: an experiment (`g1`)
    or a contrast (`g1 - c1`)."""
    group, _, control = (x.strip() for x in claim.partition(" - "))
    if not (table.experiment == group).any():
        return None
    wanted = registration.load(root).seeds_for(group)
    a = seed_statistic(table, group, reg.k)
    if not control:
        v = causal_k_verdict(table, group, reg.k, reg.min_effect)
        have = set(a)
        measured = (f"drop(aux heads) - drop(random heads) at k = {reg.k}, over the band, "
                    f"in {MEASURE_NAMES[reg.measure]}")
        paper = "the auxiliary heads' drop exceeds random heads', seed by seed"
        exps = [(group, WITH_AUX)]
    else:
        b = seed_statistic(table, control, reg.k)
        have = set(a) & set(b)
        v = control_contrast(a, b, intact_level(table, control, have), reg.min_effect)
        own = causal_k_verdict(table, group, reg.k)
        if own.outcome == NOT_APPLICABLE:  # saturated in the group
            v = not_applicable(v, own.note)
        measured = f"the statistic at k = {reg.k} ({MEASURE_NAMES[reg.measure]}), group - control"
        paper = "the auxiliary heads' extra drop is larger with the related auxiliary"
        exps = [(group, WITH_AUX), (control, WITH_AUX)]
    if wanted is not None and not set(wanted) <= have:
        return (claim, paper, measured, pending(v, len(have & set(wanted)), len(wanted)))
    if v.outcome != NOT_APPLICABLE:  # learning: n/a where a task missed its own range
        judged = registered(v, done, exps, have, root)
        note = "; ".join(filter(None, [v.note, judged.note if judged.note != v.note else ""]))
        v = replace(judged, note=note)
    return (claim, paper, measured, v)


def causal_k_section(path: Path, figures: Path | None = None) -> Section | None:
    """An experiment folder's curve over k: from `lgt heads`'s rows where they have it, else
    from the runs' own recorded rows; the figure goes into `figures` (default: `path`)."""
    measured = path / "heads" / "heads.jsonl"
    by_run: dict[str, tuple] = {}
    for r in curve_rows(measured) if measured.is_file() else []:
        by_run.setdefault(r["run"], (r["experiment"], int(r["seed"]), []))[2].append(r)
    recorded = [path / "heads.jsonl", *sorted(path.glob("*/heads.jsonl"))]  # a run, or runs
    for d in recorded if not by_run else []:
        rows = curve_rows(d) if d.is_file() and d != measured else []
        if rows:
            by_run[d.parent.name] = (rows[0]["experiment"], int(rows[0]["seed"]), rows)
    table = curves(by_run)
    if not len(table):
        return None
    return Section("Causal test over k (attention heads)", TEXT,
                   [plot_curves(table, (figures or path) / FIGURE)], measure_tables(by_run))
