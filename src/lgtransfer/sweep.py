"""Expand experiments into runs and execute them; a finished run is never redone."""

from __future__ import annotations

from pathlib import Path

from lgtransfer import rundir
from lgtransfer.config import ExperimentConfig, RunSpec, expand


def run_dir(out: Path, run: RunSpec) -> Path:
    return out / run.experiment.name / run.dirname


def run_experiment(cfg: ExperimentConfig, out: Path, progress: bool = True) -> list[Path]:
    """Train every run of the experiment that is not complete yet; return all run folders."""
    from lgtransfer.train import train_run

    dirs = []
    for run in expand(cfg):
        d = run_dir(out, run)
        if not rundir.is_complete(d):
            train_run(run, d, progress=progress)
        dirs.append(d)
    return dirs
