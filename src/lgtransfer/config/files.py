"""Experiment files: YAML reading, presets, `base:` inheritance, budgets and `--set key=value`
overrides.

These work on the raw YAML data (nested dicts and lists), before `parse.py` types it: a base's
sections merge key by key under the file's own, and an override sets one dotted key, checked
against the schema so that a typo is an error rather than a silently ignored setting.

Budgets: one file per experiment holds its fields and a `budgets:` mapping, budget -> dotted
overrides (`cpu: {group.0.max_length: 6}`). At a budget the experiment is, in this order: the
budget's defaults (`experiments/budgets.yaml`), the file's fields, that budget's overrides, then
`--set`. A file without `budgets:` is budget-free: it runs as written at any budget, which is
still recorded (in its runs' keys and folders). A top-level `budget: cpu` fixes a file's budget.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
import shutil
import typing
from pathlib import Path
from typing import Any

import yaml

from lgtransfer.config.schema import BUDGETS, ExperimentConfig
from lgtransfer.config.sources import Sources, label
from lgtransfer.errors import UsageError
from lgtransfer.runtime.rundir import load_yaml_text, read_yaml

PRESET_DIR = Path(__file__).resolve().parent.parent / "experiments"
BUDGETS_FILE = PRESET_DIR / "budgets.yaml"  # each budget's defaults; not an experiment
NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml") if p != BUDGETS_FILE)


def load_raw(name_or_path: str, trust_code: bool = False, sources: Sources | None = None
             ) -> dict:
    """The raw YAML of a preset name or a file path, its `base:` chain merged in (each file
    recorded in `sources`, bases first).

    `tasks_from:` names Python code that is imported to register its tasks: it is loaded only
    with `trust_code` (`--trust-task-code`, or LGT_TRUST_TASK_CODE=1) or when the command line
    already loaded that file (`--tasks-from`), as `trust_remote_code` guards model code in
    transformers: an experiment file from elsewhere must not run code by being read."""
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") or is_file(path)):
        path = PRESET_DIR / f"{name_or_path}.yaml"
        # NAME-paper: a preset from before one file per experiment held all its budgets
        old = re.fullmatch(r"(.+)-paper", name_or_path)
        if not is_file(path) and old and old[1] in preset_names():
            raise UsageError(f"preset {name_or_path!r} is now a budget of {old[1]!r}: "
                             f"lgt run {old[1]} --budget paper")
        if not is_file(path) or path == BUDGETS_FILE:
            raise UsageError(f"unknown experiment {name_or_path!r}: not a file, and not a preset "
                             f"({', '.join(preset_names())})")
    elif not is_file(path):
        raise UsageError(f"no experiment file {path}")
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise UsageError(f"{path}: an experiment file must be a YAML mapping")
    raw.setdefault("name", path.stem)
    written = copy.deepcopy(raw)  # this file's own fields, for `sources`
    if "tasks_from" in raw:  # user task files, relative to this file; loaded now (tasks/user.py)
        raw["tasks_from"] = task_files(raw["tasks_from"], path.parent, str(path), trust_code)
    if "base" in raw:  # `base: g2` = that experiment, with this file's fields on top
        base = resolve_base(raw.pop("base"), path.parent)
        if base in _loading:
            raise UsageError(f"{path}: 'base' chain loops back to {base!r}")
        _loading.add(base)
        try:
            parent = load_raw(base, trust_code, sources)
        finally:
            _loading.discard(base)
        parent.pop("description", None)
        for layer in sources or []:  # the bases' descriptions are not the file's
            layer.leaves.discard("description")
        own = set(parent.pop(OWN, []))
        if "budgets" in raw:  # a file's own budgets replace its base's, whole
            parent.pop("budgets", None)
            own = set()
        else:  # the base's budgets apply over this file's fields: `at_budget` says where
            own |= set(dotted_keys(raw))
        raw = merged(parent, raw)
        if own:
            raw[OWN] = sorted(own)
    if sources is not None:
        written.pop("base", None)
        sources.merged(label(name_or_path), written)
    return raw


_loading: set[str] = set()
# the dotted keys the files of a `base:` chain set under budgets they inherit (`at_budget` says
# when such a budget overrides one); a key no experiment field can have, removed by `at_budget`
OWN = "__fields_under_inherited_budgets__"
TRUST_ENV = "LGT_TRUST_TASK_CODE"


def is_file(path: Path) -> bool:
    """`path.is_file()`, False also for a name the file system refuses (too long, a NUL)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def resolve_base(value: object, folder: Path) -> str:
    """A `base:` value: a preset name, or a file path relative to the file that names it (as
    `tasks_from:` is), never to the current folder."""
    base = str(value)
    candidate = folder / base
    if Path(base).suffix in (".yaml", ".yml") or "/" in base or is_file(candidate):
        return str(candidate)
    return base


def dotted_keys(raw: dict, prefix: str = "") -> list[str]:
    """`{train: {steps: 1}, seeds: [0]}` -> [train.steps, seeds]: the fields a file sets."""
    keys = []
    for key, value in raw.items():
        if isinstance(value, dict) and value and key != "budgets":
            keys += dotted_keys(value, f"{prefix}{key}.")
        elif key not in ("name", "budgets", "budget", "description"):
            keys.append(f"{prefix}{key}")
    return keys


def code_trusted(trust_code: bool) -> bool:
    return trust_code or os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes")


def task_files(value: object, folder: Path, source: str, trust_code: bool = False) -> list[str]:
    """`tasks_from:` (a path or a list of them, relative to `folder`) as absolute paths, each
    loaded, so that the experiment's group can name their tasks; refused (nothing imported)
    unless the user allowed code from files (`load_raw`)."""
    from lgtransfer.tasks.user import is_loaded, load_file

    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise UsageError(f"{source}: tasks_from must be a file path or a list of them")
    paths = [str((folder / v).resolve()) for v in items]
    untrusted = [p for p in paths if not is_loaded(p)]
    if untrusted and not code_trusted(trust_code):
        raise UsageError(f"{source} names Python code to run (tasks_from: {untrusted[0]}); "
                         "if you trust it, allow it with --trust-task-code (or "
                         f"{TRUST_ENV}=1), or pass the file with --tasks-from")
    for p in paths:
        load_file(p)
    return paths


def has_gpu() -> bool:
    """Whether this machine has an NVIDIA GPU, asked of the driver rather than of torch (whose
    import takes seconds that `lgt run --dry-run` must not pay): the driver's /proc file, or
    `nvidia-smi` on PATH; none when CUDA_VISIBLE_DEVICES hides every device."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "0").strip() in ("", "-1"):
        return False
    return NVIDIA_DRIVER.exists() or shutil.which("nvidia-smi") is not None


def default_budget() -> str:
    return "gpu" if has_gpu() else "cpu"


def budget_of(raw: dict, source: str, asked: str | None) -> str:
    """The budget to load raw experiment or sweep data at: `asked` (`--budget`), else the
    file's own `budget:` (which `asked` may not contradict), else this machine's default.
    Removes `budget` from `raw`; checks that the file's `budgets:` has it."""
    fixed = raw.pop("budget", None)
    if asked is not None and fixed is not None and asked != fixed:
        raise UsageError(f"{source} runs at the {fixed!r} budget only (its file says "
                         f"budget: {fixed}); leave out --budget {asked}")
    budget = str(asked or fixed or default_budget())
    if budget not in BUDGETS:
        raise UsageError(f"unknown budget {budget!r}; budgets: {', '.join(BUDGETS)}")
    budgets = raw.get("budgets")
    if budgets is None:
        return budget
    if not isinstance(budgets, dict) or not budgets or not all(
            isinstance(v, dict | None) for v in budgets.values()):
        raise UsageError(f"{source}: 'budgets' must map each budget to a mapping")
    unknown = sorted(map(str, set(budgets) - set(BUDGETS)))
    if unknown:
        raise UsageError(f"{source}: unknown budget {unknown[0]!r} in 'budgets' "
                         f"(budgets: {', '.join(BUDGETS)})")
    if budget not in budgets:
        raise UsageError(f"{source} has no {budget!r} budget; it has {', '.join(budgets)} "
                         f"(lgt run {source} --budget {next(iter(budgets))})")
    return budget


def at_budget(raw: dict, source: str, asked: str | None, notes: list[str] | None = None,
              sources: Sources | None = None) -> dict:
    """Raw experiment data (base chain merged) at a budget: the budget's defaults, the file's
    fields, then that budget's overrides; a budget-free file as written. Records the budget
    (and, in `sources`, the defaults under the files, the overrides and the budget above).
    Where a budget inherited from a base overrides a field the file set itself, a line saying
    so goes to `notes` (the dry run prints them)."""
    raw = copy.deepcopy(raw)
    own = raw.pop(OWN, [])
    fixed = "budget" in raw
    budget = budget_of(raw, source, asked)
    budgets = raw.pop("budgets", None)
    if budgets is not None:
        defaults = read_yaml(BUDGETS_FILE)[budget]
        raw = merged(defaults, raw)
        if sources is not None:
            sources.merged(f"budgets.yaml {budget}", defaults, first=True)
        for key, value in (budgets[budget] or {}).items():
            key = str(key)
            mine = [k for k in own if k == key or key.startswith(f"{k}.")]
            if mine and notes is not None:
                before = value_at(raw, key)
                if before != value:
                    notes.append(f"note: {source}: budgets.{budget} (inherited from its base) "
                                 f"sets {key}={value} over the file's {before}")
            set_key(raw, key, value)
            if sources is not None:
                sources.assigned(f"{label(source)}, budgets: {budget}", key, value)
    raw["budget"] = budget
    if sources is not None:
        sources.assigned("--budget" if asked else f"{label(source)}, budget:" if fixed
                         else "this machine's default budget", "budget", budget)
    return raw


def value_at(raw: Any, key: str) -> Any:
    """The value at a dotted key of raw data (None where there is none)."""
    for part in key.split("."):
        if isinstance(raw, dict):
            raw = raw.get(part)
        elif isinstance(raw, list) and part.isdigit() and int(part) < len(raw):
            raw = raw[int(part)]
        else:
            return None
    return raw


def merged(base: dict, top: dict) -> dict:
    """`top` over `base`: sections merge key by key; any other value (lists too) replaces."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_override(raw: dict, assignment: str, sources: Sources | None = None) -> None:
    """Apply one `key=value` (value parsed as YAML) to raw experiment data, in place."""
    key, sep, text = assignment.partition("=")
    if not sep or not key:
        raise UsageError(f"--set expects key=value, got {assignment!r}")
    try:
        value = load_yaml_text(text)
    except yaml.YAMLError:
        raise UsageError(f"--set {key}: cannot parse value {text!r}") from None
    set_key(raw, key, value)
    if sources is not None:
        sources.assigned("--set", key, value)


def set_key(raw: dict, key: str, value: Any) -> None:
    """Set the dotted `key` (e.g. `train.steps`, `group.0.max_length`) of raw experiment data to
    `value`, in place; a key the schema does not have is an error."""
    if key == "budget":  # it picks the defaults and overrides, so it must come before them
        raise UsageError("the budget is chosen with --budget (or a file's top-level budget:), "
                         "not set as a key")
    parts = key.split(".")
    node, cls = raw, ExperimentConfig
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise UsageError(f"--set {key}: {part!r} is not an index of the list")
            index: Any = int(part)
        else:
            if not dataclasses.is_dataclass(cls) or part not in {
                    f.name for f in dataclasses.fields(cls)}:
                raise UsageError(f"unknown config key {key!r}")
            index = part
            hint = typing.get_type_hints(cls)[part]
            cls = typing.get_args(hint)[0] if typing.get_origin(hint) is list else hint
        if last:
            node[index] = value
        else:
            if isinstance(node, dict) and node.get(index) is None:  # absent or an empty section
                node[index] = [] if typing.get_origin(hint) is list else {}
            node = node[index]
            if not isinstance(node, dict | list):
                raise UsageError(f"--set {key}: {part!r} is not a section")
