"""The experiment report: accuracy-vs-length figure, per-seed summary table, Markdown and HTML.

Reads every run folder under an experiment folder (their `eval.jsonl` at the last step) and writes
`report.png`, `report.md`, `report.html` (self-contained: the figure is embedded) and
`summary.csv` beside them. Every seed is drawn thin and the best seed bold; the best seed is the
one with the highest mean main-task accuracy on (main training length, aux training length].
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from lgtransfer import rundir
from lgtransfer.errors import UsageError
from lgtransfer.evaluate import generalization_gap, max_generalized_length, mean_accuracy


def select_runs(exp_dir: Path) -> tuple[list[Path], int]:
    """The complete runs of the most recently finished experiment config under `exp_dir`, and
    how many complete runs of other configs (e.g. earlier `--set` variations) were left out."""
    groups: dict[str, list[tuple[float, Path]]] = {}
    for manifest_path in sorted(exp_dir.rglob("manifest.json")):
        if rundir.is_complete(manifest_path.parent):
            m = rundir.read_json(manifest_path)
            groups.setdefault(m.get("experiment_key", ""), []).append(
                (m.get("finished", 0.0), manifest_path.parent))
    if not groups:
        raise UsageError(f"no complete run under {exp_dir}")
    latest = max(groups.values(), key=lambda runs: max(t for t, _ in runs))
    skipped = sum(len(runs) for runs in groups.values()) - len(latest)
    return [d for _, d in latest], skipped


def load_eval(exp_dir: Path, run_dirs: list[Path] | None = None) -> pd.DataFrame:
    """Every eval row of the given runs (default: `select_runs(exp_dir)`), complete ones only."""
    if run_dirs is None:
        run_dirs, _ = select_runs(exp_dir)
    rows = []
    for d in run_dirs:
        if rundir.is_complete(d):
            rows += rundir.read_jsonl(d / "eval.jsonl")
    if not rows:
        raise UsageError(f"no complete run under {exp_dir}")
    return pd.DataFrame(rows)


def final_curves(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of each run's last evaluated step only."""
    last = df.groupby(["experiment", "variant", "seed"])["step"].transform("max")
    return df[df["step"] == last]


def _curve(df: pd.DataFrame, variant: str, seed: int, task: str) -> dict[int, float]:
    sel = df[(df.variant == variant) & (df.seed == seed) & (df.task == task)]
    return dict(zip(sel.length.astype(int), sel.accuracy.astype(float), strict=True))


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per seed: max generalized length with and without aux, gap, gains."""
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
        for variant in ("with_aux", "main_only"):
            curve = _curve(final, variant, seed, main_task)
            if curve:
                row[f"mgl_{variant}"] = max_generalized_length(curve)
                row[f"ood_acc_{variant}"] = mean_accuracy(curve, l_main, max(l_aux, l_main + 1))
        with_aux = _curve(final, "with_aux", seed, main_task)
        if with_aux and aux_tasks:
            curves = [_curve(final, "with_aux", seed, t) for t in aux_tasks]
            row["gap"] = generalization_gap(with_aux, curves, l_main, l_aux)
        if "mgl_with_aux" in row and "mgl_main_only" in row:
            row["transfer_gain"] = row["mgl_with_aux"] - row["mgl_main_only"]
            row["ood_gain"] = row["ood_acc_with_aux"] - row["ood_acc_main_only"]
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs.update(main_task=main_task, aux_tasks=aux_tasks, l_main=l_main, l_aux=l_aux)
    return table


def best_seed(table: pd.DataFrame) -> int | None:
    col = "ood_acc_with_aux" if "ood_acc_with_aux" in table else "ood_acc_main_only"
    if col not in table or table[col].isna().all():
        return None
    return int(table.loc[table[col].idxmax(), "seed"])


def plot(df: pd.DataFrame, table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    final = final_curves(df)
    attrs = table.attrs
    best = best_seed(table)
    panels = [("with_aux", "main task, with auxiliary tasks", [attrs["main_task"]]),
              ("main_only", "main task alone (baseline)", [attrs["main_task"]]),
              ("with_aux", "auxiliary tasks", attrs["aux_tasks"])]
    panels = [p for p in panels if ((final.variant == p[0]) & final.task.isin(p[2])).any()]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (variant, title, tasks) in zip(axes[0], panels, strict=True):
        for k, task in enumerate(tasks):
            color = colors[k % len(colors)] if len(tasks) > 1 else colors[0]
            for seed in sorted(final.seed.unique()):
                curve = _curve(final, variant, seed, task)
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
                curve = _curve(final, variant, best, task) if best is not None else {}
                if curve:
                    xs = sorted(curve)
                    ax.plot(xs, [curve[x] for x in xs], color=colors[(k + 1) % len(colors)],
                            ls=":", lw=1.5, label=f"{task} (aux, seed {best})")
            ax.axvline(attrs["l_aux"], color="gray", ls="--", lw=1)
        ax.set(title=title, xlabel="length", ylabel="exact-match accuracy", ylim=(-0.03, 1.03))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    fig.suptitle(f"{df.experiment.iloc[0]}: accuracy vs length (dashed: longest training length)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _mean_std_row(table: pd.DataFrame) -> dict:
    row: dict = {"seed": "mean ± std"}
    for col in table.columns:
        if col != "seed":
            v = table[col].astype(float)
            row[col] = f"{v.mean():.3g} ± {v.std(ddof=0):.2g}"
    return row


COLUMNS = {
    "seed": "seed",
    "mgl_with_aux": "max gen. length, with aux",
    "mgl_main_only": "max gen. length, alone",
    "transfer_gain": "transfer gain (lengths)",
    "ood_acc_with_aux": "acc. past main length, with aux",
    "ood_acc_main_only": "acc. past main length, alone",
    "ood_gain": "acc. gain",
    "gap": "generalization gap",
}


def _display(table: pd.DataFrame) -> pd.DataFrame:
    shown = pd.concat([table.astype(object), pd.DataFrame([_mean_std_row(table)])],
                      ignore_index=True)
    shown = shown[[c for c in COLUMNS if c in shown]].rename(columns=COLUMNS)
    return shown.map(lambda v: f"{v:.3f}" if isinstance(v, float) else v)


def markdown_table(shown: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(str(c) for c in shown.columns) + " |",
             "|" + "---|" * len(shown.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(False)]
    return "\n".join(lines)


@dataclass
class Section:
    """One part of a report: a heading, Markdown text, PNG figures (files in the report's folder)
    and tables. `render` turns a list of them into report.md and a self-contained report.html."""

    title: str
    text: str = ""
    figures: list[Path] = field(default_factory=list)
    tables: list[pd.DataFrame] = field(default_factory=list)


def _inline_markdown(text: str) -> str:
    """The little Markdown our texts use (**bold**, `code`), as HTML."""
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def render(title: str, sections: list[Section], out_dir: Path, stem: str = "report") -> Path:
    """Write `stem.md` and a self-contained `stem.html` (figures embedded) into `out_dir`."""
    md = [f"# {title}"]
    body = [f"<h1>{html.escape(title)}</h1>"]
    for i, sec in enumerate(sections):
        if sec.title and (i or len(sections) > 1):
            md.append(f"## {sec.title}")
            body.append(f"<h2>{html.escape(sec.title)}</h2>")
        for para in filter(None, sec.text.split("\n\n")):
            md.append(para)
            body.append(f"<p>{_inline_markdown(para)}</p>")
        for fig in sec.figures:
            rel = fig.relative_to(out_dir) if fig.is_relative_to(out_dir) else fig
            md.append(f"![{fig.stem}]({rel.as_posix()})")
            png = base64.b64encode(fig.read_bytes()).decode()
            body.append(f"<img alt='{html.escape(fig.stem)}' style='max-width:100%' "
                        f"src='data:image/png;base64,{png}'>")
        for table in sec.tables:
            md.append(markdown_table(table))
            body.append(table.to_html(index=False, border=0))
    rundir.write_atomic(out_dir / f"{stem}.md", "\n\n".join(md) + "\n")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            "</title><style>body{font-family:sans-serif;max-width:1200px;margin:2em auto}"
            "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
            "padding:4px 8px;text-align:right}</style></head><body>"
            + "\n".join(body) + "</body></html>")
    rundir.write_atomic(out_dir / f"{stem}.html", page)
    return out_dir / f"{stem}.md"


def experiment_section(exp_dir: Path, run_dirs: list[Path] | None = None) -> Section:
    """The accuracy-vs-length figure and per-seed table of one experiment (writes report.png
    and summary.csv into `exp_dir`)."""
    df = load_eval(exp_dir, run_dirs)
    table = summarize(df)
    table.to_csv(exp_dir / "summary.csv", index=False)
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
    return Section(f"Experiment {df.experiment.iloc[0]}", intro, [exp_dir / "report.png"],
                   [_display(table)])


def write_report(exp_dir: Path, run_dirs: list[Path] | None = None) -> Path:
    """Write report.png, report.md, report.html and summary.csv for one experiment folder."""
    from lgtransfer.heads_plots import heads_section

    section = experiment_section(exp_dir, run_dirs)
    heads = heads_section(exp_dir)  # present once `lgt heads` has analysed this folder
    return render(section.title, [section] + ([heads] if heads else []), exp_dir)


def curves_text(df: pd.DataFrame) -> str:
    """Plain-text accuracy per length of every final curve (for the terminal)."""
    final = final_curves(df)
    lines = []
    for (variant, seed, task), sel in final.groupby(["variant", "seed", "task"]):
        sel = sel.sort_values("length")
        accs = " ".join(f"{int(n)}:{a:.2f}" for n, a in zip(sel.length, sel.accuracy, strict=True))
        lines.append(f"{variant:9s} seed {seed:<3d} {task:14s} {accs}")
    return "\n".join(lines)
