"""Length ratio (Fig 10): the generalization gap over (L_main, L_aux) beside the paper's; transfer
is best when the auxiliary length is half or twice the main one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lgtransfer.analysis.report.figures.registry import (
    claims_table,
    figure,
    per_seed_values,
    seed_mean,
)
from lgtransfer.analysis.report.render import Section, pyplot
from lgtransfer.analysis.signflip import permutation_p
from lgtransfer.analysis.stats import bootstrap_ci, spearman
from lgtransfer.analysis.verdicts import (
    INCONCLUSIVE,
    Interval,
    Verdict,
    paired_above,
)

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


@figure("10", title="Length ratio (Fig 10)")
def ratio(df: pd.DataFrame, seeds: pd.DataFrame, out: Path) -> Section:
    lengths = df.groupby("experiment").apply(lambda s: (
        int(s[s.role == "main"].train_max_length.max()),
        int(s[s.role == "aux"].train_max_length.max())), include_groups=False)
    gaps = {lengths[e]: seed_mean(seeds, e, "gap") for e in seeds.experiment.unique()}
    rows_m = sorted({m for m, _ in gaps}, reverse=True)
    cols_a = sorted({a for _, a in gaps})
    ours = np.array([[gaps.get((m, a), np.nan) for a in cols_a] for m in rows_m])
    paper = np.array([[paper_gap(m, a) for a in cols_a] for m in rows_m])
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    paper_title = "paper (Fig 10; off its grid, its mean at the ratio)"
    for ax, grid, title in ((axes[0], ours, "ours"), (axes[1], paper, paper_title)):
        im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(cols_a)), cols_a)
        ax.set_yticks(range(len(rows_m)), rows_m)
        ax.set(xlabel="L_aux", ylabel="L_main", title=f"generalization gap,\n{title}")
        for (i, j), v in np.ndenumerate(grid):
            if not np.isnan(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w")
    fig.colorbar(im, ax=axes, shrink=0.8)
    path = out / "fig10_ratio.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)

    near, far = ratio_bands(seeds, lengths)
    rows = [("ratio sweep", "gap smallest at aux/main ratios 0.5 and 2, large at >= 4",
             "per-seed mean gap at ratio >= 4 or <= 1/4 minus at 0.5 and 2",
             paired_above(far, near, MIN_EFFECT) if near and far else None),
            ("ratio pattern", "our cells' gaps rank like the paper's Fig 10",
             "Spearman over cells, ours against the paper's cell (or, off its grid, the mean "
             "of its cells at the same ratio)", pattern_verdict(gaps))]
    return Section("", "", [path], [claims_table(rows, "ratio")])


def ratio_bands(seeds: pd.DataFrame, lengths: pd.Series) -> tuple[dict[int, float], ...]:
    """seed -> the mean gap over cells at ratio 0.5 or 2 (near), and over cells at ratio >= 4
    or <= 1/4 (far)."""
    bands: tuple[dict[int, list[float]], ...] = ({}, {})
    for e in seeds.experiment.unique():
        m, a = lengths[e]
        band = 0 if a / m in (0.5, 2.0) else 1 if a / m >= 4 or a / m <= 0.25 else None
        if band is None:
            continue
        for seed, gap in per_seed_values(seeds, e, "gap").items():
            if not np.isnan(gap):
                bands[band].setdefault(seed, []).append(gap)
    near, far = ({s: float(np.mean(v)) for s, v in b.items()} for b in bands)
    return near, far


def paper_gap(m: int, a: int) -> float:
    """The paper's gap at (L_main, L_aux): its cell, or off its grid the mean of its cells at
    the same ratio a / m (nan if it has none)."""
    if m in PAPER_RATIO_GAP and a in RATIO_LENGTHS:
        return PAPER_RATIO_GAP[m][RATIO_LENGTHS.index(a)]
    same = [PAPER_RATIO_GAP[pm][j] for pm in PAPER_RATIO_GAP
            for j, pa in enumerate(RATIO_LENGTHS) if pa * m == a * pm]
    return float(np.mean(same)) if same else float("nan")


def pattern_verdict(gaps: dict[tuple[int, int], float]) -> Verdict:
    """Does the pattern over cells follow the paper's? Spearman's rho of our mean gaps against
    the paper's, with a bootstrap interval over cells."""
    cells = [(g, paper_gap(m, a)) for (m, a), g in gaps.items()]
    cells = [(g, p) for g, p in cells if not (np.isnan(g) or np.isnan(p))]
    ours = np.array([g for g, _ in cells], dtype=float)
    paper = np.array([p for _, p in cells], dtype=float)
    rho = spearman(ours, paper) if len(cells) >= 3 else float("nan")
    lo, hi = bootstrap_ci(ours, paper, spearman)
    iv = Interval(rho, lo, hi, len(cells))
    if len(cells) < 3:
        return Verdict(INCONCLUSIVE, iv, RULE)
    return Verdict(INCONCLUSIVE, iv, RULE, permutation_p(ours, paper, spearman),
                   permutation_p(ours, paper, spearman, greater=False)).decided()


RULE = ("yes if the exact permutation p (over orderings of the cells, Holm) of Spearman's rho "
        "> 0 is below 0.05; no if that of rho < 0 is; the interval: bootstrap over cells")
MIN_EFFECT = 0.05  # far ratios' gap above near ratios' by at least 0.05, seed by seed
