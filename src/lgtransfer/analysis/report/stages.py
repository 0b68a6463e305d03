"""The report of a pretraining-stage sweep: the paper's Fig 9 and Fig 15 for any ladder.

A stage sweep (`model.stages`, see `config.stage_model`) fine-tunes each checkpoint of a
pretraining run, and the same architecture from scratch, on the same task group. This section
plots, against the pretraining step of each stage, the main task's accuracy past its training
length (`acc_past_train`: mean accuracy on (L_train, infinity), every evaluated length beyond it)
and its max generalized length (Fig 9), and every stage's accuracy-vs-length curves
(Fig 15), and tabulates them (`stages.csv` has one row per run). The step of a stage is read
from its name (`step-160000`, `runs/pretrain-small/step-375`); `scratch` is step 0 and drawn as
a dashed level, since it has no place on a log axis.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from lgtransfer.analysis.metrics import generalization_gap, max_generalized_length, mean_accuracy
from lgtransfer.analysis.report.render import Section, pyplot
from lgtransfer.analysis.results import budget_label, final_curves, load_eval
from lgtransfer.config.schema import SCRATCH

_STEP = re.compile(r"step[-_]?(\d+)/?$")


def stage_step(label: str) -> int | None:
    """The pretraining step a stage's name gives (0 for scratch), or None."""
    if label == SCRATCH:
        return 0
    m = _STEP.search(label)
    return int(m.group(1)) if m else None


def stage_position(label: str) -> float:
    """A sort key: scratch first, then by step; names without a step last."""
    step = stage_step(label)
    return -1.0 if label == SCRATCH else float(step) if step is not None else math.inf


def _curve(sel: pd.DataFrame, task: str) -> dict[int, float]:
    rows = sel[sel.task == task]
    return dict(zip(rows.length.astype(int), rows.accuracy.astype(float), strict=True))


def stage_rows(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (stage, variant, seed, main task) of the final evaluation, with the
    in-distribution accuracy at the first evaluation too (how fast each stage learns)."""
    final = final_curves(df)
    first = df[df.step == df.groupby(["stage", "variant", "seed"]).step.transform("min")]
    rows = []
    for (stage, variant, seed), sel in final.groupby(["stage", "variant", "seed"]):
        aux = sel[sel.role == "aux"]
        aux_tasks = sorted(aux.task.unique())
        for task in sorted(sel[sel.role == "main"].task.unique()):
            curve = _curve(sel, task)
            l_main = int(sel[sel.task == task].train_max_length.iloc[0])
            row = {"stage": stage, "step": stage_step(stage), "variant": variant,
                   "seed": int(seed), "task": task, "train_max_length": l_main,
                   "max_generalized_length": max_generalized_length(curve),
                   "in_dist_acc": mean_accuracy(curve, 0, l_main),
                   "acc_past_train": mean_accuracy(curve, l_main)}
            early = first[(first.stage == stage) & (first.variant == variant) &
                          (first.seed == seed)]
            if early.step.iloc[0] < sel.step.iloc[0]:
                row["first_eval_step"] = int(early.step.iloc[0])
                row["first_eval_in_dist_acc"] = mean_accuracy(_curve(early, task), 0, l_main)
            if aux_tasks:
                l_aux = int(aux.train_max_length.max())
                row["gap"] = generalization_gap(curve, [_curve(sel, t) for t in aux_tasks],
                                                l_main, l_aux)
            rows.append(row)
    table = pd.DataFrame(rows)
    order = table.stage.map(stage_position)
    return table.assign(_o=order).sort_values(["_o", "stage", "variant", "task", "seed"]).drop(
        columns="_o").reset_index(drop=True)


def stage_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Seed means per (stage, variant, task), in pretraining order."""
    metrics = [c for c in ("max_generalized_length", "acc_past_train", "in_dist_acc",
                           "first_eval_in_dist_acc", "gap") if c in rows]
    keys = ["stage", "variant", "task"]
    out = rows.groupby(keys, sort=False)[metrics].mean().reset_index()
    return out.assign(seeds=rows.groupby(keys, sort=False).seed.count().to_numpy())


def _compact(n: int) -> str:
    for div, unit in ((1_000_000, "M"), (1000, "k")):
        if n >= div and n % (div // 100) == 0:
            return f"{n / div:g}{unit}"
    return str(n)


def _x_positions(stages: list[str]) -> tuple[dict[str, float], bool, list[str]]:
    """x of each pretrained stage, whether to use a log axis (steps that grow geometrically,
    like a doubling ladder; SmolLM2's are evenly spaced), and tick labels."""
    pretrained = [s for s in stages if s != SCRATCH]
    steps = [stage_step(s) for s in pretrained]
    if all(s is not None and s > 0 for s in steps):
        ratios = [b / a for a, b in zip(steps, steps[1:], strict=False)]
        xs = dict(zip(pretrained, [float(s) for s in steps], strict=True))
        return xs, bool(ratios) and min(ratios) >= 1.5, [_compact(s) for s in steps]
    return {s: float(i) for i, s in enumerate(pretrained)}, False, pretrained


def plot_stages(summary: pd.DataFrame, rows: pd.DataFrame, path: Path, title: str) -> None:
    """Fig 9: accuracy past the training length and max generalized length vs pretraining."""
    plt = pyplot()

    stages = sorted(summary.stage.unique(), key=stage_position)
    xs, log, ticks = _x_positions(stages)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    lines = summary[["task", "variant"]].drop_duplicates().itertuples(index=False)
    for k, (task, variant) in enumerate(lines):
        color = colors[k % len(colors)]
        sel = summary[(summary.task == task) & (summary.variant == variant)]
        seeds = rows[(rows.task == task) & (rows.variant == variant)]
        for ax, metric in zip(axes, ("acc_past_train", "max_generalized_length"), strict=True):
            pre = sel[sel.stage != SCRATCH]
            ax.plot([xs[s] for s in pre.stage], pre[metric], "o-", color=color,
                    label=f"{task} ({variant})")
            dots = seeds[seeds.stage != SCRATCH]
            ax.scatter([xs[s] for s in dots.stage], dots[metric], color=color, s=10, alpha=0.4)
            scratch = sel[sel.stage == SCRATCH]
            if len(scratch):
                ax.axhline(float(scratch[metric].iloc[0]), color=color, ls="--", lw=1,
                           label=f"{task} ({variant}), from scratch")
    named = all(stage_step(s) is None for s in stages if s != SCRATCH)
    for ax, label in zip(axes, ("accuracy past the training length", "max generalized length"),
                         strict=True):
        ax.set(xlabel="stage" if named else "pretraining step", ylabel=label)
        if log:
            ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(list(xs.values()), ticks, rotation=30 if len(ticks) > 6 else 0,
                      fontsize=7 if len(ticks) > 6 else 9)
        ax.grid(alpha=0.3)
    axes[0].set_ylim(-0.03, 1.03)
    for length in sorted(rows.train_max_length.unique()):  # generalizing = above this line
        axes[1].axhline(int(length), color="gray", ls=":", lw=1)
    top = max(float(rows.max_generalized_length.max()), float(rows.train_max_length.max()))
    axes[1].set_ylim(0, top * 1.1 + 1)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{title}: fine-tuned from each pretraining stage (dashed: from scratch)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_stage_curves(df: pd.DataFrame, path: Path, title: str) -> None:
    """Fig 15: accuracy vs length of every stage (seed mean), main task per variant, and the
    auxiliary tasks' mean where there are some."""
    plt = pyplot()

    final = final_curves(df)
    stages = sorted(final.stage.unique(), key=stage_position)
    pretrained = [s for s in stages if s != SCRATCH]
    cmap = plt.get_cmap("viridis")
    color = {s: cmap(i / max(1, len(pretrained) - 1)) for i, s in enumerate(pretrained)}
    color[SCRATCH] = "black"
    panels = [(v, "main") for v in sorted(final.variant.unique(), reverse=True)]
    if (final.role == "aux").any():
        panels.append(("with_aux", "aux"))
    fig, axes = plt.subplots(1, len(panels), figsize=(max(7.0, 5.2 * len(panels)), 4),
                             squeeze=False)
    for ax, (variant, role) in zip(axes[0], panels, strict=True):
        sel = final[(final.variant == variant) & (final.role == role)]
        for stage in stages:
            curve = sel[sel.stage == stage].groupby("length").accuracy.mean()
            if len(curve):
                ax.plot(curve.index, curve.to_numpy(), color=color[stage], lw=1.4,
                        ls="--" if stage == SCRATCH else "-", label=stage)
        for length in sorted(sel.train_max_length.unique()):
            ax.axvline(int(length), color="gray", ls=":", lw=1)
        name = ", ".join(sorted(sel.task.unique()))
        ax.set(title=f"{name} ({variant})" if role == "main" else f"aux: {name} (mean)",
               xlabel="length", ylabel="exact-match accuracy", ylim=(-0.03, 1.03))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(f"{title}: accuracy vs length per pretraining stage (mean over seeds)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def stages_section(exp_dir: Path, run_dirs: list[Path] | None = None) -> Section | None:
    """The stage sweep's figures and table (writes stages.png, stages_curves.png and
    stages.csv into `exp_dir`); None when the runs are not a stage sweep."""
    df = load_eval(exp_dir, run_dirs)
    if "stage" not in df or df.stage.isna().any():
        return None
    name = str(df.experiment.iloc[0])
    rows = stage_rows(df)
    rows.to_csv(exp_dir / "stages.csv", index=False)
    summary = stage_summary(rows)
    plot_stages(summary, rows, exp_dir / "stages.png", name)
    plot_stage_curves(df, exp_dir / "stages_curves.png", name)
    trend = []
    for (task, variant), sel in summary.groupby(["task", "variant"], sort=False):
        mgl = ", ".join(f"{s} {v:.3g}" for s, v in zip(sel.stage, sel.max_generalized_length,
                                                        strict=True))
        trend.append(f"**{task}** ({variant}): {mgl}.")
    text = (f"Each stage fine-tuned on the same group; {rows.seed.nunique()} seed(s). Max "
            "generalized length = the largest L with accuracy >= 0.9 at every length up to L; "
            "accuracy past the training length (`acc_past_train` in stages.csv) = mean "
            "main-task accuracy at every evaluated length beyond it, on (L_train, infinity) "
            "(not only up to an auxiliary length); in-distribution = at lengths up to it (also "
            "at the first "
            "evaluation, which shows how fast each stage learns the task).\n\n"
            "Max generalized length by stage (seed mean): " + " ".join(trend))
    shown = summary.rename(columns={"max_generalized_length": "max gen. length",
                                    "acc_past_train": "acc. past training length",
                                    "in_dist_acc": "acc. in distribution",
                                    "first_eval_in_dist_acc": "same, at the first evaluation",
                                    "gap": "generalization gap"})
    shown["max gen. length"] = shown["max gen. length"].map(lambda v: f"{v:.1f}")
    shown = shown.map(lambda v: f"{v:.3f}" if isinstance(v, float) and not np.isnan(v) else v)
    return Section(f"Experiment {name}{budget_label(df)}: pretraining stages", text,
                   [exp_dir / "stages.png", exp_dir / "stages_curves.png"], [shown])
