"""The experiment schema: every field an experiment file may set, its default, and the checks on
values that type-check but cannot work. Plain dataclasses, no torch.

An experiment is a task group (`data.groups.GroupTask`: task, role, training length range, weight),
a model, a training schedule, an evaluation protocol and seeds. Every field has a default except
the group, and every group entry names its role and its longest training length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lgtransfer.data.groups import GroupRoles, GroupTask
from lgtransfer.errors import UsageError

POS_ENCODINGS = ("rope", "nope")
BASELINES = ("none", "same_steps", "same_main_examples", "both")
# the variants of an experiment: the whole group, and the main task alone (two baselines)
WITH_AUX, MAIN_ONLY, SAME_EXAMPLES = "with_aux", "main_only", "main_only_same_examples"
PRECISIONS = ("auto", "fp32", "bf16")  # train.precision
# train.data_seed: the run's model seed (`runs.RunSpec.train` resolves it, so the key holds it)
DATA_SEED_IS_SEED = "seed"
SCRATCH = "scratch"  # the stage of a stage sweep trained from fresh weights (`runs.stage_model`)
# the budgets an experiment runs at (their defaults: experiments/budgets.yaml; files.py)
BUDGETS = ("cpu", "gpu", "paper")
CAUSAL_BANDS = ("transfer_all", "transfer")  # heads.causal_band
TRACKERS = ("wandb", "tensorboard")  # `log:` / `lgt run --log` (tracking.py)


@dataclass
class ModelConfig:
    """The from-scratch model; the defaults are the paper's (`engine/model.py` builds it)."""

    n_layer: int = 6
    n_head: int = 6
    d_model: int = 384
    d_ff: int = 1536
    rope_theta: float = 1e5
    pos_encoding: str = "rope"  # rope | nope
    max_positions: int = 1024
    # Start from a pretrained model instead (`engine.from_pretrained`): a local folder, a model
    # id in the local Hugging Face cache, or a GGUF file or short name (`gguf_source.py`). The
    # fields above then do not apply.
    init: str | None = None
    revision: str | None = None  # of `init`: a Hub branch/tag/commit, or a subfolder of a folder
    stages: list[str] | None = None  # a pretraining-stage sweep: one run per stage (runs.py)
    reinit: bool = False  # `init`'s architecture and tokenizer with fresh random weights

    def validate(self) -> None:
        if self.pos_encoding not in POS_ENCODINGS:
            raise UsageError(f"model.pos_encoding must be one of {POS_ENCODINGS}, "
                             f"got {self.pos_encoding!r}")
        if self.init is None and (self.revision or self.reinit):
            raise UsageError("model.revision and model.reinit need model.init")
        if self.d_model % self.n_head:
            raise UsageError(f"model.d_model {self.d_model} is not divisible by "
                             f"model.n_head {self.n_head}")
        if self.stages is None:
            return
        if not self.stages or not all(self.stages) or len(set(self.stages)) < len(self.stages):
            raise UsageError(f"model.stages must be distinct non-empty names, got {self.stages}")
        if all(s == SCRATCH for s in self.stages):
            raise UsageError(f"model.stages: '{SCRATCH}' takes its architecture from another "
                             "stage; list at least one pretrained stage")
        if self.revision or self.reinit:
            raise UsageError("model.stages sets the revision of each run; leave model.revision "
                             "and model.reinit unset")


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
    # The training stream: an integer, or "seed": the run's model seed, resolved when runs are
    # expanded (a run's key and config.yaml hold the integer, so a data seed of 0 keeps every
    # key). With an integer, the model seed only initializes weights. Evaluation sets never
    # depend on it (`eval.seed`).
    data_seed: int | str = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # Execution (config/execution.py): part of a run's key, resolved, unless the fp32-eager
    # reference. auto (on for CUDA) | on | off: torch.compile with dynamic shapes. YAML reads a
    # bare on/off as true/false, so `--set train.compile=on` arrives as a bool: taken as on/off.
    compile: str | bool = "auto"
    # auto (bf16 on CUDA, and on a CPU with bf16 instructions for a from-scratch model at least
    # 256 wide; else fp32) | fp32 | bf16 (autocast, fused AdamW, matmul attention on a CPU)
    precision: str = "auto"
    threads: int = 0  # CPU threads for torch; 0 = torch's default
    buckets: int = 1  # split each batch into this many length buckets (less padding)
    data_workers: int = -1  # processes making batches ahead; -1 = auto (GPU: some, CPU: none)
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory
    keep_resume: bool = False  # keep checkpoints/resume.pt (optimizer state) once complete


@dataclass
class EvalConfig:
    n: int = 1024  # examples per task and length
    seed: int = 0  # evaluation sets depend on this only, never on the model seed
    # every task is evaluated from its shortest length up to this; at least the group's longest
    # training length (so the baseline covers the aux range); null: exactly that length
    max_length: int | None = 40
    lengths: list[int] | None = None  # explicit lengths instead of the range


@dataclass
class HeadsConfig:
    """Head metrics recorded while a with-aux run trains (`heads/record.py`): importance maps,
    reuse metrics and the gap at every `every` steps, the causal test at the last step, into the
    run folder's `heads.jsonl`. Recording only: the trained weights are the same with it on or
    off, so it is not part of a run's key (`runs.NOT_RESULTS`)."""

    record: bool = False
    every: int = 0  # steps between measurements; 0 = at every evaluation (train.eval_every)
    # the measurement steps instead of `every` (where the main task works: dense late for
    # reverse add at `cpu`); the last step is always measured (the causal test runs there)
    at: list[int] | None = None
    n: int = 32  # examples per task and length (the first n of the run's evaluation sets)
    k: int = 3  # heads in the top-k overlap and the causal test
    random_draws: int = 10  # random k-head sets in the causal test
    # The causal test over k (`heads/causal_curve.py`), once, at the last step: for each k the
    # aux tasks' top-k heads against `causal_draws` random k-sets with the same per-layer
    # counts, on `causal_n` examples at every length of `causal_band` (transfer_all: every
    # length in (L_main, L_aux]; transfer: the transfer band). Empty `causal_ks`: not run. At
    # their defaults these are left out of config.yaml (`runs.CURVE_DEFAULTS`), so a run
    # records what it recorded before.
    causal_ks: list[int] = field(default_factory=list)
    causal_draws: int = 20
    causal_n: int = 128
    causal_band: str = "transfer_all"


@dataclass
class ExperimentConfig(GroupRoles):
    name: str
    group: list[GroupTask]
    description: str = ""
    figure: str = ""  # the paper figure it redraws (e.g. "3a", "10"): picks the report's panels
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    heads: HeadsConfig = field(default_factory=HeadsConfig)
    seeds: list[int] = field(default_factory=lambda: [43, 44, 45, 46, 47])
    # the main task alone, as a baseline: none | same_steps (as many steps as the with-aux run)
    # | same_main_examples (as many main-task examples: steps x the main task's weight share)
    # | both; true and false mean same_steps and none
    baseline: bool | str = "same_steps"
    # cpu | gpu | paper: set by the loader (`--budget`, never in a file's fields), part of every
    # run's key, so runs of two budgets are never one run; "" for a config built by hand
    budget: str = ""
    # user task files (absolute; `tasks/user.py`), loaded by every process that trains the
    # group. Not part of a run's key: a path is this machine's; each task's file hash is in
    # the manifest instead.
    tasks_from: list[str] = field(default_factory=list)
    # live tracking of every run (`tracking.py`): wandb and/or tensorboard. Recording only, so
    # not part of a run's key (`runs.NOT_RESULTS`): a tracked run and an untracked one are one
    log: list[str] = field(default_factory=list)

    @property
    def eval_max_length(self) -> int:
        """The longest evaluated length (every variant is evaluated this far)."""
        return self.eval.max_length or max(t.max_length for t in self.group)

    @property
    def baselines(self) -> set[str]:
        """The main-alone baselines asked for: a subset of {same_steps, same_main_examples}."""
        kind = {True: "same_steps", False: "none"}.get(self.baseline, self.baseline)
        return {"none": set(), "both": {"same_steps", "same_main_examples"}}.get(kind, {kind})

    def variants(self) -> dict[str, list[GroupTask]]:
        """The groups this experiment trains: `with_aux` (the whole group) and the main task
        alone, the baseline every claim is measured against: `main_only` with as many steps as
        the with-aux run, `main_only_same_examples` with as many main-task examples."""
        out = {}
        if self.aux:
            out[WITH_AUX] = self.group
        if "same_steps" in self.baselines or WITH_AUX not in out:
            out[MAIN_ONLY] = [self.main]
        if "same_main_examples" in self.baselines and WITH_AUX in out:
            out[SAME_EXAMPLES] = [self.main]
        return out

    def steps(self, variant: str) -> int:
        """Training steps of a variant: the experiment's, except that the same-examples baseline
        trains the main task's share of them (its weight over the group's total weight)."""
        if variant != SAME_EXAMPLES:
            return self.train.steps
        share = self.main.weight / sum(t.weight for t in self.group)
        return max(1, round(self.train.steps * share))

    def validate(self, source: str) -> None:
        """Values that type-check but cannot work, caught before anything runs."""
        if not self.group:
            raise UsageError(f"{source}: the task group is empty")
        mains = [t.task for t in self.group if t.role == "main"]
        if not mains:
            raise UsageError(f"{source}: the task group has no task with role 'main'")
        if len(mains) > 1:  # results, reports and the head analysis compare one main task
            raise UsageError(f"{source}: the task group has {len(mains)} main tasks "
                             f"({', '.join(mains)}); give exactly one role 'main', the rest 'aux'")
        if not self.seeds:
            raise UsageError(f"{source}: no seeds")
        t, e, h = self.train, self.eval, self.heads
        at_least = {"train.steps": (t.steps, 1), "train.batch_size": (t.batch_size, 1),
                    "train.eval_every": (t.eval_every, 1),
                    "train.checkpoint_every": (t.checkpoint_every, 1),
                    "train.buckets": (t.buckets, 1),
                    "train.threads": (t.threads, 0), "train.data_workers": (t.data_workers, -1),
                    "eval.n": (e.n, 1), "eval.seed": (e.seed, 0),
                    "heads.every": (h.every, 0), "heads.n": (h.n, 1), "heads.k": (h.k, 1),
                    "heads.random_draws": (h.random_draws, 1),
                    "heads.causal_draws": (h.causal_draws, 1), "heads.causal_n": (h.causal_n, 1),
                    "model.n_layer": (self.model.n_layer, 1),
                    "model.n_head": (self.model.n_head, 1), "model.d_ff": (self.model.d_ff, 1)}
        for key, (value, least) in at_least.items():
            if value < least:
                raise UsageError(f"{key} must be at least {least}, got {value}")
        if t.data_seed != DATA_SEED_IS_SEED and not (isinstance(t.data_seed, int)
                                                      and t.data_seed >= 0):
            raise UsageError("train.data_seed must be a non-negative integer or "
                             f"'{DATA_SEED_IS_SEED}' (the run's seed), got {t.data_seed!r}")
        if h.at is not None and (not h.at or min(h.at) < 1 or max(h.at) > t.steps
                                 or len(set(h.at)) < len(h.at)):
            raise UsageError(f"heads.at must list distinct steps from 1 to train.steps "
                             f"({t.steps}), got {h.at}")
        if any(k < 1 for k in h.causal_ks):
            raise UsageError(f"heads.causal_ks must be at least 1 each, got {h.causal_ks}")
        if h.causal_band not in CAUSAL_BANDS:
            raise UsageError(f"heads.causal_band must be one of {', '.join(CAUSAL_BANDS)}, "
                             f"got {h.causal_band!r}")
        if not t.lr > 0 or len(t.betas) != 2 or not all(0 <= b < 1 for b in t.betas):
            raise UsageError("train.lr must be positive and train.betas two numbers in [0, 1)")
        if isinstance(t.compile, bool):
            t.compile = "on" if t.compile else "off"
        if t.compile not in ("auto", "on", "off"):
            raise UsageError(f"train.compile must be auto, on or off, got {t.compile!r}")
        if t.precision not in PRECISIONS:
            raise UsageError(f"train.precision must be one of {', '.join(PRECISIONS)}, "
                             f"got {t.precision!r}")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", t.device):
            raise UsageError(f"train.device must be auto, cpu, cuda or cuda:N, got {t.device!r}")
        if min(self.seeds) < 0 or len(set(self.seeds)) < len(self.seeds):
            raise UsageError(f"seeds must be distinct and non-negative, got {self.seeds}")
        if e.lengths is not None and (not e.lengths or min(e.lengths) < 1):
            raise UsageError(f"eval.lengths must be a non-empty list of lengths, got {e.lengths}")
        if self.baseline not in (True, False, *BASELINES):
            raise UsageError(f"baseline must be one of {', '.join(BASELINES)} (or true/false), "
                             f"got {self.baseline!r}")
        if self.budget not in ("", *BUDGETS):
            raise UsageError(f"budget must be one of {', '.join(BUDGETS)}, got {self.budget!r}")
        unknown = [t for t in self.log if t not in TRACKERS]
        if unknown:
            raise UsageError(f"log: unknown tracker {unknown[0]!r}; trackers: "
                             f"{', '.join(TRACKERS)}")
        if len(self.group) > 26:
            raise UsageError("a task group holds at most 26 tasks (one marker letter each)")
        self.model.validate()
