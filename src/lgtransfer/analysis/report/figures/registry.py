"""The registry of figure sections: `figure(...)` registers a function that redraws a paper
figure from our runs as a report `Section`, `figure_sections` calls them in the paper's order,
and `claims_table` is the table every figure ends with (the paper's claim beside ours).

Each figure family has its own module in this package; the package's `__init__` imports them all,
so importing anything under `lgtransfer.analysis.report.figures` fills the registry.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pandas as pd

from lgtransfer.analysis import registration
from lgtransfer.analysis.metrics import LEARNED
from lgtransfer.analysis.report.render import Section
from lgtransfer.analysis.results import in_distribution
from lgtransfer.analysis.verdicts import (
    FLOOR,
    NOT_APPLICABLE,
    PENDING,
    Verdict,
    not_applicable,
    pending,
    settle,
    settle_fixed,
    untested,
)

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


def claims_table(rows: list[tuple[str, str, str, bool | Verdict | None]],
                 family: str = "") -> pd.DataFrame:
    """(experiment, the paper's claim, what we measured, the verdict) per row. A `Verdict`
    brings its rule, written beside the result, and its interval with n; it is kept in the
    `verdict` column until `settle_tables` has corrected it within its `family` (Holm). A
    verdict with no data at all (n = 0: an experiment whose own runs are not done, listed
    through a shared baseline) makes no row."""
    out = []
    for e, p, o, ok in rows:
        if isinstance(ok, Verdict) and ok.measured.n == 0 and not ok.note:
            continue  # (a claim not run says why in its note, and stays)
        if isinstance(ok, Verdict):
            v = replace(ok, family=ok.family or family)
            out.append({"experiment": e, "paper": p, "ours": o, "rule": v.rule,
                        "reproduces": v.outcome, "p": "", "verdict": v})
        else:
            out.append({"experiment": e, "paper": p, "ours": o, "rule": "",
                        "reproduces": "n/a" if ok is None else ("yes" if ok else "no"),
                        "p": "", "verdict": None})
    return pd.DataFrame(out)


def settle_tables(sections: list[Section], listed: dict[str, int] | None = None) -> None:
    """Holm within each family over every claims table of the sections (a family without a
    name is its section; a table's `attrs["family_size"]` fixes a family's m at its registered
    number of claims), then each table's `ours` (with the adjusted p) and `reproduces`
    columns written from the settled verdicts; the `verdict` column is dropped. `listed`
    (family -> the m its registration lists; `registration.listed_sizes`): where Holm at that
    m, n/a claims counted with p = 1, gives another p, the p column adds it, and the verdict
    says when it would read otherwise."""
    found = [(sec, table, i, replace(v, family=v.family or sec.title))
             for sec in sections for table in sec.tables if "verdict" in table
             for i, v in enumerate(table["verdict"]) if isinstance(v, Verdict)]
    sizes = {family: m for sec in sections for table in sec.tables
             for family, m in table.attrs.get("family_size", {}).items()}
    settled = settle([v for *_, v in found], sizes)
    at_listed = at_listed_m(settled, listed or {})
    for k, ((_, table, i, _), v) in enumerate(zip(found, settled, strict=True)):
        table.loc[i, "ours"] = f"{table.loc[i, 'ours']}; {v.measured}"
        table.loc[i, "p"] = p_text(v)
        table.loc[i, "reproduces"] = f"{v.outcome}: {v.note}" if v.note else v.outcome
        if k in at_listed and p_text(at_listed[k]) != p_text(v):
            m = listed[v.family]  # type: ignore[index]
            table.loc[i, "p"] += f"; m = {m}: {p_text(at_listed[k])}"
            if at_listed[k].outcome != v.outcome:
                table.loc[i, "reproduces"] += f"; {at_listed[k].outcome} at the listed m = {m}"
    for sec in sections:
        for j, table in enumerate(sec.tables):
            if "verdict" in table:
                sec.tables[j] = table.drop(columns="verdict")


def at_listed_m(settled: list[Verdict], listed: dict[str, int]) -> dict[int, Verdict]:
    """index -> the verdict at its family's listed m (`settle_fixed`: the tested claims and the
    rest counted with p = 1), for the tested claims of families with fewer tested than listed."""
    out = {}
    for family, m in listed.items():
        tested = [k for k, v in enumerate(settled) if v.family == family and not untested(v)]
        if 0 < len(tested) < m:
            fixed = settle_fixed([settled[k] for k in tested] + [None] * (m - len(tested)))
            out.update({k: v for k, v in zip(tested, fixed, strict=False) if v is not None})
    return out


def p_text(v: Verdict) -> str:
    """The Holm-adjusted p of the claim, and of its opposite when that decided a `no`."""
    if v.measured.n == 0 or v.outcome == NOT_APPLICABLE or math.isnan(v.p_yes):
        return ""
    if v.outcome in (PENDING, FLOOR):  # not corrected: the claim is not tested (yet)
        return f"raw {v.p_yes:.3g}"
    p_yes = v.p_yes if math.isnan(v.p_adj) else v.p_adj
    p_no = v.p_no if math.isnan(v.p_no_adj) else v.p_no_adj
    return f"{p_yes:.3g}" + (f" (opposite {p_no:.3g})" if v.outcome == "no" else "")


def learning(df: pd.DataFrame, runs: list[tuple[str, str]]) -> tuple[str, str]:
    """(why n/a, note) for a comparison between the runs of (experiment, variant) pairs: n/a
    when some task stays below the learning threshold on more than half of its seeds (the
    registration's rule); else a note of the tasks below it on fewer (every seed counts)."""
    sel = pd.concat([df[(df.experiment == e) & (df.variant == v)] for e, v in runs])
    per_run = in_distribution(sel)
    why, note = [], []
    for task, rows in per_run.groupby("task"):
        short = rows[rows.accuracy < LEARNED]
        counted = f"{task} below {LEARNED} on {short.seed.nunique()} of {rows.seed.nunique()} seeds"
        if 2 * short.seed.nunique() > rows.seed.nunique():
            why.append(counted)
        elif len(short):
            note.append(counted)
    return "; ".join(why), "; ".join(note)


def registered(v: Verdict, df: pd.DataFrame, runs: list[tuple[str, str]], seeds: set[int],
               out: Path) -> Verdict:
    """A verdict under the registration of the folder `out` (registration.yaml): pending while
    fewer than the registered seeds of its experiments are in, n/a when its runs did not learn
    their own range; the note says which tasks fell short on how many seeds, and which seed was
    the one a setting was picked on (the registration's `outcome_chosen`), if it counts."""
    reg = registration.load(out)
    wanted = [reg.seeds_for(e) for e, _ in runs]
    why, note = learning(df, runs)
    if any(w is not None and not set(w) <= seeds for w in wanted):
        want = next(w for w in wanted if w is not None)
        return pending(v, len(set(want) & seeds), len(want))
    chosen = [f"includes seed {reg.chosen[e]} of {e}, on whose outcome its setting was picked"
              for e in dict.fromkeys(e.split(" ")[0] for e, _ in runs)
              if e in reg.chosen and reg.chosen[e] in seeds]
    if why:
        return not_applicable(v, "; ".join(filter(None, [why, note, *chosen])))
    note = "; ".join(filter(None, [note, *chosen]))
    return replace(v, note=note) if note else v


def registered_values(values: dict[int, float], exp: str, out: Path) -> dict[int, float]:
    """The per-seed values of the registered seeds only, where the folder has a registration
    for `exp` (seeds beyond it were not planned and do not count), and defined (not nan)."""
    wanted = registration.load(out).seeds_for(exp)
    return {s: v for s, v in values.items()  # a seed missing one side (nan) is not in yet
            if v == v and (wanted is None or s in wanted)}


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
        # a figure that contrasts with other figures' runs (a control with its related group)
        # takes the whole suite's too
        extra = {"suite": (done, seeds)} if "suite" in inspect.signature(fn).parameters else {}
        section = fn(sel, sel_seeds, out, **extra)
        section.title = title
        sections.append(section)
    return sections
