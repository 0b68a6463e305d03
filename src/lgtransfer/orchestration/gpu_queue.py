"""One GPU window's work (`benchmarks/gpu_evidence.sh`; docs/gpu.md): check the machine, measure
how fast runs train one, two and four at a time, train the next pending runs of the committed
list side by side until the deadline, and pack what finished into the few files a window may
send back.

Every torch step runs in a child process, forked from a server that imported torch once (cheap
children, and this process never touches CUDA, so forking stays safe). The measuring code is
`benchmarks/bench_train.py`'s (`measure`, `time_training`), imported by name in the children.
A run is started only if this window's timing model (`gpu_plan.Pace`) says it ends before the
deadline; one that would not after all is sent SIGTERM, so it stops at a step boundary with a
resume point and an `interrupted` manifest (it stays on the machine; only complete runs are
packed). Everything decided is written as it happens to `OUT/windows/window-STAMP.json`, which
comes back with the runs.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import multiprocessing
import os
import queue as queues
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lgtransfer.orchestration import gpu_plan
from lgtransfer.orchestration.evidence_pack import RECORDS, pack
from lgtransfer.runtime import rundir, stopping

# `--small`: every run at a size two CPU cores train in about a second (the same code paths)
SMALL = ["model.n_layer=1", "model.n_head=4", "model.d_model=32", "model.d_ff=64",
         "train.steps=10", "train.batch_size=16", "train.eval_every=10",
         "train.checkpoint_every=10", "eval.n=4", "eval.max_length=20", "heads.n=4",
         "heads.random_draws=2"]
COUNTS = (1, 2, 4)  # runs side by side, measured the first time a device is seen
PARALLELISM = "parallelism.json"
CHILDREN = "lgtransfer.engine.queue_children"  # the children's torch code, imported by name


@dataclass
class Window:
    """What one call was asked for."""

    out: Path  # run folders (OUT/runs), records (OUT/windows), packs (OUT/pack by default)
    minutes: float
    run_list: Path
    results: Path  # the committed budget folder: its complete runs are skipped
    small: bool = False
    pack_to: Path | None = None
    overrides: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    # the module with `measure` and `time_training` (benchmarks/bench_train.py, on sys.path):
    # imported by the measuring children only, so this process never imports torch
    bench: str = "bench_train"

    @property
    def reserve_s(self) -> tuple[float, float]:
        """Seconds kept at the end: for a stopped run to write its resume point, for packing."""
        return (3.0, 2.0) if self.small else (30.0, 15.0)


def _context(bench: str) -> Any:
    # a CUDA check at import time in the server (a library asking torch.cuda.is_available())
    # must not initialise the driver, or its forked children could not use the GPU: NVML's
    # check initialises nothing (torch's documented switch for forked processes)
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    context = multiprocessing.get_context("forkserver")
    # the server imports these once; every child is a fork of it
    context.set_forkserver_preload(["torch", CHILDREN, bench])
    return context


# ----------------------------------------------------------------------------- child processes

def _engine_child(function: str, *args: Any) -> None:
    """`CHILDREN.function(*args)` in a child process: named, not imported here, so that this
    process never imports torch (forking stays safe and cheap)."""
    getattr(importlib.import_module(CHILDREN), function)(*args)


def _collect(context: Any, target: Callable[..., None], arglists: list[tuple],
             timeout: float) -> list[dict]:
    """Start one process per argument tuple (each gets a results queue last), wait for all,
    and return what they put on it; a child that fails or overruns is a RuntimeError."""
    results = context.Queue()
    procs = [context.Process(target=target, args=(*args, results), daemon=True)
             for args in arglists]
    for p in procs:
        p.start()
    out, end = [], time.monotonic() + timeout
    while any(p.is_alive() for p in procs):
        with contextlib.suppress(queues.Empty):
            out.append(results.get(timeout=0.2))
        if time.monotonic() > end:
            for p in procs:
                p.kill()
            raise RuntimeError(f"measurement overran {timeout:.0f} s")
    with contextlib.suppress(queues.Empty):
        while True:  # what the last ones put just before they ended
            out.append(results.get(timeout=0.5))
    if any(p.exitcode for p in procs):
        raise RuntimeError(f"a measuring process failed (exit {[p.exitcode for p in procs]})")
    return out


# ----------------------------------------------------------------------------- the window


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _progress(directory: Path) -> int:
    """A running run's last logged step (a torn last line is simply not read)."""
    try:
        lines = (directory / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        with contextlib.suppress(ValueError, KeyError, TypeError):
            return int(json.loads(line)["step"])
    return 0


def _known_parallelism(w: Window, device: str) -> tuple[dict, int | None]:
    """Every device's recorded choice (this folder's, over the committed one), and this one's."""
    known: dict = {}
    for path in (w.results / RECORDS / PARALLELISM, w.out / RECORDS / PARALLELISM):
        if path.is_file():
            data = rundir.read_json(path)
            known.update(data if isinstance(data, dict) else {})
    entry = known.get(device)
    choice = entry.get("choice") if isinstance(entry, dict) else None
    return known, choice if isinstance(choice, int) and choice >= 1 else None


def run_window(w: Window, log: Callable[[str], None] = print) -> dict:
    """The whole window; returns its record (also written to OUT/windows/)."""
    budget, entries = gpu_plan.load_run_list(w.run_list)
    overrides = [*(SMALL if w.small else []), *w.overrides]
    runs_dir, records = w.out / "runs", w.out / RECORDS
    planned = gpu_plan.queue(entries, budget, runs_dir, overrides)  # bad input: before work
    stop_s, pack_s = w.reserve_s
    end = w.started + w.minutes * 60
    deadline = end - pack_s - stop_s  # runs must end by then; still running: stopped
    stamp = _stamp()
    record: dict = {"started": datetime.now(UTC).isoformat(timespec="seconds"),
                    "minutes": w.minutes, "small": w.small, "run_list": str(w.run_list),
                    "overrides": overrides, "deadline_s": round(deadline - w.started, 1),
                    "finish_by_s": round(end - pack_s - w.started, 1),
                    "runs": []}
    record_path = records / f"window-{stamp}.json"

    def save() -> None:
        rundir.write_json(record_path, record)

    def t() -> float:
        return round(time.monotonic() - w.started, 2)

    done_keys = gpu_plan.complete_keys(w.results, runs_dir)
    todo = [p for p in planned if p.run.key not in done_keys]
    for p in planned:
        if p.run.key in done_keys:
            record["runs"].append(_entry(p, "skipped: complete" + (
                " here" if rundir.is_complete(p.directory) else f" in {w.results}")))
    if not todo:  # no device time spent measuring for nothing
        log("every run of the list is complete")
        record["pack"] = _pack(w, runs_dir, records, budget, stamp, save, record)
        return record
    context = _context(w.bench)
    try:
        log("checking the machine and measuring training throughput ...")
        machine = _collect(context, _engine_child, [("machine_child", w.small, w.bench)],
                           120 if w.small else 240)[0]
        record.update(machine=machine, measured_at_s=t())
        device = machine["device"] + (" (small)" if w.small else "")
        known, choice = _known_parallelism(w, device)
        first = todo[0].run
        shape = {"model": first.model, "group": first.group,
                 "batch_size": first.train.batch_size, "buckets": first.train.buckets,
                 "eval_n": first.experiment.eval.n}
        counts = (choice,) if choice else COUNTS
        log(f"measuring {', '.join(map(str, counts))} run(s) side by side ...")
        barrier = context.Barrier(max(counts))
        rows = _collect(context, _engine_child,
                        [("pace_child", i, counts, shape, w.small, w.bench, barrier)
                         for i in range(max(counts))], 300)
    except RuntimeError as e:  # no timing, no runs; what earlier calls finished still travels
        record["error"] = str(e)
        log(f"error: {e}; no run started")
        record["pack"] = _pack(w, runs_dir, records, budget, stamp, save, record)
        return record
    totals = {k: sum(r["tokens_per_s"] for r in rows if r.get("k") == k) for k in counts}
    k = choice or gpu_plan.side_by_side(totals)
    ready = max(r["ready_s"] for r in rows if "ready_s" in r)
    eval_s = next(r["eval_s_per_example"] for r in rows if "eval_s_per_example" in r)
    record["parallel"] = {"measured_tokens_per_s": {str(c): round(v) for c, v in totals.items()},
                          "choice": k, "chosen": "measured now" if not choice else "recorded",
                          "ready_s": round(ready, 2), "eval_s_per_example": eval_s,
                          "measured_at_s": t()}
    if not choice:
        known[device] = {"choice": k, "measured_tokens_per_s": record["parallel"][
            "measured_tokens_per_s"], "date": record["started"][:10]}
        rundir.write_json(records / PARALLELISM, known)
    pace = gpu_plan.Pace(totals[k] / k, ready, eval_s, k)
    save()
    log(f"{k} run(s) side by side, {totals[k] / k:,.0f} tokens/s each; "
        f"{deadline - time.monotonic():.0f} s left for runs")
    _train(w, todo, pace, deadline, end, machine, record, save, log)
    record["pack"] = _pack(w, runs_dir, records, budget, stamp, save, record)
    return record


def _entry(p: Any, state: str, **more: Any) -> dict:
    # the folder as it will be under results/gpu/ (this machine's paths mean nothing there)
    parts = p.directory.parts
    below = len(parts) - parts[::-1].index(p.run.experiment.budget)  # OUT/runs/BUDGET/...
    return {"key": p.run.key, "dir": "/".join(parts[below:]), "experiment": p.run.experiment.name,
            "variant": p.run.variant, "seed": p.run.seed, "state": state, **more}


@dataclass
class _Slot:
    planned: Any
    process: Any
    started: float
    estimate: float
    tokens: float
    entry: dict
    stop_sent: float | None = None
    first_seen: tuple[float, int] | None = None  # (time, step) of its first logged progress


def _train(w: Window, todo: list, pace: gpu_plan.Pace, deadline: float, end: float,
           machine: dict, record: dict, save: Callable[[], None],
           log: Callable[[str], None]) -> None:
    """Start runs while they fit, stop those that would not finish, until nothing is left."""
    context = multiprocessing.get_context("forkserver")
    cuda = machine["cuda"]
    cpus = machine["cpus"] or 1
    threads = max(1, cpus // pace.side_by_side) if not cuda else 4
    data_workers = None if not cuda else max(1, min(8, cpus // (2 * pace.side_by_side)))
    running: list[_Slot] = []
    waiting, stopped = list(todo), []
    base = w.started
    finish_by = end - w.reserve_s[1]  # a run ending later could not be packed
    kill_at = end - w.reserve_s[1] / 3

    def stop_all(signum: int) -> None:
        for s in running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(s.process.pid, signal.SIGTERM)

    with stopping.stop_at_step_boundaries(stop_all):
        while running or waiting:
            now = time.monotonic()
            for s in list(running):
                if s.process.is_alive():
                    continue
                s.process.join()
                running.remove(s)
                status = _status(s.planned.directory)
                s.entry.update(status=status, exit=s.process.exitcode,
                               finished_at_s=round(now - base, 2),
                               seconds=round(now - s.started, 2))
                if status == "complete":
                    pace.learn(s.planned, s.tokens, now - s.started)
                log(f"{status}: {s.planned.directory.name} in {now - s.started:.0f} s")
                save()
            for s in running:
                step, steps = _progress(s.planned.directory), s.planned.run.train.steps
                if step and s.first_seen is None:
                    s.first_seen = (now, step)
                ends = gpu_plan.projected_end(now, s.started, s.estimate, steps, step,
                                              s.first_seen)
                if s.stop_sent is None and gpu_plan.should_stop(
                        now, ends, gpu_plan.paced(steps, step, s.first_seen), deadline,
                        finish_by):
                    s.stop_sent = now
                    s.entry.update(stop_sent_at_s=round(now - base, 2),
                                   stop_reason=f"projected end {ends - base:.0f} s")
                    os.kill(s.process.pid, signal.SIGTERM)  # resume point, `interrupted`
                    log(f"stopping {s.planned.directory.name}: it would not finish in time")
                elif s.stop_sent is not None and now > kill_at:
                    s.process.kill()  # its resume point took too long: packing goes first
            if stopping.requested() is not None:  # this process was asked to stop
                stopped.extend(waiting)
                waiting.clear()
            while waiting and len(running) < pace.side_by_side:
                fitting = [p for p in waiting if gpu_plan.fits(
                    now, pace.estimate(p, gpu_plan.tokens_left(p)), deadline)]
                if not fitting:
                    break
                p = fitting[0]  # the first in list order that fits (a later, smaller one may)
                waiting.remove(p)
                running.append(_start(context, p, pace, now, base, threads, data_workers,
                                      record))
                log(f"started {p.directory.name} (estimate {running[-1].estimate:.0f} s)")
                save()
            if waiting and not running:  # nothing fits and nothing will free time
                break
            time.sleep(0.2 if w.small else 2.0)
    for p in waiting:
        est = pace.estimate(p, gpu_plan.tokens_left(p))
        record["runs"].append(_entry(p, "not started: would not finish before the deadline",
                                     estimate_s=round(est, 1),
                                     left_s=round(deadline - time.monotonic(), 1)))
    record["runs"] += [_entry(p, "not started: the window was stopped") for p in stopped]
    record["stopped_by_signal"] = stopping.requested()
    save()


def _start(context: Any, p: Any, pace: gpu_plan.Pace, now: float, base: float, threads: int,
           data_workers: int | None, record: dict) -> _Slot:
    tokens = gpu_plan.tokens_left(p)
    estimate = pace.estimate(p, tokens)
    rundir.record_experiment_runs(p.experiment_dir, p.run.experiment.name,
                                  p.run.experiment.figure, [p.directory],
                                  p.run.experiment_key)
    process = context.Process(target=_engine_child,
                              args=("run_child", p.run, p.directory, threads, data_workers))
    process.start()
    entry = _entry(p, "started", tokens=round(tokens), estimate_s=round(estimate, 2),
                   started_at_s=round(now - base, 2),
                   predicted_end_s=round(now + estimate - base, 2))
    record["runs"].append(entry)
    return _Slot(p, process, now, estimate, tokens, entry)


def _status(directory: Path) -> str:
    try:
        return str(rundir.read_json(directory / rundir.MANIFEST).get("status", "failed"))
    except (OSError, ValueError):
        return "failed"


def _pack(w: Window, runs_dir: Path, records: Path, budget: str, stamp: str,
          save: Callable[[], None], record: dict) -> dict:
    """Pack every complete run of this folder (the record is written first, so it travels)."""
    record["packed_at_s"] = round(time.monotonic() - w.started, 2)
    save()
    result = pack(runs_dir / budget, records, w.pack_to or w.out / "pack",
                  f"gpu-evidence-{stamp}", replace="gpu-evidence-*.tar.gz")
    record["pack"] = result
    save()
    return result
