"""The child processes of the GPU evidence queue (`orchestration/gpu_queue.py`), the torch side:
the machine check, the pace measurement (runs side by side) and one run's training. Each runs in
a process forked from a server that imported torch once; the queue itself never imports torch."""

from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
import transformers

from lgtransfer.config import ModelConfig
from lgtransfer.data.mixture import Mixture, step_batch
from lgtransfer.engine.evaluate import evaluate
from lgtransfer.engine.machine import set_threads
from lgtransfer.engine.model import build_model
from lgtransfer.engine.train import train_run
from lgtransfer.errors import Interrupted


def machine_child(small: bool, bench: str, results: Any) -> None:
    """GPU, versions, and `bench_train.measure` (ours against the naive loop), bounded."""


    cuda = torch.cuda.is_available()
    if small:
        torch.set_num_threads(1)
    t0 = time.perf_counter()
    # a GPU: the paper model at batch 1200, as gpu_check; a quarter of its evaluation set, so
    # that the check stays near a minute; --small: the runs' own tiny model
    sizes = {"model_cfg": ModelConfig(n_layer=1, n_head=4, d_model=32, d_ff=64),
             "batch_size": 16, "eval_n": 4} if small else {"eval_n": 256}
    info: dict = {"device": torch.cuda.get_device_name() if cuda else "cpu", "cuda": cuda,
                  "torch": torch.__version__, "transformers": transformers.__version__,
                  "cpus": os.cpu_count()}
    try:  # a failed benchmark is recorded; the window's runs need only the device
        info["train"] = importlib.import_module(bench).measure(
            small, steps=4 if small else 12, data_seconds=0.1 if small else 1.0, **sizes)
    except Exception as e:
        info["train"] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
    info["seconds"] = round(time.perf_counter() - t0, 1)
    results.put(info)


def pace_child(index: int, counts: tuple[int, ...], shape: dict, small: bool, bench: str,
                barrier: Any, results: Any) -> None:
    """One of max(counts) processes: the first run's model and batch, compiled where runs are;
    then for each count k, the first k processes train at once (the others wait)."""


    t0 = time.perf_counter()
    time_training = importlib.import_module(bench).time_training
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    cpus = os.cpu_count() or 1
    if not cuda:
        torch.set_num_threads(max(1, cpus // max(counts)))
    mixture = Mixture(shape["group"], shape["eval_n"], 0)
    batches = [step_batch(mixture, 0, i, shape["batch_size"]) for i in range(16 if small else 40)]
    model = build_model(shape["model"], 0).to(device)
    time_training(model, batches[:4 if small else 8], device, shape["buckets"], cuda)  # compile
    ready = time.perf_counter() - t0
    for k in counts:
        barrier.wait(timeout=600)
        if index < k:
            if not cuda:
                torch.set_num_threads(max(1, cpus // k))
            results.put({"k": k, "index": index, "ready_s": ready,
                         "tokens_per_s": time_training(model, batches, device, shape["buckets"],
                                                       False)})
    if index == 0:  # seconds per evaluation example (runs evaluate in fp32, one pass)
        task = shape["group"][0].task
        model.eval()
        lengths = {task: list(range(1, 9))}
        t = time.perf_counter()
        evaluate(model, mixture, lengths, device)
        if cuda:
            torch.cuda.synchronize()
        results.put({"eval_s_per_example": (time.perf_counter() - t) / (8 * shape["eval_n"])})


def run_child(run: Any, directory: Path, threads: int, data_workers: int | None) -> None:
    """Train one run; a graceful stop exits 128 + the signal, as `lgt run` does."""


    set_threads(threads)
    if data_workers is not None:  # an execution setting: not in the run's key
        run.experiment.train.data_workers = data_workers
    try:
        train_run(run, directory, progress=False)
    except Interrupted as e:
        sys.exit(128 + e.signum)
