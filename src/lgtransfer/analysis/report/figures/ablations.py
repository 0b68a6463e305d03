"""Single-auxiliary ablations (Fig 14): each auxiliary task alone transfers less than both, and
the more related one more than the other."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lgtransfer.analysis.report.figures.registry import (
    claims_table,
    figure,
    num,
    per_seed_values,
    registered,
    registered_values,
    seed_mean,
)
from lgtransfer.analysis.report.render import Section, pyplot
from lgtransfer.analysis.results import final_curves
from lgtransfer.analysis.verdicts import MIN_TRANSFER, Verdict, paired_above
from lgtransfer.config.schema import WITH_AUX

# Fig 14: the auxiliary task the paper found more useful on its own comes first
MORE_RELATED_FIRST = [("no_carry", "carry_only"), ("reverse", "capitalize")]
MIN_EFFECT = MIN_TRANSFER  # paired per seed: a difference counts from 5 points of accuracy


@figure("14", title="Single-auxiliary ablations (Fig 14)")
def ablations(df: pd.DataFrame, seeds: pd.DataFrame, out: Path) -> Section:
    final = final_curves(df[df.variant == "with_aux"])
    aux_sets = {e: tuple(sorted(s[s.role == "aux"].task.unique()))
                for e, s in final.groupby("experiment")}
    main_of = {e: s[s.role == "main"].task.iloc[0] for e, s in final.groupby("experiment")}
    acc = {e: seed_mean(seeds, e, "acc_past_main_with_aux") for e in aux_sets}
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
    by_seed = {e: registered_values(per_seed_values(seeds, e, "acc_past_main_with_aux"), e,
                                    out) for e in names}

    def judged(a: str, b: str) -> Verdict:  # a beats b, seed by seed, under the registration
        return registered(paired_above(by_seed[a], by_seed[b], MIN_EFFECT), df,
                          [(a, WITH_AUX), (b, WITH_AUX)], set(by_seed[a]) & set(by_seed[b]),
                          out)

    for e in both:  # a single auxiliary against the both-auxiliary run of its own ablation
        for s in singles:
            if main_of[s] == main_of[e] and set(aux_sets[s]) < set(aux_sets[e]):
                rows.append((s, f"weaker than both ({e})", f"{num(acc[s])} vs {num(acc[e])}; "
                             "both - single", judged(e, s)))
    by_task = {(main_of[s], aux_sets[s][0]): s for s in singles}
    for first, second in MORE_RELATED_FIRST:
        for main in sorted({m for m, _ in by_task}):
            if (main, first) not in by_task or (main, second) not in by_task:
                continue
            a, b = by_task[(main, first)], by_task[(main, second)]
            rows.append((f"{first} vs {second}", f"{first} transfers more than {second}",
                         f"{num(acc[a])} vs {num(acc[b])}; difference", judged(a, b)))
    return Section("", "Bars: mean main-task accuracy on (L_main, L_aux] over seeds.",
                   [path], [claims_table(rows, "ablations")])
