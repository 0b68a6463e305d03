"""The across-run claim as the confirmatory registration tests it (issue 33, item 3): per head
metric, Spearman of the metric at a run's last point with the run's transfer gain, the gains
shuffled only within an experiment, over the experiments whose gain varies (`analysis/within.py`);
the pooled rho over every with-aux run is printed beside it as secondary. The rows sit in the
report family `across` (a registration names them: `rows: across`, `row: all with-aux runs`,
`says: <metric>`). Torch-free.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pandas as pd

from lgtransfer.analysis import registration
from lgtransfer.analysis.confirm import ACROSS_DRAWS, ACROSS_MIN_EXPERIMENTS, MIN_CORRELATION
from lgtransfer.analysis.report.heads_claims import ACROSS, per_run, run_gains
from lgtransfer.analysis.stats import bootstrap_ci, spearman
from lgtransfer.analysis.verdicts import (
    ALPHA,
    INCONCLUSIVE,
    PENDING,
    Interval,
    Verdict,
    not_applicable,
)
from lgtransfer.analysis.within import within_experiments
from lgtransfer.config.schema import WITH_AUX

FAMILY = "across"
ROW = "all with-aux runs"
RULE = (f"yes if the one-sided p (gains shuffled within experiments, {ACROSS_DRAWS:,} draws, "
        f"Holm) of Spearman's rho in the claimed direction is below {ALPHA} and rho is at least "
        f"{MIN_CORRELATION}; no if that of the opposite direction is; n/a with fewer than "
        f"{ACROSS_MIN_EXPERIMENTS} experiments whose gain varies")


def across_within_rows(done: pd.DataFrame, seeds: pd.DataFrame,
                       root: Path) -> list[tuple[str, str, str, Verdict]]:
    """(experiment, paper, ours, verdict) per metric; none without head metrics."""
    runs = per_run(done, root) if len(done) else pd.DataFrame()
    if not len(runs):
        return []
    gains = run_gains(runs, seeds, done)
    reg = registration.load(root)
    with_aux = sorted(done[done.variant == WITH_AUX].experiment.unique())
    short = [e for e in with_aux if (w := reg.seeds_for(e))
             and not set(w) <= set(runs[runs.experiment == e].seed)]
    rows = []
    for metric, positive in ACROSS.items():
        r = within_experiments(runs[f"last_{metric}"].to_numpy(), gains,
                               runs.experiment.tolist(), positive, ACROSS_DRAWS)
        lo, hi = bootstrap_ci(r.x, r.y, spearman) if r.runs >= 3 else (math.nan, math.nan)
        v = Verdict(INCONCLUSIVE, Interval(r.rho, lo, hi, r.runs), RULE, r.p, r.p_opposite,
                    min_effect=MIN_CORRELATION).decided()
        sign = "" if positive else "-"
        ours = (f"within experiments: Spearman of {sign}{metric} at the last point with the "
                f"run's gain over the {r.runs} runs of the {len(r.experiments)} experiments "
                f"whose gain varies ({', '.join(r.experiments) or 'none'}; smallest attainable "
                f"p {r.floor:.2g}); secondary, pooled over all {r.pooled_runs} runs: rho "
                f"{r.pooled_rho:+.3f}")
        if short:
            v = replace(v, outcome=PENDING, note=f"not all registered runs of "
                        f"{', '.join(short)} have head metrics yet")
        elif len(r.experiments) < ACROSS_MIN_EXPERIMENTS:
            v = not_applicable(v, f"{len(r.experiments)} experiments whose gain varies "
                                  f"(registered: at least {ACROSS_MIN_EXPERIMENTS})")
        rows.append((ROW, f"runs whose tasks share heads ({metric} "
                     f"{'high' if positive else 'low'}) transfer more than the other runs of "
                     "their experiment", ours, v))
    return rows
