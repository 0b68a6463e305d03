#!/usr/bin/env bash
# Measure a GPU in one command (about 10 minutes on one H100, compilation included):
#   benchmarks/gpu_check.sh            # writes benchmarks/results/<gpu-name>-<date>.json and .md
#   benchmarks/gpu_check.sh --small    # the same steps at CPU scale (CI runs this)
# Uses the Python that has lgtransfer (PYTHON=... to pick one); installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" benchmarks/gpu_check.py "$@"
