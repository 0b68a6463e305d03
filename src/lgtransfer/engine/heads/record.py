"""Head metrics recorded while a run trains, so the mechanism can be judged without checkpoints.

With `heads.record` on, a with-aux run measures every `heads.every` steps (0: at each evaluation)
or at the steps `heads.at` lists instead, and at its last step, what `lgt heads` measures at a
checkpoint (`analysis.analyze_checkpoint`):
per task the importance maps in both length bands, per (main, aux) pair the importance
difference, top-k overlap, rank correlation and attention difference, and the generalization
gap at that step, computed on the run's own evaluation sets. The causal test (top-k aux heads
against random k-sets) runs once, at the last step, and so does the causal test over k where
`heads.causal_ks` names its ks (`causal_curve`). Rows go to the run folder's `heads.jsonl`
in the schema of `lgt heads` (run, experiment, variant, seed, step, task, metric, band, layer,
head, value), so `lgt heads` and the report read recorded and checkpoint-measured rows alike.

The gap is evaluated on the training model, as its own evaluations are; the heads are measured
on an eager copy of the weights: the training model may be compiled, and hooks or
`output_attentions` on it could change its graphs. The copy is built from the model's config
with the torch RNG forked, so the trained weights are the same with recording on or off (a test
checks `eval.jsonl` bit for bit).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from lgtransfer.config import RunSpec
from lgtransfer.data.mixture import Mixture
from lgtransfer.engine.heads.analysis import (
    RECORDED,
    Checkpoint,
    HeadOptions,
    TrainedRun,
    analyze_checkpoint,
    checkpoint_gap,
    clean_row,
    length_bands,
)
from lgtransfer.engine.heads.measure import head_shape
from lgtransfer.engine.model import fresh_model

HEADS_FILE = RECORDED  # in the run folder


class HeadRecorder:
    """Measures one training run's heads at its measurement steps."""

    def __init__(self, run: RunSpec, run_dir: Path, mixture: Mixture, model: torch.nn.Module,
                 device: torch.device) -> None:
        cfg = run.experiment.heads
        self.every = cfg.every or run.train.eval_every
        self.at = set(cfg.at) if cfg.at is not None else None  # replaces `every` when given
        self.last = run.train.steps
        n_layers, n_heads, _ = head_shape(model)
        # a random k-set of every head is no control: a model this small gets a smaller k
        k = max(1, min(cfg.k, n_layers * n_heads - 1))
        self.opts = HeadOptions(k=k, n=cfg.n, random_draws=cfg.random_draws, seed=run.seed,
                                causal_ks=list(cfg.causal_ks), causal_draws=cfg.causal_draws,
                                causal_n=cfg.causal_n, causal_band=cfg.causal_band)
        self.trained = TrainedRun(run_dir, run_dir.name, run.experiment.name, run.variant,
                                  run.seed, run.group, run.experiment.eval.n,
                                  run.experiment.eval.seed)
        self.bands = length_bands(self.trained, self.opts)
        self.mixture, self.device = mixture, device
        # a config of its own (the model would share the training model's, and switching it to
        # eager attention would switch training too); building draws initial weights: the
        # training's RNG is kept where it was
        with torch.random.fork_rng(devices=[]):
            self.copy = fresh_model(copy.deepcopy(model.config))
        self.copy.set_attn_implementation("eager")  # the only one that returns attention weights
        self.copy.to(device).eval()

    @staticmethod
    def wanted(run: RunSpec, model: torch.nn.Module) -> bool:
        """Recording is on, the run has auxiliary tasks to compare the main task with, and the
        model more than one head (the causal test compares k heads with the others)."""
        n_layers, n_heads, _ = head_shape(model)
        return run.experiment.heads.record and len(run.group) > 1 and n_layers * n_heads > 1

    def due(self, step: int) -> bool:
        if step == self.last:
            return True
        return step in self.at if self.at is not None else step % self.every == 0

    def measure(self, model: torch.nn.Module, step: int) -> list[dict]:
        """Every head metric of the model's weights at `step`, as heads.jsonl rows."""
        # the gap on the training model itself, as its evaluations run (faster than eager)
        gap = checkpoint_gap(model, self.trained, self.mixture, self.device)
        self.copy.load_state_dict(model.state_dict())
        ck = Checkpoint(self.copy, self.trained, self.mixture, self.opts, self.device, step)
        found = [{"task": self.trained.main.task, "metric": "gap", "band": None, "layer": None,
                  "head": None, "value": gap}]
        last = step == self.last
        found += analyze_checkpoint(ck, self.bands, causal=last, curve=last)
        meta = {"run": self.trained.name, "experiment": self.trained.experiment,
                "variant": self.trained.variant, "seed": self.trained.seed, "step": step}
        return [clean_row({**meta, **r}) for r in found]
