"""Read the smollm2-pilot runs (`lgt run smollm2-pilot`): per stage, the main task's accuracy at
1 to L_main at every evaluated step, the first step from which it stays at or above 0.95 (the
learning rule's threshold), and the run's wall seconds a step with its evaluations (the
benchmark, `cpu_throughput.py --models smollm2-alone`, times a step alone). Torch-free; works on
a run that is still training or was stopped (Ctrl-C).

    python benchmarks/smollm2_pilot.py [runs/cpu/smollm2-pilot]
"""

from __future__ import annotations

import sys
from pathlib import Path

from lgtransfer.analysis.metrics import LEARNED
from lgtransfer.runtime import rundir


def curve(run: Path) -> dict[int, float]:
    """step -> mean accuracy of the main task over its training lengths."""
    rows = [r for r in rundir.read_jsonl(run / "eval.jsonl")
            if r["role"] == "main" and r["length"] <= r["train_max_length"]]
    steps = sorted({r["step"] for r in rows})
    return {s: sum(r["accuracy"] for r in rows if r["step"] == s) /
            max(1, sum(r["step"] == s for r in rows)) for s in steps}


def learned_from(points: dict[int, float]) -> int | None:
    """The first evaluated step from which every later evaluation is at least LEARNED."""
    first = None
    for step, acc in sorted(points.items()):
        first = (first or step) if acc >= LEARNED else None
    return first


def seconds_per_step(run: Path) -> float | None:
    """Wall seconds a step, evaluations included: a complete run's training time over its
    steps; a stopped or running one's time since it started (its model load included) over
    the steps done."""
    m = rundir.read_json(run / rundir.MANIFEST)
    if m.get("status") == "complete":
        return m["train_seconds"] / rundir.read_yaml(run / "config.yaml")["train"]["steps"]
    metrics = rundir.read_jsonl(run / "metrics.jsonl")
    step = m.get("interrupted_at_step") or (metrics[-1]["step"] if metrics else 0)
    end = m.get("stopped") or m.get("heartbeat")
    return (end - m["started"]) / step if step and end else None


def main(argv: list[str]) -> int:
    folder = Path(argv[0] if argv else "runs/cpu/smollm2-pilot")
    runs = sorted(d for d in folder.glob("*_*") if (d / "eval.jsonl").is_file())
    if not runs:
        print(f"smollm2_pilot.py: no run with evaluations under {folder}", file=sys.stderr)
        return 2
    for run in runs:
        points = curve(run)
        first = learned_from(points)
        per_step = seconds_per_step(run)
        print(f"{run.name}: learned (>= {LEARNED} at 1-L_main, to the last evaluation) from "
              f"step {first if first is not None else 'never'}; "
              f"{f'{per_step:.2f} s a step with evaluations' if per_step else 'no timing yet'}")
        print("  " + "  ".join(f"{s}:{a:.2f}" for s, a in points.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
