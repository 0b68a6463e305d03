"""What `lgt run` checks before it writes anything, for a real run and a dry run alike, so that
a dry run that passes means the run starts: the output folder, the devices, the pretrained
models the runs start from, the trackers. Each failure is one line (`UsageError`, exit 2).

Torch-free (a dry run must not pay for importing it): a GPU is asked of the driver
(`files.has_gpu`), a tracker of the installed packages, a pretrained model of the files on disk
(`config/model_files.py`). A real run then also loads each model's tokenizer
(`engine/from_pretrained.validate_models`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from pathlib import Path

from lgtransfer.config import ExperimentConfig, files, model_files, stage_model
from lgtransfer.errors import UsageError

# the package each tracker of `log:` / `--log` needs (engine/tracking.py imports them)
TRACKER_PACKAGES = {"wandb": "wandb", "tensorboard": "tensorboard"}


def check_out(out: Path, flag: str = "--out") -> None:
    """`out` is a folder this process can write in, or one it can create (its nearest existing
    parent is a writable folder). Asked by making and removing an empty folder there: the
    permission bits do not say it for root, nor for /proc or a read-only mount."""
    out = Path(os.path.abspath(out))
    if out.exists() and not out.is_dir():
        raise UsageError(f"{flag} {out} is a file, not a folder")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{flag} {out}: {existing} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".lgt-write-check-", dir=existing))
    except OSError as e:
        raise UsageError(f"{flag} {out}: cannot write in {existing} "
                         f"({e.strerror or type(e).__name__})") from None


def check_device(cfg: ExperimentConfig) -> None:
    """`train.device=cuda` needs a GPU here (the real run would stop at its first run)."""
    if cfg.train.device.startswith("cuda") and not files.has_gpu():
        raise UsageError(f"{cfg.name}: train.device is {cfg.train.device!r} but this machine has "
                         "no NVIDIA GPU (no driver found, or CUDA_VISIBLE_DEVICES hides them); "
                         "use train.device=auto or cpu")


def check_models(cfg: ExperimentConfig) -> None:
    """Every `model.init` (each stage's) is a model on this machine of a kind lgt reads: a GGUF
    file or short name, a model folder or a Hub cache entry with a config and a tokenizer."""
    for stage in cfg.model.stages or [None]:
        m = stage_model(cfg.model, stage)
        if not m.init:
            continue
        if model_files.is_gguf(m.init):
            check_gguf(m.init, m.revision)
            continue
        path, _ = model_files.resolve(m.init, m.revision)
        model_files.check_files(path, weights=not m.reinit)
        try:
            config = json.loads((path / "config.json").read_text())
        except (OSError, ValueError):
            config = None
        if not isinstance(config, dict):
            raise UsageError(f"model.init: {path / 'config.json'} is not a readable model "
                             "config (JSON)")


def check_gguf(init: str, revision: str | None) -> None:
    """A GGUF file by its magic bytes (reading its header needs the gguf package, which a dry
    run does not import; the real run reads it all)."""
    if revision:
        model_files.locate(init, revision)  # refuses a revision, in its own words
    short = init in model_files.SHORT_NAMES
    path = model_files.short_name_file(init) if short else Path(init).expanduser()
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise UsageError(f"model.init: no GGUF file at {init}"
                         + ("" if isinstance(e, FileNotFoundError) else f" ({e.strerror})")
                         ) from None
    if magic != b"GGUF":
        raise UsageError(f"model.init: {path} is not a readable GGUF file (it does not start "
                         "with GGUF)")


def installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # ValueError: sys.modules holds None (blocked)
        return False


def check_trackers(trackers: set[str]) -> None:
    """Each tracker asked for is installed: a run never trains without the tracker the user
    asked for (a tracker that fails later is a warning: the run folder stays the record)."""
    for name in sorted(trackers):
        package = TRACKER_PACKAGES[name]
        if not installed(package):
            raise UsageError(f"--log {name} needs the {package} package, which is not installed: "
                             "pip install 'lgtransfer[track]', or leave out that tracker")


def check_run(experiments: list, out: Path, executor: str) -> None:
    """Everything `lgt run` checks before it writes: the output folder, then each experiment's
    device, pretrained models and trackers. A cluster's jobs run elsewhere: there the device is
    the job's to find."""
    check_out(out)
    for e in experiments:
        if executor != "submitit":
            check_device(e.config)
        check_models(e.config)
    check_trackers({t for e in experiments for t in e.config.log})
