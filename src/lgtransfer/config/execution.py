"""How a run executes: its precision and whether it is compiled. Torch-free.

Two modes, both tested to decide the same things (docs/performance.md):
- the **reference**, fp32 and eager: every `cpu`-budget run, and the committed evidence;
- **bf16**: autocast to bfloat16 with fp32 weights, optimizer and evaluation, attention as plain
  matmuls on a CPU (the fused kernel is slower in bf16 there) and the fused AdamW. On this
  project's CPU (AMD Zen 4, AVX512-BF16, no AMX) it trains the paper's model 2.0x as fast as
  the reference, 2.2x compiled (benchmarks/cpu_throughput.py; docs/performance.md).

Execution changes a run's numbers (rounding grows over thousands of steps, about the
seed-to-seed spread past L_main), so it is part of a run's identity: a run that is not the
reference carries its execution in its key (`runs.content_hash`), and runs of two executions
are never one run. `auto` is resolved here, once, the same way when a run is planned and when
it trains: on CUDA bf16 and compiled; on a CPU with bf16 instructions bf16 for a from-scratch
model at least `BF16_MIN_WIDTH` wide (the benchmark's rule), else the reference.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from lgtransfer.errors import UsageError

REFERENCE = ("fp32", False)
# auto picks bf16 from this width (benchmarks/results/cpu_throughput.json: bf16 against fp32 is
# 1.44x at width 128, 1.66x at 256, 2.02x at 384). Below it auto keeps the reference, so the
# registered cpu tier (width 128) and tests' tiny models stay fp32; set bf16 to have it there.
BF16_MIN_WIDTH = 256
CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class Execution:
    precision: str  # fp32 | bf16
    compiled: bool

    @property
    def is_reference(self) -> bool:
        return (self.precision, self.compiled) == REFERENCE

    @property
    def name(self) -> str:
        """`fp32`, `bf16`, `fp32+compile`, `bf16+compile`."""
        return self.precision + ("+compile" if self.compiled else "")


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 matrix instructions (AVX512-BF16 or AMX-BF16)."""
    try:
        flags = CPUINFO.read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def device_type(device: str, gpu_present: bool) -> str:
    """`cuda` or `cpu`: the kind of device `train.device` names (auto: a GPU when present)."""
    if device == "auto":
        return "cuda" if gpu_present else "cpu"
    if device == "cpu" or device.startswith("cuda"):
        return "cpu" if device == "cpu" else "cuda"
    raise UsageError(f"train.device must be auto, cpu, cuda or cuda:N, got {device!r}")


def resolve(train: dict, model: dict, device: str) -> Execution:
    """The execution of a run from its recorded `train` and `model` sections on a `device`
    (`cpu` or `cuda`)."""
    precision, compile_ = train.get("precision", "auto"), train.get("compile", "auto")
    if isinstance(compile_, bool):
        compile_ = "on" if compile_ else "off"
    if precision == "auto":
        if device == "cuda":
            precision = "bf16"
        else:
            wide = not model.get("init") and int(model.get("d_model", 0)) >= BF16_MIN_WIDTH
            precision = "bf16" if wide and cpu_has_bf16() else "fp32"
    compiled = compile_ == "on" or (compile_ == "auto" and device == "cuda")
    return Execution(precision, compiled)
