"""What recording head metrics during training costs a `cpu` run (target: within about 15 %).

    python benchmarks/bench_head_record.py                 # G1 at the cpu budget, one thread
    python benchmarks/bench_head_record.py --experiment g5 --compile on

Times, on one G1 with-aux run of the given budget (fresh weights cost the same compute as trained
ones): `--steps` training steps, one head measurement (importance maps, reuse metrics, gap) and
the last step's measurement (the same plus the causal test); the first measurement is timed
apart, since it also builds the evaluation sets (and compiles the evaluation shapes), which the
run's first evaluation does anyway. The overhead of a whole run is
(measurements - 1) x one + the last, over the run's steps x one step, with the measurement count
from `heads.every` of the budget. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from lgtransfer.config import expand, load_experiment
from lgtransfer.data.mixture import Mixture, step_batch
from lgtransfer.engine.heads.record import HeadRecorder
from lgtransfer.engine.model import build_model
from lgtransfer.engine.train import make_optimizer, pick_device, train_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", default="g1")
    parser.add_argument("--budget", default="cpu")
    parser.add_argument("--steps", type=int, default=100, help="training steps timed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--compile", default="off", choices=("on", "off"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_experiment(args.experiment, [f"train.compile={args.compile}",
                                            "heads.record=true"], budget=args.budget)
    run = next(r for r in expand(cfg) if r.variant == "with_aux")
    device = pick_device("auto")
    model = build_model(run.model, run.seed).to(device).train()
    mixture = Mixture(run.group, cfg.eval.n, cfg.eval.seed)
    optimizer, _ = make_optimizer(model, run.train, None)
    if run.execution.compiled:
        model.model.compile(dynamic=True)
    for step in range(10):  # warm-up (and compilation) outside the timing
        train_step(model, optimizer, step_batch(mixture, 0, step, cfg.train.batch_size), device,
                   cfg.train.buckets, 1.0)
    start = time.perf_counter()
    for step in range(args.steps):
        train_step(model, optimizer, step_batch(mixture, 0, step, cfg.train.batch_size), device,
                   cfg.train.buckets, 1.0)
    per_step = (time.perf_counter() - start) / args.steps
    with tempfile.TemporaryDirectory() as tmp:
        recorder = HeadRecorder(run, Path(tmp), mixture, model, device)
        start = time.perf_counter()  # the first also builds the evaluation sets and, compiled,
        recorder.measure(model, recorder.every)  # the graphs of evaluation shapes: a run's
        first = time.perf_counter() - start  # first evaluation would pay that anyway
        start = time.perf_counter()
        recorder.measure(model, 2 * recorder.every)
        one = time.perf_counter() - start
        start = time.perf_counter()
        recorder.measure(model, recorder.last)
        last = time.perf_counter() - start
    points = len([s for s in range(1, run.train.steps + 1) if recorder.due(s)])
    run_s = per_step * run.train.steps
    print(json.dumps({
        "experiment": args.experiment, "budget": args.budget, "device": str(device),
        "threads": args.threads, "compile": args.compile, "heads_n": cfg.heads.n,
        "torch": torch.__version__,
        "seconds_per_step": round(per_step, 4), "run_steps": run.train.steps,
        "training_seconds": round(run_s, 1),
        "first_measurement_seconds": round(first, 2), "measurement_seconds": round(one, 2),
        "last_measurement_seconds": round(last, 2), "measurements": points,
        "overhead": round(((points - 1) * one + last) / run_s, 3)}))


if __name__ == "__main__":
    main()
