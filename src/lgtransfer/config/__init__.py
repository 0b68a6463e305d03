"""Experiment configuration, torch-free: `schema` (the fields), `parse` (YAML data to typed
config), `files` (presets, `base:` inheritance, `--set` overrides) and `runs` (an experiment
expanded into content-keyed runs)."""

from lgtransfer.config.files import apply_override, load_raw, preset_names, read_yaml, set_key
from lgtransfer.config.parse import parse_experiment
from lgtransfer.config.runs import RunSpec, content_hash, expand, stage_model, validate_runs
from lgtransfer.config.schema import (
    SCRATCH,
    EvalConfig,
    ExperimentConfig,
    ModelConfig,
    TrainConfig,
)
from lgtransfer.mixture import GroupTask


def load_experiment(name_or_path: str, overrides: list[str] | None = None) -> ExperimentConfig:
    """A preset or experiment file, with `--set` overrides applied, parsed and checked."""
    raw = load_raw(name_or_path)
    for assignment in overrides or []:
        apply_override(raw, assignment)
    return parse_experiment(raw, name_or_path)


__all__ = ["SCRATCH", "EvalConfig", "ExperimentConfig", "GroupTask", "ModelConfig", "RunSpec",
           "TrainConfig", "apply_override", "content_hash", "expand", "load_experiment", "load_raw",
           "parse_experiment", "preset_names", "read_yaml", "set_key", "stage_model",
           "validate_runs"]
