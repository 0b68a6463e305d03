"""The paper's figures redrawn from our runs, each beside the paper's claim.

A folder holding several experiments (a sweep, or a whole suite) gets one report with a section
per paper figure. Experiments say which figure they redraw (`figure:` in the experiment file,
recorded in each run's manifest). Each figure kind is a small function registered here:

- groups (Figs 3, 4, 6, 7) and controls (Fig 8): each experiment's accuracy-vs-length panels;
- single-auxiliary ablations (Fig 14): accuracy past the main length per auxiliary set;
- length ratio (Fig 10): the gap heatmap beside the paper's;
- training dynamics (Fig 11): main-task accuracy per length over steps, per seed;
- RoPE vs NoPE (Fig 12): the gap per group, both encodings.

Every figure adds a table row per claim: what the paper says, what we measured, and whether it
reproduces. The criteria are fixed in code (below), never tuned to the outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from lgtransfer.report.render import Section, pyplot
from lgtransfer.results import final_curves
from lgtransfer.stats import mean_ci, spearman

# Fig 10 of the paper: generalization gap, mean of 3 seeds; rows L_main, columns L_aux
RATIO_LENGTHS = [4, 8, 16, 32, 64, 128, 256]
PAPER_RATIO_GAP = {
    256: [0.91, 0.94, 0.93, 0.87, 0.63, 0.20, 0.00],
    128: [0.94, 0.95, 0.91, 0.36, 0.04, 0.00, 0.34],
    64: [0.95, 0.87, 0.72, 0.09, 0.00, 0.04, 0.66],
    32: [0.90, 0.72, 0.15, 0.00, 0.16, 0.34, 0.87],
    16: [0.60, 0.03, 0.00, 0.23, 0.67, 0.90, 0.95],
    8: [0.28, 0.00, 0.27, 0.74, 0.91, 0.91, 0.89],
    4: [0.00, 0.41, 0.65, 0.78, 0.78, 0.78, 0.75],
}
# Fig 14: the auxiliary task the paper found more useful on its own comes first
MORE_RELATED_FIRST = [("no_carry", "carry_only"), ("reverse", "capitalize")]

PAPER_ORDER = ["3a", "3b", "3c", "4a", "4c", "6", "7", "8", "9", "14", "10", "11", "12", "13",
               "15"]
FigureFn = Callable[[pd.DataFrame, pd.DataFrame, Path], Section]
FIGURES: dict[str, tuple[str, FigureFn]] = {}


def figure(*ids: str, title: str) -> Callable[[FigureFn], FigureFn]:
    def register(fn: FigureFn) -> FigureFn:
        for i in ids:
            FIGURES[i] = (title, fn)
        return fn
    return register


def _claims(rows: list[tuple[str, str, str, bool | None]]) -> pd.DataFrame:
    return pd.DataFrame([{"experiment": e, "paper": p, "ours": o,
                          "reproduces": "n/a" if ok is None else ("yes" if ok else "no")}
                         for e, p, o, ok in rows])


def _mean(seeds: pd.DataFrame, exp: str, col: str) -> float:
    v = seeds.loc[seeds.experiment == exp, col] if col in seeds else pd.Series(dtype=float)
    return float(v.astype(float).mean()) if len(v.dropna()) else float("nan")


def _panels(df: pd.DataFrame, out: Path) -> list[Path]:
    """Each experiment's own accuracy-vs-length figure (written by its own report)."""
    folders = dict.fromkeys(out / Path(run).parent for run in df.run.unique())
    return [f / "report.png" for f in folders if (f / "report.png").exists()]


# ----------------------------------------------------------------------------- figures


@figure("3a", "3b", "3c", "4a", "4c", "6", "7", title="Task groups (Figs 3, 4, 6, 7)")
def groups(df: pd.DataFrame, seeds: pd.DataFrame, out: Path) -> Section:
    rows = []
    for exp in seeds.experiment.unique():
        alone, mgl_with, mgl_alone = (_mean(seeds, exp, c) for c in (
            "ood_acc_main_only", "mgl_with_aux", "mgl_main_only"))
        n = int((seeds.experiment == exp).sum())
        ours = (f"alone {alone:.1%} past L_main; max gen. length {mgl_with:.1f} with aux vs "
                f"{mgl_alone:.1f} alone (mean of {n} seeds)")
        ok = None if np.isnan(alone) or np.isnan(mgl_with) else bool(
            alone <= 0.05 and mgl_with > mgl_alone)
        rows.append((exp, "alone fails past L_main; with aux it extrapolates further", ours, ok))
    return Section("", "", _panels(df, out), [_claims(rows)])


@figure("8", title="Controls (Fig 8)")
def controls(df: pd.DataFrame, seeds: pd.DataFrame, out: Path) -> Section:
    rows = []
    for exp in seeds.experiment.unique():
        gains = seeds.loc[seeds.experiment == exp, "transfer_gain"].dropna().to_numpy(float)
        if not len(gains):
            rows.append((exp, "no transfer", "no baseline to compare with", None))
            continue
        lo, hi = mean_ci(gains)
        spread = gains.std(ddof=1) if len(gains) > 1 else 0.0
        ours = f"transfer gain {gains.mean():+.2f} lengths (95% CI {lo:+.2f}..{hi:+.2f})"
        rows.append((exp, "no transfer: gain within the seed spread", ours,
                     bool(abs(gains.mean()) <= max(spread, 0.5) or lo <= 0 <= hi)))
    return Section("", "", _panels(df, out), [_claims(rows)])


@figure("14", title="Single-auxiliary ablations (Fig 14)")
def ablations(df: pd.DataFrame, seeds: pd.DataFrame, out: Path) -> Section:
    final = final_curves(df[df.variant == "with_aux"])
    aux_sets = {e: tuple(sorted(s[s.role == "aux"].task.unique()))
                for e, s in final.groupby("experiment")}
    acc = {e: _mean(seeds, e, "ood_acc_with_aux") for e in aux_sets}
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.6 * len(acc) + 2, 3.6))
    names = sorted(acc, key=lambda e: (-len(aux_sets[e]), e))
    ax.bar(range(len(names)), [acc[e] for e in names], color="tab:blue")
    ax.set_xticks(range(len(names)), [" + ".join(aux_sets[e]) for e in names], fontsize=8)
    ax.set(ylabel="main acc. past L_main (mean of seeds)", title="aux tasks used", ylim=(0, 1))
    fig.tight_layout()
    path = out / "fig14_ablations.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    rows = []
    both = [e for e in names if len(aux_sets[e]) > 1]
    singles = [e for e in names if len(aux_sets[e]) == 1]
    for e in both:
        for s in singles:
            rows.append((s, f"weaker than both ({e})", f"{acc[s]:.2f} vs {acc[e]:.2f}",
                         bool(acc[s] < acc[e])))
    by_task = {aux_sets[s][0]: s for s in singles}
    for first, second in MORE_RELATED_FIRST:
        if first in by_task and second in by_task:
            a, b = acc[by_task[first]], acc[by_task[second]]
            rows.append((f"{first} vs {second}", f"{first} transfers more than {second}",
                         f"{a:.2f} vs {b:.2f}", bool(a > b)))
    return Section("", "Bars: mean main-task accuracy on (L_main, L_aux] over seeds.",
                   [path], [_claims(rows)])


@figure("10", title="Length ratio (Fig 10)")
def ratio(df: pd.DataFrame, seeds: pd.DataFrame, out: Path) -> Section:
    lengths = df.groupby("experiment").apply(lambda s: (
        int(s[s.role == "main"].train_max_length.max()),
        int(s[s.role == "aux"].train_max_length.max())), include_groups=False)
    gaps = {lengths[e]: _mean(seeds, e, "gap") for e in seeds.experiment.unique()}
    rows_m = sorted({m for m, _ in gaps}, reverse=True)
    cols_a = sorted({a for _, a in gaps})
    ours = np.array([[gaps.get((m, a), np.nan) for a in cols_a] for m in rows_m])
    paper = np.array([[PAPER_RATIO_GAP.get(m, [np.nan] * 7)[RATIO_LENGTHS.index(a)]
                       if a in RATIO_LENGTHS else np.nan for a in cols_a] for m in rows_m])
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    for ax, grid, title in ((axes[0], ours, "ours"), (axes[1], paper, "paper (Fig 10)")):
        im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(cols_a)), cols_a)
        ax.set_yticks(range(len(rows_m)), rows_m)
        ax.set(xlabel="L_aux", ylabel="L_main", title=f"generalization gap, {title}")
        for (i, j), v in np.ndenumerate(grid):
            if not np.isnan(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w")
    fig.colorbar(im, ax=axes, shrink=0.8)
    path = out / "fig10_ratio.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)

    def band(grid: np.ndarray, test: Callable[[float], bool]) -> float:
        v = [grid[i, j] for i, m in enumerate(rows_m) for j, a in enumerate(cols_a)
             if test(a / m) and not np.isnan(grid[i, j])]
        return float(np.mean(v)) if v else float("nan")

    near, far = (band(ours, lambda r: r in (0.5, 2.0)), band(ours, lambda r: r >= 4 or r <= .25))
    ok = None if np.isnan(near) or np.isnan(far) else bool(near < far)
    both = ~np.isnan(ours) & ~np.isnan(paper)
    corr = (f"; Spearman with the paper's cells {spearman(ours[both], paper[both]):.2f}"
            if both.sum() > 2 else "")
    rows = [("ratio sweep", "gap smallest at aux/main ratios 0.5 and 2, large at >= 4",
             f"mean gap {near:.2f} at ratio 0.5/2 vs {far:.2f} at ratio >= 4{corr}", ok)]
    return Section("", "", [path], [_claims(rows)])


@figure("11", title="Training dynamics (Fig 11)")
def dynamics(df: pd.DataFrame, seeds: pd.DataFrame, out: Path) -> Section:
    main = df[(df.role == "main") & (df.variant == "with_aux")]
    l_main = int(main.train_max_length.max())
    l_aux = int(df[df.role == "aux"].train_max_length.max())
    seed_list = sorted(main.seed.unique())
    plt = pyplot()
    fig, axes = plt.subplots(1, len(seed_list), figsize=(4.2 * len(seed_list), 3.8), squeeze=False)
    cmap = plt.get_cmap("viridis")
    top = int(main.length.max())
    for ax, seed in zip(axes[0], seed_list, strict=True):
        sel = main[main.seed == seed]
        for n, curve in sel.groupby("length"):
            curve = curve.sort_values("step")
            ax.plot(curve.step, curve.accuracy, color=cmap(n / top), lw=0.8)
        ax.set(title=f"seed {seed}", xlabel="step", ylabel="main-task accuracy", ylim=(-.03, 1.03))
    fig.suptitle(f"accuracy per length over training (colour: length 1..{top}); "
                 f"L_main {l_main}, L_aux {l_aux}")
    fig.tight_layout()
    path = out / "fig11_dynamics.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    late = main[main.step > main.step.max() / 2]
    ind = late[late.length <= l_main]
    mid = late[(late.length > l_main) & (late.length <= l_aux)]
    far = late[late.length > l_aux]

    def spread(sel: pd.DataFrame) -> float:  # mean over (seed, length) of the std over steps
        return float(sel.groupby(["seed", "length"]).accuracy.std().mean()) if len(sel) else 0.0

    rows = [("in distribution", f"lengths 1-{l_main} rise fast and stay",
             f"mean {ind.accuracy.mean():.2f} over the second half", bool(
                 ind.accuracy.mean() >= 0.9)),
            ("transfer range", f"lengths {l_main + 1}-{l_aux} highly variable",
             f"std over steps {spread(mid):.2f} vs {spread(ind):.2f} in distribution",
             bool(spread(mid) > spread(ind)) if len(mid) else None),
            ("beyond aux", f"lengths > {l_aux} stay low",
             f"mean {far.accuracy.mean():.2f}" if len(far) else "not evaluated",
             bool(far.accuracy.mean() < 0.1) if len(far) else None)]
    return Section("", "", [path], [_claims(rows)])


@figure("12", "13", title="RoPE vs NoPE (Figs 12-13)")
def nope(df: pd.DataFrame, seeds: pd.DataFrame, out: Path) -> Section:
    enc = df.groupby("experiment").pos_encoding.first()
    gap = seeds.groupby("experiment").gap.agg(["mean", "std"]).fillna(0)
    groups = sorted({e.removesuffix(f"-{enc[e]}") for e in gap.index})
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.8 * len(groups) + 2, 3.6))
    rows = []
    for k, pos in enumerate(("rope", "nope")):
        means = [gap["mean"].get(f"{g}-{pos}", np.nan) for g in groups]
        stds = [gap["std"].get(f"{g}-{pos}", 0) for g in groups]
        ax.bar(np.arange(len(groups)) + 0.4 * k, means, 0.4, yerr=stds, label=pos)
    ax.set_xticks(np.arange(len(groups)) + 0.2, groups)
    ax.set(ylabel="generalization gap (mean ± std)", ylim=(0, 1))
    ax.legend()
    fig.tight_layout()
    path = out / "fig12_nope.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    for g in groups:
        r, n = gap["mean"].get(f"{g}-rope", np.nan), gap["mean"].get(f"{g}-nope", np.nan)
        rows.append((g, "RoPE gap lower than NoPE", f"RoPE {r:.2f} vs NoPE {n:.2f}",
                     None if np.isnan(r) or np.isnan(n) else bool(r < n)))
    return Section("", "", [path], [_claims(rows)])


@figure("9", "15", title="Pretrained models (Figs 9, 15)")
def pretrained_models(df: pd.DataFrame, seeds: pd.DataFrame, out: Path) -> Section:
    """Each experiment's own figures: a stage sweep's (`stages.py`), else its report.png."""
    figures = []
    for folder in dict.fromkeys(out / Path(run).parent for run in df.run.unique()):
        stages = [folder / n for n in ("stages.png", "stages_curves.png") if (folder / n).exists()]
        figures += stages or [p for p in [folder / "report.png"] if p.exists()]
    return Section("", "", figures)


def figure_sections(df: pd.DataFrame, seeds: pd.DataFrame, out: Path) -> list[Section]:
    """A section per figure the experiments under `out` redraw, in the paper's order."""
    sections = []
    done = df[df.status == "complete"]
    by_title: dict[str, list[str]] = {}
    for fig_id in sorted(done.figure.unique(), key=lambda f: PAPER_ORDER.index(f)
                         if f in PAPER_ORDER else len(PAPER_ORDER)):
        if fig_id in FIGURES:
            by_title.setdefault(FIGURES[fig_id][0], []).append(fig_id)
    for title, ids in by_title.items():
        fn = FIGURES[ids[0]][1]
        sel = done[done.figure.isin(ids)]
        sel_seeds = seeds[seeds.figure.isin(ids)] if len(seeds) else seeds
        section = fn(sel, sel_seeds, out)
        section.title = title
        sections.append(section)
    return sections
