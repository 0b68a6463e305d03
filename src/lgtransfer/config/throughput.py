"""How fast a run trains on a device: the rates `lgt run --dry-run` estimates time from. Torch-free.

`throughput.json` beside this file holds, per device kind, the tokens/s of one run (one core of
a CPU, one GPU) by execution mode and model size. Its `cpu` rows are measured by
`benchmarks/cpu_throughput.py --calibrate` on this project's 2-core machine; its `cuda` row is
the one-H100 target of docs/design.md §7 until a GPU measures it. Between measured sizes the
rate is interpolated on log-log axes; beyond them it scales as 1 / parameters.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

from lgtransfer.config.execution import Execution

FILE = Path(__file__).with_name("throughput.json")
# SmolLM2-135M's shape (30 layers, width 576, d_ff 1536): the size a pretrained model counts as
SMOLLM2_SHAPE = (30, 576, 1536)


def matmul_params(n_layer: int, d_model: int, d_ff: int) -> int:
    """Parameters of the attention and MLP matmuls: the size axis of the calibration."""
    return n_layer * (4 * d_model * d_model + 3 * d_model * d_ff)


def model_params(model: dict) -> int:
    """`matmul_params` of a run's recorded `model` section (a pretrained one as SmolLM2)."""
    if model.get("init"):
        return matmul_params(*SMOLLM2_SHAPE)
    return matmul_params(int(model["n_layer"]), int(model["d_model"]), int(model["d_ff"]))


@functools.cache
def _table() -> dict:
    return json.loads(FILE.read_text())


def rate(device: str, how: Execution, params: int) -> tuple[float, str]:
    """Tokens/s of one run of a model with `params` matmul parameters, and where that rate
    comes from (one line)."""
    entry = _table()[device]
    rows = [r for r in entry["rows"] if r["mode"] == how.name] or \
        [r for r in entry["rows"] if r["mode"].split("+")[0] == how.precision] or entry["rows"]
    points = sorted((r["params"], r["tokens_per_s"]) for r in rows)
    if params <= points[0][0]:  # a smaller model is no faster a token (overheads dominate)
        value = points[0][1]
    elif params >= points[-1][0]:
        x, y = points[-1]
        value = y * x / params
    else:
        (x0, y0), (x1, y1) = next((a, b) for a, b in zip(points, points[1:], strict=False)
                                  if a[0] <= params <= b[0])
        t = (math.log(params) - math.log(x0)) / (math.log(x1) - math.log(x0))
        value = math.exp(math.log(y0) + t * (math.log(y1) - math.log(y0)))
    return value, entry["source"]
