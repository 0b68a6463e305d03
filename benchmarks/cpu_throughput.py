"""lgtransfer's own training step on this CPU: tokens/s and FLOP/s of each execution mode, side by
side in one process, where a step's time goes, and how far it is from the core's peak.

    python benchmarks/cpu_throughput.py --quick --json out.json      # under 10 minutes
    python benchmarks/cpu_throughput.py --json benchmarks/results/cpu_throughput.json
    python benchmarks/cpu_throughput.py --models smollm2-alone,smollm2-g1 \
        --modes bf16,bf16+compile --rows-only --json out.json        # smollm2-g1's runs only

A step is what `engine/train.py` runs: `Mixture` batches of G1 (`step_batch`), the model,
the masked loss (`train_step`, the budget's length buckets) and AdamW (`make_optimizer`), with
each mode's kernels chosen by the trainer's own functions (`autocast_dtype`, `attention_for`,
fused AdamW in bf16). Models: `cpu` (the cpu tier's, 3 layers x width 128), `mid` (the scaling
study's x18, 3 x 256), `paper` (6 x 384) and `smollm2` (SmolLM2-135M's shape with random
weights: 30 layers x 576, 9 heads, 3 key-value heads, vocabulary 49 152); `smollm2-alone` and
`smollm2-g1` are that shape at the settings of the `smollm2-g1` preset's runs (batch 16, two
length buckets; reverse addition <= 6 alone, and G1 at 6 / 12). Modes: `fp32` (the
reference: eager, one thread), `bf16`, `fp32+compile`, `bf16+compile` (`--modes` picks some);
rounds interleave the modes, so a load on the machine slows every mode alike: read the ratios.
Then, unless `--rows-only`, one run over two threads against two runs of one thread each, the
batch doubled, and where a step's time goes.

FLOPs count useful work only (non-padding tokens): 6 x matmul parameters x tokens for the
linear layers, 6 x width x vocabulary x scored tokens for the LM head (it runs only at target
positions), 12 x layers x width x L^2 per sequence for attention. The peak per core: fp32 FMA
lanes x 2 x clock, bf16 twice that (AVX512-BF16 dot products); the clock is read off a large
fp32 GEMM measured here (the clock the core sustains). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import statistics
import sys
import time
from dataclasses import dataclass

import torch
from torch.profiler import ProfilerActivity, profile
from transformers import LlamaConfig, LlamaForCausalLM

from lgtransfer.config import ModelConfig, throughput
from lgtransfer.config.execution import CPUINFO, Execution, cpu_has_bf16
from lgtransfer.config.schema import TrainConfig
from lgtransfer.data.groups import GroupTask
from lgtransfer.data.mixture import Mixture, eval_lengths, step_batch
from lgtransfer.engine.evaluate import evaluate
from lgtransfer.engine.model import build_model
from lgtransfer.engine.train import attention_for, autocast_dtype, make_optimizer, train_step

CPU = torch.device("cpu")
G1_CPU = [GroupTask("reverse_add", "main", 6), GroupTask("no_carry", "aux", 12),
          GroupTask("carry_only", "aux", 12)]
ALONE_CPU = [GroupTask("reverse_add", "main", 6)]
G1_PAPER = [GroupTask("reverse_add", "main", 16), GroupTask("no_carry", "aux", 32),
            GroupTask("carry_only", "aux", 32)]
SMOLLM2 = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
               num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True,
               max_position_embeddings=2048)
MODES = {"fp32": Execution("fp32", False), "bf16": Execution("bf16", False),
         "fp32+compile": Execution("fp32", True), "bf16+compile": Execution("bf16", True)}


@dataclass
class Bench:
    name: str
    group: list[GroupTask]
    batch_size: int
    buckets: int  # the budget's length buckets (cpu 2; gpu and paper 1)
    model_config: ModelConfig | None = None  # None: SmolLM2's shape

    def model(self) -> torch.nn.Module:
        if self.model_config is not None:
            return build_model(self.model_config, 0)
        torch.manual_seed(0)
        return LlamaForCausalLM(LlamaConfig(**SMOLLM2))


BENCHES = {
    "cpu": Bench("cpu", G1_CPU, 64, 2, ModelConfig(n_layer=3, n_head=4, d_model=128, d_ff=256)),
    "mid": Bench("mid", G1_CPU, 64, 2, ModelConfig(n_layer=3, n_head=4, d_model=256, d_ff=512)),
    "paper": Bench("paper", G1_PAPER, 64, 1, ModelConfig()),
    "smollm2": Bench("smollm2", G1_CPU, 16, 1),
    # the smollm2-g1 preset's runs (train.batch_size 16, train.buckets 2), alone and with aux
    "smollm2-alone": Bench("smollm2-alone", ALONE_CPU, 16, 2),
    "smollm2-g1": Bench("smollm2-g1", G1_CPU, 16, 2),
}
CALIBRATED = ("cpu", "mid", "paper", "smollm2")  # one model per size in throughput.json


# ----------------------------------------------------------------------------- FLOPs and peak

def step_flops(model: torch.nn.Module, batch) -> float:
    """Useful FLOPs of one training step (forward and backward) on `batch`."""
    cfg = model.config
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    linear = sum(p.numel() for n, p in model.named_parameters()
                 if p.dim() == 2 and p is not emb and p is not head)
    tokens = float(batch.seq_len.sum())
    scored = float(batch.loss_mask[:, 1:].sum())
    attention = 12 * cfg.num_hidden_layers * cfg.hidden_size * float((batch.seq_len ** 2).sum())
    return 6 * linear * tokens + 6 * cfg.hidden_size * cfg.vocab_size * scored + attention


def gemm_rate(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of one thread on an n x n x n matrix product."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def peaks() -> dict:
    """This core's peak FLOP/s: derived (FLOP a cycle x the nominal clock) and measured (the
    ceiling a large GEMM reaches on one thread); shares of peak are of the measured ceiling."""
    torch.set_num_threads(1)
    fp32, bf16 = gemm_rate(torch.float32), gemm_rate(torch.bfloat16)
    info = CPUINFO.read_text()
    mhz = next((float(line.split(":")[1]) for line in info.splitlines()
                if line.startswith("cpu MHz")), float("nan"))
    # AMD Zen 4 (this machine: family 25, no AMX): two 256-bit FMA pipes, a 512-bit
    # instruction in two passes: 32 fp32 FLOP a cycle; AVX512-BF16 dot products twice that.
    # Intel cores with two 512-bit FMA units: 64 and 128 (AMX-BF16, where present: 1024).
    per_cycle = 32 if "AuthenticAMD" in info[:4096] else 64
    return {"gemm_fp32_flops": fp32, "gemm_bf16_flops": bf16, "nominal_clock_ghz": mhz / 1e3,
            "fp32_flops_per_cycle": per_cycle, "bf16_flops_per_cycle": 2 * per_cycle,
            "derived_fp32_flops": per_cycle * mhz * 1e6,
            "derived_bf16_flops": 2 * per_cycle * mhz * 1e6,
            "peak_fp32_flops": max(fp32, per_cycle * mhz * 1e6),
            "peak_bf16_flops": max(bf16, 2 * per_cycle * mhz * 1e6),
            "derived": "FLOP a cycle (FMA lanes x pipes x 2) x the nominal clock of "
                       "/proc/cpuinfo; the peak used is the larger of that and a 2048^3 GEMM "
                       "on one thread (the core boosts above its nominal clock)"}


# ----------------------------------------------------------------------------- timing

class Trainer:
    """One model trained in one mode: the trainer's own kernels for that mode."""

    def __init__(self, bench: Bench, how: Execution, batch_size: int | None = None):
        self.bench, self.how = bench, how
        self.batch_size = batch_size or bench.batch_size
        self.mixture = Mixture(bench.group, 32, 0)
        self.model = bench.model().train()
        if (attention := attention_for(how, CPU)) is not None:
            self.model.set_attn_implementation(attention)
        self.optimizer, _ = make_optimizer(self.model, TrainConfig(), None,
                                           fused=how.precision == "bf16")
        if how.compiled:
            torch._dynamo.reset()
            self.model.model.compile(dynamic=True)
        self.dtype = autocast_dtype(how)
        self.step = 0

    def batch(self):
        self.step += 1
        return step_batch(self.mixture, 0, self.step, self.batch_size)

    def train(self, batch) -> None:
        train_step(self.model, self.optimizer, batch, CPU, self.bench.buckets, 1.0, self.dtype)

    def timed(self) -> tuple[float, float, float]:
        """(seconds, useful tokens, useful FLOPs) of one step, its batch made inside the time."""
        start = time.perf_counter()
        batch = self.batch()
        self.train(batch)
        return time.perf_counter() - start, float(batch.seq_len.sum()), step_flops(
            self.model, batch)


def compare(bench: Bench, modes: list[str], rounds: int, warmup: int) -> list[dict]:
    """Every mode of `bench`, one step each per round, the modes interleaved."""
    torch.set_num_threads(1)
    trainers = {m: Trainer(bench, MODES[m]) for m in modes}
    for t in trainers.values():  # compilation and first-call costs outside the timing
        for _ in range(warmup):
            t.train(t.batch())
    samples: dict[str, list[tuple[float, float, float]]] = {m: [] for m in modes}
    for _ in range(rounds):
        for m, t in trainers.items():
            samples[m].append(t.timed())
    return [row(bench, m, trainers[m].batch_size, samples[m], threads=1) for m in modes]


def row(bench: Bench, mode: str, batch_size: int, samples: list, threads: int,
        runs: int = 1) -> dict:
    seconds = sum(s for s, _, _ in samples)
    tokens, flops = sum(t for _, t, _ in samples), sum(f for _, _, f in samples)
    mix = Mixture(bench.group, 32, 0)
    seq_len = float(step_batch(mix, 0, 0, 256).seq_len.mean())
    return {"model": bench.name, "mode": mode, "batch_size": batch_size,
            "seq_len": round(seq_len, 1), "threads": threads, "runs": runs,
            "step_s": statistics.median(s for s, _, _ in samples),
            "tokens_per_s": runs * tokens / seconds, "flops_per_s": runs * flops / seconds}


def _one_run(args: tuple[str, str, int]) -> tuple[float, float, float]:
    name, mode, steps = args
    torch.set_num_threads(1)
    t = Trainer(BENCHES[name], MODES[mode])
    for _ in range(2):
        t.train(t.batch())
    samples = [t.timed() for _ in range(steps)]
    return tuple(sum(x[i] for x in samples) for i in range(3))


def threads(bench: Bench, mode: str, steps: int) -> list[dict]:
    """One run over two threads against two runs of one thread, side by side."""
    torch.set_num_threads(2)
    t = Trainer(bench, MODES[mode])
    for _ in range(2):
        t.train(t.batch())
    one = row(bench, mode, t.batch_size, [t.timed() for _ in range(steps)], threads=2)
    torch.set_num_threads(1)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        both = pool.map(_one_run, [(bench.name, mode, steps)] * 2)
    seconds = max(s for s, _, _ in both)  # they ran at once: the slower one's time
    two = {**one, "threads": 1, "runs": 2,
           "tokens_per_s": sum(t for _, t, _ in both) / seconds,
           "flops_per_s": sum(f for _, _, f in both) / seconds,
           "step_s": seconds / steps}
    return [one, two]


def bigger_batch(bench: Bench, mode: str, rounds: int) -> dict:
    torch.set_num_threads(1)
    t = Trainer(bench, MODES[mode], batch_size=2 * bench.batch_size)
    for _ in range(2):
        t.train(t.batch())
    return row(bench, mode, t.batch_size, [t.timed() for _ in range(rounds)], threads=1)


# ----------------------------------------------------------------------------- where time goes

MATMUL_OPS = {"aten::mm", "aten::addmm"}
ATTENTION_OPS = {"aten::bmm", "aten::_softmax", "aten::_softmax_backward_data",
                 "aten::_scaled_dot_product_flash_attention_for_cpu",
                 "aten::_scaled_dot_product_flash_attention_for_cpu_backward"}


def breakdown(bench: Bench, mode: str, steps: int = 2) -> dict:
    """Shares of a step's time: data, linear-layer matmuls, attention, optimizer (and gradient
    clipping), the rest (elementwise, norms, casts, loss); evaluation measured beside it."""
    torch.set_num_threads(1)
    t = Trainer(bench, MODES[mode])
    for _ in range(2):
        t.train(t.batch())
    data = 0.0
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            start = time.perf_counter()
            batch = t.batch()
            data += time.perf_counter() - start
            t.train(batch)
    totals = {"matmul": 0.0, "attention": 0.0, "optimizer": 0.0, "other": 0.0}
    for event in prof.events():
        if not event.name.startswith("aten::"):
            continue
        parents, parent = [], event.cpu_parent
        while parent is not None:
            parents.append(parent.name)
            parent = parent.cpu_parent
        self_s = event.self_cpu_time_total / 1e6
        if any(p.startswith("Optimizer.") or "clip_grad" in p for p in parents):
            totals["optimizer"] += self_s
        elif event.name in ATTENTION_OPS:
            totals["attention"] += self_s
        elif event.name in MATMUL_OPS:
            totals["matmul"] += self_s
        else:
            totals["other"] += self_s
    totals["data"] = data
    whole = sum(totals.values())
    # evaluation: 16 examples at every length to the budget's longest, every task (fp32; a
    # budget's evaluation is eval.n / 16 times this, eval_every steps apart)
    mixture = Mixture(bench.group, 16, 0)
    lengths = eval_lengths(mixture, None, 14 if bench.group is G1_CPU else 40,
                           [g.max_length for g in bench.group])
    start = time.perf_counter()
    evaluate(t.model, mixture, lengths, CPU)
    per_example = (time.perf_counter() - start) / (16 * sum(map(len, lengths.values())))
    return {"model": bench.name, "mode": mode,
            "share": {k: round(v / whole, 3) for k, v in totals.items()},
            "step_s": whole / steps, "evaluation_s_per_example": per_example}


# ----------------------------------------------------------------------------- main

def calibrate(out: dict) -> None:
    """One run's tokens/s per mode and model size (one thread, the budget's batch) into the
    package's throughput.json, keeping its other devices' entries."""
    shapes = {name: (b.model_config.n_layer, b.model_config.d_model, b.model_config.d_ff)
              if b.model_config else throughput.SMOLLM2_SHAPE for name, b in BENCHES.items()}
    rows = [{"model": r["model"], "mode": r["mode"], "params": throughput.matmul_params(
        *shapes[r["model"]]), "tokens_per_s": round(r["tokens_per_s"])}
            for r in out["rows"] if r["threads"] == 1 and r["runs"] == 1
            and r["model"] in CALIBRATED and r["batch_size"] == BENCHES[r["model"]].batch_size]
    table = json.loads(throughput.FILE.read_text()) if throughput.FILE.exists() else {}
    table["cpu"] = {"source": f"benchmarks/cpu_throughput.py on {out['machine']['processor']}, "
                              f"{time.strftime('%Y-%m-%d')}, one core a run", "rows": rows}
    throughput.FILE.write_text(json.dumps(table, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and modes (<10 min)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--models", default="cpu,mid,paper,smollm2",
                        help=f"comma-separated, of: {', '.join(BENCHES)}")
    parser.add_argument("--modes", help="comma-separated modes for every model named (default: "
                        "each model's own list)")
    parser.add_argument("--rows-only", action="store_true",
                        help="only the models' rows: no threads, batch or breakdown measurements")
    parser.add_argument("--calibrate", action="store_true",
                        help=f"write the one-run rates to {throughput.FILE.name} (lgt run "
                             "--dry-run estimates time from them)")
    args = parser.parse_args()
    unknown = [m for m in args.models.split(",") if m not in BENCHES] + \
        [m for m in (args.modes or "").split(",") if args.modes and m not in MODES]
    if unknown:
        print(f"cpu_throughput.py: unknown model or mode {unknown[0]!r}; models: "
              f"{', '.join(BENCHES)}; modes: {', '.join(MODES)}", file=sys.stderr)
        sys.exit(2)
    quick = args.quick
    out: dict = {"machine": {"processor": platform.processor() or platform.machine(),
                             "cpu_has_bf16": cpu_has_bf16(), "torch": torch.__version__,
                             "cores_used": 1},
                 "peak": peaks(), "rows": [], "breakdown": []}
    # model: (modes, rounds, warmup)
    plans = {
        "cpu": (list(MODES), 8 if quick else 30, 3),
        "mid": (list(MODES), 6 if quick else 20, 3),
        "paper": (["fp32", "bf16", "bf16+compile"] if quick else list(MODES), 3 if quick else 6,
                  2),
        "smollm2": (["fp32", "bf16"] if quick else list(MODES), 3 if quick else 5, 2),
        "smollm2-alone": (["bf16", "bf16+compile"], 3 if quick else 5, 3),
        "smollm2-g1": (["bf16", "bf16+compile"], 3 if quick else 5, 3),
    }
    for name in args.models.split(","):
        modes, rounds, warmup = plans[name]
        modes = args.modes.split(",") if args.modes else modes
        out["rows"] += compare(BENCHES[name], modes, rounds, warmup)
        print(json.dumps(out["rows"][-len(modes):]), flush=True)
    if not args.rows_only:
        out["rows"] += threads(BENCHES["cpu"], "fp32", 20 if quick else 60)
        out["rows"].append(bigger_batch(BENCHES["paper"], "bf16", 2 if quick else 4))
        for name, mode in ([("paper", "fp32"), ("paper", "bf16")] if quick else
                           [(m, x) for m in ("cpu", "paper", "smollm2") for x in ("fp32", "bf16")]):
            out["breakdown"].append(breakdown(BENCHES[name], mode))
    for r in out["rows"]:
        ref = next((x for x in out["rows"] if x["model"] == r["model"] and x["mode"] == "fp32"
                    and x["runs"] == 1 and x["threads"] == 1), None)
        r["vs_reference"] = round(r["tokens_per_s"] / ref["tokens_per_s"], 3) if ref else None
        peak = out["peak"]["peak_bf16_flops" if "bf16" in r["mode"] else "peak_fp32_flops"]
        r["share_of_peak"] = round(r["flops_per_s"] / (peak * r["threads"] * r["runs"]), 3)
    if args.calibrate:
        calibrate(out)
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
