"""How far training a run again moved its numbers: the report's *Hardware noise* section.

`analysis.evidence` keeps, when a retrained run replaces a committed one, the earlier run's
final evaluation rows in the evidence folder's `retrained.jsonl`; this compares them with the
run now there, against the spread over the same seeds on each machine. Torch-free.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lgtransfer.runtime import rundir

RETRAINED = "retrained.jsonl"


def past_main(rows: pd.DataFrame) -> pd.Series:
    """Main-task accuracy on (L_main, L_aux] at the final step, per run."""
    main = rows[(rows.role == "main") & (rows.length > rows.train_max_length)]
    aux_max = rows[rows.role == "aux"].groupby("run").train_max_length.max()
    main = main[main.length <= main.run.map(aux_max)]
    return main.groupby("run").accuracy.mean()


def hardware_noise(evidence: Path) -> pd.DataFrame | None:
    """Per retrained run: accuracy past L_main before (the earlier training) and now, and how far
    it moved. The same seeds on two machines, so the spread over seeds is comparable on each."""
    path = evidence / RETRAINED
    if not path.is_file():
        return None
    before = pd.DataFrame(rundir.read_jsonl(path))
    now = pd.DataFrame([{**r, "run": run} for run in before.run.unique()
                        for r in last_rows(evidence / run)])
    table = pd.DataFrame({"before": past_main(before), "retrained": past_main(now)}).dropna()
    if not len(table):
        return None
    table["experiment"] = [Path(r).parent.as_posix() for r in table.index]  # its folder
    table["seed"] = before.drop_duplicates("run").set_index("run").seed
    table["moved"] = (table.retrained - table.before).abs()
    # how each was executed: compiled or eager changes the rounding, as a machine does
    was = before.drop_duplicates("run").set_index("run").get("compiled")
    table["compiled before"] = [bool(was.get(r)) if was is not None else False
                                for r in table.index]
    table["compiled now"] = [bool(rundir.read_json(evidence / r / rundir.MANIFEST)
                                  .get("compiled")) for r in table.index]
    return table.reset_index().round(3)


def last_rows(run: Path) -> list[dict]:
    rows = rundir.read_jsonl(run / "eval.jsonl")
    last = max(r["step"] for r in rows)
    return [r for r in rows if r["step"] == last]


def noise_summary(table: pd.DataFrame) -> str:
    """How far retraining moved accuracy past L_main, against the spread over the same seeds on
    each machine (per experiment folder, then averaged)."""
    spread = table.groupby("experiment")[["before", "retrained"]].std(ddof=1).mean()
    other = table["compiled before"] != table["compiled now"]
    how = (f" ({int(other.sum())} of them executed the other way: compiled or eager)"
           if other.any() else "")
    split = ""
    if other.any() and not other.all():  # the execution against everything else
        same = table[~other].moved
        split = (f" Executed the same way, {len(same)} moved by {same.mean():.3f} on average"
                 f"{' (bit for bit)' if same.max() == 0 else ''}; the other way, "
                 f"{int(other.sum())} by {table[other].moved.mean():.3f}.")
    return (f"{len(table)} runs trained again in a later session{how}, same seed and settings: "
            f"accuracy past L_main moved by {table.moved.mean():.3f} on average (largest "
            f"{table.moved.max():.3f}); over the same seeds, the spread (std) is "
            f"{spread.before:.3f} before and {spread.retrained:.3f} now.{split}")
