"""What a GPU window trains, in which order, and whether a run still fits before its deadline.

`benchmarks/gpu_runs.yaml` is the committed, ordered list of runs that GPU windows work through
(`benchmarks/gpu_evidence.sh`, docs/gpu.md). Each entry names an experiment (a preset or a sweep
file) with optional `seeds`, `set` (dotted overrides) and `only` (the experiments of a sweep to
keep); its runs are queued seed by seed, each seed's with-aux run before its baselines, so a
window that stops early leaves whole seeds behind rather than half of every seed. Runs are keyed
by content (`config.runs`): one that is complete in any of the given folders (the committed
`results/gpu/`, the window's own folder) is skipped, so the next window goes on where the last
stopped.

`Pace` is the timing model, torch-free so it can be tested with made-up clocks: a run's seconds
are a fixed overhead plus its tokens at the measured per-run speed, scaled by the worst ratio of
actual to predicted time seen so far in this window, with a margin. A run starts only if that
estimate ends before the deadline; a running one is stopped when its own progress says it would
not finish in time.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from lgtransfer.config import load_experiments
from lgtransfer.config.schema import WITH_AUX
from lgtransfer.errors import UsageError
from lgtransfer.orchestration.sweep import (
    PlannedRun,
    existing_runs,
    plan,
    training_tokens,
)
from lgtransfer.runtime import rundir

ENTRY_KEYS = {"experiment", "seeds", "set", "only"}
HEADS_SHARE = 0.1  # head metrics recorded during training: ~9 % of a run (bench_head_record.py)


# ----------------------------------------------------------------------------- the run list


def load_run_list(path: Path) -> tuple[str, list[dict]]:
    """The budget and the entries of a run-list file, checked (bad input: `UsageError`)."""
    raw = rundir.read_yaml(path)
    if not isinstance(raw, dict) or set(raw) - {"budget", "description", "runs"}:
        raise UsageError(f"{path}: a run list is a mapping with 'budget' and 'runs'")
    entries = raw.get("runs")
    if not isinstance(entries, list) or not entries:
        raise UsageError(f"{path}: 'runs' must be a non-empty list")
    for i, e in enumerate(entries):
        where = f"{path}: runs[{i}]"
        if not isinstance(e, dict) or "experiment" not in e or set(e) - ENTRY_KEYS:
            raise UsageError(f"{where} needs 'experiment' and may give only "
                             f"{', '.join(sorted(ENTRY_KEYS - {'experiment'}))}")
        seeds = e.get("seeds")
        if seeds is not None and not (isinstance(seeds, list) and seeds and all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
            raise UsageError(f"{where}: 'seeds' must be a list of non-negative integers")
        if not isinstance(e.get("set", {}), dict):
            raise UsageError(f"{where}: 'set' must be a mapping of dotted keys to values")
        only = e.get("only")
        if only is not None and not (isinstance(only, list) and all(
                isinstance(o, str) for o in only)):
            raise UsageError(f"{where}: 'only' must be a list of experiment names")
    return str(raw.get("budget", "gpu")), entries


def entry_overrides(entry: dict) -> list[str]:
    """An entry's `set` and `seeds` as `--set` assignments (JSON is YAML, so values survive)."""
    out = [f"{k}={json.dumps(v)}" for k, v in (entry.get("set") or {}).items()]
    if entry.get("seeds") is not None:
        out.append(f"seeds={json.dumps(entry['seeds'])}")
    return out


def queue(entries: list[dict], budget: str, out: Path, overrides: list[str] | None = None
          ) -> list[PlannedRun]:
    """Every run of the list in order, once each (a run two entries reach is queued at the
    first), in its folder under `out`. `overrides` come before each entry's own (`--small`
    shrinks every run; an entry may still set its own steps)."""
    runs: list[PlannedRun] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        experiments = load_experiments([str(entry["experiment"])],
                                       [*(overrides or []), *entry_overrides(entry)], budget)
        if entry.get("only") is not None:
            names = {e.config.name for e in experiments}
            missing = [o for o in entry["only"] if o not in names]
            if missing:
                raise UsageError(f"runs[{i}]: {entry['experiment']} has no experiment "
                                 f"{missing[0]!r}")
            experiments = [e for e in experiments if e.config.name in entry["only"]]
        for e in experiments:
            planned = plan([e], out)
            # seed by seed, the with-aux run first: a stopped window leaves whole seeds behind
            planned.sort(key=lambda p: (p.run.seed, p.run.variant != WITH_AUX, p.run.variant))
            for p in planned:
                if p.run.key not in seen:
                    seen.add(p.run.key)
                    runs.append(p)
    return runs


def complete_keys(*folders: Path) -> set[str]:
    """Keys of every complete run under the given folders (missing folders hold none)."""
    keys: set[str] = set()
    for folder in folders:
        for key, directory in existing_runs(folder).items():
            if rundir.is_complete(directory):
                keys.add(key)
    return keys


def tokens_left(p: PlannedRun) -> float:
    """Useful training tokens a run still has to train (a partial run resumes)."""
    done = rundir.last_step(p.directory) / max(1, p.run.train.steps)
    return training_tokens(p.run) * (1 - done)


# ----------------------------------------------------------------------------- timing


@dataclass
class Pace:
    """How long a run takes on this machine, from this window's measurements.

    `tokens_per_s`: one run's useful training tokens/s while `side_by_side` runs share the
    device; `startup_s`: process start, model build and compilation; `eval_s_per_example`: one
    evaluation example. Finished runs teach it: every estimate is scaled by the worst ratio of
    actual to predicted seconds seen so far, then by `margin`; before any run finished, by
    `first_margin` alone (the first runs side by side ran 24 % over an uncalibrated prediction
    on two loaded cores)."""

    tokens_per_s: float
    startup_s: float
    eval_s_per_example: float
    side_by_side: int = 1
    margin: float = 1.15
    first_margin: float = 1.5
    ratios: list[float] = field(default_factory=list)

    def predict(self, p: PlannedRun, tokens: float) -> float:
        """Seconds for a run to train `tokens` more, before what finished runs taught."""
        run, cfg = p.run, p.run.experiment
        train_s = tokens / self.tokens_per_s
        if cfg.heads.record and run.variant == WITH_AUX:
            train_s *= 1 + HEADS_SHARE
        fraction = tokens / max(1.0, training_tokens(run))
        evals = math.ceil(run.train.steps / run.train.eval_every) * fraction
        # lengths 1..max, per task (sweeps thin them out past 64: this is an upper bound)
        examples = cfg.eval.n * len(run.group) * min(cfg.eval_max_length, 80)
        return self.startup_s + train_s + evals * examples * self.eval_s_per_example

    @property
    def factor(self) -> float:
        return max(self.ratios) * self.margin if self.ratios else self.first_margin

    def estimate(self, p: PlannedRun, tokens: float) -> float:
        return self.predict(p, tokens) * self.factor

    def learn(self, p: PlannedRun, tokens: float, seconds: float) -> None:
        """A run that trained `tokens` finished in `seconds`."""
        self.ratios.append(seconds / max(1e-9, self.predict(p, tokens)))


def fits(now: float, estimate_s: float, deadline: float) -> bool:
    """A run may start now only if it is expected to end by the deadline."""
    return now + estimate_s <= deadline


def paced(steps: int, step: int, first_seen: tuple[float, int] | None) -> bool:
    """Whether a running run has gone far enough since it was first seen training (`first_seen`:
    time, step) for its own rate to say when it ends: a tenth of its steps (compilation before
    that first sight would make it look slow)."""
    return first_seen is not None and step - first_seen[1] >= max(1, steps // 10)


def projected_end(now: float, started: float, estimate_s: float, steps: int, step: int,
                  first_seen: tuple[float, int] | None) -> float:
    """When a running run will end: at its own rate once `paced`, else start + estimate."""
    if first_seen is not None and paced(steps, step, first_seen):
        rate = (step - first_seen[1]) / max(1e-9, now - first_seen[0])
        return now + (steps - step) / rate
    return started + estimate_s


def should_stop(now: float, ends: float, paced_: bool, deadline: float, finish_by: float
                ) -> bool:
    """Stop a running run (SIGTERM: resume point, `interrupted`) when it would end after
    `finish_by`, the last moment a run may end and still be packed. By `deadline` (earlier by
    the time a resume point takes), one whose own rate is not known yet is stopped too; one
    whose rate says it ends in time goes on (stopping it would waste the whole run)."""
    return ends > finish_by or (now >= deadline and not paced_)


def side_by_side(totals: dict[int, float], gain: float = 1.05) -> int:
    """How many runs to train at once: more only while it raises total throughput by at least
    `gain` over the best smaller count (a wash is not worth the memory and the risk)."""
    best = min(totals)
    for k in sorted(totals):
        if totals[k] >= gain * totals[best]:
            best = k
    return best
