"""Pretrained models (Figs 9, 15): each stage sweep's own figures (`report/stages.py`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lgtransfer.analysis.report.figures.registry import figure
from lgtransfer.analysis.report.render import Section


@figure("9", "15", title="Pretrained models (Figs 9, 15)")
def pretrained_models(df: pd.DataFrame, seeds: pd.DataFrame, out: Path) -> Section:
    """Each experiment's own figures: a stage sweep's (`stages.py`), else its report.png."""
    figures = []
    for folder in dict.fromkeys(out / Path(run).parent for run in df.run.unique()):
        stages = [folder / n for n in ("stages.png", "stages_curves.png") if (folder / n).exists()]
        figures += stages or [p for p in [folder / "report.png"] if p.exists()]
    return Section("", "", figures)
