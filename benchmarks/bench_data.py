"""Data-pipeline throughput: training examples generated per second, one process on one core.

Measures `Task.train_batch` for every task over the paper's training length ranges, and the full
`Mixture.train_batch` (task draw, generation, leak filter, BOS/markers/EOS, loss mask) for groups
G1, G4 and G6 at batch 1200, then compares with the targets of docs/design.md §7: arithmetic and
string batches >= 100k examples/s, mazes >= 5k examples/s.

    python benchmarks/bench_data.py [--seconds 1.0] [--batch 1200]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported: one core

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402

from lgtransfer.data.groups import GroupTask  # noqa: E402
from lgtransfer.data.mixture import Mixture  # noqa: E402
from lgtransfer.tasks import get_task  # noqa: E402

TARGET = {"arithmetic": 100_000, "string": 100_000, "maze": 5_000}

# (task, lo, hi): the paper's training ranges
TASK_CASES = [
    ("reverse_add", 1, 32), ("no_carry", 1, 32), ("carry_only", 1, 32), ("reverse_sub", 1, 32),
    ("copy_first_op", 1, 32), ("cot_mul", 1, 16),
    ("copy", 1, 32), ("reverse", 1, 32), ("capitalize", 1, 32), ("capitalize_reverse", 1, 32),
    ("mqar", 2, 32),
    ("dfs_trace", 2, 32), ("dfs_trace", 2, 64), ("shortest_path", 2, 32), ("shortest_path", 2, 64),
]

GROUPS = {
    "G1 reverse_add 1-16 + no_carry 1-32 + carry_only 1-32": [
        GroupTask("reverse_add", "main", 16, 1), GroupTask("no_carry", "aux", 32, 1),
        GroupTask("carry_only", "aux", 32, 1)],
    "G4 copy 1-16 + mqar 2-32": [
        GroupTask("copy", "main", 16, 1), GroupTask("mqar", "aux", 32, 2)],
    "G6 dfs_trace 2-32 + shortest_path 2-64": [
        GroupTask("dfs_trace", "main", 32, 2), GroupTask("shortest_path", "aux", 64, 2)],
}
GROUP_FAMILY = {"G1": "arithmetic", "G4": "string", "G6": "maze"}


def measure(make: Callable[[], object], batch: int, seconds: float) -> float:
    """Examples per second of `make` (one batch per call), best of three timed windows."""
    make()  # warm-up
    best = 0.0
    for _ in range(3):
        calls, start = 0, time.perf_counter()
        while True:
            make()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds / 3:
                break
        best = max(best, calls * batch / elapsed)
    return best


def simple_vs_vectorized(batch: int, seconds: float) -> None:
    """The cost of the simple form (`simple_task`: a Python call per example): `copy` written as
    one function against the built-in vectorized `copy`, lengths 1-32."""
    from lgtransfer.tasks import simple_task

    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))

    @simple_task("bench_simple_copy", family="string", max_length=32)
    def simple_copy(rng: np.random.Generator, length: int) -> tuple[str, str]:
        s = "".join(letters[rng.integers(0, 52, length)])
        return s + "=", s

    rates = {}
    for name in ("copy", "bench_simple_copy"):
        task, rng = get_task(name), np.random.default_rng(0)
        rates[name] = measure(lambda t=task, r=rng: t.train_batch(r, batch, 1, 32), batch, seconds)
    print(f"copy 1-32, examples/s: vectorized {rates['copy']:,.0f}, simple form "
          f"{rates['bench_simple_copy']:,.0f}: the simple form is "
          f"{rates['copy'] / rates['bench_simple_copy']:.0f}x slower\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="time per measurement")
    parser.add_argument("--batch", type=int, default=1200, help="examples per batch")
    parser.add_argument("--eval-n", type=int, default=1024, help="eval set size (leak filter)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # really one core

    print(f"python {platform.python_version()}, numpy {np.__version__}, "
          f"{platform.processor() or platform.machine()}, batch {args.batch}, one core\n")
    rows = []
    for name, lo, hi in TASK_CASES:
        task = get_task(name)
        rng = np.random.default_rng(0)
        rate = measure(lambda t=task, r=rng, a=lo, b=hi: t.train_batch(r, args.batch, a, b),
                       args.batch, args.seconds)
        rows.append((f"{name} {lo}-{hi}", task.family, rate))
    for label, specs in GROUPS.items():
        mixture = Mixture(specs, eval_n=args.eval_n)  # builds eval sets + leak hashes: not timed
        rng = np.random.default_rng(0)
        rate = measure(lambda m=mixture, r=rng: m.train_batch(r, args.batch),
                       args.batch, args.seconds)
        rows.append((f"Mixture {label}", GROUP_FAMILY[label[:2]], rate))

    simple_vs_vectorized(args.batch, args.seconds)
    width = max(len(r[0]) for r in rows)
    print(f"{'what':<{width}}  {'family':<10}  {'examples/s':>12}  {'target':>9}  ok")
    failures = 0
    for what, family, rate in rows:
        target = TARGET[family]
        ok = rate >= target
        failures += not ok
        print(f"{what:<{width}}  {family:<10}  {rate:>12,.0f}  {target:>9,}  "
              f"{'yes' if ok else 'NO'}")
    print(f"\n{len(rows) - failures}/{len(rows)} meet the target")


if __name__ == "__main__":
    main()
