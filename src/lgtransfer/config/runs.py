"""Runs: an experiment expanded into (stage x variant x seed), each keyed by its content.

A run's key is a hash of everything that determines its results: its resolved config without the
experiment's name, description, figure and seed list, and without the settings of how fast it
goes or what it keeps on disk (`EXECUTION_ONLY`), plus its execution (precision, compiled;
`execution.py`) when that is not the fp32-eager reference. So an identical run reached from two
experiments (A1's both-auxiliary runs are G1's with-aux runs) has one key and is trained once,
renaming an experiment file retrains nothing, and a bf16 or compiled run is never the
reference run of the same config (their numbers differ past L_main by about a seed's spread).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
from dataclasses import asdict, dataclass

from lgtransfer.config import execution
from lgtransfer.config.files import has_gpu
from lgtransfer.config.schema import (
    DATA_SEED_IS_SEED,
    SCRATCH,
    ExperimentConfig,
    ModelConfig,
    TrainConfig,
)
from lgtransfer.data.groups import GroupTask
from lgtransfer.errors import UsageError

# Experiment fields that name, describe or multiply runs, or record more about them (`heads`:
# head metrics measured on a copy of the model; `log`: trackers the rows are also sent to), but
# do not change any run's results
NOT_RESULTS = ("name", "description", "figure", "seeds", "baseline", "tasks_from", "heads", "log")
# The causal test over k (`heads.causal_*`), added after runs were recorded: at these values
# (the test off) they are left out of config.yaml, which stays what it was before them
CURVE_DEFAULTS = {"causal_ks": [], "causal_draws": 20, "causal_n": 128,
                  "causal_band": "transfer_all"}
# Settings of how a run executes: left out of the run key as written, so threads or a kept resume
# point never retrain a finished run. Precision and compile enter it resolved, as `execution`
# (reference runs, fp32 and eager, carry none: their keys are those of before).
EXECUTION_ONLY = ("threads", "data_workers", "compile", "precision", "gradient_checkpointing",
                  "keep_resume")


@dataclass
class RunSpec:
    """One training run: an experiment's variant at one seed (and stage, in a stage sweep)."""

    experiment: ExperimentConfig
    variant: str  # with_aux | main_only
    seed: int
    stage: str | None = None  # one of `experiment.model.stages`

    @property
    def model(self) -> ModelConfig:
        """The model this run starts from (its stage resolved)."""
        return stage_model(self.experiment.model, self.stage)

    @property
    def group(self) -> list[GroupTask]:
        return self.experiment.variants()[self.variant]

    @property
    def train(self) -> TrainConfig:
        """This run's schedule (the same-examples baseline trains fewer steps), its data seed
        resolved: `train.data_seed: seed` is this run's seed, so its key holds the integer."""
        train = self.experiment.train
        data_seed = self.seed if train.data_seed == DATA_SEED_IS_SEED else train.data_seed
        return dataclasses.replace(train, steps=self.experiment.steps(self.variant),
                                   data_seed=data_seed)

    def resolved(self) -> dict:
        """The full config of this run (what config.yaml records): the experiment with this
        run's group, seed and stage filled in, and the evaluation's true longest length."""
        d = asdict(self.experiment)
        for key in ("description", "figure", "seeds", "baseline"):  # kept: the name
            d.pop(key)
        d["group"] = [asdict(t) for t in self.group]
        d["train"] = asdict(self.train)
        d["eval"]["max_length"] = self.experiment.eval_max_length
        d["variant"], d["seed"] = self.variant, self.seed
        if self.stage is not None:
            d["model"], d["stage"] = asdict(self.model), self.stage
        if d["heads"]["causal_ks"] == CURVE_DEFAULTS["causal_ks"]:
            for key, default in CURVE_DEFAULTS.items():
                if d["heads"][key] == default:
                    d["heads"].pop(key)
        if d["heads"].get("at") is None:  # as before heads.at existed: the recorded configs
            d["heads"].pop("at", None)
        return d

    @property
    def execution(self) -> execution.Execution:
        """How this run executes on this machine (`auto` resolved as the trainer will)."""
        return run_execution(self.resolved())

    @property
    def key(self) -> str:
        """Hash of everything that determines this run's results."""
        return content_hash(self.resolved())

    @property
    def experiment_key(self) -> str:
        """Hash shared by every run (all variants and seeds) of one experiment config."""
        d = asdict(self.experiment)
        d["eval"]["max_length"] = self.experiment.eval_max_length
        return content_hash(d)

    @property
    def dirname(self) -> str:
        stage = "" if self.stage is None else "_" + re.sub(r"[^\w.-]+", "-", self.stage)[-40:]
        return f"{self.variant}_seed{self.seed}{stage}_{self.key}"


def run_execution(config: dict) -> execution.Execution:
    """The execution of a resolved (or recorded) run config on this machine."""
    train = config.get("train") or {}
    device = execution.device_type(str(train.get("device", "auto")), has_gpu())
    return execution.resolve(train, config.get("model") or {}, device)


def content_hash(config: dict) -> str:
    """10 hex digits of SHA-256 over a config's result-determining fields."""
    d = copy.deepcopy(config)
    how = run_execution(config)
    for key in NOT_RESULTS:
        d.pop(key, None)
    for key in EXECUTION_ONLY:
        d["train"].pop(key, None)
    if not how.is_reference:
        d["execution"] = how.name
    blob = json.dumps(d, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def expand(cfg: ExperimentConfig) -> list[RunSpec]:
    return [RunSpec(copy.deepcopy(cfg), variant, seed, stage)
            for stage in cfg.model.stages or [None]
            for variant in cfg.variants() for seed in cfg.seeds]


def validate_runs(cfg: ExperimentConfig) -> None:
    """Check what parsing cannot: task names and length ranges. Whether the pretrained models
    the runs start from are on this machine is `pretrained.validate_models`' to say (the
    torch side: config never imports it)."""
    from lgtransfer.tasks import get_task

    for t in cfg.group:
        t.validate()
    if len({t.task for t in cfg.group}) < len(cfg.group):
        raise UsageError("a task appears twice in the group")
    longest = max(g.max_length for g in cfg.group)
    if cfg.eval.max_length is not None and cfg.eval.max_length < longest:
        raise UsageError(f"eval.max_length {cfg.eval.max_length} is below the group's longest "
                         f"training length {longest}; set it to at least {longest}, or to null "
                         "for exactly that")
    task = get_task(cfg.main.task)
    if cfg.eval.lengths and not any(
            task.min_length <= n <= task.max_length for n in cfg.eval.lengths):
        raise UsageError(f"eval.lengths has no length that task {task.name!r} can take")



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
