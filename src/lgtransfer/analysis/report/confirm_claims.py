"""The confirmatory section of claims.md (issue 33): the claims a folder's
`registration-confirm.yaml` lists, judged from only the runs it governs (its seeds), each family
corrected by Holm at the m the registration fixes (`verdicts.settle_fixed`: a claim that is n/a,
floor, pending or has no result yet keeps its place with p = 1).

The rows come from the same code as the exploratory ones: the figure sections and the heads
claims (with the causal test over k at the k it registers, `causal_over_k`) run again on the
registered seeds' runs while `registration.governing` makes them read the
confirmatory registration (its seeds, its experiments, no seed picked on its outcome), plus the
within-experiment across-run rows (`across_within`). Each registered claim is then the row it
names (`rows` family, `row` experiment, `says` a part of the paper's claim); a claim without such
a row is `pending` and says why. Also here: the headings claims.md gives its two sections, and the
exploratory rows' note of the Holm p at the m registration.yaml lists (`settle_tables`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lgtransfer.analysis import registration
from lgtransfer.analysis.confirm import Claim, Plan
from lgtransfer.analysis.registration import ID
from lgtransfer.analysis.report.across_within import FAMILY as ACROSS_FAMILY
from lgtransfer.analysis.report.across_within import across_within_rows
from lgtransfer.analysis.report.figures.registry import figure_sections
from lgtransfer.analysis.report.heads_causal_k import causal_k_claims
from lgtransfer.analysis.report.heads_claims import heads_claims
from lgtransfer.analysis.report.render import Section
from lgtransfer.analysis.verdicts import (
    FAILS,
    PENDING,
    Interval,
    Verdict,
    settle_fixed,
    untested,
)
from lgtransfer.runtime import rundir

CONFIRMATORY, EXPLORATORY = "Confirmatory", "Exploratory"
# (report family, experiment column, paper column, ours column, verdict) of one computed row
Row = tuple[str, str, str, str, Verdict]


def seeds_label(seeds: list[int]) -> str:
    """10–19 for a run of consecutive seeds, else the list."""
    s = sorted(seeds)
    if len(s) > 2 and s == list(range(s[0], s[-1] + 1)):
        return f"{s[0]}–{s[-1]}"
    return ", ".join(str(x) for x in s)


def confirm_heading(plan: Plan) -> str:
    return f"### {CONFIRMATORY} (seeds {seeds_label(plan.seeds)}, {plan.path.name} of {plan.date})"


def exploratory_heading(root: Path) -> str:
    """The heading of the rows registration.yaml governs ('' for a folder without one)."""
    if not (root / registration.FILE).is_file():
        return ""
    reg = registration.load(root)
    return (f"### {EXPLORATORY} (seeds {seeds_label(reg.seeds)}, {registration.FILE} of "
            f"{reg.date})")


EXPLORATORY_TEXT = (
    "Exploratory: some rules these rows follow were settled after the data they decide (the "
    "floor rule for contrasts; n/a claims leaving their family's Holm correction), so they "
    "point where to look and confirm nothing (families not extended to these seeds keep their "
    "first seeds; each row's n says how many). Where a family's Holm p at the m "
    "registration.yaml lists (n/a claims counted with p = 1) differs from the one used, the p "
    "column gives it as `m = ...`, and the verdict says when it would read otherwise.")


def computed_rows(sections: list[Section]) -> list[Row]:
    """Every claim row of the sections, before Holm (a row's family: its verdict's, or else
    its section's title, as `settle_tables` takes it)."""
    out = []
    for sec in sections:
        for table in sec.tables:
            if "verdict" not in table:
                continue
            for r in table.itertuples(index=False):
                if isinstance(r.verdict, Verdict):
                    out.append((r.verdict.family or sec.title, r.experiment, r.paper, r.ours,
                                r.verdict))
    return out


def match(claim: Claim, rows: list[Row]) -> Row | None:
    return next((r for r in rows if r[0] == claim.rows and r[1] == claim.row
                 and claim.says in r[2]), None)


def governed(table: pd.DataFrame, plan: Plan) -> pd.Series:
    """The rows of a table (eval rows, per-seed rows) of the runs the registration governs: its
    experiments at its seeds (a run of another experiment at those seeds stays exploratory)."""
    reg = plan.governs()
    return table.seed.isin(plan.seeds) & table.experiment.map(
        lambda e: reg.seeds_for(str(e)) is not None)


# the confirmatory runs' curve over k: beside the exploratory runs' figure, not over it
CAUSAL_FIGURE = "fig_causal_k_confirm.png"


def confirm_section(df: pd.DataFrame, seeds: pd.DataFrame, root: Path, plan: Plan) -> Section:
    """The section: the registered claims' table, then, where the registration tests a k
    (`causal_over_k`), the confirmatory runs' curve over k (figure and table)."""
    rows, causal = confirm_rows(df, seeds, root, plan)
    done = df[df.status == "complete"]
    return Section(confirm_heading(plan)[4:], confirm_text(done, root, plan),
                   causal.figures if causal else [],
                   [rows, *(causal.tables[:-1] if causal else [])])  # its curves, not its claims


def confirm_rows(df: pd.DataFrame, seeds: pd.DataFrame, root: Path,
                 plan: Plan) -> tuple[pd.DataFrame, Section | None]:
    """One row per registered claim, family by family, from the runs at the registered seeds;
    and the causal test over k's section where it is registered and recorded."""
    sel = df[governed(df, plan)]
    sel_seeds = seeds[governed(seeds, plan)] if len(seeds) else seeds
    done = sel[sel.status == "complete"]
    rows: list[Row] = []
    causal = None
    if len(done):
        with registration.governing(plan.governs()):
            sections = figure_sections(sel, sel_seeds, root)
            heads = heads_claims(done, sel_seeds, root)
            if plan.causal_k:
                causal = causal_k_claims(done, sel_seeds, root, CAUSAL_FIGURE)
            rows = computed_rows(sections + [s for s in (heads, causal) if s])
            rows += [(ACROSS_FAMILY, *r) for r in across_within_rows(done, sel_seeds, root)]
    ran = set(done.experiment.str.split("-").str[0]) if len(done) else set()
    out = []
    for family, claims in plan.families.items():
        found = [match(c, rows) for c in claims]
        settled = settle_fixed([f[4] if f else None for f in found])
        for claim, f, v in zip(claims, found, settled, strict=True):
            if v is None:
                out.append(missing_row(claim, len(claims), plan, ran))
                continue
            out.append({"family": f"{family} (m = {len(claims)})", "claim": claim.name,
                        "ours (mean [95 % t-interval])": f"{f[3]}; {v.measured}",
                        "n": v.measured.n, "p (Holm at m)": fixed_p_text(v),
                        "verdict": f"{v.outcome}: {v.note}" if v.note else v.outcome,
                        "follows": plan.follows()})
    return pd.DataFrame(out), causal


def missing_row(claim: Claim, m: int, plan: Plan, ran: set[str]) -> dict:
    missing = sorted(set(ID.findall(claim.row)) - ran)
    if missing or not ran:
        why = f"no run of {', '.join(missing) or 'its experiments'} at the registered seeds yet"
    else:
        why = (f"no row `{claim.row}`{f' ({claim.says})' if claim.says else ''} in the "
               f"report's `{claim.rows}` rows from these runs yet")
    return {"family": f"{claim.family} (m = {m})", "claim": claim.name,
            "ours (mean [95 % t-interval])": str(Interval(float("nan"), 0, 0, 0)), "n": 0,
            "p (Holm at m)": "", "verdict": f"{PENDING}: {why}", "follows": plan.follows()}


def fixed_p_text(v: Verdict) -> str:
    """The Holm p at the registered m (and the opposite's where that decided a `no`); a claim
    without a test result counts with p = 1 in its family."""
    if untested(v):
        return "counted as 1"
    return f"{v.p_adj:.3g}" + (f" (opposite {v.p_no_adj:.3g})" if v.outcome == FAILS else "")


def execution_line(done: pd.DataFrame, root: Path, plan: Plan) -> str:
    """Which runs at the registered seeds did not execute as registered (compiled or eager,
    the precision), by their manifests."""
    want = (plan.execution["compile"], plan.execution["precision"])

    def mode_of(run: str) -> tuple[bool, str]:
        m = rundir.read_json(root / run / rundir.MANIFEST)
        return bool(m.get("compiled")), str(m.get("precision", "fp32"))

    runs = done[governed(done, plan)].run.unique()
    off = [r for r in runs if mode_of(r) != want]
    mode = f"{'compiled' if want[0] else 'eager'}, {want[1]}"
    if not len(runs):
        return f"No run in yet (registered execution: {mode})."
    if not off:
        return f"Execution as registered ({mode}) on every run in."
    return (f"{len(off)} runs did not execute as registered ({mode}): "
            + ", ".join(sorted(off)[:5]) + (" ..." if len(off) > 5 else ""))


def confirm_text(done: pd.DataFrame, root: Path, plan: Plan) -> str:
    return (f"Only the runs of seeds {seeds_label(plan.seeds)}, tier `{plan.tier}`; every "
            f"rule, family and m is {plan.path.name}'s (docs/confirmatory.md). A claim that is "
            "n/a, floor or pending counts in its family with p = 1; every claim stays pending "
            "until all its registered runs are in. " + execution_line(done, root, plan))
