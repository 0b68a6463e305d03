"""One experiment's report: accuracy-vs-length figure, per-seed table, Markdown and HTML.

Reads every run folder under an experiment folder (their `eval.jsonl` at the last step) and writes
`report.png`, `report.md`, `report.html` (self-contained: the figure is embedded) and
`per_seed.csv` (the table `lgt results` writes, for this experiment) beside them. Every seed is
drawn thin and the best seed bold; the best seed is the one with the highest mean main-task
accuracy on (main training length, aux training length]. A pretraining-stage sweep gets its own
section instead (`stages`); a folder of several experiments gets a suite report (`suite`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lgtransfer.analysis.report.render import Section, markdown_table, pyplot, render
from lgtransfer.analysis.report.stages import stage_position, stages_section
from lgtransfer.analysis.results import (
    accuracy_curve,
    best_seed,
    budget_label,
    final_curves,
    load_eval,
    per_seed,
    seed_metrics,
)
from lgtransfer.analysis.verdicts import MIN_TRANSFER, transfer
from lgtransfer.runtime import rundir


def plot(df: pd.DataFrame, table: pd.DataFrame, path: Path) -> None:
    plt = pyplot()
    final = final_curves(df)
    attrs = table.attrs
    best = best_seed(table)
    panels = [("with_aux", "main task, with auxiliary tasks", [attrs["main_task"]]),
              ("main_only", "main task alone (baseline)", [attrs["main_task"]]),
              ("main_only_same_examples", "main task alone, as many main examples",
               [attrs["main_task"]]),
              ("with_aux", "auxiliary tasks", attrs["aux_tasks"])]
    panels = [p for p in panels if ((final.variant == p[0]) & final.task.isin(p[2])).any()]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (variant, title, tasks) in zip(axes[0], panels, strict=True):
        for k, task in enumerate(tasks):
            color = colors[k % len(colors)] if len(tasks) > 1 else colors[0]
            for seed in sorted(final.seed.unique()):
                curve = accuracy_curve(final, variant, seed, task)
                if not curve:
                    continue
                xs = sorted(curve)
                bold = seed == best
                ax.plot(xs, [curve[x] for x in xs], color=color, lw=2.4 if bold else 0.9,
                        alpha=1 if bold else 0.55,
                        label=f"{task}" + (f" (best seed {seed})" if bold else "")
                        if bold or len(table) == 1 else None)
            sel = final[(final.variant == variant) & (final.task == task)]
            ax.axvline(int(sel.train_max_length.iloc[0]), color=color, ls="--", lw=1)
        if title.startswith("main task, with"):  # the aux curves of the best seed, for reference
            for k, task in enumerate(attrs["aux_tasks"]):
                curve = accuracy_curve(final, variant, best, task) if best is not None else {}
                if curve:
                    xs = sorted(curve)
                    ax.plot(xs, [curve[x] for x in xs], color=colors[(k + 1) % len(colors)],
                            ls=":", lw=1.5, label=f"{task} (aux, seed {best})")
            ax.axvline(attrs["l_aux"], color="gray", ls="--", lw=1)
        ax.set(title=title, xlabel="length", ylabel="exact-match accuracy", ylim=(-0.03, 1.03))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a panel without the best seed has no labels
            ax.legend(fontsize=8, loc="lower left")
    fig.suptitle(f"{df.experiment.iloc[0]}: accuracy vs length (dashed: longest training length)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _mean_std_row(table: pd.DataFrame) -> dict:
    row: dict = {"seed": "mean ± std"}
    for col in table.columns:
        if col != "seed":
            v = table[col].astype(float).dropna()  # an undefined value is left out, never 0
            row[col] = (f"{v.mean():.3g} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.2g}"
                        if len(v) else UNDEFINED)
    return row


UNDEFINED = "n/a"  # how a metric that cannot be computed (nan) is shown


# per-seed column -> its heading in the report
COLUMNS = {
    "seed": "seed",
    "max_gen_length_with_aux": "max gen. length, with aux",
    "max_gen_length_main_only": "max gen. length, alone",
    "max_gen_length_gain": "max gen. length gain",
    "acc_past_main_with_aux": "acc. past main length, with aux",
    "acc_past_main_main_only": "acc. past main length, alone",
    "acc_past_main_gain": "acc. past main length gain",
    "max_gen_length_main_only_same_examples": "max gen. length, alone (same examples)",
    "acc_past_main_main_only_same_examples": "acc. past main length, alone (same examples)",
    "acc_past_main_gain_same_examples": "acc. gain over alone (same examples)",
    "gap": "generalization gap",
}


def _display(table: pd.DataFrame) -> pd.DataFrame:
    shown = pd.concat([table.astype(object), pd.DataFrame([_mean_std_row(table)])],
                      ignore_index=True)
    shown = shown[[c for c in COLUMNS if c in shown]].rename(columns=COLUMNS)
    return shown.map(lambda v: (UNDEFINED if v != v else f"{v:.3f}") if isinstance(v, float)
                     else v)


def seed_table(df: pd.DataFrame) -> str:
    """The per-seed metrics of one experiment's eval rows, as a Markdown table."""
    return markdown_table(_display(seed_metrics(df)))


def experiment_section(exp_dir: Path, run_dirs: list[Path] | None = None) -> Section:
    """The accuracy-vs-length figure and per-seed table of one experiment (writes report.png
    and per_seed.csv into `exp_dir`)."""
    df = load_eval(exp_dir, run_dirs)
    rundir.write_atomic(exp_dir / "per_seed.csv", per_seed(df).to_csv(index=False))
    table = seed_metrics(df)
    plot(df, table, exp_dir / "report.png")
    a = table.attrs
    best = best_seed(table)
    intro = (f"Main task **{a['main_task']}** trained up to length {a['l_main']}"
             + (f"; auxiliary {', '.join(a['aux_tasks'])} up to {a['l_aux']}." if a["aux_tasks"]
                else " alone.")
             + f" Seeds: {', '.join(str(s) for s in table.seed)}; best seed: {best}. "
             "Max generalized length = the largest L with accuracy >= 0.9 at every length up to "
             "L; accuracy past main length = mean main-task accuracy on (main length, aux "
             "length]; generalization gap = mean |aux - main| accuracy strictly between the two "
             "training lengths (0 = perfect transfer).")
    if "acc_past_main_gain" in table:
        intro += "\n\n" + transfer_line(table.acc_past_main_gain)
    if "acc_past_main_gain_same_examples" in table:
        intro += "\n\n" + second_baseline_line(table.acc_past_main_gain,
                                                table.acc_past_main_gain_same_examples)
    return Section(f"Experiment {df.experiment.iloc[0]}{budget_label(df)}", intro,
                   [exp_dir / "report.png"],
                   [_display(table)])


def transfer_line(gains: pd.Series) -> str:
    """The transfer verdict on this experiment's per-seed gains, with its rule (the rule the
    suite report applies to the paper's groups, here for any experiment with a baseline)."""
    v = transfer(gains.astype(float).to_numpy(), MIN_TRANSFER)
    return (f"**Transfer: {v.outcome}.** With-aux minus alone in main-task accuracy past the "
            f"main length, per seed: {v.measured}. Rule: {v.rule}.")


def second_baseline_line(same_steps: pd.Series, same_examples: pd.Series) -> str:
    """The transfer verdict against the baseline trained on as many main-task examples as the
    with-aux run (fewer steps), and whether it differs from the same-steps verdict."""
    both = same_examples.notna() & same_steps.notna()  # compare on the seeds both baselines have
    first = transfer(same_steps[both].astype(float).to_numpy(), MIN_TRANSFER)
    second = transfer(same_examples[both].astype(float).to_numpy(), MIN_TRANSFER)
    change = ("the same conclusion" if second.outcome == first.outcome else
              f"a different conclusion ({first.outcome} against the same-steps baseline)")
    change += f" on the same {int(both.sum())} seeds"
    return (f"**Against the baseline with as many main-task examples: {second.outcome}** "
            f"({second.measured}): {change}.")


def write_experiment_report(exp_dir: Path, run_dirs: list[Path] | None = None) -> Path:
    """The report of one experiment (report.png, per_seed.csv, report.md/html), or of one
    pretraining-stage sweep (`stages`), with its attention-head part once there is one."""
    section = stages_section(exp_dir, run_dirs) or experiment_section(exp_dir, run_dirs)
    return render(section.title, [section, *heads_sections(exp_dir)], exp_dir)


def heads_sections(path: Path) -> list[Section]:
    """The attention-head part, once `lgt heads` has analysed this folder, and the causal
    test over k where its runs recorded it or `lgt heads` measured it (else nothing)."""
    from lgtransfer.analysis.report.heads_causal_k import causal_k_section
    from lgtransfer.analysis.report.heads_plots import heads_section

    return [s for s in (heads_section(path), causal_k_section(path)) if s is not None]


def curves_text(df: pd.DataFrame) -> str:
    """Plain-text accuracy per length of every final curve (for the terminal)."""
    final = final_curves(df)
    lines = []
    keys = ["variant", "seed", "task"]
    if "stage" in final:  # a pretraining-stage sweep: one block per stage, in pretraining order
        final = final.assign(stage_position=final.stage.map(stage_position))
        keys = ["stage_position", "stage", *keys]
    for (*stage, variant, seed, task), sel in final.groupby(keys):
        sel = sel.sort_values("length")
        accs = " ".join(f"{int(n)}:{a:.2f}" for n, a in zip(sel.length, sel.accuracy, strict=True))
        at = f"{stage[1]:14s} " if stage else ""
        lines.append(f"{at}{variant:9s} seed {seed:<3d} {task:14s} {accs}")
    return "\n".join(lines)
