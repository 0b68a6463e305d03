"""The scaling study (issue 31; results/scaling/registration.yaml, which governs every number
here): does the main task's reach toward L_aux grow with training compute?

    lgt report results/scaling   (or: python -m lgtransfer.analysis.report.scaling results/scaling)

writes claims.md (+ claims.html), per_run.csv, fig_scaling.png and fig_scaling_steps.png into
the study's folder. Level x1 is the committed cpu evidence (results/cpu/g1, g5); x4 and x18 are
the study's runs, copied into results/scaling/<experiment>/<run>/. A run's group is the name of
the experiment folder that lists it (its experiment.json: G1's alone runs at x1 were trained as
`a1-both`, a shared baseline, so a run's own config name would not do), its level the model and
training length of its config.yaml matched against the registration's levels. Torch-free.
"""

from __future__ import annotations

import itertools
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lgtransfer.analysis.metrics import LEARNED, max_generalized_length, mean_accuracy
from lgtransfer.analysis.report.render import Section, render
from lgtransfer.analysis.report.scaling_described import (
    SIDE_NONE,
    SIDE_TEXT,
    STEPS_TEXT,
    forecast,
    past_main_over_steps,
    peak_table,
    scaling_figure,
    side_arm,
    side_arm_outcome,
    steps_figure,
)
from lgtransfer.analysis.report.scaling_plan import Plan, level_of, load_plan
from lgtransfer.analysis.results import accuracy_curve, collect, final_curves, in_distribution
from lgtransfer.analysis.signflip import holm, permutation_p
from lgtransfer.analysis.stats import rankdata
from lgtransfer.analysis.verdicts import (
    FAILS,
    FLOOR,
    FLOOR_LEVEL,
    INCONCLUSIVE,
    NOT_APPLICABLE,
    PENDING,
    REPRODUCES,
)
from lgtransfer.config.schema import MAIN_ONLY, WITH_AUX
from lgtransfer.errors import UsageError
from lgtransfer.runtime import rundir

GROUPS = ("g1", "g5")  # the tested groups; the family's claims, in the registration's order
FAMILY = [("g1", "reach_share"), ("g5", "reach_share"), ("g1", "gain"), ("g5", "gain")]
TREND_DRAWS = 100_000
TIER_SEEDS = 3  # reach_share >= 0.5 on at least 3 of the 5 with-aux seeds ...
TIER_SECONDS = 7200  # ... trained in at most about 2 h each
# "scaling-g1-x4-aux" -> g1, "g2-signed" -> g2-signed, "g5" -> g5
GROUP_NAME = re.compile(r"^(?:scaling-)?(g\d+(?:-signed)?)(?:-x\d+)?(?:-aux)?$")


def group_of(experiment: str) -> str | None:
    m = GROUP_NAME.match(experiment)
    return m.group(1) if m else None


# ----------------------------------------------------------------------------- the runs


def load_eval(root: Path, plan: Plan, label: str = "") -> pd.DataFrame:
    """Every evaluation row of the complete runs under `root` of a known group and level, with
    `group`, `level` and `compute` columns (empty when there are none); `run` is the run's
    folder under `root`, after `label` (so that the tables do not depend on where they are)."""
    try:
        df = collect(root)
    except UsageError:  # no run yet
        return pd.DataFrame()
    df = df[(df.status == "complete") & df.variant.isin([WITH_AUX, MAIN_ONLY])].copy()
    levels = {run: level_of(rundir.read_yaml(root / run / "config.yaml") or {}, plan)
              for run in df.run.unique()}
    df["level"], df["group"] = df.run.map(levels), df.experiment.map(group_of)
    df = df[df.level.notna() & df.group.notna()].copy()
    df["compute"] = df.level.map(lambda lv: float(plan.levels[lv]["compute"]))
    df["run"] = label + df.run  # unique across the folders read
    return df


def per_run(df: pd.DataFrame, ind: pd.DataFrame) -> pd.DataFrame:
    """One row per run at its last step: reach_share (with aux), accuracy past L_main, gain,
    in-distribution accuracy (`ind`) of the main and (lowest) aux task, accuracy per length."""
    if df.empty:
        return pd.DataFrame(columns=RUN_COLUMNS)
    final = final_curves(df)
    rows = []
    for (group, level, run), sel in final.groupby(["group", "level", "run"], sort=False):
        main = sel[sel.role == "main"]
        l_main = int(main.train_max_length.iloc[0])
        aux_rows = df[(df.group == group) & (df.role == "aux")]
        l_aux = int(aux_rows.train_max_length.max()) if len(aux_rows) else l_main + 1
        variant, seed = sel.variant.iloc[0], int(sel.seed.iloc[0])
        curve = accuracy_curve(sel, variant, seed, main.task.iloc[0])
        max_gen = max_generalized_length(curve)
        own = ind[ind.experiment == run]
        aux = own[own.role == "aux"].accuracy
        rows.append({
            "group": group, "level": level, "compute": sel.compute.iloc[0], "variant": variant,
            "seed": seed, "experiment": sel.experiment.iloc[0], "max_gen_length": max_gen,
            "reach_share": ((max_gen - l_main) / (l_aux - l_main) if variant == WITH_AUX
                            else math.nan),
            "acc_past_main": mean_accuracy(curve, l_main, l_aux),
            "in_dist_main": float(own[own.role == "main"].accuracy.iloc[0]),
            "in_dist_aux_lowest": float(aux.min()) if len(aux) else math.nan,
            **{f"acc_{n}": curve.get(n, math.nan) for n in range(1, 15)},
            "run": run})
    table = pd.DataFrame(rows)
    table.insert(table.columns.get_loc("in_dist_main"), "gain", gains(table))
    order = {lv: i for i, lv in enumerate(["x1", "x4", "x18"])}
    return table.sort_values(["group", "level", "variant", "seed"], key=lambda c: c.map(
        order) if c.name == "level" else c, ignore_index=True)[RUN_COLUMNS]


RUN_COLUMNS = ["group", "level", "compute", "variant", "seed", "experiment", "max_gen_length",
               "reach_share", "acc_past_main", "gain", "in_dist_main", "in_dist_aux_lowest",
               *[f"acc_{n}" for n in range(1, 15)], "run"]


def gains(table: pd.DataFrame) -> list[float]:
    """Per run: with aux minus the alone run of the same seed and level, or, at a seed with no
    alone run, minus the mean of that level's alone runs (the registration's rule)."""
    alone = table[table.variant == MAIN_ONLY]
    paired = alone.set_index(["group", "level", "seed"]).acc_past_main
    level_mean = alone.groupby(["group", "level"]).acc_past_main.mean()
    return [r.acc_past_main - paired.get((r.group, r.level, r.seed),
                                         level_mean.get((r.group, r.level), math.nan))
            if r.variant == WITH_AUX else math.nan for r in table.itertuples(index=False)]


# ----------------------------------------------------------------------------- the tests


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho: Pearson's r of the average ranks (0, not NaN as `stats.spearman` gives,
    when either side is constant: the registered rule)."""
    return _pearson(rankdata(x), rankdata(y))


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / denom if denom > 0 else 0.0


def trend_test(log_compute: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """(rho, one-sided p of rho > 0). Shuffling the statistic shuffles its ranks, so the test
    runs on ranks with Pearson's r, which is rho for every ordering (and fast: 100 000 of them)."""
    x, y = rankdata(log_compute), rankdata(values)
    return _pearson(x, y), permutation_p(x, y, _pearson, draws=TREND_DRAWS, seed=0)


def flat_test(low: np.ndarray, high: np.ndarray, delta: float) -> tuple[float, float]:
    """(mean high - mean low, exact p of "difference < delta"): `high` lowered by delta, the
    share of all splits of the pooled values into groups of their sizes whose difference (mean
    of the high-sized group minus the other's) is at most the observed one."""
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float) - delta
    pooled, k = np.concatenate([low, high]), len(high)
    observed = high.mean() - low.mean()
    total = pooled.sum()
    picks = np.array(list(itertools.combinations(range(len(pooled)), k)))
    sums = pooled[picks].sum(axis=1)
    diffs = sums / k - (total - sums) / len(low)
    return float(observed + delta), float(np.mean(diffs <= observed + 1e-12))


@dataclass
class Claim:
    group: str
    statistic: str
    outcome: str = PENDING
    note: str = ""
    n: int = 0
    rho: float = math.nan
    diff: float = math.nan
    means: dict[str, tuple[float, int]] = field(default_factory=dict)
    p_trend: float = math.nan
    p_flat: float = math.nan
    p_trend_adj: float = math.nan
    p_flat_adj: float = math.nan


def claims(runs: pd.DataFrame, ind: pd.DataFrame, plan: Plan) -> list[Claim]:
    """The family's four claims, tested and settled (Holm over m = 4 for each test; a claim not
    tested, being n/a, pending or at the floor, keeps its place with p = 1)."""
    out = [claim(runs, ind, plan, g, s) for g, s in FAMILY]
    for attr in ("p_trend", "p_flat"):
        raw = [getattr(c, attr) if c.outcome == INCONCLUSIVE else 1.0 for c in out]
        for c, p in zip(out, holm(raw), strict=True):
            setattr(c, f"{attr}_adj", p)
    waiting = [f"{c.group.upper()} {c.statistic}" for c in out if c.outcome == PENDING]
    for c in out:
        if c.outcome == INCONCLUSIVE:
            c.outcome = decide(c, plan)
        # Holm's adjusted p only falls as a pending claim's p = 1 gives way to its own (it is
        # monotone in every raw p), so yes and no are final now; inconclusive is not yet
        if c.outcome == INCONCLUSIVE and waiting:
            c.outcome = PENDING
            c.note = (f"inconclusive so far; final once {', '.join(waiting)} "
                      f"{'is' if len(waiting) == 1 else 'are'} in (Holm over the family counts "
                      "a pending claim with p = 1)")
    return out


def decide(c: Claim, plan: Plan) -> str:
    delta = plan.delta[c.statistic]
    if c.p_trend_adj < plan.alpha and c.rho >= 0.1 and c.diff >= delta:
        return f"{REPRODUCES} (grows)"
    if c.p_flat_adj < plan.alpha:
        return f"{FAILS} (does not grow by {delta:g})"
    return INCONCLUSIVE


def claim(runs: pd.DataFrame, ind: pd.DataFrame, plan: Plan, group: str, stat: str) -> Claim:
    sel = runs[runs.group == group] if len(runs) else runs
    aux = sel[sel.variant == WITH_AUX] if len(sel) else sel
    c = Claim(group, stat, n=len(aux), means={
        lv: (float(aux[aux.level == lv][stat].mean()), int((aux.level == lv).sum()))
        for lv in plan.levels} if len(aux) else {lv: (math.nan, 0) for lv in plan.levels})
    if missing := missing_runs(sel, plan):
        c.note = f"{missing} still to come"
        return c
    if why := not_learned(ind[ind.group == group], plan):
        c.outcome, c.note = NOT_APPLICABLE, why
        return c
    if (sel.acc_past_main < FLOOR_LEVEL).all():
        c.outcome = FLOOR
        c.note = f"every run's accuracy past L_main is below {FLOOR_LEVEL}"
        return c
    x = np.log2(aux.compute.to_numpy(dtype=float))
    c.rho, c.p_trend = trend_test(x, aux[stat].to_numpy(dtype=float))
    c.diff, c.p_flat = flat_test(aux[aux.level == "x1"][stat], aux[aux.level == "x18"][stat],
                                 plan.delta[stat])
    c.outcome = INCONCLUSIVE  # until settled
    return c


def missing_runs(sel: pd.DataFrame, plan: Plan) -> str:
    """The registered runs of a group not in yet, as `x4 with aux 0-4, x18 alone 1`."""
    out = []
    for level in plan.levels:
        for variant, seeds in plan.registered(level).items():
            have = set(sel[(sel.level == level) & (sel.variant == variant)].seed) if len(
                sel) else set()
            if gone := [s for s in seeds if s not in have]:
                out.append(f"{level} {variant.replace('_', ' ').replace('main only', 'alone')} "
                           f"{_span(gone)}")
    return ", ".join(out)


def _span(seeds: list[int]) -> str:
    consecutive = seeds == list(range(seeds[0], seeds[0] + len(seeds)))
    return f"{seeds[0]}-{seeds[-1]}" if consecutive and len(seeds) > 2 else ", ".join(
        map(str, seeds))


def not_learned(ind: pd.DataFrame, plan: Plan) -> str:
    """`n/a`'s reason: each task of a level (with aux and alone counted apart) below LEARNED on
    more than half of that level's runs, named with its level and count; "" when none is."""
    out = []
    for (level, variant, task), runs in ind.groupby(["level", "variant", "task"], sort=False):
        below = int((runs.accuracy < LEARNED).sum())
        if below > len(runs) / 2:
            out.append(f"{task} at {level} ({variant.replace('_', ' ')}) below {LEARNED} on "
                       f"{below} of {len(runs)} runs")
    return "; ".join(out)


def in_dist_table(df: pd.DataFrame) -> pd.DataFrame:
    """Each run's in-distribution accuracy per task (last step), with its group and level."""
    if df.empty:
        return pd.DataFrame(columns=["group", "level", "variant", "seed", "task", "role",
                                     "train_max_length", "accuracy"])
    keys = df.drop_duplicates("run").set_index("run")[["group", "level"]]
    ind = in_distribution(df.assign(experiment=df.run))
    return ind.join(keys, on="experiment")


# ----------------------------------------------------------------------------- described


def tier_line(runs: pd.DataFrame, plan: Plan, settled: list[Claim]) -> str:
    """Whether a level warrants the cpu-long budget (the registration's tier rule)."""
    seeds, found, best, open_ = plan.seeds[WITH_AUX], [], [], False
    for group in GROUPS:
        for level in plan.levels:
            sel = runs[(runs.group == group) & (runs.level == level) & (runs.variant == WITH_AUX)
                       & runs.seed.isin(seeds)] if len(runs) else runs
            hits = int((sel.reach_share >= 0.5).sum()) if len(sel) else 0
            open_ |= hits < TIER_SEEDS <= hits + len(seeds) - len(sel)  # its missing seeds could
            if len(sel) == 0:
                continue
            hours = sel.train_seconds.max() / 3600
            best.append(f"{group.upper()} {level} {hits} of {len(sel)}")
            timed = not sel.train_seconds.isna().any()  # a run without a time: not shown fast
            if hits >= TIER_SEEDS and timed and hours <= TIER_SECONDS / 3600:
                found.append(f"{group.upper()} at {level} (reach_share >= 0.5 on {hits} of "
                             f"seeds {_span(seeds)}; slowest with-aux run {hours:.1f} h)")
    trend = "; ".join(f"{c.group.upper()} {c.statistic}: {c.outcome}" for c in settled)
    note = (" Run times: the manifests' train_seconds (a run resumed by a version that did not "
            "keep its time: its last start's pace over all its steps, train_seconds_estimated in "
            "per_run.csv); a level with a run of no recorded time is not counted fast. The rule "
            f"{plan.rule(set(runs.level) if len(runs) else set(), 'tier')}.")
    if found:
        return "cpu-long is warranted: " + "; ".join(found) + "." + note
    return (f"No level warrants cpu-long{' yet' if open_ else ''}: reach_share >= 0.5 on at "
            f"least {TIER_SEEDS} of seeds {_span(seeds)} at none (" + (", ".join(best) or "no run")
            + f"). The trend: {trend}." + note)


# ----------------------------------------------------------------------------- the files

INTRO = (
    "Does the main task's reach toward L_aux grow with training compute (issue 31)? Level x1 is "
    "the committed cpu evidence (results/cpu/g1, g5, seeds 0-9); x4 and x18 are this folder's "
    "runs. Per with-aux run at its last step: **reach_share** = (max generalized length - "
    "L_main) / (L_aux - L_main), values past 1 kept; **gain** = mean main-task exact match over "
    "lengths (L_main, L_aux] minus the alone run's of the same seed and level (at a seed with "
    "no alone run, minus the mean of that level's alone runs). **trend**: Spearman rho of "
    "log2(compute) and the statistic over every with-aux run, one-sided permutation p ({draws:,} "
    "orderings, the observed one counted); **flat**: exact permutation p over all splits of x1 "
    "and x18 (x18 lowered by delta: {delta}) of \"x18 - x1 < delta\". Holm over the four claims, "
    "for each test apart (a claim not tested enters with p = 1). yes (grows): trend p (Holm) < "
    "{alpha}, rho >= 0.1 and x18 - x1 >= delta; no: flat p (Holm) < {alpha}. The registration "
    "is results/scaling/registration.yaml; per_run.csv has every run's numbers.")


def claims_table(settled: list[Claim], plan: Plan) -> pd.DataFrame:
    def p(raw: float, adj: float) -> str:
        return "not tested" if math.isnan(raw) else f"{raw:.3g} ({adj:.3g})"

    def mean(m: tuple[float, int]) -> str:
        return "-" if m[1] == 0 else f"{'-' if math.isnan(m[0]) else f'{m[0]:.3f}'} ({m[1]})"

    return pd.DataFrame([{
        "claim": f"{c.group.upper()} {c.statistic} grows", "n": c.n,
        "rho": "" if math.isnan(c.rho) else f"{c.rho:+.3f}",
        "trend p (Holm)": p(c.p_trend, c.p_trend_adj),
        "x18 - x1": "" if math.isnan(c.diff) else f"{c.diff:+.3f}",
        "flat p (Holm)": p(c.p_flat, c.p_flat_adj),
        **{f"mean {lv} (n)": mean(c.means.get(lv, (math.nan, 0))) for lv in plan.levels},
        "verdict": c.outcome + (f": {c.note}" if c.note else ""),
        "rule": plan.rule({lv for lv, (_, n) in c.means.items() if n})}
        for c in settled])


def write_scaling(results_dir: Path = Path("results/scaling"),
                  cpu_dir: Path | None = None) -> Path:
    """claims.md (+ .html), per_run.csv and fig_scaling.png in `results_dir`; level x1 from
    `cpu_dir` (default: results_dir's sibling `cpu`). Returns claims.md's path."""
    cpu_dir = results_dir.parent / "cpu" if cpu_dir is None else cpu_dir
    plan = load_plan(results_dir)
    frames = [load_eval(cpu_dir / g, plan, f"cpu/{g}/") for g in GROUPS]
    frames = [f for f in [*frames, load_eval(results_dir, plan)] if len(f)]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    ind = in_dist_table(df)
    runs = per_run(df, ind)
    timed = [rundir.train_time(cpu_dir / r.removeprefix("cpu/") if r.startswith("cpu/")
                               else results_dir / r) for r in runs.run]  # (seconds, estimated)
    runs["train_seconds"] = [s for s, _ in timed]
    runs["train_seconds_estimated"] = [e for _, e in timed]
    rundir.write_atomic(results_dir / "per_run.csv", runs.to_csv(index=False))
    settled = claims(runs, ind, plan)
    tasks, groups = side_arm(ind)
    steps = past_main_over_steps(df[df.group.isin(GROUPS)] if len(df) else df)
    delta = ", ".join(f"{k} {v:g}" for k, v in plan.delta.items())
    sections = [
        Section("Claims", INTRO.format(delta=delta, alpha=plan.alpha, draws=TREND_DRAWS),
                tables=[claims_table(settled, plan)]),
        Section("Forecast (described, not tested)",
                "\n\n".join(forecast(runs, plan.references, g) for g in GROUPS),
                [scaling_figure(runs, GROUPS, plan.references, results_dir)]),
        Section("Over training (described, not tested)", STEPS_TEXT,
                [steps_figure(steps, GROUPS, list(plan.levels), results_dir)],
                tables=[peak_table(steps, list(plan.levels))]),
        Section("Tier", tier_line(runs, plan, settled)),
        Section("Side arm (described, one seed)",
                f"{SIDE_TEXT} {side_arm_outcome(groups)}" if len(tasks) else SIDE_NONE,
                tables=[tasks, groups] if len(tasks) else [])]
    return render("Scaling study", sections, results_dir, stem="claims")


if __name__ == "__main__":  # python -m lgtransfer.analysis.report.scaling results/scaling
    print(f"report: {write_scaling(Path(*sys.argv[1:2] or ['results/scaling']))}")
