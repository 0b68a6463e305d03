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

import sys
from dataclasses import dataclass
from pathlib import Path

from lgtransfer.config import (
    BUDGETS,
    ExperimentEntry,
    RunSpec,
    content_hash,
    expand,
)
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

    A run is found by the key in its manifest and by the hash of its `config.yaml`, so folders
    made before runs were keyed by content (their names carry the older key), or before they
    had a budget, are reused too."""
    found: dict[str, Path] = {}
    for path in sorted(out.rglob(rundir.MANIFEST)) if out.is_dir() else []:
        if ".submitit" in path.parts:
            continue
        try:
            manifest = rundir.read_json(path)
            keys = {manifest["config_hash"],
                    *config_keys(rundir.read_yaml(path.parent / "config.yaml"))}
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
    run two experiments share counts once), and the time still to go at the speed its complete
    runs were measured at here."""
    lines, counts, todo, speeds, seen = [], {}, 0.0, [], set()
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
        elif (seconds := rundir.read_json(p.directory / rundir.MANIFEST).get("train_seconds")):
            speeds.append(tokens / seconds)
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    hours, target = todo / REFERENCE_THROUGHPUT / 3600, REFERENCE_THROUGHPUT / 1e6
    lines.append(f"{len(seen)} runs: {summary}; {todo / 1e9:.2f}G training tokens to go "
                 f"(~{hours:.2f} h at {target:.0f}M tokens/s, the one-H100 target)")
    if speeds and todo:
        speed = float(sorted(speeds)[len(speeds) // 2])
        lines.append(f"at the median speed of its {len(speeds)} complete runs ({speed:,.0f} "
                     f"tokens/s a run): ~{todo / speed / 3600:.1f} h of run time to go, divided "
                     "by the runs trained side by side")
    return "\n".join(lines)


REFERENCE_THROUGHPUT = 3e6  # useful tokens/s: docs/design.md §7, the target on one H100
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
