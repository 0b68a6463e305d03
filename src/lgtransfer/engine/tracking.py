"""Live experiment tracking: the rows a run writes to `metrics.jsonl` and `eval.jsonl`, also
sent to Weights & Biases and/or TensorBoard (`log: [wandb, tensorboard]` in an experiment,
`lgt run --log`). See docs/tracking.md.

The run folder stays the record; a tracker is a view of it. So a tracker never stops a run: a
missing package or a tracker that fails is one warning line on stderr, and that tracker is off
for the rest of the run. Both write inside the run folder by default and need no network: W&B
runs offline unless `WANDB_MODE` says otherwise (`wandb sync` uploads later).

One tracked run per lgtransfer run: the W&B run's id is the run key, so a resumed run continues
it; TensorBoard drops the events past the resume step (`purge_step`), as the logs do.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

try:  # the optional `track` extra (tensorboard); without it, `--log tensorboard` is one warning
    from torch.utils.tensorboard import SummaryWriter
except ImportError:
    SummaryWriter = None

from lgtransfer.config import RunSpec

_warned: set[str] = set()  # a missing package is said once per process, not once per run


def warn(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        print(f"lgt: warning: {message}", file=sys.stderr, flush=True)


def title(run: RunSpec) -> str:
    """`experiment/variant/seedN[/stage]`: how a tracked run is named."""
    stage = f"/{run.stage}" if run.stage is not None else ""
    return f"{run.experiment.name}/{run.variant}/seed{run.seed}{stage}"


def tracked_config(run: RunSpec, run_dir: Path) -> dict:
    """The resolved config (config.yaml) with the run's key and folder."""
    return {**run.resolved(), "run_key": run.key, "run_dir": str(run_dir.resolve())}


class WandbSink:
    name = "wandb"

    def __init__(self, run: RunSpec, run_dir: Path, start: int) -> None:
        import wandb

        # offline unless asked: online, an unset key or no network would stall or fail the run
        mode = None if os.environ.get("WANDB_MODE") else "offline"
        self.wb = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "lgtransfer"), name=title(run),
            group=run.experiment.name, job_type=run.variant,
            tags=[run.variant, f"seed{run.seed}", run.experiment.budget or "no-budget"],
            config=tracked_config(run, run_dir), id=run.key, resume="allow", mode=mode,
            dir=None if os.environ.get("WANDB_DIR") else str(run_dir), reinit="create_new",
            settings=wandb.Settings(console="off", silent=True, x_disable_stats=True,
                                    disable_git=True, save_code=False))
        # our step, not W&B's counter: a resumed run logs steps again from its resume point
        self.wb.define_metric("step")
        self.wb.define_metric("*", step_metric="step")

    def log(self, step: int, values: dict[str, float]) -> None:
        self.wb.log({"step": step, **values})

    def close(self, failed: bool) -> None:
        self.wb.finish(exit_code=1 if failed else 0)


class TensorBoardSink:
    name = "tensorboard"

    def __init__(self, run: RunSpec, run_dir: Path, start: int) -> None:
        if SummaryWriter is None:
            raise ImportError("tensorboard is not installed")
        # purge_step: TensorBoard hides the previous attempt's events past the resume step (the
        # logs keep that step's rows, and they are not sent again)
        self.writer = SummaryWriter(str(run_dir / "tensorboard"),
                                    purge_step=start + 1 if start else None)
        if not start:
            text = yaml.safe_dump(tracked_config(run, run_dir), sort_keys=False)
            self.writer.add_text("config", f"```yaml\n{text}```", 0)

    def log(self, step: int, values: dict[str, float]) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()  # at the pace of the logs: a killed run keeps its curves

    def close(self, failed: bool) -> None:
        self.writer.close()


SINKS = {"wandb": WandbSink, "tensorboard": TensorBoardSink}  # each named as its package


class Tracking:
    """The trackers of one run: opened once its folder exists, closed when it ends (a context
    manager, so an interrupted or failed run still closes them)."""

    def __init__(self, run: RunSpec, run_dir: Path) -> None:
        self.run, self.run_dir, self.sinks = run, run_dir, []

    def open(self, start: int) -> None:
        for name in self.run.experiment.log:
            try:
                self.sinks.append(SINKS[name](self.run, self.run_dir, start))
            except ImportError:
                warn(f"--log {name} needs the {name} package (pip install "
                     f"'lgtransfer[track]'); runs are not tracked there")
            except Exception as e:
                self.failed(name, e)

    def metrics(self, row: dict) -> None:
        """A `metrics.jsonl` row: loss, gradient norm, learning rate, tokens per second."""
        self.send(row["step"], {f"train/{k}": v for k, v in row.items() if k != "step"})

    def evals(self, step: int, rows: list[dict]) -> None:
        """`eval.jsonl` rows: accuracy per task and length."""
        self.send(step, {f"eval/{r['task']}/length_{r['length']:03d}": r["accuracy"]
                         for r in rows})

    def send(self, step: int, values: dict[str, Any]) -> None:
        for sink in list(self.sinks):
            try:
                sink.log(step, values)
            except Exception as e:
                self.sinks.remove(sink)
                self.failed(sink.name, e)

    def failed(self, name: str, e: Exception) -> None:
        first = (str(e).splitlines() or [""])[0][:160]
        warn(f"{name} tracking of {self.run_dir} is off ({type(e).__name__}: {first}); "
             "training goes on")

    def __enter__(self) -> Tracking:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sink in self.sinks:
            try:
                sink.close(failed=kind is not None)
            except Exception as e:
                self.failed(sink.name, e)
        self.sinks = []
