"""RoPE vs NoPE (Figs 12-13): the generalization gap per task group, both position encodings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lgtransfer.analysis.report.figures.registry import claims_table, figure, num, per_seed_values
from lgtransfer.analysis.report.render import Section, pyplot
from lgtransfer.analysis.verdicts import paired_above

MIN_EFFECT = 0.05  # paired per seed: NoPE's gap above RoPE's by at least 0.05


@figure("12", "13", title="RoPE vs NoPE (Figs 12-13)")
def nope(df: pd.DataFrame, seeds: pd.DataFrame, out: Path) -> Section:
    enc = df.groupby("experiment").pos_encoding.first()
    gap = seeds.groupby("experiment").gap.agg(["mean", "std"])  # an undefined gap stays nan
    gap["std"] = gap["std"].fillna(0.0)  # one seed: no spread to draw
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
        verdict = paired_above(per_seed_values(seeds, f"{g}-nope", "gap"),
                               per_seed_values(seeds, f"{g}-rope", "gap"), MIN_EFFECT)
        ours = f"gap RoPE {num(r)} vs NoPE {num(n)}; NoPE - RoPE"
        if verdict.measured.n == 0 and {f"{g}-rope", f"{g}-nope"} <= set(seeds.experiment):
            # both sides ran, but no seed has a gap on both: say so rather than drop the claim
            verdict, ours = None, (f"gap RoPE {num(r)} vs NoPE {num(n)}: no seed has a gap on "
                                   "both sides (a run that did not learn its training range "
                                   "has none; see Calibration)")
        rows.append((g, "RoPE transfers better: its gap is lower than NoPE's", ours, verdict))
    return Section("", "", [path], [claims_table(rows, "position")])
