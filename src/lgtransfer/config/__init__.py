"""Experiment configuration, torch-free: `schema` (the fields), `parse` (YAML data to typed
config), `files` (presets, `base:` inheritance, budgets, `--set` overrides) and `runs` (an
experiment expanded into content-keyed runs)."""

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


def load_experiment(name_or_path: str, overrides: list[str] | None = None,
                    budget: str | None = None) -> ExperimentConfig:
    """A preset or experiment file at a budget (default: its own, else this machine's), with
    `--set` overrides applied, parsed and checked."""
    raw = at_budget(load_raw(name_or_path), name_or_path, budget)
    for assignment in overrides or []:
        apply_override(raw, assignment)
    return parse_experiment(raw, name_or_path)


__all__ = ["BUDGETS", "SCRATCH", "EvalConfig", "ExperimentConfig", "GroupTask", "ModelConfig",
           "RunSpec", "TrainConfig", "apply_override", "at_budget", "budget_of", "content_hash",
           "default_budget", "expand", "load_experiment", "load_raw", "parse_experiment",
           "preset_names", "read_yaml", "set_key", "stage_model", "validate_runs"]
