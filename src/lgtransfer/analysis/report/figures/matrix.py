"""The transfer matrix (beyond the paper): for every ordered pair of tasks, how much the main
task gains past its training length from the auxiliary one (a sweep file's `matrix:`). Is
transfer symmetric? The heatmap answers at a glance; each cell's verdict is `transfer`'s rule,
each unordered pair's symmetry verdict `within`'s (equal gains both ways, up to MIN_TRANSFER)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lgtransfer.analysis.report.figures.registry import (
    claims_table,
    figure,
    num,
    per_seed_values,
    seed_mean,
)
from lgtransfer.analysis.report.render import Section, pyplot
from lgtransfer.analysis.verdicts import FLOOR_LEVEL, MIN_TRANSFER, transfer, within


@figure("matrix", title="Transfer matrix (beyond the paper)")
def matrix(df: pd.DataFrame, seeds: pd.DataFrame, out: Path) -> Section:
    pairs = {e: (sel[sel.role == "main"].task.iloc[0], sel[sel.role == "aux"].task.iloc[0])
             for e, sel in df[df.variant == "with_aux"].groupby("experiment")
             if (sel.role == "aux").any()}
    tasks = sorted({t for pair in pairs.values() for t in pair})
    gains = {pair: per_seed_values(seeds, e, "acc_past_main_gain") for e, pair in pairs.items()}
    # the floor of a pair: both directions' main tasks at ~0 past L_main, with aux and alone
    level = {pair: max(seed_mean(seeds, e, c) for c in ("acc_past_main_with_aux",
                                                       "acc_past_main_main_only"))
             for e, pair in pairs.items()}
    mean = np.full((len(tasks), len(tasks)), np.nan)
    std = np.full_like(mean, np.nan)
    for (m, a), by_seed in gains.items():
        v = np.array([x for x in by_seed.values() if not np.isnan(x)])
        if len(v):
            i, j = tasks.index(m), tasks.index(a)
            mean[i, j], std[i, j] = v.mean(), v.std(ddof=1) if len(v) > 1 else 0.0
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.5 * len(tasks) + 2.5, 1.2 * len(tasks) + 1.5))
    im = ax.imshow(mean, cmap="RdBu", vmin=-1, vmax=1)
    ax.set_xticks(range(len(tasks)), tasks, rotation=30, ha="right")
    ax.set_yticks(range(len(tasks)), tasks)
    ax.set(xlabel="auxiliary task (long)", ylabel="main task (short)",
           title="gain in main-task accuracy past its training length")
    for i in range(len(tasks)):  # the diagonal: no pair, each task's own baseline
        ax.add_patch(plt.Rectangle((i - 0.5, i - 0.5), 1, 1, color="0.85"))
        ax.text(i, i, "(alone)", ha="center", va="center", fontsize=8, color="0.4")
    for (i, j), v in np.ndenumerate(mean):
        if not np.isnan(v):
            ax.text(j, i, f"{v:+.2f}\n± {std[i, j]:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    path = out / "fig_matrix.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    rows = [(f"{m} from {a}", f"(not in the paper) {m} borrows length from {a}",
             f"gain {num(float(np.nanmean(list(g.values()))) if g else np.nan)}",
             transfer(list(g.values()), MIN_TRANSFER)) for (m, a), g in sorted(gains.items())]
    for (m, a), g in sorted(gains.items()):  # symmetry: each unordered pair once
        if m < a and (a, m) in gains:
            rows.append((f"{m} <-> {a}", f"(not in the paper) {m} gains as much from {a} as "
                         f"{a} from {m}", f"gain of {m} from {a} minus {a} from {m}",
                         within(g, gains[(a, m)], MIN_TRANSFER,
                                floor=max(level[(m, a)], level[(a, m)]) < FLOOR_LEVEL)))
    text = ("Rows: the main task, trained short; columns: the auxiliary task, trained long. "
            "Each cell: mean ± std over seeds of the with-aux minus alone accuracy on "
            "(L_main, L_aux].")
    return Section("", text, [path], [claims_table(rows, "matrix")])
