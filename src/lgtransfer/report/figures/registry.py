"""The registry of figure sections: `figure(...)` registers a function that redraws a paper
figure from our runs as a report `Section`, `figure_sections` calls them in the paper's order,
and `claims_table` is the table every figure ends with (the paper's claim beside ours).

Each figure family has its own module in this package; the package's `__init__` imports them all,
so importing anything under `lgtransfer.report.figures` fills the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from lgtransfer.report.render import Section
from lgtransfer.verdicts import Verdict

PAPER_ORDER = ["3a", "3b", "3c", "4a", "4c", "6", "7", "8", "9", "14", "10", "11", "12", "13",
               "15", "matrix"]
# (a complete run's eval rows, their per-seed metrics, the suite folder) -> the figure's section
SectionFn = Callable[[pd.DataFrame, pd.DataFrame, Path], Section]
# paper figure id -> (section title, the function that draws it)
SECTION_BY_FIGURE_ID: dict[str, tuple[str, SectionFn]] = {}


def figure(*ids: str, title: str) -> Callable[[SectionFn], SectionFn]:
    """Register the decorated function as the section of paper figures `ids`."""
    def register(fn: SectionFn) -> SectionFn:
        for i in ids:
            SECTION_BY_FIGURE_ID[i] = (title, fn)
        return fn
    return register


def num(x: float) -> str:
    """A measured number for a claims row: two decimals, or n/a where undefined."""
    return "n/a" if x != x else f"{x:.2f}"


def claims_table(rows: list[tuple[str, str, str, bool | Verdict | None]]) -> pd.DataFrame:
    """(experiment, the paper's claim, what we measured, the verdict) per row. A `Verdict`
    brings its rule, written beside the result, and its interval with n. A verdict with no data
    at all (n = 0: an experiment whose own runs are not done, listed through a shared baseline)
    makes no row."""
    out = []
    for e, p, o, ok in rows:
        if isinstance(ok, Verdict) and ok.measured.n == 0:
            continue
        if isinstance(ok, Verdict):
            out.append({"experiment": e, "paper": p, "ours": f"{o}; {ok.measured}",
                        "rule": ok.rule, "reproduces": ok.outcome})
        else:
            out.append({"experiment": e, "paper": p, "ours": o, "rule": "",
                        "reproduces": "n/a" if ok is None else ("yes" if ok else "no")})
    return pd.DataFrame(out)


def per_seed_values(seeds: pd.DataFrame, exp: str, col: str) -> dict[int, float]:
    """seed -> per-seed metric `col` of experiment `exp` (nan where undefined)."""
    sel = seeds[seeds.experiment == exp]
    if col not in sel:
        return {}
    return {int(s): float(v) for s, v in zip(sel.seed, sel[col], strict=True)}


def seed_mean(seeds: pd.DataFrame, exp: str, col: str) -> float:
    """The mean over seeds of per-seed metric `col` of experiment `exp` (nan when missing)."""
    v = seeds.loc[seeds.experiment == exp, col] if col in seeds else pd.Series(dtype=float)
    return float(v.astype(float).mean()) if len(v.dropna()) else float("nan")


def experiment_figures(df: pd.DataFrame, out: Path) -> list[Path]:
    """Each experiment's own accuracy-vs-length figure (written by its own report)."""
    folders = dict.fromkeys(out / Path(run).parent for run in df.run.unique())
    return [f / "report.png" for f in folders if (f / "report.png").exists()]


def figure_sections(df: pd.DataFrame, seeds: pd.DataFrame, out: Path) -> list[Section]:
    """A section per figure the experiments under `out` redraw, in the paper's order."""
    sections = []
    done = df[df.status == "complete"]
    by_title: dict[str, list[str]] = {}
    for fig_id in sorted(done.figure.unique(), key=lambda f: PAPER_ORDER.index(f)
                         if f in PAPER_ORDER else len(PAPER_ORDER)):
        if fig_id in SECTION_BY_FIGURE_ID:
            by_title.setdefault(SECTION_BY_FIGURE_ID[fig_id][0], []).append(fig_id)
    for title, ids in by_title.items():
        fn = SECTION_BY_FIGURE_ID[ids[0]][1]
        sel = done[done.figure.isin(ids)]
        sel_seeds = seeds[seeds.figure.isin(ids)] if len(seeds) else seeds
        section = fn(sel, sel_seeds, out)
        section.title = title
        sections.append(section)
    return sections
