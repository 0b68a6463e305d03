"""Training and evaluation throughput on the real G1 mixture, ours against the naive way.

    python benchmarks/bench_train.py            # paper model; sized for one GPU
    python benchmarks/bench_train.py --small    # a small model and batch, for a CPU

Measures, in one process on whatever device torch finds:
- data: examples/s of `Mixture.train_batch` (vectorized) and of the naive way (one example at a
  time as text, tokenized, padded);
- training: useful (non-padding) tokens/s of the training step fed by each data path (bf16 +
  torch.compile on a GPU, fp32 on a CPU);
- evaluation: seconds for eval.n examples x 40 lengths x 3 tasks, one forward pass per batch.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from lgtransfer.config import ModelConfig
from lgtransfer.data.groups import GroupTask
from lgtransfer.data.mixture import Mixture, SeqBatch, eval_lengths
from lgtransfer.engine.evaluate import evaluate
from lgtransfer.engine.model import build_model
from lgtransfer.engine.train import step_batch, train_step
from lgtransfer.tasks import get_task
from lgtransfer.tasks import tokenizer as tok

G1 = [GroupTask("reverse_add", "main", 16), GroupTask("no_carry", "aux", 32),
      GroupTask("carry_only", "aux", 32)]


def naive_batch(rng: np.random.Generator, size: int) -> SeqBatch:
    """The slow way: per-example Python objects, text, tokenization, padding."""
    rows, masks = [], []
    for _ in range(size):
        i = int(rng.integers(len(G1)))
        spec = G1[i]
        ex = get_task(spec.task).sample(rng, int(rng.integers(1, spec.max_length + 1)))[0]
        marker = [tok.marker_id(i)] * 4
        prompt = [tok.BOS, *marker, *tok.encode(ex.prompt), *marker]
        target = tok.encode(ex.target) + [tok.EOS]
        rows.append(prompt + target)
        masks.append([False] * len(prompt) + [True] * len(target))
    width = max(map(len, rows))
    tokens = np.full((size, width), tok.PAD)
    mask = np.zeros((size, width), bool)
    for r, (ids, m) in enumerate(zip(rows, masks, strict=True)):
        tokens[r, : len(ids)], mask[r, : len(m)] = ids, m
    seq_len = np.array([len(r) for r in rows])
    return SeqBatch(tokens, mask, seq_len, np.zeros(size, int), np.zeros(size, int))


def time_data(make, seconds: float = 3.0) -> float:
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        n += len(make(n))
    return n / (time.perf_counter() - t0)


def time_training(model, batches, device, buckets: int, compiled: bool) -> float:
    cuda = device.type == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32  # train.precision: auto
    if compiled:
        model.model.compile(dynamic=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), weight_decay=0.01)
    warm = min(5, len(batches) // 2)
    tokens = 0
    for i, batch in enumerate(batches):
        if i == warm:
            if cuda:
                torch.cuda.synchronize()
            t0, tokens = time.perf_counter(), 0
        train_step(model, opt, batch, device, buckets, 1.0, dtype)
        tokens += int(batch.seq_len.sum())
    if cuda:
        torch.cuda.synchronize()
    return tokens / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true", help="CPU-sized model and batch")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--buckets", type=int, default=4)
    args = parser.parse_args()
    print(json.dumps(measure(args.small, args.steps, args.buckets), indent=2))


def measure(small: bool, steps: int = 30, buckets: int = 4, data_seconds: float = 3.0,
            model_cfg: ModelConfig | None = None, batch_size: int = 0, eval_n: int = 0) -> dict:
    """Every number of this benchmark, as one dict (also used by `gpu_check.py` and
    `gpu_evidence.py`, whose `--small` passes an even smaller model, batch and eval set)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    model_cfg = model_cfg or (ModelConfig(n_layer=3, n_head=4, d_model=128, d_ff=512) if small
                              else ModelConfig())
    batch_size = batch_size or (64 if small else 1200)
    eval_n = eval_n or (64 if small else 1024)
    mixture = Mixture(G1, eval_n, 0)
    rng = np.random.default_rng(0)
    out: dict = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                 "torch": torch.__version__, "batch_size": batch_size,
                 "model": model_cfg.__dict__}

    out["data_examples_per_s"] = time_data(lambda i: step_batch(mixture, 0, i, batch_size),
                                           data_seconds)
    out["naive_data_examples_per_s"] = time_data(lambda i: naive_batch(rng, batch_size),
                                                 data_seconds)

    ours = [step_batch(mixture, 0, i, batch_size) for i in range(steps)]
    naive = [naive_batch(rng, batch_size) for _ in range(steps)]
    compiled = device.type == "cuda"
    model = build_model(model_cfg, 0).to(device)
    out["train_tokens_per_s"] = time_training(model, ours, device, buckets, compiled)
    model = build_model(model_cfg, 0).to(device)
    out["naive_train_tokens_per_s"] = time_training(model, naive, device, 1, False)
    # what one step costs end to end when the naive data path has to feed it
    naive_data_s = batch_size / out["naive_data_examples_per_s"]
    naive_tokens = np.mean([b.seq_len.sum() for b in naive])
    out["naive_end_to_end_tokens_per_s"] = naive_tokens / (
        naive_tokens / out["naive_train_tokens_per_s"] + naive_data_s)

    lengths = eval_lengths(mixture, None, 40)
    model.eval()
    evaluate(model, mixture, {"reverse_add": [1, 2]}, device)  # warm-up
    t0 = time.perf_counter()
    evaluate(model, mixture, lengths, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    out["eval_seconds"] = time.perf_counter() - t0
    out["eval_examples"] = eval_n * sum(len(v) for v in lengths.values())
    return out


if __name__ == "__main__":
    main()
