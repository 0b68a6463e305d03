"""Planning: experiments (`config.load`) into runs, each in its folder under OUT.

Every run lives in `OUT/BUDGET/[SWEEP/]EXPERIMENT/{variant}_seed{seed}_{key}`, the key a hash of
its resolved config (budget included) without the experiment's name (`config.runs`), so a
finished run is never redone and a changed config never reuses a folder. A run that another
experiment already has under OUT (A1's both-auxiliary runs are G1's) is not trained again: it
stays in that experiment's folder, and `experiment.json` in each experiment folder lists the
runs the experiment is made of. `--dry-run` prints `describe`'s listing.

The executors that train the planned runs are in `executors.py`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from lgtransfer.config import (
    BUDGETS,
    ExperimentEntry,
    RunSpec,
    content_hash,
    execution,
    expand,
    throughput,
)
from lgtransfer.config.runs import run_execution
from lgtransfer.errors import UsageError
from lgtransfer.runtime import rundir

# ----------------------------------------------------------------------------- planning


@dataclass
class PlannedRun:
    """One run of one experiment, and the folder it is trained in. Runs are keyed by content,
    so an identical run reached from several experiments has one folder: the one it already has
    anywhere under the output folder, else one in the first experiment's folder that plans it."""

    run: RunSpec
    directory: Path
    experiment_dir: Path  # the folder of the experiment that lists it

    @property
    def shared(self) -> bool:
        """Trained (or to be trained) in another experiment's folder."""
        return self.directory.parent != self.experiment_dir

    def state(self) -> str:
        if rundir.is_complete(self.directory):
            return "complete"
        if rundir.is_active(self.directory):
            return "running elsewhere"
        step = rundir.last_step(self.directory)
        return f"partial (resumes at step {step})" if step else "pending"


def plan(experiments: list[ExperimentEntry], out: Path) -> list[PlannedRun]:
    """Every run of every experiment, each in its folder: an existing run with the same key
    anywhere under `out` is reused, so no run is ever trained twice."""
    folders = existing_runs(out)
    planned = []
    for e in experiments:
        for run in expand(e.config):
            directory = folders.setdefault(run.key, out / e.folder / run.dirname)
            planned.append(PlannedRun(run, directory, out / e.folder))
    return planned


def existing_runs(out: Path) -> dict[str, Path]:
    """Run key -> folder of every run under `out` that has a manifest (complete ones first).

    A run is found by the hash of its `config.yaml` and, unless it is a bf16 or compiled run,
    by the key in its manifest, so folders made before runs were keyed by content (their names
    carry the older key), or before they had a budget, are reused too."""
    found: dict[str, Path] = {}
    for path in sorted(out.rglob(rundir.MANIFEST)) if out.is_dir() else []:
        if ".submitit" in path.parts:
            continue
        try:
            manifest = rundir.read_json(path)
            config = rundir.read_yaml(path.parent / "config.yaml")
            keys = config_keys(config)
            # the key it was made under, for folders keyed by an older scheme; not for a run
            # that is not the reference: keys before execution entered them named it not, and
            # the reference run of the same config must not find it
            if run_execution(config).is_reference:
                keys.add(manifest["config_hash"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            # a damaged run folder: resumed (or redone) as its own experiment's, and said
            why = (str(e) if isinstance(e, UsageError) else
                   f"{path.parent}: manifest or config.yaml incomplete ({type(e).__name__}); "
                   "`lgt run` takes that run as partial and resumes it")
            print(f"lgt: warning: {why}", file=sys.stderr)
            continue
        for key in keys:
            if key not in found or manifest.get("status") == "complete":
                found[key] = path.parent
    return found


def config_keys(config: dict) -> set[str]:
    """The run key of a recorded config. One recorded before budgets (no `budget` in it) gets
    one key per budget: the run of the same content at whichever budget asks finds it."""
    if "budget" in config:
        return {content_hash(config)}
    return {content_hash({**config, "budget": budget}) for budget in BUDGETS}


def record_experiments(experiments: list[ExperimentEntry], planned: list[PlannedRun],
                       out: Path) -> None:
    """Write each experiment folder's index of its runs (`experiment.json`), so that its report
    lists the runs it shares with other experiments."""
    for e in experiments:
        mine = [p for p in planned if p.experiment_dir == out / e.folder]
        rundir.record_experiment_runs(out / e.folder, e.config.name, e.config.figure,
                                      [p.directory for p in mine],
                                      mine[0].run.experiment_key if mine else "")


def describe(planned: list[PlannedRun]) -> str:
    """What `--dry-run` prints: one line per run with its state and size, then the totals (a
    run two experiments share counts once), the time to go at the rate calibrated for the
    budget's device (config/throughput.py), and at the speed its complete runs had here."""
    lines, counts, todo, speeds, seen = [], {}, 0.0, [], set()
    estimate: dict[tuple[str, str], list[float]] = {}  # (device, source line) -> [s, tokens]
    for p in planned:
        state = p.state()
        tokens = training_tokens(p.run)
        shared = f"  (for {p.experiment_dir})" if p.shared else ""
        lines.append(f"{state:34s} {tokens / 1e6:8.0f}M tok  {p.directory}{shared}")
        if p.directory in seen:
            continue
        seen.add(p.directory)
        counts[state.split(" (")[0]] = counts.get(state.split(" (")[0], 0) + 1
        if state != "complete":
            todo += tokens
            device, rate, source = calibrated_rate(p.run)
            acc = estimate.setdefault((device, source), [0.0, 0.0])
            acc[0] += tokens / rate
            acc[1] += tokens
        elif (seconds := rundir.train_seconds(p.directory)) > 0:  # NaN: no time recorded
            speeds.append(tokens / seconds)
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    times = []
    for (device, source), (seconds, tokens) in estimate.items():
        side = (os.cpu_count() or 1) if device == "cpu" else 1
        times.append(f"~{seconds / 3600:.2f} h of run time on {device} at {tokens / seconds:,.0f}"
                     f" tokens/s a run ({source}), ~{seconds / 3600 / side:.2f} h with {side} "
                     "side by side")
    lines.append(f"{len(seen)} runs: {summary}; {todo / 1e9:.2f}G training tokens to go"
                 + "".join(f"; {t}" for t in times))
    if speeds and todo:
        speed = float(sorted(speeds)[len(speeds) // 2])
        lines.append(f"at the median speed of its {len(speeds)} complete runs ({speed:,.0f} "
                     f"tokens/s a run): ~{todo / speed / 3600:.1f} h of run time to go, divided "
                     "by the runs trained side by side")
    return "\n".join(lines)


def calibrated_rate(run: RunSpec) -> tuple[str, float, str]:
    """(device, tokens/s of one run, where the rate comes from) for the budget's device: a
    GPU for the gpu and paper budgets, a CPU core for cpu."""
    device = "cpu" if run.experiment.budget in ("cpu", "") else "cuda"
    resolved = run.resolved()
    how = execution.resolve(resolved["train"], resolved["model"], device)
    rate, source = throughput.rate(device, how, throughput.model_params(resolved["model"]))
    return device, rate, f"{how.name}, {source}"


_MEAN_LENGTHS: dict[tuple, float] = {}


def training_tokens(run: RunSpec) -> float:
    """Useful (non-padding) tokens a run trains on: steps x batch x mean sequence length, the
    mean measured on a sample of the run's own mixture (tasks by weight, lengths uniform)."""
    import numpy as np

    from lgtransfer.data.mixture import MARKER_REPEAT
    from lgtransfer.tasks import get_task

    key = tuple((t.task, t.min_length, t.max_length, t.weight) for t in run.group)
    if key not in _MEAN_LENGTHS:
        rng, lengths, weights = np.random.default_rng(0), [], []
        for t in run.group:
            task = get_task(t.task)
            b = task.train_batch(rng, 256, t.shortest, t.max_length)
            lengths.append(float((b.prompt_len + b.target_len).mean()) + 2 * MARKER_REPEAT + 2)
            weights.append(t.weight)
        _MEAN_LENGTHS[key] = float(np.average(lengths, weights=weights))
    t = run.train
    return t.steps * t.batch_size * _MEAN_LENGTHS[key]
