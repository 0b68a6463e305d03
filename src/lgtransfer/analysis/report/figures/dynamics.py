"""Training dynamics (Fig 11): main-task accuracy per length over training steps, per seed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lgtransfer.analysis.report.figures.registry import claims_table, figure
from lgtransfer.analysis.report.render import Section, pyplot
from lgtransfer.analysis.verdicts import above, below, paired_above


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
    late = main[main.step > main.step.max() / 2]  # the second half of training
    ind = late[late.length <= l_main]
    mid = late[(late.length > l_main) & (late.length <= l_aux)]
    far = late[late.length > l_aux]
    rows = [("in distribution", f"lengths 1-{l_main} rise fast and stay",
             "per-seed mean accuracy over the second half",
             above(list(per_seed(ind, "mean").values()), IN_DIST_LEVEL, "per-seed mean accuracy")),
            ("transfer range", f"lengths {l_main + 1}-{l_aux} highly variable",
             f"std over steps, lengths {l_main + 1}-{l_aux} minus 1-{l_main}",
             paired_above(per_seed(mid, "std"), per_seed(ind, "std"), MIN_EXTRA_STD)
             if len(mid) else None),
            ("beyond aux", f"lengths > {l_aux} stay low",
             "per-seed mean accuracy over the second half",
             below(list(per_seed(far, "mean").values()), BEYOND_LEVEL, "per-seed mean accuracy")
             if len(far) else None)]
    return Section("", TEXT, [path], [claims_table(rows, "dynamics")])


def per_seed(sel: pd.DataFrame, how: str) -> dict[int, float]:
    """seed -> the mean accuracy (`mean`), or the mean over lengths of the std of accuracy over
    steps (`std`: how much each length's curve moves), of a band of lengths."""
    if how == "mean":
        return {int(s): float(v) for s, v in sel.groupby("seed").accuracy.mean().items()}
    per_length = sel.groupby(["seed", "length"]).accuracy.std().groupby(level="seed").mean()
    return {int(s): float(v) for s, v in per_length.items()}


# The rules, fixed before any cpu result was seen: in distribution stays above 0.9; the
# transfer range's curves move by at least 0.05 more (std over steps) than the in-distribution
# ones, seed by seed; past the auxiliary length accuracy stays below 0.1.
IN_DIST_LEVEL, MIN_EXTRA_STD, BEYOND_LEVEL = 0.9, 0.05, 0.1
TEXT = ("Each band is judged over the second half of training, one number per seed, so the "
        "intervals have n = seeds.")
