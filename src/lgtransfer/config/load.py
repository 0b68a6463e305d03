"""The one loader of experiments: presets, experiment files and sweep files at a budget, with
`--set` overrides, each value's source recorded (`sources.py`; `lgt run --dry-run --explain`).

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

Each experiment lands in the folder `BUDGET/[SWEEP/]EXPERIMENT` (relative to `lgt run --out`);
`orchestration/sweep.py` plans its runs there.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path

from lgtransfer.config.files import (
    OWN,
    PRESET_DIR,
    apply_override,
    at_budget,
    budget_of,
    is_file,
    load_raw,
    resolve_base,
    set_key,
)
from lgtransfer.config.parse import parse_experiment
from lgtransfer.config.schema import ExperimentConfig
from lgtransfer.config.sources import Sources, explain, fields_of, label
from lgtransfer.errors import UsageError
from lgtransfer.runtime import rundir


@dataclass
class ExperimentEntry:
    """One experiment named on the command line or in a sweep file, and its folder."""

    config: ExperimentConfig
    folder: Path  # relative to the output folder: BUDGET/EXPERIMENT or BUDGET/SWEEP/EXPERIMENT
    sweep: str = ""  # the sweep file's `sweep:` name, for an experiment of a sweep
    # what loading it noticed: a budget inherited from a base overriding the file's own field
    notes: list[str] = field(default_factory=list)
    sources: Sources = field(default_factory=Sources)  # where each value came from

    def explain(self) -> str:
        """Each field's value and where it came from (`lgt run --dry-run --explain`)."""
        lines = explain(fields_of(dataclasses.asdict(self.config)), self.sources)
        return "\n".join([f"{self.folder}:", *lines])


def load_experiments(names: list[str], overrides: list[str] | None = None,
                     budget: str | None = None, trust_code: bool = False
                     ) -> list[ExperimentEntry]:
    """Every experiment that the given presets, experiment files and sweep files name, at
    `budget` (None: each file's own, else this machine's default; `config.files`). Names
    become folders under the output folder: each must be one plain folder name."""
    out: list[ExperimentEntry] = []
    for name in names:
        sources = Sources()
        raw = load_raw(name, trust_code, sources)
        if "sweep" in raw:
            out += _sweep_experiments(raw, name, overrides or [], budget, trust_code)
        else:
            notes: list[str] = []
            raw = at_budget(raw, name, budget, notes, sources)
            for assignment in overrides or []:
                apply_override(raw, assignment, sources)
            cfg = parse_experiment(raw, name)
            rundir.folder_name(cfg.name, "experiment name")
            out.append(ExperimentEntry(cfg, Path(cfg.budget) / cfg.name, notes=notes,
                                       sources=sources))
    folders = [e.folder for e in out]
    if len(set(folders)) < len(folders):
        raise UsageError("two experiments share a name: "
                         f"{next(str(f) for f in folders if folders.count(f) > 1)}")
    return out


def _sweep_experiments(raw: dict, source: str, overrides: list[str], asked: str | None,
                       trust_code: bool = False) -> list[ExperimentEntry]:
    raw.pop(OWN, None)  # a sweep's own budgets apply to its sweep keys only
    unknown = set(raw) - {"sweep", "name", "description", "set", "experiments", "grid",
                          "budgets", "budget", "tasks_from", "matrix"}
    if unknown:
        raise UsageError(f"{source}: unknown sweep key {sorted(unknown)[0]!r}")
    fixed = "budget" in raw
    budget = budget_of(raw, source, asked)
    budget_source = "--budget" if asked else f"{label(source)}, budget:" if fixed else \
        "this machine's default budget"
    own = (raw.get("budgets") or {}).get(budget) or {}
    if set(own) - {"set", "grid"}:
        raise UsageError(f"{source}: a sweep's budget may give only 'set' and 'grid', got "
                         f"{sorted(set(own) - {'set', 'grid'})[0]!r}")
    sweep, entries = rundir.folder_name(str(raw["sweep"]), "sweep name"), raw.get("experiments")
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
    folder = Path(source).parent if is_file(Path(source)) else PRESET_DIR  # bases: relative
    out = []
    for entry in entries:
        if not isinstance(entry, dict) or "base" not in entry or "name" not in entry:
            raise UsageError(f"{source}: each sweep experiment needs 'base' and 'name'")
        for values in itertools.product(*(grid[a]["values"] for a in axes)):
            point = dict(zip(axes, values, strict=True))
            sources = Sources()
            base_name = resolve_base(entry["base"], folder)
            base = load_raw(base_name, trust_code, sources)
            if "sweep" in base:
                raise UsageError(f"{source}: base {entry['base']!r} is itself a sweep")
            notes: list[str] = []
            base = at_budget(base, base_name, budget, notes, sources)
            sources[-1].label = budget_source  # the sweep's budget, not the base's
            # the budget's `set` last: it adapts the entries' own (A1's single-aux groups)
            sets = [*{**(raw.get("set") or {}), **(entry.get("set") or {})}.items(),
                    *(own.get("set") or {}).items()]
            for n, (key, value) in enumerate(sets):
                set_key(base, key, value)
                own_set = n >= len(sets) - len(own.get("set") or {})
                sources.assigned(f"{label(source)}, " + (f"budgets: {budget} set" if own_set
                                                         else "set"), key, value)
            for axis, value in point.items():
                for key in grid[axis]["keys"]:
                    set_key(base, key, value)
                    sources.assigned(f"{label(source)}, grid {axis}={value}", key, value)
            base["name"] = str(entry["name"]).format(**point)
            sources.assigned(f"{label(source)}, experiments", "name", base["name"])
            if raw.get("tasks_from"):  # the sweep's own task files, for every experiment
                base["tasks_from"] = [*base.get("tasks_from", []), *raw["tasks_from"]]
                sources.assigned(f"{label(source)}, tasks_from", "tasks_from",
                                 base["tasks_from"])
            for assignment in overrides:
                apply_override(base, assignment, sources)
            cfg = parse_experiment(base, f"{source}: {base['name']}")
            rundir.folder_name(cfg.name, f"{source}: experiment name")
            out.append(ExperimentEntry(cfg, Path(budget) / sweep / cfg.name, sweep, notes,
                                       sources))
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


def load_experiment(name_or_path: str, overrides: list[str] | None = None,
                    budget: str | None = None, trust_code: bool = False) -> ExperimentConfig:
    """One experiment (a preset or experiment file, not a sweep), through `load_experiments`
    (`trust_code`: see `files.load_raw`)."""
    entries = load_experiments([name_or_path], overrides, budget, trust_code)
    if len(entries) != 1:
        raise UsageError(f"{name_or_path} is a sweep of {len(entries)} experiments, not one")
    return entries[0].config
