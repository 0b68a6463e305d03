"""The across-run claim as the confirmatory registration tests it (issue 33, item 3): per head
metric, Spearman of the metric at a run's last point with the run's transfer gain within each
experiment whose gain varies, averaged weighted by runs, the gains shuffled only within an
experiment (`analysis/within.py`); the pooled rho over every with-aux run is printed beside it
as secondary. Pending until every with-aux run the registration governs is in. The rows sit in the
report family `across` (a registration names them: `rows: across`, `row: all with-aux runs`,
`says: <metric>`). Torch-free.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from lgtransfer.analysis import registration
from lgtransfer.analysis.confirm import ACROSS_DRAWS, ACROSS_MIN_EXPERIMENTS
from lgtransfer.analysis.report.heads_claims import ACROSS, per_run, run_gains
from lgtransfer.analysis.verdicts import (
    ALPHA,
    INCONCLUSIVE,
    MIN_CORRELATION,
    PENDING,
    Interval,
    Verdict,
    not_applicable,
)
from lgtransfer.analysis.within import WithinResult, within_experiments, within_rho
from lgtransfer.config.schema import WITH_AUX
from lgtransfer.runtime import rundir

FAMILY = "across"
BOOTSTRAP_DRAWS = 2000  # the interval of the within-experiment rho
ROW = "all with-aux runs"
RULE = (f"yes if the one-sided p (gains shuffled within experiments, {ACROSS_DRAWS:,} draws, "
        f"Holm) of the within-experiment rho (each experiment's Spearman, weighted by its runs) "
        f"in the claimed direction is below {ALPHA} and that rho is at least {MIN_CORRELATION}; "
        f"no if that of the opposite direction is; n/a with fewer than "
        f"{ACROSS_MIN_EXPERIMENTS} experiments whose gain varies")


def across_within_rows(done: pd.DataFrame, seeds: pd.DataFrame,
                       root: Path) -> list[tuple[str, str, str, Verdict]]:
    """(experiment, paper, ours, verdict) per metric; none without head metrics."""
    runs = per_run(done, root) if len(done) else pd.DataFrame()
    if not len(runs):
        return []
    gains = run_gains(runs, seeds, done)
    short = not_yet_in(root, registration.load(root), set(runs.run))
    rows = []
    for metric, positive in ACROSS.items():
        r = within_experiments(runs[f"last_{metric}"].to_numpy(), gains,
                               runs.experiment.tolist(), positive, ACROSS_DRAWS)
        lo, hi = within_ci(r)
        v = Verdict(INCONCLUSIVE, Interval(r.rho, lo, hi, r.runs), RULE, r.p, r.p_opposite,
                    min_effect=MIN_CORRELATION).decided()
        sign = "" if positive else "-"
        ours = (f"within experiments: Spearman of {sign}{metric} at the last point with the "
                f"run's gain, each experiment's weighted by its runs, over the {r.runs} runs of "
                f"the {len(r.experiments)} experiments whose gain varies "
                f"({', '.join(r.experiments) or 'none'}; smallest attainable p {r.floor:.2g}); "
                f"secondary, pooled over all {r.pooled_runs} runs: rho {r.pooled_rho:+.3f}")
        if short:
            v = replace(v, outcome=PENDING, note=f"not all registered with-aux runs of "
                        f"{', '.join(short)} are in with head metrics yet")
        elif len(r.experiments) < ACROSS_MIN_EXPERIMENTS:
            v = not_applicable(v, f"{len(r.experiments)} experiments whose gain varies "
                                  f"(registered: at least {ACROSS_MIN_EXPERIMENTS})")
        rows.append((ROW, f"runs whose tasks share heads ({metric} "
                     f"{'high' if positive else 'low'}) transfer more than the other runs of "
                     "their experiment", ours, v))
    return rows


def not_yet_in(root: Path, reg: registration.Registration, have: set[str]) -> list[str]:
    """The registered experiments whose with-aux runs at the registered seeds are not all in
    `have` (the runs with head metrics): every run each experiment folder's index lists (all
    that `lgt run` planned, finished or not), and each registered id with no folder at all."""
    short, seen = set(), set()
    for path in sorted(root.rglob(rundir.EXPERIMENT_INDEX)):
        index = rundir.read_experiment_index(path.parent) or {}
        name = str(index.get("name", ""))
        registered = reg.seeds_for(name)
        if registered is None:
            continue
        seen.add(name.split("-")[0] if name.startswith("a") else name)  # a1-both: a1
        for run in index.get("runs", []):
            seed = re.match(rf"{WITH_AUX}_seed(\d+)_", Path(run).name)
            where = os.path.relpath(path.parent / run, root).replace(os.sep, "/")
            if seed and int(seed.group(1)) in registered and where not in have:
                short.add(name)
    return sorted(short | (reg.experiments - seen))


def within_ci(r: WithinResult) -> tuple[float, float]:
    """Percentile interval of the within-experiment rho over resamples of runs within each
    experiment (nan, nan for fewer than 3 runs)."""
    if r.runs < 3:
        return math.nan, math.nan
    rng = np.random.default_rng(0)
    groups = [np.flatnonzero(r.strata == e) for e in r.experiments]
    values = []
    for _ in range(BOOTSTRAP_DRAWS):
        idx = np.concatenate([rng.choice(g, len(g)) for g in groups])
        values.append(within_rho(r.x[idx], r.y[idx], r.strata[idx]))
    values = np.asarray(values)
    values = values[np.isfinite(values)]
    if len(values) < BOOTSTRAP_DRAWS // 2:
        return math.nan, math.nan
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)
