"""Expand experiments into runs and execute them; a finished run is never redone.

Executors:
- `inline`: one run after another in this process.
- `local`: a pool of worker processes. On a CPU, N workers with cores/N torch threads each: small
  models use two cores better as two single-threaded runs than as one two-threaded run. With
  GPUs, one worker per GPU.
`auto` picks `local` when more than one run is pending and there is more than one slot.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from lgtransfer import rundir
from lgtransfer.config import ExperimentConfig, RunSpec, expand
from lgtransfer.errors import UsageError

EXECUTORS = ("auto", "inline", "local")


def run_dir(out: Path, run: RunSpec) -> Path:
    return out / run.experiment.name / run.dirname


def _slots() -> tuple[int, list[str] | None]:
    """How many runs fit side by side here, and the GPU ids when there are GPUs."""
    import torch

    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        return n, [str(i) for i in range(n)]
    return max(1, os.cpu_count() or 1), None


def _work(run: RunSpec, directory: Path, threads: int, gpu: str | None, position: int,
          progress: bool) -> str:
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    import torch

    torch.set_num_threads(threads)
    from lgtransfer.train import train_run

    train_run(run, directory, progress=progress, position=position)
    return str(directory)


def run_experiment(cfg: ExperimentConfig, out: Path, executor: str = "auto",
                   workers: int = 0, progress: bool = True) -> list[Path]:
    """Train every run of the experiment that is not complete yet; return all run folders."""
    if executor not in EXECUTORS:
        raise UsageError(f"--executor must be one of {EXECUTORS}, got {executor!r}")
    if workers < 0:
        raise UsageError(f"--workers must be at least 0, got {workers}")
    runs = expand(cfg)
    dirs = [run_dir(out, r) for r in runs]
    pending = [(r, d) for r, d in zip(runs, dirs, strict=True) if not rundir.is_complete(d)]
    if not pending:
        return dirs
    slots, gpus = _slots()
    n_workers = min(len(pending), workers or slots)
    if executor == "inline" or (executor == "auto" and n_workers < 2):
        from lgtransfer.train import train_run

        for run, d in pending:
            train_run(run, d, progress=progress)
        return dirs
    threads = max(1, (os.cpu_count() or 1) // max(1, n_workers)) if gpus is None else 4
    # spawn, not fork: forking a process that already runs torch threads can deadlock
    context = multiprocessing.get_context("spawn")
    # one task per worker process: a fresh process per run, so each one's GPU pinning holds
    with ProcessPoolExecutor(n_workers, mp_context=context, max_tasks_per_child=1) as pool:
        futures = [pool.submit(_work, run, d, threads,
                               gpus[i % len(gpus)] if gpus else None, i % n_workers, progress)
                   for i, (run, d) in enumerate(pending)]
        for f in futures:
            f.result()  # re-raises a worker's error here
    return dirs
