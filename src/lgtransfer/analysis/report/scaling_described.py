"""The scaling study's described parts, which test nothing (lgtransfer.analysis.report.scaling;
results/scaling/registration.yaml): the forecast line, the side arm's table and the figure."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lgtransfer.analysis.metrics import LEARNED
from lgtransfer.analysis.report.render import pyplot

SIDE_ARM = ("g3", "g6", "g7", "g2-signed")
BOOTSTRAP_DRAWS = 10_000


@dataclass(frozen=True)
class Line:
    """The least-squares line of reach_share on log2(compute) over a group's with-aux runs, and
    its slope's 95 % bootstrap interval (seeds resampled within levels)."""

    group: str
    n: int
    intercept: float
    slope: float
    lo: float
    hi: float

    def gets_there(self) -> bool:
        """Rising, with an interval clear of 0: only then is where it crosses 0.5 and 1.0 said."""
        return self.slope > 0 and not self.lo <= 0 <= self.hi

    def compute_at(self, share: float) -> str:
        """The compute at which the line reaches `share`, or "above 1e+15" where a near-flat
        line puts it out of any budget."""
        log2_compute = (share - self.intercept) / self.slope
        return "above 1e+15" if log2_compute > 50 else f"{2 ** log2_compute:.3g}"

    def per_doubling(self) -> str:
        """The README's short form: 'G1 +0.009 [-0.013, 0.034], does not get to L_aux'."""
        where = (f"L_aux at compute {self.compute_at(1.0)}" if self.gets_there()
                 else "does not get to L_aux")
        return f"{self.group.upper()} {self.slope:+.3f} [{self.lo:.3f}, {self.hi:.3f}], {where}"


def fit_line(runs: pd.DataFrame, group: str) -> Line | None:
    """The group's Line, or None before it has with-aux runs at two levels."""
    sel = runs[(runs.group == group) & (runs.variant == "with_aux")] if len(runs) else runs
    if len(sel) == 0 or sel.level.nunique() < 2:
        return None
    x, y = np.log2(sel.compute.to_numpy(dtype=float)), sel.reach_share.to_numpy(dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    lo, hi = np.percentile(bootstrap_slopes(x, y, sel.level.to_numpy()), [2.5, 97.5])
    return Line(group, len(sel), float(intercept), float(slope), float(lo), float(hi))


def forecast(runs: pd.DataFrame, references: dict[str, float], group: str) -> str:
    """The group's Line in words and where it reaches 0.5 and 1.0 (L_aux): described, not
    tested."""
    line = fit_line(runs, group)
    if line is None:
        return f"{group.upper()}: no line yet (with-aux runs at two levels at least are needed)."
    sign = "-" if line.slope < 0 else "+"
    head = (f"{group.upper()}: reach_share = {line.intercept:.3f} {sign} {abs(line.slope):.3f} x "
            f"log2(compute) (n = {line.n}; slope 95 % bootstrap interval "
            f"[{line.lo:.3f}, {line.hi:.3f}])")
    refs = ", ".join(f"{_name(k)} {v:g}" for k, v in references.items())
    if not line.gets_there():
        return f"{head}: the trend does not get there ({refs})."
    return (f"{head}: 0.5 at compute {line.compute_at(0.5)}, 1.0 (L_aux) at "
            f"{line.compute_at(1.0)} (beside the {refs}).")


def _name(reference: str) -> str:
    return reference.replace("_", " ").replace("h100", "H100")  # h100_pilot -> H100 pilot


def bootstrap_slopes(x: np.ndarray, y: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """BOOTSTRAP_DRAWS slopes, each of the runs drawn with replacement within each level
    (numpy default_rng(0); levels in order of first appearance)."""
    rng = np.random.default_rng(0)
    picks = []
    for level in dict.fromkeys(levels):
        idx = np.flatnonzero(levels == level)
        picks.append(idx[rng.integers(0, len(idx), (BOOTSTRAP_DRAWS, len(idx)))])
    sample = np.concatenate(picks, axis=1)
    xs, ys = x[sample], y[sample]
    xc = xs - xs.mean(axis=1, keepdims=True)
    return (xc * (ys - ys.mean(axis=1, keepdims=True))).sum(axis=1) / (xc ** 2).sum(axis=1)


def side_arm(ind: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per side-arm run and task: in-distribution accuracy and whether it learned; per group
    and level: whether every task did."""
    sel = ind[ind.group.isin(SIDE_ARM)] if len(ind) else ind
    tasks = pd.DataFrame({
        "group": sel.group, "level": sel.level, "seed": sel.seed,
        "task": sel.task + " (" + sel.role + ")", "trained to": sel.train_max_length,
        "in-distribution accuracy": sel.accuracy.round(3),
        "learned": np.where(sel.accuracy >= LEARNED, "yes", "no")})
    groups = tasks.groupby(["group", "level"], sort=False).learned.agg(
        lambda s: "yes" if (s == "yes").all() else "no").reset_index()
    return tasks, groups.rename(columns={"learned": "every task learned"})


SIDE_TEXT = (f"Does each task of G3, G6, G7 and g2-signed learn its own range (mean exact "
             f"match over its training lengths at the last step >= {LEARNED})? A group learns "
             "when all its tasks do.")


def side_arm_outcome(groups: pd.DataFrame) -> str:
    """The side arm's answer in a sentence: the first level at which each group learns, the
    groups that have not (yet), and which are due an x18 run (the registration runs one only
    for a group with a task below the threshold at x4; none is due when every group learns
    at x4)."""
    ordered = groups.sort_values("level", key=lambda lv: lv.str[1:].astype(float), kind="stable")
    learned = ordered[ordered["every task learned"] == "yes"]
    yes = learned.groupby("group", sort=False)["level"].first()
    found = [f"{', '.join(yes[yes == level].index)} at {level}" for level in dict.fromkeys(yes)]
    at = {(g, lv): v for g, lv, v in groups[["group", "level", "every task learned"]].itertuples(
        index=False)}
    tried = {g for g, _ in at}
    below = [g for g in SIDE_ARM if g in tried and g not in yes.index]
    no_run = [g for g in SIDE_ARM if g not in tried]
    due = [g for g in SIDE_ARM if at.get((g, "x4")) == "no" and (g, "x18") not in at]
    text = [f"Learned its range (every task): {'; '.join(found)}." if found else "",
            f"Below {LEARNED} at every level run: {', '.join(below)}." if below else "",
            f"No run yet: {', '.join(no_run)}." if no_run else "",
            f"Due an x18 run (a task below {LEARNED} at x4): {', '.join(due)}." if due else ""]
    if all(at.get((g, "x4")) == "yes" for g in SIDE_ARM):
        text.append(f"No x18 side-arm run is due: the registration runs one only for a group "
                    f"with a task below {LEARNED} at x4.")
    return " ".join(t for t in text if t)


SIDE_NONE = ("No side-arm run is in yet (registered: seed 0 with aux of G3, G6, G7 and "
             "g2-signed at x4).")


def scaling_figure(runs: pd.DataFrame, groups: tuple[str, ...], references: dict[str, float],
                   out: Path) -> Path:
    """reach_share (top) and gain (bottom) against compute, G1 and G5 side by side: every seed
    a dot (jittered along x), the level means a line, reach's forecast line carried on to the
    paper's compute; the paper and the H100 pilot marked."""
    plt = pyplot()
    fig, axes = plt.subplots(2, len(groups), figsize=(11, 7.5), sharex=True)
    rng = np.random.default_rng(0)
    for col, group in enumerate(groups):
        sel = runs[(runs.group == group) & (runs.variant == "with_aux")] if len(runs) else runs
        for row, stat in enumerate(("reach_share", "gain")):
            ax = axes[row, col]
            if len(sel):
                jitter = 2 ** rng.uniform(-0.15, 0.15, len(sel))
                ax.scatter(sel.compute * jitter, sel[stat], s=16, alpha=0.6, label="one seed")
                means = sel.groupby("compute")[stat].mean()
                ax.plot(means.index, means.to_numpy(), "-o", color="black", label="level mean")
                line = fit_line(sel, group) if stat == "reach_share" else None
                if line is not None:  # the forecast line
                    c = np.geomspace(1, 6000, 50)
                    ax.plot(c, line.intercept + line.slope * np.log2(c), ":", color="grey",
                            label="least-squares line (forecast)")
            for (name, c), colour in zip(references.items(), ("tab:red", "tab:purple"),
                                         strict=False):
                ax.axvline(c, color=colour, ls="--", lw=1)
                ax.text(c * 0.9, 0.98, f"{_name(name)} ({c:g}; "
                        "lengths 16/32)",
                        rotation=90, ha="right", va="top", fontsize=7, color=colour,
                        transform=ax.get_xaxis_transform())
            ax.axhline(0, color="grey", lw=0.5)
            ax.set_xscale("log")
            ax.set_xlim(0.6, 6000)
            ax.set_ylabel(stat)
            ax.set_title(f"{group.upper()}: {stat}", fontsize=10)
            if row == 1:
                ax.set_xlabel("training compute (x the cpu budget)")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="upper center", ncol=3, fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    path = out / "fig_scaling.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def past_main_over_steps(df: pd.DataFrame) -> pd.DataFrame:
    """Per run and evaluation step: the main task's mean exact match over (L_main, L_aux], with
    the step as a share of the run's last step (levels train for different numbers of steps)."""
    cols = ["group", "level", "variant", "seed", "run", "step", "share", "past_main"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    l_aux = df[df.role == "aux"].groupby("group").train_max_length.max()
    main = df[df.role == "main"]
    band = main[(main.length > main.train_max_length) & (main.length <= main.group.map(l_aux))]
    out = band.groupby(["group", "level", "variant", "seed", "run", "step"],
                       as_index=False).accuracy.mean().rename(columns={"accuracy": "past_main"})
    out["share"] = out.step / out.groupby("run").step.transform("max")
    return out[cols]


def peak_table(steps: pd.DataFrame, levels: list[str]) -> pd.DataFrame:
    """Per group, level and variant: the seeds' mean accuracy past L_main at the last step
    beside the mean of each seed's best step -- a main task that extrapolated mid-training and
    then lost it shows here, one that never did shows 0 in both."""
    if steps.empty:
        return pd.DataFrame()
    steps = steps.sort_values(["group", "level", "variant", "run", "step"], key=lambda c: c.map(
        levels.index) if c.name == "level" else c)
    per_run = steps.groupby(["group", "level", "variant", "run"], sort=False).agg(
        last=("past_main", "last"), peak=("past_main", "max")).reset_index()
    table = per_run.groupby(["group", "level", "variant"], sort=False).agg(
        runs=("run", "size"), last=("last", "mean"), peak=("peak", "mean"),
        never=("peak", lambda s: int((s < 0.01).sum()))).reset_index()
    return table.rename(columns={
        "last": "mean at the last step", "peak": "mean of each run's best step",
        "never": "runs below 0.01 at every step"}).round(3)


STEPS_TEXT = ("The main task's mean exact match past L_main (lengths L_main + 1 to L_aux) at "
              "every evaluation step of each run, against the share of the run's training "
              "done; with aux in colour, alone in grey.")


def steps_figure(steps: pd.DataFrame, groups: tuple[str, ...], levels: list[str],
                 out: Path) -> Path:
    """Accuracy past L_main over training, a panel per group (rows) and level (columns)."""
    plt = pyplot()
    fig, axes = plt.subplots(len(groups), len(levels), figsize=(11, 3.2 * len(groups)),
                             sharex=True, sharey=True, squeeze=False)
    for (r, group), (c, level) in itertools.product(enumerate(groups), enumerate(levels)):
        ax = axes[r, c]
        sel = steps[(steps.group == group) & (steps.level == level)]
        for (variant, _), one in sel.groupby(["variant", "run"], sort=False):
            alone = variant != "with_aux"
            ax.plot(one.share, one.past_main, "-o", ms=2, lw=0.8, alpha=0.5 if alone else 0.8,
                    color="grey" if alone else None)
        ax.set_title(f"{group.upper()} {level}", fontsize=10)
        ax.set_ylim(-0.03, 1.03)
        if r == len(groups) - 1:
            ax.set_xlabel("share of training done")
        if c == 0:
            ax.set_ylabel("exact match past L_main")
    fig.tight_layout()
    path = out / "fig_scaling_steps.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
