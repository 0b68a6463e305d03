"""Experiment configuration, torch-free: `schema` (the fields), `parse` (YAML data to typed
config), `files` (presets, `base:` inheritance, budgets, `--set` overrides), `load` (the one
loader of presets, files and sweep files, each value's source kept by `sources`) and `runs`
(an experiment expanded into content-keyed runs)."""

from lgtransfer.config.files import (
    apply_override,
    at_budget,
    budget_of,
    default_budget,
    load_raw,
    preset_names,
    read_yaml,
    set_key,
)
from lgtransfer.config.load import ExperimentEntry, load_experiment, load_experiments
from lgtransfer.config.parse import parse_experiment
from lgtransfer.config.runs import RunSpec, content_hash, expand, stage_model, validate_runs
from lgtransfer.config.schema import (
    BUDGETS,
    SCRATCH,
    EvalConfig,
    ExperimentConfig,
    ModelConfig,
    TrainConfig,
)
from lgtransfer.data.groups import GroupTask

__all__ = ["BUDGETS", "SCRATCH", "EvalConfig", "ExperimentConfig", "ExperimentEntry", "GroupTask",
           "ModelConfig", "RunSpec", "TrainConfig", "apply_override", "at_budget", "budget_of",
           "content_hash", "default_budget", "expand", "load_experiment", "load_experiments",
           "load_raw", "parse_experiment", "preset_names", "read_yaml", "set_key", "stage_model",
           "validate_runs"]
