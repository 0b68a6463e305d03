"""Time `lgt heads` on a paper-size run: the issue's budget is 2 minutes on one H100.

    python benchmarks/bench_heads.py                       # paper model, G1, 10 checkpoints
    python benchmarks/bench_heads.py --n 32 --checkpoints 2 --small   # a smoke run on a CPU

Builds a synthetic G1 run folder (6 layers x 6 heads, width 384, 3 tasks, 10 checkpoints of
freshly initialized weights, an eval.jsonl so the gap is read rather than measured) and times the
whole analysis (2 bands, k = 3, 10 random draws) with the given examples per task and length.
Untrained weights cost the same compute as trained ones. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from lgtransfer.config import expand, load_experiment
from lgtransfer.engine.heads.analysis import HeadOptions, run_heads
from lgtransfer.engine.model import build_model
from lgtransfer.engine.train import pick_device
from lgtransfer.runtime import rundir


def synthetic_run(root: Path, checkpoints: int, small: bool) -> Path:
    overrides = ["model.n_layer=2", "model.n_head=2", "model.d_model=32", "model.d_ff=64",
                 "group.0.max_length=4", "group.1.max_length=8", "group.2.max_length=8"] \
        if small else []
    cfg = load_experiment("g1", overrides, budget="gpu")  # the paper's model and lengths
    run = next(r for r in expand(cfg) if r.variant == "with_aux")
    d = root / run.dirname
    rundir.write_yaml(d / "config.yaml", run.resolved())
    rundir.write_json(d / "manifest.json", {"status": "complete"})
    steps = [(i + 1) * 100 for i in range(checkpoints)]
    rows = [{"experiment": cfg.name, "variant": run.variant, "seed": run.seed, "step": s,
             "task": t.task, "role": t.role, "train_max_length": t.max_length, "length": n,
             "n": cfg.eval.n, "accuracy": float(n <= t.max_length) * (i + 1) / checkpoints}
            for i, s in enumerate(steps) for t in run.group for n in range(1, 41)]
    rundir.write_jsonl(d / "eval.jsonl", rows)
    for i, s in enumerate(steps):
        build_model(cfg.model, seed=i).save_pretrained(d / "checkpoints" / f"step-{s}")
    return d


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=512, help="examples per task and length")
    parser.add_argument("--checkpoints", type=int, default=10)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--small", action="store_true", help="a tiny model (smoke test)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = synthetic_run(Path(tmp), args.checkpoints, args.small)
        start = time.perf_counter()
        run_heads(run, HeadOptions(n=args.n, device=args.device))
        seconds = time.perf_counter() - start
    device = str(pick_device(args.device))
    print(json.dumps({"seconds": round(seconds, 1), "n": args.n, "checkpoints": args.checkpoints,
                      "small": args.small, "device": device,
                      "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}))


if __name__ == "__main__":
    main()
