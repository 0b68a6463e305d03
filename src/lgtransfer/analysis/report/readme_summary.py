"""The README's summary table (between `<!-- summary -->` and `<!-- /summary -->`), generated
from a tier's claims.md so that it cannot drift from the verdicts:

    python -m lgtransfer.analysis.report.readme_summary results/cpu [--readme README.md] [--check]

prints the block, or writes it into the README (`--readme`), or exits 1 when the README's block
differs from it (`--check`; tests/test_confirm.py does the same). The confirmatory section's
verdicts when claims.md has one with a claim decided (one line per registered family), else
the exploratory ones, labelled so (one line per kind of claim), with a line saying the
confirmatory claims wait for their runs; while some still do, a line says how many and where
the exploratory rows are. Beside the confirmatory lines, one line for each pretrained family
registered on its own (SmolLM2-135M against scratch; the ladder's amendment 2). One cell per
line: each decided claim with its mean, the p its verdict rests on and n; the undecided ones
(n/a, floor, pending, inconclusive) by name only, to stay short (the README has 10,000 bytes).
Torch-free.

Given the scaling study's folder (results/scaling), the block is its paragraph instead, between
`<!-- scaling -->` and `<!-- /scaling -->`: the mean reach share per group and level, each
claim's verdict and the tier; `--forecast` adds the forecast lines, `--link` is the folder as
the file written links it (docs/results.md: `--link ../results/scaling --forecast`;
tests/test_scaling.py checks both).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from lgtransfer.errors import ArgumentParser, UsageError
from lgtransfer.runtime import rundir

START, END = "<!-- summary -->", "<!-- /summary -->"
SCALING = ("<!-- scaling -->", "<!-- /scaling -->")
DECIDED = ("yes", "no")
# a part of the paper's claim -> the summary line it belongs to (the first that matches)
KINDS = [("extrapolates past L_main; alone", "transfer (Figs 3–7)"),
         ("as many main-task examples", "transfer, vs as many main examples"),
         ("generalizes to about the auxiliary length", "reaches about L_aux"),
         ("no transfer from an unrelated", "no transfer from unrelated aux (8)"),
         ("transfers more than the unrelated", "related > unrelated aux (8)"),
         ("weaker than both", "one aux weaker than both (14)"),
         ("transfers more than", "the more related aux wins (14)"),
         ("tracks the gap over training", "heads track the gap (App. B)"),
         ("tracks the gap in the group", "tracking: group > control"),
         ("share heads", "shared heads, more transfer"),
         ("top-k heads hurts", "ablating aux heads hurts more"),
         ("pretrain", "pretraining (9, 15)"), ("SmolLM2", "pretraining (9, 15)")]
# experiment -> its line: the pretrained families registered on their own (issue 34)
OWN_FAMILIES = {"smollm2-g1": "SmolLM2-135M vs scratch, registration-smollm2.yaml",
                "ladder-quick-long": "pretraining ladder, amendment 2"}
METRICS = {"importance_diff": "imp", "attn_diff": "attn", "topk_jaccard": "top-k"}
MEAN_N = re.compile(r"([+-]\d+\.\d+)(?: \[[^\]]*\])? \(n = (\d+)")
MAX_NAMED = 4  # more undecided claims of one state than this: their count only
NUMBER = re.compile(r"\d[\d.e-]*")


def sections(text: str) -> list[tuple[str, list[dict[str, str]]]]:
    """(heading, rows) of each `### ` section of claims.md (one untitled section without)."""
    out: list[tuple[str, list[dict[str, str]]]] = []
    heading, header = "", None
    for line in text.splitlines():
        if line.startswith("### "):
            heading, header = line[4:], None
            out.append((heading, []))
        elif line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            if header is None:
                header = cells
                if not out:
                    out.append(("", []))
            else:
                out[-1][1].append(dict(zip(header, cells, strict=False)))
    return out


def kind(row: dict[str, str]) -> str:
    paper = row.get("paper", "")
    return next((label for part, label in KINDS if part in paper), row.get("figure", ""))


def item(row: dict[str, str], label: str) -> tuple[str, str]:
    """(state, text) of one claim: `g1 yes +0.26 (p 0.0039, n 10)` when decided."""
    verdict = row.get("verdict", "")
    state = verdict.split(":")[0].strip()
    if state not in DECIDED:
        return state, label
    p_cell = row.get("p (Holm)", row.get("p (Holm at m)", ""))
    numbers = NUMBER.findall(p_cell.split(";")[0])
    p = numbers[-1] if state == "no" and "opposite" in p_cell else (numbers or ["?"])[0]
    mean = MEAN_N.search(row.get("ours (mean [95 % t-interval] (n))",
                                 row.get("ours (mean [95 % t-interval])", "")))
    effect = f" {float(mean.group(1)):+.2f}" if mean else ""
    n = f", n {mean.group(2)}" if mean else ""
    listed = re.search(r"(\w[\w ()/]*) at the listed m = (\d+)", verdict)
    also = f"; at m {listed.group(2)}: {listed.group(1)}" if listed else ""
    return state, f"{label} **{state}**{effect} (p {float(p):.2g}{n}{also})"


def own_families(found: list[tuple[str, list[dict[str, str]]]]) -> dict[str, list]:
    """The lines of the pretrained claims registered in their own right (`OWN_FAMILIES`), for
    a summary that otherwise shows the confirmatory section only: one line each, its m the
    number of its rows (a registered claim keeps its row, n/a or not run)."""
    out: dict[str, list[tuple[str, str]]] = {}
    for experiment, name in OWN_FAMILIES.items():
        rows = [r for h, rs in found if not h.startswith("Confirmatory") for r in rs
                if r.get("experiment") == experiment]
        if rows:
            out[f"{name} (m = {len(rows)})"] = [item(r, short(r["paper"])) for r in rows]
    return out


def short(paper: str) -> str:
    """A claim's short name: its letter, "(a)", or its words without "later pretraining" and
    the parenthesis ("learns faster")."""
    letter = re.match(r"\(\w\)", paper)
    return letter.group(0) if letter else re.sub(r"^later pretraining | \(.*\)$", "", paper)


def cell(items: list[tuple[str, str]]) -> str:
    decided = [text for state, text in items if state in DECIDED]
    rest: dict[str, list[str]] = {}
    for state, text in items:
        if state not in DECIDED:
            rest.setdefault(state, []).append(text)
    undecided = [f"{state}: " + (", ".join(dict.fromkeys(names)) if len(names) <= MAX_NAMED
                                 else f"{len(names)} claims") for state, names in rest.items()]
    return "; ".join(decided + undecided)


def summary(folder: Path, link: str) -> str:
    """The block's Markdown for the tier folder `folder` (`link`: its path from the README)."""
    path = folder / "claims.md"
    if not path.is_file():
        raise UsageError(f"no claims.md in {folder} (run `lgt report {folder}` first)")
    found = sections(path.read_text())
    if not found:  # "No verdicts: no complete runs."
        return f"`{folder.name}` tier: no verdicts yet ([claims.md]({link}/claims.md))."
    confirm = [s for s in found if s[0].startswith("Confirmatory")]
    waiting_for = ""  # a registered confirmatory section none of whose claims is decided yet
    if confirm and all(r["verdict"].startswith("pending") for r in confirm[0][1]):
        waiting_for = (f"\n\n{confirm[0][0]}: {len(confirm[0][1])} claims registered, every "
                       "one pending until its runs are in; the exploratory rows above stand.")
        confirm = []
    heading, rows = confirm[0] if confirm else found[-1]
    lines: dict[str, list[tuple[str, str]]] = {}
    for r in rows:
        if confirm:
            key, label = r["family"], r["claim"]
        else:
            key = kind(r)
            metric = next((short for m, short in METRICS.items() if m in r["paper"]), "")
            name = re.sub(r" \(.*\)$", "", r["experiment"])  # "g1 (same main examples)"
            label = metric if name.startswith("all ") else f"{name} {metric}".strip()
        lines.setdefault(key, []).append(item(r, label))
    tier = folder.name
    what = (heading.replace("Confirmatory", "**confirmatory**", 1) if confirm else
            (heading or "Exploratory").replace("Exploratory", "**exploratory**", 1)
            + ": some of its rules were settled after the data")
    if confirm:  # families registered on their own, outside the confirmatory set
        lines.update(own_families(found))
    table = "\n".join(f"| {key} | {cell(items)} |" for key, items in lines.items())
    undecided = sum(r["verdict"].startswith("pending") for r in rows) if confirm else 0
    if undecided:  # while the confirmatory runs come in: where the exploratory verdicts are
        explored = next((h for h, _ in found if h.startswith("Exploratory")), "Exploratory")
        waiting_for = (f"\n\n{undecided} of {len(rows)} claims pending until their runs are "
                       f"in; meanwhile the {explored.replace('Exploratory', 'exploratory rows', 1)}"
                       f" stand in [claims.md]({link}/claims.md).")
    waiting = [f"`{p.name}`" for p in sorted(folder.parent.iterdir()) if p != folder
               and (p / "registration.yaml").is_file() and not (p / "claims.md").is_file()]
    after = f"\n\nRegistered, no run yet: {', '.join(waiting)}." if waiting else ""
    return (f"`{tier}` tier, {what} ([claims.md]({link}/claims.md); mean, Holm p, n):\n\n"
            f"| claim | verdicts |\n|---|---|\n{table}{waiting_for}{after}")


def scaling(folder: Path, link: str, forecast: bool = False) -> str:
    """The scaling study's paragraph, from its claims.md: per group, the mean reach share of
    the with-aux runs at each level (n), the claims' verdicts, and the tier's first sentence;
    with `forecast`, its forecast lines after it (docs/results.md has the room)."""
    path = folder / "claims.md"
    if not path.is_file():
        raise UsageError(f"no claims.md in {folder} (run `lgt report {folder}` first)")
    text = path.read_text()
    rows = [r for _, rs in sections(text) for r in rs if r.get("claim", "").endswith(" grows")]
    if not rows:
        raise UsageError(f"{path} has no scaling claims (`G1 reach_share grows`, ...)")
    levels = [k[len("mean "):-len(" (n)")] for k in rows[0] if k.startswith("mean ")]
    reach, verdicts = [], []
    for r in rows:
        group, statistic = r["claim"].split()[:2]
        verdicts.append(f"{group} {statistic} {r['verdict'].split(':')[0]}")
        if statistic == "reach_share":
            means = [re.sub(r"^(\S+) \((\d+)\)$", r"\1 (n \2)", r[f"mean {lv} (n)"])
                     for lv in levels]
            reach.append(f"{group} " + " / ".join(means))
    tier = re.search(r"## Tier\n\n(.*?)\n", text)  # its first sentence, no parentheses
    tier = re.match(r"(.*?)\.(?: |$)", re.sub(r" \([^()]*\)", "", tier.group(1))) if tier else None
    lines = re.search(r"## Forecast[^\n]*\n\n(.*?)\n\n!\[", text, re.S)
    slopes = _per_doubling(folder, [r["claim"].split()[0].lower() for r in rows])
    return (f"Scaling study ([claims.md]({link}/claims.md)), mean reach share with aux at "
            f"{' / '.join(levels)} the `cpu` compute: {'; '.join(reach)}. Verdicts: "
            f"{', '.join(verdicts)}. {tier.group(1) if tier else 'Tier: not decided'}."
            + (f" The trend, described:\n\n{lines.group(1)}" if forecast and lines else
               f" Reach share per doubling of compute (least squares, 95 % bootstrap "
               f"interval): {'; '.join(slopes)}." if slopes else ""))


def _per_doubling(folder: Path, groups: list[str]) -> list[str]:
    """Each group's forecast slope in the README's short form, from the study's per_run.csv
    (the numbers claims.md's forecast lines were written from)."""
    import pandas as pd

    from lgtransfer.analysis.report.scaling_described import fit_line

    path = folder / "per_run.csv"
    runs = pd.read_csv(path) if path.is_file() else pd.DataFrame()
    lines = [fit_line(runs, g) for g in dict.fromkeys(groups)]
    return [line.per_doubling() for line in lines if line is not None]


def markers(folder: Path) -> tuple[str, str]:
    """The README block a folder's paragraph goes in: the scaling study's, or the tier's."""
    from lgtransfer.analysis.report.scaling_plan import is_scaling_study

    return SCALING if is_scaling_study(folder) else (START, END)


def block(readme: str, marks: tuple[str, str] = (START, END)) -> str:
    start, end = readme.index(marks[0]), readme.index(marks[1])
    return readme[start + len(marks[0]):end].strip()


def with_block(readme: str, text: str, marks: tuple[str, str] = (START, END)) -> str:
    start, end = readme.index(marks[0]), readme.index(marks[1])
    return f"{readme[:start + len(marks[0])]}\n{text}\n{readme[end:]}"


def main(argv: list[str]) -> int:
    parser = ArgumentParser(prog="python -m lgtransfer.analysis.report.readme_summary",
                    description="the README's block of a tier's (or the scaling study's) claims")
    parser.add_argument("folder", type=Path, help="results/cpu, results/scaling, ...")
    parser.add_argument("--readme", type=Path, help="write the block into this file")
    parser.add_argument("--check", action="store_true",
                        help="with --readme: exit 1 when its block differs, write nothing")
    parser.add_argument("--forecast", action="store_true", help="scaling: the forecast lines")
    parser.add_argument("--link", help="the folder as the file written links it")
    try:
        args = parser.parse_args(argv)
        marks = markers(args.folder)
        link = args.link or args.folder.as_posix()
        text = (scaling(args.folder, link, args.forecast) if marks == SCALING
                else summary(args.folder, link))
        if args.readme is None:
            print(text)
            return 0
        current = text_with_block(args.readme, marks)
    except UsageError as e:
        print(f"readme_summary: error: {e}", file=sys.stderr)
        return 2
    if args.check:
        return 0 if block(current, marks) == text else 1
    rundir.write_atomic(args.readme, with_block(current, text, marks))
    return 0


def text_with_block(path: Path, marks: tuple[str, str]) -> str:
    """The file's text, refused (one line) when it is missing or lacks the block's markers."""
    try:
        text = path.read_text()
    except OSError as e:
        raise UsageError(f"{path}: {e.strerror or e}") from None
    if not all(m in text for m in marks):
        raise UsageError(f"{path}: no {marks[0]} ... {marks[1]} block to write into")
    return text

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
