"""Training dynamics (Fig 11): main-task accuracy per length over training steps, per seed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lgtransfer.report.figures.registry import claims_table, figure
from lgtransfer.report.render import Section, pyplot


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
    return Section("", "", [path], [claims_table(rows)])
