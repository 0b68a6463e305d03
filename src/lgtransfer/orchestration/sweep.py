"""Sweeps: experiments (and sweep files) expanded into content-keyed runs, planned under OUT.

`lgt run` takes one or more experiments. Each is a preset name or a YAML path, and may be a
*sweep file*: a list of experiments built from bases with overrides, optionally crossed with a
grid of values (the length-ratio sweep is one base crossed with 7 main x 7 auxiliary lengths):

    sweep: ratio                        # marks a sweep file; its experiments: OUT/BUDGET/ratio/
    description: ...
    set: {train.steps: 4000}            # overrides applied to every experiment
    experiments:                        # each base loaded at the sweep's budget
      - {base: g1, name: "ratio-m{main}-a{aux}"}
    grid:                               # every combination, `{axis}` filled into the name
      main: {keys: [group.0.max_length], values: [4, 8, 16]}
      aux: {keys: [group.1.max_length, group.2.max_length], values: [8, 16, 32]}
    budgets:                            # optional: the budgets it runs at, and per budget a
      cpu: {set: {seeds: [0, 1]},       # `set` applied after the others and `grid` axes that
            grid: {main: {keys: [group.0.max_length], values: [3, 6]}}}   # replace its own
      gpu: {}

Every run lives in `OUT/BUDGET/[SWEEP/]EXPERIMENT/{variant}_seed{seed}_{key}`, the key a hash of
its resolved config (budget included) without the experiment's name (`config.runs`), so a
finished run is never redone and a changed config never reuses a folder. A run that another
experiment already has under OUT (A1's both-auxiliary runs are G1's) is not trained again: it
stays in that experiment's folder, and `experiment.json` in each experiment folder lists the
runs the experiment is made of.

The executors that train the planned runs are in `executors.py`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

from lgtransfer.config import (
    BUDGETS,
    ExperimentConfig,
    RunSpec,
    apply_override,
    at_budget,
    budget_of,
    content_hash,
    expand,
    load_raw,
    parse_experiment,
    set_key,
)
from lgtransfer.errors import UsageError
from lgtransfer.runtime import rundir

# ----------------------------------------------------------------------------- planning


@dataclass
class ExperimentEntry:
    """One experiment named on the command line or in a sweep file, and its folder."""

    config: ExperimentConfig
    folder: Path  # relative to the output folder: BUDGET/EXPERIMENT or BUDGET/SWEEP/EXPERIMENT
    sweep: str = ""  # the sweep file's `sweep:` name, for an experiment of a sweep


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


def load_experiments(names: list[str], overrides: list[str] | None = None,
                     budget: str | None = None) -> list[ExperimentEntry]:
    """Every experiment that the given presets, experiment files and sweep files name, at
    `budget` (None: each file's own, else this machine's default; `config.files`)."""
    out: list[ExperimentEntry] = []
    for name in names:
        raw = load_raw(name)
        if "sweep" in raw:
            out += _sweep_experiments(raw, name, overrides or [], budget)
        else:
            raw = at_budget(raw, name, budget)
            for assignment in overrides or []:
                apply_override(raw, assignment)
            cfg = parse_experiment(raw, name)
            out.append(ExperimentEntry(cfg, Path(cfg.budget) / cfg.name))
    folders = [e.folder for e in out]
    if len(set(folders)) < len(folders):
        raise UsageError("two experiments share a name: "
                         f"{next(str(f) for f in folders if folders.count(f) > 1)}")
    return out


def _sweep_experiments(raw: dict, source: str, overrides: list[str], asked: str | None
                       ) -> list[ExperimentEntry]:
    unknown = set(raw) - {"sweep", "name", "description", "set", "experiments", "grid",
                          "budgets", "budget", "tasks_from", "matrix"}
    if unknown:
        raise UsageError(f"{source}: unknown sweep key {sorted(unknown)[0]!r}")
    budget = budget_of(raw, source, asked)
    own = (raw.get("budgets") or {}).get(budget) or {}
    if set(own) - {"set", "grid"}:
        raise UsageError(f"{source}: a sweep's budget may give only 'set' and 'grid', got "
                         f"{sorted(set(own) - {'set', 'grid'})[0]!r}")
    sweep, entries = str(raw["sweep"]), raw.get("experiments")
    if "matrix" in raw:
        if entries:
            raise UsageError(f"{source}: a sweep has 'experiments' or a 'matrix', not both")
        entries = matrix_entries(raw["matrix"], source)
    grid = {**(raw.get("grid") or {}), **(own.get("grid") or {})}
    if not isinstance(entries, list) or not entries:
        raise UsageError(f"{source}: a sweep needs a non-empty list 'experiments'")
    if not isinstance(grid, dict) or not all(
            isinstance(a, dict) and set(a) == {"keys", "values"} for a in grid.values()):
        raise UsageError(f"{source}: each grid axis needs exactly 'keys' and 'values'")
    axes = list(grid)
    out = []
    for entry in entries:
        if not isinstance(entry, dict) or "base" not in entry or "name" not in entry:
            raise UsageError(f"{source}: each sweep experiment needs 'base' and 'name'")
        for values in itertools.product(*(grid[a]["values"] for a in axes)):
            point = dict(zip(axes, values, strict=True))
            base = load_raw(str(entry["base"]))
            if "sweep" in base:
                raise UsageError(f"{source}: base {entry['base']!r} is itself a sweep")
            base = at_budget(base, str(entry["base"]), budget)
            # the budget's `set` last: it adapts the entries' own (A1's single-aux groups)
            for key, value in [*{**(raw.get("set") or {}), **(entry.get("set") or {})}.items(),
                               *(own.get("set") or {}).items()]:
                set_key(base, key, value)
            for axis, value in point.items():
                for key in grid[axis]["keys"]:
                    set_key(base, key, value)
            base["name"] = str(entry["name"]).format(**point)
            if raw.get("tasks_from"):  # the sweep's own task files, for every experiment
                base["tasks_from"] = [*base.get("tasks_from", []), *raw["tasks_from"]]
            for assignment in overrides:
                apply_override(base, assignment)
            cfg = parse_experiment(base, f"{source}: {base['name']}")
            out.append(ExperimentEntry(cfg, Path(budget) / sweep / cfg.name, sweep))
    return out


def matrix_entries(matrix: object, source: str) -> list[dict]:
    """A transfer matrix: every ordered pair of distinct tasks (main trained to `main_length`,
    auxiliary to `aux_length`) as one experiment `MAIN-from-AUX` on the base experiment. The
    main-alone baselines are shared by the pairs with the same main task (one run each)."""
    keys = {"tasks", "main_length", "aux_length", "base"}
    if not isinstance(matrix, dict) or set(matrix) - keys or not {"tasks", "main_length",
                                                                  "aux_length"} <= set(matrix):
        raise UsageError(f"{source}: 'matrix' needs tasks, main_length and aux_length "
                         "(and optionally base)")
    tasks = matrix["tasks"]
    if not isinstance(tasks, list) or len(tasks) < 2 or len(set(map(str, tasks))) < len(tasks):
        raise UsageError(f"{source}: matrix.tasks must list at least two distinct tasks")
    return [{"base": str(matrix.get("base", "g1")), "name": f"{m}-from-{a}",
             "set": {"group": [{"task": str(m), "role": "main",
                                "max_length": matrix["main_length"]},
                               {"task": str(a), "role": "aux",
                                "max_length": matrix["aux_length"]}]}}
            for m in tasks for a in tasks if m != a]


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
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # a damaged run folder: resumed (or redone) as its own experiment's
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
