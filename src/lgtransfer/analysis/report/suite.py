"""The report of a folder holding several experiments (a sweep, or a whole suite): each
experiment's own report in its folder, then one report at the top with a section per paper
figure (`figures`), the other experiments' figures, and statistics over seeds. `write_report`
is the entry point for any folder: it picks the suite report or the experiment report.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np
import pandas as pd

from lgtransfer.analysis import confirm, registration
from lgtransfer.analysis.metrics import LEARNED
from lgtransfer.analysis.report.confirm_claims import (
    EXPLORATORY,
    EXPLORATORY_TEXT,
    confirm_section,
    exploratory_heading,
    governed,
)
from lgtransfer.analysis.report.experiment import heads_sections, write_experiment_report
from lgtransfer.analysis.report.figures.registry import (
    SECTION_BY_FIGURE_ID,
    figure_sections,
    settle_tables,
)
from lgtransfer.analysis.report.heads_causal_k import causal_k_claims
from lgtransfer.analysis.report.heads_claims import heads_claims
from lgtransfer.analysis.report.noise import hardware_noise, noise_summary
from lgtransfer.analysis.report.pretrained_claims import pretrained_claims
from lgtransfer.analysis.report.render import Section, markdown_table, render
from lgtransfer.analysis.results import (
    NoCompleteRun,
    budget_label,
    collect,
    experiment_folders,
    in_distribution,
    label_configs,
    per_seed,
    statistics,
)
from lgtransfer.config.schema import BUDGETS
from lgtransfer.runtime import rundir

STATS_TEXT = ("Per experiment and variant: mean, std and a bootstrap 95 % interval of the mean "
              "over seeds (`lgt results` writes them to stats.csv). max_gen_length = max "
              "generalized length, acc_past_main = main-task accuracy on (L_main, L_aux], gap = "
              "generalization gap; a *_gain is the with-aux value minus the main-task-alone one.")


def write_report(path: Path, run_dirs: list[Path] | None = None) -> Path:
    """The report of a folder: of one experiment (report.png, per_seed.csv, report.md/html), or,
    when it holds several, each one's own report plus one per paper figure at the top; of a
    registered study (results/scaling), the study's claims."""
    if run_dirs is None:
        from lgtransfer.analysis.report.scaling import write_scaling
        from lgtransfer.analysis.report.scaling_plan import is_scaling_study

        if is_scaling_study(path):
            return write_scaling(path)
        folders = experiment_folders(path)
        if len(folders) > 1:
            return write_suite_report(path, folders)
    return write_experiment_report(path, run_dirs)


def write_suite_report(root: Path, folders: list[Path]) -> Path:
    """Each experiment folder's own report, then the suite's report.md/html in `root`."""
    plan = confirm.load(root)  # a malformed confirmatory registration stops before any write
    for folder in folders:
        if folder == root:  # runs of its own beside experiment folders: in the tables below
            continue
        with contextlib.suppress(NoCompleteRun):  # none there yet (a damaged file stops here)
            write_report(folder)
    df = collect(root)
    if plan is None:
        df = label_configs(df)
    else:  # apart: a confirmatory run is not another config of its exploratory namesake
        mine = governed(df, plan)
        for part in (mine, ~mine):
            df.loc[part, "experiment"] = label_configs(df[part]).experiment
    seeds = per_seed(df)
    done = df[df.status == "complete"]
    claims_df, claims_seeds, confirmed = df, seeds, None
    if plan is not None:  # first: the exploratory figures below overwrite the shared files
        confirmed = confirm_section(df, seeds, root, plan)
        claims_df = df[~governed(df, plan)]  # the exploratory rows: every other run
        claims_seeds = seeds[~governed(seeds, plan)] if len(seeds) else seeds
    claims_done = claims_df[claims_df.status == "complete"]
    sections = figure_sections(claims_df, claims_seeds, root)
    untagged = done[~done.figure.isin(list(SECTION_BY_FIGURE_ID))]
    if len(untagged):
        paths = dict.fromkeys(root / Path(r).parent / "report.png" for r in untagged.run.unique())
        sections.append(Section("Other experiments", "", [p for p in paths if p.exists()]))
    stats = statistics(seeds)
    if len(stats):
        shown = stats[["experiment", "variant", "metric", "n_seeds", "mean", "std", "ci_low",
                       "ci_high", "best_seed"]].round(3)
        sections.append(Section("Statistics over seeds", STATS_TEXT, tables=[shown]))
    calibration = calibration_table(done)
    if len(calibration):
        sections.append(Section("Calibration", CALIBRATION_TEXT, tables=[calibration]))
    noise = hardware_noise(root)
    if noise is not None:
        sections.append(Section("Hardware noise", NOISE_TEXT + noise_summary(noise),
                                tables=[noise]))
    cost = cost_table(done, root)
    if len(cost):
        sections.append(Section("Cost", COST_TEXT.format(**cost.attrs), tables=[cost]))
        write_cost(cost, root)
    budgets = "" if root.name in BUDGETS else budget_label(df)  # not "Report: cpu (cpu)"
    for extra in (heads_claims(claims_done, claims_seeds, root),
                  causal_k_claims(claims_done, claims_seeds, root),
                  pretrained_claims(claims_done, root)):
        if extra is not None:
            sections.append(extra)
    # Holm within each family, over every section's claims; beside it, at the listed m
    settle_tables(sections, registration.listed_sizes(root))
    write_claims(sections, root, confirmed)
    first = [confirmed] if confirmed else []
    return render(f"Report: {root.name}{budgets}", first + sections + heads_sections(root), root)


NOISE_TEXT = ("Runs trained again with the same seed and settings (to record head metrics; "
              "results/cpu/retrained.jsonl keeps the earlier final evaluation). Two things "
              "change the rounding: the machine, and how the run executes (`train.compile`, "
              "left out of a run's key): both are listed. Past the training length a rounding "
              "difference grows into a different outcome. ")

CALIBRATION_TEXT = (
    "Does every task learn its training range? The budget's rule: a task is learned when its "
    f"accuracy, averaged over lengths 1 to its training length, is at least {LEARNED} at the "
    "last evaluation; without that, \"alone it fails past its length\" is no fair baseline and "
    "an auxiliary task has no length to lend. Per experiment, run variant and task: the lowest "
    "and the mean over seeds, and how many seeds learned it.")


def calibration_table(done: pd.DataFrame) -> pd.DataFrame:
    """experiment | variant | task | trained to | in-distribution accuracy (lowest seed, mean
    over seeds) | seeds learned: whether each task learned its own range, run by run."""
    per_run = in_distribution(done)
    rows = []
    for (exp, variant, task, role, l_train), runs in per_run.groupby(
            ["experiment", "variant", "task", "role", "train_max_length"]):
        acc = runs.accuracy
        rows.append({"experiment": exp, "variant": variant, "task": f"{task} ({role})",
                     "trained to": int(l_train), "lowest seed": round(acc.min(), 3),
                     "mean": round(acc.mean(), 3),
                     "seeds learned": f"{int((acc >= LEARNED).sum())} of {len(acc)}"})
    return pd.DataFrame(rows)


TIER_SEEDS = 3  # the evidence tier: every experiment at its first three seeds

COST_TEXT = ("Training time per experiment, from each run's manifest (`train_seconds`: "
             "training and its evaluations, one run per core). A run two experiments share "
             "counts under both; the {runs} distinct complete runs took {total} minutes in all. "
             "*The tier* is every experiment at its first {tier_seeds} seeds: {tier_runs} "
             "distinct runs, {tier_minutes} minutes of run time, {tier_hours} h on two cores "
             "(the run time halved: one run per core). {estimated} runs were resumed by a "
             "version that did not keep the time before the resume: theirs is their last "
             "start's pace over all their steps, an estimate (too high where that start was "
             "short); {untimed} have no recorded time and count as 0.")


def cost_table(done: pd.DataFrame, root: Path) -> pd.DataFrame:
    """experiment | runs | minutes per run | minutes | tier runs | tier minutes: what the
    complete runs cost to train, all of them and those of the first TIER_SEEDS seeds."""
    timed = {run: rundir.train_time(root / run) for run in done.run.unique()}
    seconds = {run: s for run, (s, _) in timed.items()}
    per = done[["experiment", "run", "seed"]].drop_duplicates()
    per = per.assign(minutes=[seconds[r] / 60 for r in per.run])
    first_seeds = per.groupby("experiment").seed.transform(
        lambda s: s.isin(sorted(s.unique())[:TIER_SEEDS]))
    tier = per[first_seeds]
    # runs by count of rows, minutes over the runs that have a time (NaN: none recorded)
    table = pd.concat([per.groupby("experiment").run.count(),
                       per.groupby("experiment").minutes.agg(["mean", "sum"]),
                       tier.groupby("experiment").run.count(),
                       tier.groupby("experiment").minutes.sum()], axis=1)
    table = table.reset_index().round(1)
    table.columns = ["experiment", "runs", "minutes per run", "minutes", "tier runs",
                     "tier minutes"]
    tier_minutes = float(np.nansum([seconds[r] for r in tier.run.unique()])) / 60
    table.attrs = {"total": round(float(np.nansum(list(seconds.values()))) / 60, 1),
                   "runs": len(seconds),
                   "estimated": sum(e for s, e in timed.values() if not math.isnan(s)),
                   "untimed": sum(math.isnan(s) for s in seconds.values()),
                   "tier_seeds": TIER_SEEDS, "tier_runs": tier.run.nunique(),
                   "tier_minutes": round(tier_minutes, 1),
                   "tier_hours": round(tier_minutes / 120, 1)}
    return table


def write_cost(cost: pd.DataFrame, root: Path) -> Path:
    """`cost.md`: the Cost section's text and table (docs/results.md's tier-cost block is this file,
    checked equal to it by a test)."""
    text = COST_TEXT.format(**cost.attrs) + "\n\n" + markdown_table(cost)
    rundir.write_atomic(root / "cost.md", text + "\n")
    return root / "cost.md"


def write_claims(sections: list[Section], root: Path, confirmed: Section | None = None) -> Path:
    """`claims.md`: every verdict of the report in one table, figure by figure (the
    "What reproduces" table of docs/results.md is this file, checked equal to it by a test).
    Under a registration (registration.yaml) the table is headed exploratory; with a
    confirmatory one (`confirmed`), its section comes first."""
    rows = []
    for sec in sections:
        for table in sec.tables:
            if "reproduces" in table:
                for r in table.itertuples(index=False):
                    rows.append({"figure": sec.title, "experiment": r.experiment,
                                 "paper": r.paper, "ours (mean [95 % t-interval] (n))": r.ours,
                                 "p (Holm)": p if isinstance(p := getattr(r, "p", ""), str) else "",
                                 "verdict": r.reproduces})
    text = markdown_table(pd.DataFrame(rows)) if rows else "No verdicts: no complete runs."
    heading = exploratory_heading(root)
    if heading or confirmed:
        text = f"{heading or '### ' + EXPLORATORY}\n\n{EXPLORATORY_TEXT}\n\n{text}"
    if confirmed:
        text = (f"### {confirmed.title}\n\n{confirmed.text}\n\n"
                f"{markdown_table(confirmed.tables[0])}\n\n{text}")
    rundir.write_atomic(root / "claims.md", text + "\n")
    return root / "claims.md"
