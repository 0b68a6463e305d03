"""RoPE vs NoPE (Figs 12-13): the generalization gap per task group, both position encodings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lgtransfer.report.figures.registry import claims_table, figure
from lgtransfer.report.render import Section, pyplot


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
    return Section("", "", [path], [claims_table(rows)])
