"""Experiment files: the schema, YAML loading, `--set key=value` overrides, and run expansion.

An experiment is a YAML file (a preset under `experiments/`, or any path) with the sections
below; every field has a default except the task group. Unknown keys are errors, so a typo never
silently runs the default. `--set train.steps=500` parses the value as YAML and rejects a key the
schema does not have.

An experiment expands into runs: one per (variant, seed), and per stage when `model.stages`
lists pretraining stages (see `stage_model`). Variant `with_aux` trains the whole
group; `main_only` trains the main task(s) alone, the baseline every claim is measured against.
Each run is keyed by a hash of its fully resolved config, so a finished run is never redone.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lgtransfer.errors import UsageError
from lgtransfer.model import ModelConfig

PRESET_DIR = Path(__file__).parent / "experiments"


@dataclass
class GroupTask:
    task: str
    role: str = "main"  # main | aux
    max_length: int = 16  # longest training length
    min_length: int | None = None  # default: the task's shortest length
    weight: float = 1.0


@dataclass
class TrainConfig:
    steps: int = 20_000
    batch_size: int = 1200
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    eps: float = 1e-8
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    warmup: float = 0.1  # fraction of steps of linear warm-up
    decay: float = 0.4  # fraction of steps of cosine decay to 0 at the end
    eval_every: int = 500
    checkpoint_every: int = 2000  # checkpoints kept for head analysis; the last is always saved
    data_seed: int = 0  # the training stream; the model seed only initializes weights
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    compile: str = "auto"  # auto (on for CUDA) | on | off
    threads: int = 0  # CPU threads for torch; 0 = torch's default
    buckets: int = 1  # split each batch into this many length buckets (less padding)
    data_workers: int = -1  # processes making batches ahead; -1 = auto (GPU: some, CPU: none)
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory


@dataclass
class EvalConfig:
    n: int = 1024  # examples per task and length
    seed: int = 0  # evaluation sets depend on this only, never on the model seed
    max_length: int = 40  # every task is evaluated from its shortest length up to this
    lengths: list[int] | None = None  # explicit lengths instead of the range


@dataclass
class ExperimentConfig:
    name: str
    group: list[GroupTask]
    description: str = ""
    figure: str = ""  # the paper figure it redraws (e.g. "3a", "10"): picks the report's panels
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seeds: list[int] = field(default_factory=lambda: [43, 44, 45, 46, 47])
    baseline: bool = True  # also train the main task(s) alone

    def main_tasks(self) -> list[GroupTask]:
        return [t for t in self.group if t.role == "main"]

    def variants(self) -> dict[str, list[GroupTask]]:
        out = {}
        if any(t.role == "aux" for t in self.group):
            out["with_aux"] = self.group
        if self.baseline or "with_aux" not in out:
            out["main_only"] = self.main_tasks()
        return out


# ----------------------------------------------------------------------------- parsing


def _build(cls: Any, raw: Any, where: str) -> Any:
    """Instantiate dataclass `cls` from plain YAML data, rejecting unknown keys."""
    if not dataclasses.is_dataclass(cls):
        return raw
    if not isinstance(raw, dict):
        raise UsageError(f"{where or 'experiment'}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise UsageError(f"unknown config key {_join(where, unknown[0])!r}; "
                         f"known keys there: {', '.join(sorted(known))}")
    kwargs = {}
    for name, value in raw.items():
        hint = hints[name]
        if typing.get_origin(hint) is list and dataclasses.is_dataclass(typing.get_args(hint)[0]):
            if not isinstance(value, list):
                raise UsageError(f"{_join(where, name)}: expected a list")
            item = typing.get_args(hint)[0]
            kwargs[name] = [_build(item, v, f"{_join(where, name)}[{i}]")
                            for i, v in enumerate(value)]
        else:
            kwargs[name] = _build(hint, value, _join(where, name)) if dataclasses.is_dataclass(
                hint) else _check_type(hint, value, _join(where, name))
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field is missing
        raise UsageError(f"{where or 'experiment'}: {e}") from None


def _check_type(hint: Any, value: Any, where: str) -> Any:
    """`value` checked against a field's type hint (lists item by item)."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        base = typing.get_origin(option) or option
        if option is type(None) and value is None:
            return value
        if base is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if base is float and isinstance(value, str):  # YAML reads 1e-3 as a string
            try:
                return float(value)
            except ValueError:
                pass
        if base is list and isinstance(value, list):
            item = typing.get_args(option)[0]
            return [_check_type(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        if base in (int, str, bool) and type(value) is base:
            return value
    raise UsageError(f"config key {where!r} expects {_type_name(hint)}, got {value!r}")


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def parse_experiment(raw: Any, source: str) -> ExperimentConfig:
    if not isinstance(raw, dict):
        raise UsageError(f"{source}: an experiment file must be a YAML mapping")
    cfg = _build(ExperimentConfig, raw, "")
    if not cfg.group:
        raise UsageError(f"{source}: the task group is empty")
    if not cfg.main_tasks():
        raise UsageError(f"{source}: the task group has no task with role 'main'")
    if not cfg.seeds:
        raise UsageError(f"{source}: no seeds")
    _check_values(cfg)
    cfg.model.validate()
    return cfg


def _check_values(cfg: ExperimentConfig) -> None:
    """Values that type-check but cannot work, caught before anything runs."""
    t, e = cfg.train, cfg.eval
    at_least = {"train.steps": (t.steps, 1), "train.batch_size": (t.batch_size, 1),
                "train.eval_every": (t.eval_every, 1),
                "train.checkpoint_every": (t.checkpoint_every, 1),
                "train.buckets": (t.buckets, 1), "train.data_seed": (t.data_seed, 0),
                "train.threads": (t.threads, 0), "train.data_workers": (t.data_workers, -1),
                "eval.n": (e.n, 1), "eval.seed": (e.seed, 0), "eval.max_length": (e.max_length, 1),
                "model.n_layer": (cfg.model.n_layer, 1), "model.n_head": (cfg.model.n_head, 1),
                "model.d_ff": (cfg.model.d_ff, 1)}
    for key, (value, least) in at_least.items():
        if value < least:
            raise UsageError(f"{key} must be at least {least}, got {value}")
    if not t.lr > 0 or len(t.betas) != 2 or not all(0 <= b < 1 for b in t.betas):
        raise UsageError("train.lr must be positive and train.betas two numbers in [0, 1)")
    if t.compile not in ("auto", "on", "off"):
        raise UsageError(f"train.compile must be auto, on or off, got {t.compile!r}")
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", t.device):
        raise UsageError(f"train.device must be auto, cpu, cuda or cuda:N, got {t.device!r}")
    if min(cfg.seeds) < 0 or len(set(cfg.seeds)) < len(cfg.seeds):
        raise UsageError(f"seeds must be distinct and non-negative, got {cfg.seeds}")
    if e.lengths is not None and (not e.lengths or min(e.lengths) < 1):
        raise UsageError(f"eval.lengths must be a non-empty list of lengths, got {e.lengths}")
    if len(cfg.group) > 26:
        raise UsageError("a task group holds at most 26 tasks (one marker letter each)")
    _check_stages(cfg.model)


def _check_stages(m: ModelConfig) -> None:
    if m.stages is None:
        return
    if not m.stages or not all(m.stages) or len(set(m.stages)) < len(m.stages):
        raise UsageError(f"model.stages must be distinct non-empty names, got {m.stages}")
    if all(s == SCRATCH for s in m.stages):
        raise UsageError(f"model.stages: '{SCRATCH}' takes its architecture from another stage; "
                         "list at least one pretrained stage")
    if m.revision or m.reinit:
        raise UsageError("model.stages sets the revision of each run; leave model.revision and "
                         "model.reinit unset")


def read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark else ""
        raise UsageError(f"malformed YAML in {path}{at}: {getattr(e, 'problem', e)}") from None
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not a text (YAML) file") from None


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_raw(name_or_path: str) -> dict:
    """The raw YAML of a preset name or a file path."""
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") or path.is_file()):
        path = PRESET_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise UsageError(f"unknown experiment {name_or_path!r}: not a file, and not a preset "
                             f"({', '.join(preset_names())})")
    elif not path.is_file():
        raise UsageError(f"no experiment file {path}")
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise UsageError(f"{path}: an experiment file must be a YAML mapping")
    raw.setdefault("name", path.stem)
    if "base" in raw:  # `base: g2` = that experiment, with this file's fields on top
        base = str(raw.pop("base"))
        if base in _loading:
            raise UsageError(f"{path}: 'base' chain loops back to {base!r}")
        _loading.add(base)
        try:
            parent = load_raw(base)
        finally:
            _loading.discard(base)
        parent.pop("description", None)
        raw = _merged(parent, raw)
    return raw


_loading: set[str] = set()


def _merged(base: dict, top: dict) -> dict:
    """`top` over `base`: sections merge key by key; any other value (lists too) replaces."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_override(raw: dict, assignment: str) -> None:
    """Apply one `key=value` (value parsed as YAML) to raw experiment data, in place."""
    key, sep, text = assignment.partition("=")
    if not sep or not key:
        raise UsageError(f"--set expects key=value, got {assignment!r}")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        raise UsageError(f"--set {key}: cannot parse value {text!r}") from None
    set_key(raw, key, value)


def set_key(raw: dict, key: str, value: Any) -> None:
    """Set the dotted `key` (e.g. `train.steps`, `group.0.max_length`) of raw experiment data to
    `value`, in place; a key the schema does not have is an error."""
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


def load_experiment(name_or_path: str, overrides: list[str] | None = None) -> ExperimentConfig:
    raw = load_raw(name_or_path)
    for assignment in overrides or []:
        apply_override(raw, assignment)
    return parse_experiment(raw, name_or_path)


def validate_experiment(cfg: ExperimentConfig, check_models: bool = True) -> None:
    """Check what parsing cannot: task names, length ranges, and (unless `check_models` is
    false) that every pretrained model the runs start from is on this machine."""
    from lgtransfer.mixture import TaskSpec
    from lgtransfer.tasks import get_task

    for t in cfg.group:
        lo = t.min_length if t.min_length is not None else get_task(t.task).min_length
        TaskSpec(t.task, t.role, lo, t.max_length, t.weight).validate()
    if len({t.task for t in cfg.group}) < len(cfg.group):
        raise UsageError("a task appears twice in the group")
    for t in cfg.main_tasks():
        task = get_task(t.task)
        if cfg.eval.lengths and not any(
                task.min_length <= n <= task.max_length for n in cfg.eval.lengths):
            raise UsageError(f"eval.lengths has no length that task {t.task!r} can take")
    if check_models:
        from lgtransfer import pretrained

        for stage in cfg.model.stages or [None]:
            model = stage_model(cfg.model, stage)
            if model.init:
                pretrained.check_source(model, [t.task for t in cfg.group])


# ----------------------------------------------------------------------------- runs


@dataclass
class RunSpec:
    """One training run: an experiment's variant at one seed."""

    experiment: ExperimentConfig
    variant: str
    seed: int
    stage: str | None = None  # one of `experiment.model.stages`

    @property
    def model(self) -> ModelConfig:
        """The model this run starts from (its stage resolved)."""
        return stage_model(self.experiment.model, self.stage)

    @property
    def group(self) -> list[GroupTask]:
        return self.experiment.variants()[self.variant]

    def resolved(self) -> dict:
        """The full config of this run (what config.yaml records)."""
        d = asdict(self.experiment)
        for key in NOT_RESULTS:
            d.pop(key)
        d["group"] = [asdict(t) for t in self.group]
        d["variant"], d["seed"] = self.variant, self.seed
        if self.stage is not None:
            d["model"], d["stage"] = asdict(self.model), self.stage
        return d

    @property
    def key(self) -> str:
        """Hash of everything that determines this run's results."""
        return _hash(_result_fields(self.resolved()))

    @property
    def experiment_key(self) -> str:
        """Hash shared by every run (all variants and seeds) of one experiment config."""
        d = _result_fields(asdict(self.experiment))
        for key in NOT_RESULTS:
            d.pop(key)
        return _hash(d)

    @property
    def dirname(self) -> str:
        stage = "" if self.stage is None else "_" + re.sub(r"[^\w.-]+", "-", self.stage)[-40:]
        return f"{self.variant}_seed{self.seed}{stage}_{self.key}"


# Experiment fields that describe or multiply runs but do not change any run's results
NOT_RESULTS = ("description", "figure", "seeds", "baseline")
# Settings that change how fast a run goes, not what it computes: left out of the run key, so
# changing them never retrains a finished run.
EXECUTION_ONLY = ("threads", "data_workers", "compile", "gradient_checkpointing")
# Fields added after runs were made, left out of the key while at their default, so that adding
# them did not change the key (and redo) any earlier run.
LATER_FIELDS = {"revision": None, "stages": None, "reinit": False}


def _result_fields(d: dict) -> dict:
    d = copy.deepcopy(d)
    for key in EXECUTION_ONLY:
        d["train"].pop(key, None)
    for key, default in LATER_FIELDS.items():
        if d["model"].get(key, default) == default:
            d["model"].pop(key, None)
    return d


def _hash(d: dict) -> str:
    blob = json.dumps(d, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def expand(cfg: ExperimentConfig) -> list[RunSpec]:
    return [RunSpec(copy.deepcopy(cfg), variant, seed, stage)
            for stage in cfg.model.stages or [None]
            for variant in cfg.variants() for seed in cfg.seeds]


# ----------------------------------------------------------------------------- stages

SCRATCH = "scratch"


def stage_model(m: ModelConfig, stage: str | None) -> ModelConfig:
    """The model of one stage of a pretraining-stage sweep (`model.stages`).

    With `model.init` set, a stage is a revision of it: a branch of a Hugging Face repo
    (`step-160000`) or a subfolder of a local folder (`step-500` of an `lgt pretrain` output).
    Without it, a stage is a model folder or id itself, `ID@REVISION` naming a revision.
    `scratch` is the from-scratch control: the first pretrained stage's architecture and
    tokenizer with fresh random weights, so that only the pretraining differs.
    """
    if stage is None:
        return m
    if stage == SCRATCH:
        first = next(s for s in m.stages or [] if s != SCRATCH)
        return dataclasses.replace(stage_model(m, first), reinit=True)
    if m.init:
        init, revision = m.init, stage
    else:
        init, at, revision = stage.rpartition("@")
        if not at or not revision or "/" in revision:
            init, revision = stage, ""
    return dataclasses.replace(m, init=init, revision=revision or None, stages=None)
