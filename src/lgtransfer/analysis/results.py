"""Results as tidy tables: every evaluation row under a folder, per-seed metrics, statistics.

`lgt results DIR` gathers every run's `eval.jsonl` under DIR into `results.csv` (and
`results.parquet` when pyarrow is installed): the contract columns of docs/design.md §3 plus the
run's folder, status, config hash, experiment key, figure, position encoding and budget. It then
computes per experiment and seed the metrics the paper argues with (max generalized length with
and without the auxiliary tasks, accuracy past the main length, the generalization gap, the
transfer gain; `per_seed.csv`), and over seeds their mean, std, min, max and a bootstrap 95 %
interval of the mean (`stats.csv`), the best seed marked. One experiment = one name and one
config key (the budget is part of it): runs of an edited config never mix with the old ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from lgtransfer.analysis.metrics import (
    LEARNED,
    generalization_gap,
    max_generalized_length,
    mean_accuracy,
)
from lgtransfer.analysis.stats import mean_ci
from lgtransfer.config.schema import MAIN_ONLY, SAME_EXAMPLES, WITH_AUX
from lgtransfer.errors import UsageError
from lgtransfer.runtime import rundir

CONTRACT_COLUMNS = ["experiment", "variant", "seed", "step", "task", "role", "train_max_length",
                    "length", "n", "accuracy"]
# per-seed metric -> the variant whose runs it describes. max_gen_length: max generalized length;
# acc_past_main: main-task accuracy on (L_main, L_aux]; *_gain: with aux minus main alone (the
# same-steps baseline); *_gain_same_examples: minus the baseline with as many main examples
SEED_METRICS = {"max_gen_length_with_aux": WITH_AUX, "max_gen_length_main_only": MAIN_ONLY,
                f"max_gen_length_{SAME_EXAMPLES}": SAME_EXAMPLES,
                "acc_past_main_with_aux": WITH_AUX, "acc_past_main_main_only": MAIN_ONLY,
                f"acc_past_main_{SAME_EXAMPLES}": SAME_EXAMPLES,
                "gap": WITH_AUX, "max_gen_length_gain": WITH_AUX, "acc_past_main_gain": WITH_AUX,
                "max_gen_length_gain_same_examples": WITH_AUX,
                "acc_past_main_gain_same_examples": WITH_AUX}
BOOTSTRAP_RESAMPLES = 10_000


class NoCompleteRun(UsageError):
    """A folder with no complete run yet: an error for `lgt report DIR` itself, a folder to
    leave out for the suite report around it (never a damaged file: that stops every reader)."""


def select_runs(exp_dir: Path) -> tuple[list[Path], int]:
    """The complete runs of the most recently finished experiment config under `exp_dir` (or
    listed by its `experiment.json`), and how many complete runs of other configs (e.g. earlier
    `--set` variations) were left out."""
    groups: dict[str, list[tuple[float, Path]]] = {}
    candidates = sorted(p.parent for p in exp_dir.rglob(rundir.MANIFEST))
    for run_dir in dict.fromkeys(candidates + rundir.listed_runs(exp_dir)):
        if rundir.is_complete(run_dir, strict=True):  # a damaged manifest: one line, exit 2
            m = rundir.read_json(run_dir / rundir.MANIFEST)
            key = _label(run_dir, exp_dir)[2] or m.get("experiment_key", "")
            groups.setdefault(key, []).append((m.get("finished", 0.0), run_dir))
    if not groups:
        raise NoCompleteRun(f"no complete run under {exp_dir}")
    latest = max(groups.values(), key=lambda runs: max(t for t, _ in runs))
    skipped = sum(len(runs) for runs in groups.values()) - len(latest)
    return [d for _, d in latest], skipped


def load_eval(exp_dir: Path, run_dirs: list[Path] | None = None) -> pd.DataFrame:
    """Every eval row of the given runs (default: `select_runs(exp_dir)`), complete ones only,
    with the run columns of `collect` (so `per_seed` takes it as it takes `collect`'s table)."""
    if run_dirs is None:
        run_dirs, _ = select_runs(exp_dir)
    index = rundir.read_experiment_index(exp_dir) or {}
    frames = []
    for d in run_dirs:
        frame = _run_frame(d, exp_dir, *_label(d, exp_dir if index else d.parent))
        if frame is not None and rundir.is_complete(d, strict=True):
            frames.append(frame)
    if not frames:
        raise NoCompleteRun(f"no complete run under {exp_dir}")
    return pd.concat(frames, ignore_index=True)


def run_columns(df: pd.DataFrame) -> list[str]:
    """The columns that tell runs apart (with `stage` in a pretraining-stage sweep)."""
    return ["experiment", "variant", "seed"] + (["stage"] if _has_stages(df) else [])


def _has_stages(df: pd.DataFrame) -> bool:
    return "stage" in df and bool(df.stage.notna().any())


def final_curves(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of each run's last evaluated step only."""
    last = df.groupby(run_columns(df), dropna=False)["step"].transform("max")
    return df[df["step"] == last]


def in_distribution(df: pd.DataFrame) -> pd.DataFrame:
    """Each task's mean accuracy over lengths up to its own training length, at each run's last
    step: one row per experiment, variant, task, role, train_max_length and seed."""
    final = final_curves(df)
    final = final[final.length <= final.train_max_length]
    keys = ["experiment", "variant", "task", "role", "train_max_length", "seed"]
    return final.groupby(keys).accuracy.mean().reset_index()


def accuracy_curve(df: pd.DataFrame, variant: str, seed: int, task: str) -> dict[int, float]:
    sel = df[(df.variant == variant) & (df.seed == seed) & (df.task == task)]
    return dict(zip(sel.length.astype(int), sel.accuracy.astype(float), strict=True))


def seed_metrics(df: pd.DataFrame) -> pd.DataFrame:
    """One experiment's metrics, one row per seed (the columns of SEED_METRICS): max generalized
    length and accuracy past the main length with and without aux, gap, gains."""
    final = final_curves(df)
    main = final[final.role == "main"]
    main_task = main.task.iloc[0]
    l_main = int(main.train_max_length.iloc[0])
    aux = final[(final.role == "aux") & (final.variant == "with_aux")]
    aux_tasks = sorted(aux.task.unique())
    l_aux = int(aux.train_max_length.max()) if len(aux) else l_main
    rows = []
    for seed in sorted(final.seed.unique()):
        row: dict = {"seed": int(seed)}
        for variant in (WITH_AUX, MAIN_ONLY, SAME_EXAMPLES):
            curve = accuracy_curve(final, variant, seed, main_task)
            if curve:
                row[f"max_gen_length_{variant}"] = max_generalized_length(curve)
                row[f"acc_past_main_{variant}"] = mean_accuracy(curve, l_main,
                                                                max(l_aux, l_main + 1))
        with_aux = accuracy_curve(final, "with_aux", seed, main_task)
        if with_aux and aux_tasks:
            curves = [accuracy_curve(final, "with_aux", seed, t) for t in aux_tasks]
            row["gap"] = generalization_gap(with_aux, curves, l_main, l_aux, LEARNED)
        for baseline, suffix in ((MAIN_ONLY, ""), (SAME_EXAMPLES, "_same_examples")):
            if "max_gen_length_with_aux" in row and f"max_gen_length_{baseline}" in row:
                for metric in ("max_gen_length", "acc_past_main"):
                    row[f"{metric}_gain{suffix}"] = (row[f"{metric}_with_aux"]
                                                     - row[f"{metric}_{baseline}"])
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs.update(main_task=main_task, aux_tasks=aux_tasks, l_main=l_main, l_aux=l_aux)
    return table


def best_seed(table: pd.DataFrame) -> int | None:
    col = ("acc_past_main_with_aux" if "acc_past_main_with_aux" in table
           else "acc_past_main_main_only")
    if col not in table or table[col].isna().all():
        return None
    return int(table.loc[table[col].idxmax(), "seed"])


# ----------------------------------------------------------------------------- whole folders


def run_folders(root: Path) -> list[Path]:
    """Every run folder (one holding a manifest.json) under `root`, in a stable order. A folder
    that is both a run and an experiment folder (experiment.json) is not one lgt makes: said
    in one line rather than taken for either."""
    found = sorted(p.parent for p in root.rglob(rundir.MANIFEST)
                   if ".submitit" not in p.parts and "heads" not in p.relative_to(root).parts)
    for d in found:
        if (d / rundir.EXPERIMENT_INDEX).is_file():
            raise UsageError(f"{d} holds both {rundir.MANIFEST} (a run) and "
                             f"{rundir.EXPERIMENT_INDEX} (an experiment's list of runs); lgt "
                             "never writes both in one folder: move or delete the one that does "
                             "not belong")
    return found


def experiment_folders(root: Path) -> list[Path]:
    """Every experiment folder under `root`: those holding runs, and those whose
    `experiment.json` lists runs trained in another experiment's folder."""
    indexed = {p.parent for p in root.rglob(rundir.EXPERIMENT_INDEX) if ".submitit" not in p.parts}
    return sorted({d.parent for d in run_folders(root)} | indexed)


def collect(root: Path) -> pd.DataFrame:
    """Every evaluation row under `root`, one tidy table (complete and partial runs alike). A
    run that an experiment shares with another is listed under each (`experiment.json`)."""
    frames = [_run_frame(d, root, *_label(d, d.parent)) for d in run_folders(root)]
    for index_path in sorted(root.rglob(rundir.EXPERIMENT_INDEX)):
        exp_dir = index_path.parent
        for d in rundir.listed_runs(exp_dir):
            if not d.is_relative_to(exp_dir) and (d / rundir.MANIFEST).exists():
                frames.append(_run_frame(d, root, *_label(d, exp_dir)))
    frames = [f for f in frames if f is not None]
    if not frames:
        raise UsageError(f"no run with evaluation results under {root}")
    df = pd.concat(frames, ignore_index=True)
    extra = [c for c in df.columns if c not in CONTRACT_COLUMNS]
    return df[CONTRACT_COLUMNS + extra]


def _label(run_dir: Path, folder: Path) -> tuple[str | None, str | None, str | None]:
    """How a run appears in the tables of the experiment folder `folder`: the name and figure of
    the experiment whose folder it is (its `experiment.json`), whatever name the run was trained
    under; and that experiment's config key only when the run lives elsewhere (a shared baseline
    joins the config that lists it; a folder's own runs keep their own key, so runs of an
    edited config are never mixed with the earlier ones). (None, None, None) when the folder
    has no index (runs made before experiment.json keep their own)."""
    index = rundir.read_experiment_index(folder)
    if not index:
        return None, None, None
    if run_dir.is_relative_to(folder):
        return index.get("name"), index.get("figure"), None
    return index.get("name"), index.get("figure"), index.get("experiment_key") or _own_key(folder)


def _own_key(folder: Path) -> str | None:
    """The config key of the newest run trained in this folder itself (for an experiment.json
    written before it recorded its key)."""
    found = []
    for manifest in folder.glob(f"*/{rundir.MANIFEST}"):
        try:
            m = rundir.read_json(manifest)
        except (OSError, ValueError):
            continue
        found.append((m.get("started", 0.0), m.get("experiment_key")))
    return max(found)[1] if found else None


def _run_frame(d: Path, root: Path, experiment: str | None = None,
               figure: str | None = None, key: str | None = None) -> pd.DataFrame | None:
    """One run's eval rows with its folder, status and keys (`experiment`, `figure`: those of
    the experiment that lists it, when it was trained under another)."""
    rows = rundir.read_jsonl(d / "eval.jsonl")
    if not rows:
        return None
    m = rundir.read_json(d / rundir.MANIFEST)
    config = rundir.read_yaml(d / "config.yaml") if (d / "config.yaml").exists() else {}
    frame = pd.DataFrame(rows)
    if experiment is not None:
        frame["experiment"] = experiment
    frame["run"] = Path(os.path.relpath(d, root)).as_posix() if d != root else d.name
    frame["status"] = m.get("status", "unknown")
    frame["config_hash"] = m.get("config_hash", "")
    frame["experiment_key"] = key or m.get("experiment_key", "")
    frame["figure"] = m.get("figure", "") if figure is None else figure
    frame["pos_encoding"] = (config or {}).get("model", {}).get("pos_encoding", "rope")
    frame["budget"] = (config or {}).get("budget") or ""  # "": a run made before budgets
    return frame


def budget_label(df: pd.DataFrame) -> str:
    """The budgets of a table's runs for a report heading, " (cpu)"; "" for runs made before
    budgets."""
    budgets = sorted({b for b in df.get("budget", []) if b})
    return f" ({', '.join(budgets)})" if budgets else ""


def label_configs(df: pd.DataFrame) -> pd.DataFrame:
    """The table with each experiment name that several configs share (`ratio` cells of two
    budgets, an experiment rerun with `--set`) told apart as `NAME (BUDGET)` where the budget
    does it, else `NAME [KEY]`, so that a report never averages runs of different configs
    together."""
    df = df.copy()
    # by budget first (`g2 (cpu)`, `g2 (gpu)`), then by key where that is not enough
    for tag in (lambda d: d.budget.map(lambda b: f" ({b})" if b else ""),
                lambda d: " [" + d.experiment_key + "]"):
        keys = df[df.status == "complete"].groupby("experiment").experiment_key.nunique()
        rows = df.experiment.isin(set(keys[keys > 1].index))
        if rows.any():
            df.loc[rows, "experiment"] = df.experiment[rows] + tag(df[rows])
    return df


def experiments(df: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """The complete runs' rows of each (experiment, config key), in order of first appearance."""
    done = df[df.status == "complete"]
    return {key: sel for key, sel in done.groupby(["experiment", "experiment_key"], sort=False)}


def per_seed(df: pd.DataFrame) -> pd.DataFrame:
    """`seed_metrics` of every experiment, stacked, with the best seed marked."""
    tables = []
    for (name, key), exp in experiments(df).items():
        # a pretraining-stage sweep: one experiment per stage here
        stages = exp.groupby("stage", sort=False) if _has_stages(exp) else [(None, exp)]
        for stage, sel in stages:
            if not (sel.role == "main").any():
                continue
            table = seed_metrics(sel)
            best = best_seed(table)
            table.insert(0, "experiment", name)
            table.insert(1, "experiment_key", key)
            table.insert(2, "figure", sel.figure.iloc[0])
            if stage is not None:
                table.insert(3, "stage", stage)
            table["best"] = table.seed == best
            tables.append(table)
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def statistics(seeds: pd.DataFrame) -> pd.DataFrame:
    """Per experiment, variant and metric: mean, std, min, max, bootstrap 95 % CI, best seed."""
    rows = []
    if seeds.empty:
        return pd.DataFrame(rows)
    keys = ["experiment", "experiment_key"] + (["stage"] if _has_stages(seeds) else [])
    for (name, key, *stage), sel in seeds.groupby(keys, sort=False, dropna=False):
        best = sel.seed[sel.best]
        for metric, variant in SEED_METRICS.items():
            if metric not in sel or sel[metric].isna().all():
                continue
            v = sel[metric].astype(float).dropna().to_numpy()
            lo, hi = mean_ci(v, BOOTSTRAP_RESAMPLES)
            rows.append({"experiment": name, "experiment_key": key,
                         **({"stage": stage[0]} if stage else {}), "figure": sel.figure.iloc[0],
                         "variant": variant, "metric": metric, "n_seeds": len(v),
                         "mean": v.mean(), "std": v.std(ddof=1) if len(v) > 1 else 0.0,
                         "min": v.min(), "max": v.max(), "ci_low": lo, "ci_high": hi,
                         "best_seed": int(best.iloc[0]) if len(best) else None})
    return pd.DataFrame(rows)


def write_results(root: Path) -> dict[str, Path]:
    """results.csv (+ .parquet), per_seed.csv and stats.csv in `root`; returns their paths."""
    df = collect(root)
    paths = {"results": root / "results.csv"}
    _write_csv(df, paths["results"])
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        pass
    else:
        paths["parquet"] = root / "results.parquet"
        tmp = paths["parquet"].with_name(".results.parquet.tmp")
        df.to_parquet(tmp, index=False)
        tmp.replace(paths["parquet"])
    seeds = per_seed(df)
    paths["per_seed"], paths["stats"] = root / "per_seed.csv", root / "stats.csv"
    _write_csv(seeds, paths["per_seed"])
    _write_csv(statistics(seeds), paths["stats"])
    return paths


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    rundir.write_atomic(path, df.to_csv(index=False))
