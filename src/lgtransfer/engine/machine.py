"""What this machine offers runs, as torch sees it: GPUs, or CPU threads."""

from __future__ import annotations

import os
import platform

import numpy
import torch
import transformers

import lgtransfer
from lgtransfer.runtime import rundir


def slots() -> tuple[int, list[str] | None]:
    """How many runs fit side by side here, and the GPU ids when there are GPUs."""
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        return n, [str(i) for i in range(n)]
    return max(1, os.cpu_count() or 1), None


def set_threads(threads: int) -> None:
    """Torch's CPU threads for this process (0: torch's own default)."""
    if threads:
        torch.set_num_threads(threads)


def environment(device: str) -> dict:
    """The versions and machine a run was trained with, for its manifest."""
    info = {
        "lgtransfer": lgtransfer.__version__,
        "git_commit": rundir.git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "device": device,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info
