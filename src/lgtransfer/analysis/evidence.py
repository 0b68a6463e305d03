"""Complete runs into a folder of committed evidence, and what retraining a run moved.

    python -m lgtransfer.analysis.evidence RUNS/cpu results/cpu \
        [--docs docs/results.md] [--readme README.md]

copies the new complete runs, regenerates the tables and the report (`lgt results`, `lgt
report`) and, where the folder has a confirmatory registration, its comparison with the
exploratory rows (`confirm-vs-exploratory.md`); with --docs it pastes claims.md and cost.md
between their markers in that page, with --readme it writes the README's summary block. Every
file it is to write into is checked first, so bad input writes nothing.

Copies every complete run folder under the source into the same place under the evidence
folder, keeping only the small files evidence keeps (config, manifest, eval, metrics, head
metrics; never checkpoints). A run already there with the same folder name (the same content
key) is replaced only when the source's run is a new training of it (another `finished` time):
its final evaluation rows and where it was trained are first appended to the evidence folder's
`retrained.jsonl`, so the retrained run is the evidence from then on and the earlier numbers
stay comparable (`report.noise`: how far a retraining moves the numbers, against the spread over
seeds). Torch-free.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from lgtransfer.analysis.report.noise import RETRAINED
from lgtransfer.errors import ArgumentParser, UsageError
from lgtransfer.runtime import rundir

RUN_FILES = ("config.yaml", "manifest.json", "eval.jsonl", "metrics.jsonl", "heads.jsonl")


def import_runs(src: Path, dst: Path) -> tuple[int, int]:
    """(runs added, runs replaced) from complete runs under src into dst."""
    added = replaced = 0
    for manifest in sorted(src.rglob(rundir.MANIFEST)):
        run = manifest.parent
        if not rundir.is_complete(run):
            continue
        out = dst / run.relative_to(src)
        new = rundir.read_json(manifest)
        if (out / rundir.MANIFEST).is_file():
            old = rundir.read_json(out / rundir.MANIFEST)
            if old.get("finished") == new.get("finished"):
                continue  # the same training: nothing new
            record_retrained(out, dst, old)
            replaced += 1
        else:
            added += 1
        out.mkdir(parents=True, exist_ok=True)
        for name in RUN_FILES:
            if (run / name).is_file():
                shutil.copy2(run / name, out / name)
            else:
                (out / name).unlink(missing_ok=True)
    for index in src.rglob(rundir.EXPERIMENT_INDEX):  # each experiment's list of its runs,
        out = dst / index.relative_to(src)  # once the evidence holds one of them (a pilot
        if any(out.parent.glob(f"*/{rundir.MANIFEST}")):  # stopped early leaves none)
            shutil.copy2(index, out)
    return added, replaced


def record_retrained(run: Path, dst: Path, old_manifest: dict) -> None:
    """The replaced run's final evaluation rows, with where and when it was trained."""
    rows = rundir.read_jsonl(run / "eval.jsonl")
    last = max(r["step"] for r in rows)
    origin = {k: old_manifest.get(k) for k in ("host", "finished", "torch", "transformers",
                                               "git_commit", "compiled")}
    rundir.append_jsonl(dst / RETRAINED, [{"run": run.relative_to(dst).as_posix(), **origin,
                                           **r} for r in rows if r["step"] == last])


DOC_BLOCKS = {"what-reproduces": "claims.md", "tier-cost": "cost.md"}  # marker: file


def update_docs(evidence: Path, doc: Path) -> None:
    """Each generated block of `doc` (between `<!-- marker -->` and `<!-- /marker -->`) set to
    the evidence folder's file; `tests/test_evidence.py` checks they are equal."""
    text = doc.read_text()
    for marker, name in DOC_BLOCKS.items():
        start, end = text.index(f"<!-- {marker} -->"), text.index(f"<!-- /{marker} -->")
        block = (evidence / name).read_text().strip()
        text = text[:start] + f"<!-- {marker} -->\n{block}\n" + text[end:]
    rundir.write_atomic(doc, text)


def main(argv: list[str]) -> int:
    from lgtransfer.analysis import confirm
    from lgtransfer.analysis.report import confirm_compare, readme_summary
    from lgtransfer.analysis.report.suite import write_report
    from lgtransfer.analysis.results import write_results

    parser = ArgumentParser(prog="python -m lgtransfer.analysis.evidence",
                            description="import complete runs into an evidence folder and "
                                        "regenerate everything made from it")
    parser.add_argument("runs", type=Path, help="a tier's run folder: RUNS/cpu")
    parser.add_argument("evidence", type=Path, help="the tier's evidence folder: results/cpu")
    parser.add_argument("--docs", type=Path, help="paste claims.md and cost.md into this page")
    parser.add_argument("--readme", type=Path, help="write the summary block into this file")
    try:
        args = parser.parse_args(argv)
        for folder in (args.runs, args.evidence):
            if not folder.is_dir():
                raise UsageError(f"{folder}: not a folder")
        # the same check readme_summary makes of its file: readable, with the block's markers
        for m in DOC_BLOCKS if args.docs else ():
            readme_summary.text_with_block(args.docs, (f"<!-- {m} -->", f"<!-- /{m} -->"))
        if args.readme:
            readme_summary.text_with_block(args.readme, readme_summary.markers(args.evidence))
    except UsageError as e:
        print(f"evidence: error: {e}", file=sys.stderr)
        return 2
    added, replaced = import_runs(args.runs, args.evidence)
    print(f"added {added}, replaced {replaced}")
    write_results(args.evidence)
    write_report(args.evidence)
    if (args.docs or args.readme) and not (args.evidence / "claims.md").is_file():
        print(f"evidence: error: no claims.md in {args.evidence} (one experiment, not a tier): "
              "its docs and README blocks were left as they were", file=sys.stderr)
        return 2
    if args.docs:
        update_docs(args.evidence, args.docs)
    if args.readme and readme_summary.main([str(args.evidence), "--readme", str(args.readme)]):
        return 2
    if (args.evidence / confirm.FILE).is_file():
        return confirm_compare.main([str(args.evidence)])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
