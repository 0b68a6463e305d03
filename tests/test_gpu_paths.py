"""The GPU's code paths, run on the CPU against the eager fp32 path: bf16 autocast, torch.compile
with dynamic shapes, and the data-worker pool, each through `train_run` (a few steps, two
evaluations, a checkpoint).

Stated tolerances, against the eager fp32 run from the same seed and batches:
- bf16 autocast: final training loss within 1 % (relative); the final checkpoint's logits within
  2 % of their largest magnitude; evaluation accuracies within 0.1;
- torch.compile: loss within 1e-5 (relative), logits within 1e-4 (absolute), identical
  evaluation accuracies, and at most 3 compiles for 8 steps x 3 length buckets plus two
  evaluations (one graph for training, one for evaluation: no compile per shape);
- the worker pool: identical, bit for bit (the same batches, so the same run).
"""

from pathlib import Path

import pytest
import torch

from lgtransfer.config import expand, parse_experiment
from lgtransfer.data.groups import GroupTask
from lgtransfer.data.mixture import Mixture, SeqBatch
from lgtransfer.engine.evaluate import scored_logits
from lgtransfer.engine.model import load_model
from lgtransfer.engine.train import length_buckets, step_batch, train_run
from lgtransfer.runtime import rundir

STEPS = 8
GROUP = [{"task": "copy", "role": "main", "max_length": 4},
         {"task": "reverse", "role": "aux", "max_length": 8}]


def run_with(out: Path, **train) -> Path:
    """A few steps of a tiny model, eager fp32 unless `train` says otherwise."""
    cfg = parse_experiment({
        "name": "gpu-paths",
        "group": GROUP,
        "model": {"n_layer": 2, "n_head": 2, "d_model": 32, "d_ff": 64},
        "train": {"steps": STEPS, "batch_size": 24, "lr": 3e-3, "buckets": 3,
                  "eval_every": STEPS // 2, "checkpoint_every": STEPS, "compile": "off",
                  "precision": "fp32", "data_workers": 0, **train},
        "eval": {"n": 16, "max_length": 10},
        "seeds": [0],
    }, "test")
    train_run(expand(cfg)[0], out, progress=False)
    return out


@pytest.fixture(scope="module")
def eager(tmp_path_factory) -> Path:
    return run_with(tmp_path_factory.mktemp("eager"))


def final_loss(run: Path) -> float:
    return rundir.read_jsonl(run / "metrics.jsonl")[-1]["loss"]


def accuracies(run: Path) -> list[tuple]:
    return [(r["step"], r["task"], r["length"], r["accuracy"])
            for r in rundir.read_jsonl(run / "eval.jsonl")]


def final_logits(run: Path) -> torch.Tensor:
    """Teacher-forced logits of the last checkpoint (eager, fp32) on a fixed batch of both tasks
    at lengths in and past training."""
    model = load_model(run / "checkpoints" / f"step-{STEPS}").eval()
    mixture = Mixture([GroupTask(**g) for g in GROUP], 16, 5)
    batch = SeqBatch.concat([mixture.eval_set("copy", 6), mixture.eval_set("reverse", 9)])
    with torch.no_grad():
        logits, _ = scored_logits(model, torch.from_numpy(batch.tokens),
                                  torch.from_numpy(batch.loss_mask))
    return logits


def test_bf16_autocast_agrees_with_fp32(eager, tmp_path):
    run = run_with(tmp_path, precision="bf16")
    assert rundir.read_json(run / "manifest.json")["precision"] == "bf16"
    assert final_loss(run) != final_loss(eager)  # autocast really ran in bf16
    assert final_loss(run) == pytest.approx(final_loss(eager), rel=1e-2)
    ref = final_logits(eager)
    assert (final_logits(run) - ref).abs().max() <= 0.02 * ref.abs().max()
    for a, b in zip(accuracies(run), accuracies(eager), strict=True):
        assert a[:3] == b[:3] and abs(a[3] - b[3]) <= 0.1


def test_compile_with_dynamic_shapes_agrees_and_compiles_once(eager, tmp_path):
    import torch._dynamo

    # the training steps really meet several shapes: batch rows and widths differ by bucket
    mixture = Mixture([GroupTask(**g) for g in GROUP], 16, 0)
    shapes = {tokens.shape for s in range(STEPS)
              for tokens, _ in length_buckets(step_batch(mixture, 0, s, 24), 3)}
    assert len(shapes) >= 6, shapes
    torch._dynamo.reset()  # also clears the counters
    run = run_with(tmp_path, compile="on")
    compiles = torch._dynamo.utils.counters["frames"]["ok"]
    assert 1 <= compiles <= 3, dict(torch._dynamo.utils.counters["frames"])
    assert rundir.read_json(run / "manifest.json")["compiled"] is True
    assert final_loss(run) == pytest.approx(final_loss(eager), rel=1e-5)
    assert torch.allclose(final_logits(run), final_logits(eager), rtol=0, atol=1e-4)
    assert accuracies(run) == accuracies(eager)


def test_worker_pool_gives_the_same_run(eager, tmp_path):
    run = run_with(tmp_path, data_workers=2)
    assert accuracies(run) == accuracies(eager)
    keys = ("step", "loss", "grad_norm", "lr")
    assert [[r[k] for k in keys] for r in rundir.read_jsonl(run / "metrics.jsonl")] == \
        [[r[k] for k in keys] for r in rundir.read_jsonl(eager / "metrics.jsonl")]
    a, b = (load_model(r / "checkpoints" / f"step-{STEPS}").state_dict() for r in (run, eager))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_training_and_evaluation_build_no_kv_cache(monkeypatch):
    """Every teacher-forced forward (training, evaluation) asks the backbone for no cache."""
    from lgtransfer.config import ModelConfig
    from lgtransfer.engine.model import build_model

    model = build_model(ModelConfig(n_layer=1, n_head=2, d_model=32, d_ff=64), 0)
    seen = []
    real = model.model.forward
    monkeypatch.setattr(model.model, "forward",
                        lambda *a, **k: seen.append(k.get("use_cache")) or real(*a, **k))
    tokens = torch.randint(6, 40, (2, 9))
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    mask[:, 5:] = True
    logits, _ = scored_logits(model, tokens, mask)
    assert seen == [False] and logits.shape == (2 * 4, model.config.vocab_size)
