"""Start-up time of the light commands (a whole process: interpreter, imports, the work), the
target being under a second for `lgt sample` (docs/design.md §7); tests only check that these
commands never import torch (tests/test_architecture.py, tests/test_cli_data.py).

    python benchmarks/bench_cli.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

COMMANDS = {
    "sample": ["sample", "shortest_path", "--length", "64", "--count", "20"],
    "tasks": ["tasks"],
    "dry-run": ["run", "quick", "--dry-run", "--out", "/tmp/lgt-bench-cli"],
}
TARGET_S = 1.0  # `lgt sample`


def best_seconds(argv: list[str], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "lgtransfer.cli", *argv], check=True,
                       capture_output=True, timeout=120)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for name, argv in COMMANDS.items():
        s = best_seconds(argv, args.repeats)
        note = f" (target < {TARGET_S:.1f} s)" if name == "sample" else ""
        print(f"lgt {name:8s} {s:6.2f} s{note}")


if __name__ == "__main__":
    main()
