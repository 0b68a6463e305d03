#!/usr/bin/env bash
# Spend a GPU window on the paper-scale tier (docs/gpu.md):
#   benchmarks/gpu_evidence.sh --out /tmp/ev --pack-to "$OUT"   # 9 minutes by default
#   benchmarks/gpu_evidence.sh --small --minutes 1 --out DIR     # CPU scale, seconds (CI)
#   benchmarks/gpu_evidence.sh unpack FILE... --into results/gpu # what came back
# Uses the Python that has lgtransfer (PYTHON=... to pick one); installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" benchmarks/gpu_evidence.py "$@"
