"""Figures and the report section of the head analysis (`lgt heads`, `lgt report`).

Four figures in `DIR/heads/`: the per-task importance maps (and per-pair attention differences)
at each run's last checkpoint, the reuse metrics and the gap against training step, the metric
vs gap scatter, and the causal-test bars. `heads_section` reads them back with summary.json.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from lgtransfer.analysis.heads_stats import REUSE_METRICS
from lgtransfer.analysis.report.render import Section, pyplot, render
from lgtransfer.runtime import rundir

HEAD_FIGURES = (
    "heads_maps.png", "heads_training.png", "heads_scatter.png", "heads_causal.png")


def short(run: str) -> str:
    """A run's label without its config hash: `quick/with_aux_seed1`."""
    return re.sub(r"_[0-9a-f]{10}$", "", run)


def plot_maps(df: pd.DataFrame, path: Path) -> None:
    """One row of panels per (run, band): each task's importance map, then each pair's
    attention difference, at the run's last checkpoint."""
    plt = pyplot()
    heads = df[df.layer.notna()]
    last = heads[heads.step == heads.groupby("run").step.transform("max")]
    panels = last[last.metric.isin(["importance", "attn_diff"])]
    lines = list(panels.groupby(["run", "band"], sort=True).groups)
    cols = max(len(g.groupby(["metric", "task"])) for _, g in panels.groupby(["run", "band"]))
    fig, axes = plt.subplots(len(lines), cols, figsize=(2.6 * cols + 1, 2.4 * len(lines)),
                             squeeze=False)
    for i, (run, band) in enumerate(lines):
        sel = panels[(panels.run == run) & (panels.band == band)]
        for j, ((metric, task), g) in enumerate(sorted(sel.groupby(["metric", "task"]),
                                                       key=lambda kv: kv[0][0] != "importance")):
            grid = g.pivot_table(index="layer", columns="head", values="value").to_numpy(float)
            ax = axes[i, j]
            if metric == "importance":  # signed: blue where ablating the head helps
                top = max(float(np.nanmax(np.abs(grid))), 1e-6)
                im = ax.imshow(grid, cmap="RdBu_r", vmin=-top, vmax=top, aspect="auto")
            else:
                im = ax.imshow(grid, cmap="magma", vmin=0, aspect="auto")
            title = f"{metric}: {task} ({band})"
            ax.set(title=f"{short(run)}\n{title}" if j == 0 else title, xlabel="head",
                   ylabel="layer")
            ax.title.set_fontsize(8)
            fig.colorbar(im, ax=ax, fraction=0.046)
        for j in range(len(sel.groupby(["metric", "task"])), cols):
            axes[i, j].axis("off")
    fig.suptitle("importance = exact-match drop when the head is ablated; attention difference "
                 "in [0, 2] (last checkpoint)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _scalars(df: pd.DataFrame) -> pd.DataFrame:
    """(run, step, key, value): the gap and each metric/band scalar, pairs averaged."""
    s = df[df.layer.isna() & df.metric.isin([*REUSE_METRICS, "gap"])].copy()
    s["key"] = np.where(s.metric == "gap", "gap", s.metric + "/" + s.band.fillna(""))
    return s.groupby(["run", "step", "key"], as_index=False).value.mean()


def plot_training(df: pd.DataFrame, path: Path) -> None:
    """Each reuse metric against the step (one line per run and band), the gap on a twin axis."""
    plt = pyplot()
    s = _scalars(df)
    fig, axes = plt.subplots(1, len(REUSE_METRICS), figsize=(6 * len(REUSE_METRICS), 3.8),
                             squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes[0], REUSE_METRICS, strict=True):
        twin = ax.twinx()
        for i, run in enumerate(sorted(s.run.unique())):
            color = colors[i % len(colors)]
            for key, g in s[(s.run == run) & s.key.str.startswith(metric + "/")].groupby("key"):
                style = "-" if key.endswith("in_dist") else "--"
                ax.plot(g.step, g.value, style, color=color, marker="o", ms=3,
                        label=f"{short(run)} {key.split('/')[1]}")
            gap = s[(s.run == run) & (s.key == "gap")]
            twin.plot(gap.step, gap.value, ":", color=color, lw=2)
        ax.set(title=f"{metric} (solid: in_dist, dashed: transfer; dotted: gap)",
               xlabel="training step", ylabel=metric)
        twin.set_ylabel("generalization gap")
        ax.title.set_fontsize(9)
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_scatter(df: pd.DataFrame, path: Path, summary: dict) -> None:
    """Each metric/band scalar against the gap, one point per (run, checkpoint)."""
    plt = pyplot()
    s = _scalars(df).pivot_table(index=["run", "step"], columns="key", values="value")
    keys = [k for k in s.columns if k != "gap"]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        for run, g in s.groupby(level="run"):
            ax.scatter(g[key], g["gap"], s=14, label=short(run))
        c = summary.get("pooled_over_checkpoints", {}).get(key, {})
        rho = (c.get("spearman") or {}).get("value")
        ax.set(title=f"{key}\npooled Spearman {rho if rho is None else round(rho, 2)}",
               xlabel=key, ylabel="generalization gap")
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_causal(summary: dict, path: Path) -> None:
    """Main-task accuracy per run and band: clean, top-k aux heads ablated, k random heads."""
    plt = pyplot()
    bars = [(run, band, c) for run, r in summary["runs"].items()
            for band, c in sorted(r["causal"].items())]
    fig, ax = plt.subplots(figsize=(max(4.0, 2.4 * len(bars) + 1), 3.8))
    width = 0.27
    x = np.arange(len(bars))
    for i, (name, label) in enumerate((("clean_acc", "no ablation"),
                                       ("topk_acc", "top-k aux heads ablated"),
                                       ("random_acc", "k random heads ablated"))):
        ax.bar(x + (i - 1) * width, [c.get(name) or 0 for _, _, c in bars], width, label=label)
    for xi, (_, _, c) in zip(x, bars, strict=True):
        lo, hi = c.get("ci") or [None, None]
        ax.annotate(f"extra drop {_with_ci(c.get('extra_drop'), lo, hi)}", (xi, 1.01),
                    ha="center", fontsize=6)
    ax.set_xticks(x, [f"{short(run)}\n{band}" for run, band, _ in bars], fontsize=7)
    ax.set(ylabel="main-task exact match", ylim=(0, 1.12),
           title="causal test at the last checkpoint")
    ax.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(path: Path, rows: list[dict], summary: dict) -> None:
    """The four figures and heads.md / heads.html into `path/heads/`."""
    out = path / "heads"
    df = pd.DataFrame(rows)
    plot_maps(df, out / HEAD_FIGURES[0])
    plot_training(df, out / HEAD_FIGURES[1])
    plot_scatter(df, out / HEAD_FIGURES[2], summary)
    plot_causal(summary, out / HEAD_FIGURES[3])
    from lgtransfer.analysis.report.heads_causal_k import causal_k_section

    section = heads_section(path)
    if section is not None:
        curve = causal_k_section(path, out)  # the causal test over k, where it was measured
        render(section.title, [section, *([curve] if curve else [])], out, stem="heads")


def correlation_table(summary: dict) -> pd.DataFrame:
    """One row per (scope, metric): Spearman and Pearson with their 95 % intervals."""
    def fmt(c: dict, name: str) -> str:
        v = c.get(name) or {}
        if v.get("value") is None:
            return "n/a"
        lo, hi = v.get("ci") or [None, None]
        ci = f" [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else ""
        return f"{v['value']:.2f}{ci}"

    learned = f"learned checkpoints (main in-dist acc >= {summary.get('learned_threshold')})"
    scopes = []
    for run, r in summary["runs"].items():
        scopes += [(f"run {run}", r["over_checkpoints"]),
                   (f"run {run}, {learned}", r.get("over_learned_checkpoints", {}))]
    if len(summary["runs"]) > 1:
        scopes += [("all checkpoints pooled", summary["pooled_over_checkpoints"]),
                   (f"{learned} pooled", summary.get("pooled_over_learned_checkpoints", {})),
                   ("over runs (last checkpoint)", summary["over_runs"])]
    rows = [{"scope": scope, "metric vs gap": key, "n": c.get("n"),
             "Spearman [95% CI]": fmt(c, "spearman"), "Pearson [95% CI]": fmt(c, "pearson")}
            for scope, corr in scopes for key, c in corr.items()]
    return pd.DataFrame(rows)


def causal_table(summary: dict) -> pd.DataFrame:
    rows = []
    for run, r in summary["runs"].items():
        for band, c in sorted(r["causal"].items()):
            lo, hi = c.get("ci") or [None, None]
            rows.append({"run": run, "band": band, "clean": _with_ci(c.get("clean_acc")),
                         "top-k aux heads": _with_ci(c.get("topk_acc")),
                         "k random heads": _with_ci(c.get("random_acc")),
                         "extra drop [95% CI]": _with_ci(c.get("extra_drop"), lo, hi)})
    for band, c in summary.get("causal_over_runs", {}).items():
        lo, hi = c["ci"]
        rows.append({"run": f"mean of {c['n']} runs", "band": band,
                     "extra drop [95% CI]": _with_ci(c["mean_extra_drop"], lo, hi)})
    return pd.DataFrame(rows).fillna("")


def _with_ci(v: float | None, lo: float | None = None, hi: float | None = None) -> str:
    if v is None:
        return "n/a"
    return f"{v:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else "")


def heads_section(dir: Path) -> Section | None:
    """The head-analysis part of a report, when `dir/heads/summary.json` exists."""
    out = dir / "heads"
    if not (out / "summary.json").is_file():
        return None
    summary = rundir.read_json(out / "summary.json")
    opts = summary.get("options", {})
    k, ablation = opts.get("k"), opts.get("ablation", "mean")
    text = (f"Attention-head reuse between the main and auxiliary tasks ({ablation} ablation at "
            "the input of `o_proj`). **importance_diff** = mean |importance(main) - "
            "importance(aux)| over heads, importance being the exact-match drop when one head "
            "is ablated; **attn_diff** = mean L1 distance (0 to 2) between a head's attention "
            "distributions on the two tasks on aligned inputs. Both are correlated with the "
            "generalization gap over checkpoints and over runs (bootstrap 95 % intervals). "
            "Before the main task works at its own lengths the gap is near 0 only because "
            "neither task extrapolates yet; the rows over learned checkpoints leave those out."
            "\n\n"
            f"Causal test: the {k} heads most important to the auxiliary tasks are ablated "
            f"together and the main task's accuracy compared with {opts.get('random_draws')} "
            "draws of as many random heads; extra drop = acc(random) - acc(top-k), positive when "
            "the auxiliary task's heads matter more to the main task than random heads do.")
    figures = [out / f for f in HEAD_FIGURES if (out / f).is_file()]
    return Section("Attention heads", text, figures,
                   [correlation_table(summary), causal_table(summary)])
