"""Executors: train the runs a sweep planned (`sweep.plan`), each in its folder.

Executors:
- `inline`: one run after another in this process.
- `local`: a pool of worker processes. On a CPU, N workers with cores/N torch threads each: small
  models use two cores better as two single-threaded runs than as one two-threaded run. With
  GPUs, one worker per GPU.
- `submitit`: one SLURM job array (`--cluster local` runs the jobs as local processes, which is
  how the tests exercise this path without a cluster).
`auto` picks `local` when more than one run is pending and there is more than one slot.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from concurrent.futures import CancelledError, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from lgtransfer.config import RunSpec
from lgtransfer.errors import Interrupted, UsageError
from lgtransfer.orchestration.sweep import PlannedRun
from lgtransfer.runtime import rundir, stopping

EXECUTORS = ("auto", "inline", "local", "submitit")


_POOL_STOP: Any = None  # the sweep's stop event, in a pool worker (`_init_pool_worker`)


def _init_pool_worker(stop_event: Any) -> None:
    global _POOL_STOP
    _POOL_STOP = stop_event


def _work(run: RunSpec, directory: Path, threads: int, gpu: str | None, position: int,
          progress: bool) -> str:
    if _POOL_STOP is not None and _POOL_STOP.is_set():  # queued before the sweep was stopped
        raise Interrupted(signal.SIGTERM, f"{directory} (not started)")
    try:
        return _train(run, directory, threads, gpu, position, progress)
    except KeyboardInterrupt:  # Ctrl-C before the run's own handlers were in place
        raise Interrupted(signal.SIGINT, f"{directory} (starting)") from None


def _train(run: RunSpec, directory: Path, threads: int, gpu: str | None, position: int,
           progress: bool) -> str:
    if gpu is not None:  # before torch is imported (with the engine), or it sees every GPU
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    from lgtransfer.engine import machine, train

    machine.set_threads(threads)
    train.train_run(run, directory, progress=progress, position=position)
    return str(directory)


class TrainJob:
    """One run as a submitit job that requeues itself when preempted or timed out.

    submitit's checkpointing protocol: before a time limit or a preemption the cluster sends
    SIGUSR2, and submitit requeues a job whose callable has a `checkpoint` method. Here SIGUSR2
    first stops the training loop at the next step boundary with a resume point (like SIGTERM),
    then is raised again for submitit's own handler, which requeues the same call; the requeued
    job resumes from that point. Everything a run needs is on disk, so the call is its state.
    """

    def __call__(self, run: RunSpec, directory: Path, threads: int, gpu: str | None,
                 position: int, progress: bool) -> str:
        stopping.SIGNALS.append(signal.SIGUSR2)
        try:
            return _work(run, directory, threads, gpu, position, progress)
        except Interrupted as e:
            if e.signum not in (signal.SIGUSR2, signal.SIGTERM):
                raise
            # a notice (USR2) or a preemption (TERM): submitit's own handler, restored, requeues
            os.kill(os.getpid(), signal.SIGUSR2)
            raise  # not reached on a cluster that requeues

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


def execute(planned: list[PlannedRun], executor: str = "auto", workers: int = 0,
            progress: bool = True, cluster: str | None = None,
            cluster_options: dict[str, Any] | None = None) -> list[PlannedRun]:
    """Train every planned run that is neither complete nor running elsewhere; return those
    left to other processes (still running elsewhere)."""
    if executor not in EXECUTORS:
        raise UsageError(f"--executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if workers < 0:
        raise UsageError(f"--workers must be at least 0, got {workers}")
    # a shared run is trained once, under the name of the experiment whose folder holds it
    unique: dict[Path, PlannedRun] = {}
    for p in planned:
        if p.directory not in unique or not p.shared:
            unique[p.directory] = p
    busy = [p for p in unique.values() if rundir.is_active(p.directory)]
    pending = [p for p in unique.values()
               if not rundir.is_complete(p.directory) and p not in busy]
    if not pending:
        return busy
    if executor == "submitit":
        _submit(pending, out=_common_root(pending), cluster=cluster,
                options=cluster_options or {}, workers=workers)
        return busy
    from lgtransfer.engine.machine import slots as machine_slots

    slots, gpus = machine_slots()
    n_workers = min(len(pending), workers or slots)
    if executor == "inline" or (executor == "auto" and n_workers < 2):
        from lgtransfer.engine.train import train_run

        with stopping.stop_at_step_boundaries():
            for p in pending:
                signum = stopping.requested()
                if signum is not None:  # during the last step of the run before, or between
                    raise Interrupted(signum, "the sweep, between runs")
                train_run(p.run, p.directory, progress=progress)
        return busy
    threads = max(1, (os.cpu_count() or 1) // n_workers) if gpus is None else 4
    # spawn, not fork: forking a process that already runs torch threads can deadlock
    context = multiprocessing.get_context("spawn")
    # one task per worker process: a fresh process per run, so each one's GPU pinning holds
    stop_event = context.Event()  # set on a stop: a worker that gets a run then skips it
    with ProcessPoolExecutor(n_workers, mp_context=context, max_tasks_per_child=1,
                             initializer=_init_pool_worker, initargs=(stop_event,)) as pool:
        futures = [pool.submit(_work, p.run, p.directory, threads,
                               gpus[i % len(gpus)] if gpus else None, i % n_workers, progress)
                   for i, p in enumerate(pending)]

        def forward(signum: int) -> None:  # SIGTERM reaches only us: stop the runs, start none
            stop_event.set()
            for f in futures:
                f.cancel()
            for pid in list(pool._processes or {}):
                with contextlib.suppress(ProcessLookupError):  # a worker already gone
                    os.kill(pid, signal.SIGTERM)

        stopped: Interrupted | None = None
        with stopping.stop_at_step_boundaries(forward):
            for f in futures:
                try:
                    f.result()  # re-raises a worker's error here
                except CancelledError:
                    pass
                except BrokenProcessPool:  # a worker stopped before its run began
                    if stopping.requested() is None:
                        raise
                except Interrupted as e:
                    stopped = stopped or e
            signum = stopping.requested()
        if stopped or signum is not None:
            raise stopped or Interrupted(signum or signal.SIGTERM, "the sweep, between runs")
    return busy


def _common_root(planned: list[PlannedRun]) -> Path:
    """The folder holding every planned run's experiment folder."""
    return Path(os.path.commonpath([p.directory.parent for p in planned]))


def _submit(pending: list[PlannedRun], out: Path, cluster: str | None, options: dict[str, Any],
            workers: int) -> None:
    """One job array, a run per job; waits for every job and re-raises the first failure."""
    try:
        import submitit
    except ImportError:
        raise UsageError("--executor submitit needs the submitit package "
                         "(pip install 'lgtransfer[cluster]')") from None
    folder = out / ".submitit"
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    params: dict[str, Any] = {"timeout_min": 240, "name": "lgt"}
    if executor.cluster == "slurm":
        params.update(gpus_per_node=1, cpus_per_task=8, slurm_array_parallelism=workers or 64)
    try:
        executor.update_parameters(**{**params, **options})
    except (ValueError, TypeError) as e:
        raise UsageError(f"--cluster-option: {e}") from None
    threads = 1 if executor.cluster == "local" else 0
    jobs = executor.map_array(TrainJob(), [p.run for p in pending],
                              [p.directory for p in pending], [threads] * len(pending),
                              [None] * len(pending), [0] * len(pending), [False] * len(pending))
    print(f"submitted {len(jobs)} job(s) to {executor.cluster}: "
          f"{jobs[0].job_id.split('_')[0]} (logs in {folder})")
    for job in jobs:
        job.result()
