"""Checkpoints and resume points of a run (`train.py` trains; this keeps what it needs to go on).

A checkpoint is a Hugging Face folder (`checkpoints/step-N`) with the tokenizer the model reads
and `lgt_run.json` (the run's identity, and a pretrained model's id map). `checkpoints/resume.pt`
names the last complete checkpoint and holds the optimizer and scheduler state and the step:
tensors and plain data only, loaded with `weights_only=True`, so a resume point someone handed
over cannot run code when read. It is written only once its checkpoint folder is complete.
"""

from __future__ import annotations

import functools
import pickle
import shutil
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from lgtransfer.config import RunSpec
from lgtransfer.engine import from_pretrained as pretrained
from lgtransfer.errors import UsageError
from lgtransfer.runtime import rundir, stopping
from lgtransfer.tasks import tokenizer as tok


@functools.cache
def hf_tokenizer() -> PreTrainedTokenizerFast:
    """The same vocabulary as a Hugging Face tokenizer, saved beside every checkpoint so that
    `AutoTokenizer.from_pretrained(checkpoint)` encodes task text exactly as `encode` does."""
    vocab = {tok.token_text(i): i for i in range(tok.VOCAB_SIZE)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"\[\d+\]|<[A-Z]>|."), behavior="isolated")
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="[BOS]", eos_token="[EOS]", pad_token="[PAD]",
        unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
    )


def save_checkpoint(model: torch.nn.Module, path: Path, run: RunSpec,
                    source: pretrained.ModelSource | None = None) -> None:
    """A Hugging Face folder with the tokenizer the model reads (a pretrained model's own,
    extended, with the id map in `lgt_run.json`; else ours)."""
    tmp = path.with_name(path.name + ".tmp")
    with rundir.library_writes(tmp):
        model.save_pretrained(tmp)
        stopping.fault_point("checkpoint", step_of(path))
        tokenizer = source.tokenizer if source and source.tokenizer is not None else None
        (tokenizer if tokenizer is not None else hf_tokenizer()).save_pretrained(tmp)
    meta = {"experiment": run.experiment.name, "variant": run.variant, "seed": run.seed,
            "group": [t.task for t in run.group], "eval_seed": run.experiment.eval.seed,
            "tasks_from": run.experiment.tasks_from}
    if run.stage is not None:
        meta["stage"] = run.stage
    if source and source.id_map is not None:
        meta["id_map"] = source.id_map.tolist()
    rundir.write_json(tmp / "lgt_run.json", meta)
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)


def remove_temporaries(run_dir: Path) -> None:
    """What an interrupted write leaves: a checkpoint folder or resume point being written, and
    the temporary files of atomic writes. The last complete checkpoint stays the resume point."""
    for tmp in [*run_dir.glob("checkpoints/*.tmp"), *run_dir.rglob(".*.tmp")]:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def step_of(checkpoint: Path) -> int:
    """The step of a `step-N` checkpoint folder."""
    return int(checkpoint.name.split("-")[1])


def read_resume_point(run_dir: Path) -> tuple[int, dict, pretrained.ModelSource] | None:
    """A partial run's resume point: (step, optimizer/scheduler state, the model of its last
    complete checkpoint, with the id map it trains with); None when it has none."""
    resume_file = run_dir / "checkpoints" / "resume.pt"
    if resume_file.exists():
        try:  # tensors and plain data only: unpickling anything else could run code
            state = torch.load(resume_file, map_location="cpu", weights_only=True)
            step = state["step"]
            return step, state, pretrained.load_checkpoint(run_dir / "checkpoints" /
                                                           f"step-{step}")
        except UsageError:
            raise
        except Exception as e:  # damaged weights or optimizer state: out of our hands
            if isinstance(e, pickle.UnpicklingError) and "weights only" in str(e).lower():
                raise UsageError(f"cannot resume {run_dir}: {resume_file} holds objects other "
                                 "than tensors and plain data, refused (unpickling them could "
                                 "run code); delete it to train the run again from step 0"
                                 ) from None
            raise UsageError(f"cannot resume {run_dir}: its resume point is damaged "
                             f"({type(e).__name__}: {str(e).splitlines()[0][:120]}); delete "
                             f"{resume_file} to train the run again from step 0") from None
    return None


def save_resume_point(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                      scheduler: torch.optim.lr_scheduler.LambdaLR, run: RunSpec, run_dir: Path,
                      step: int, source: pretrained.ModelSource | None,
                      seconds: float | None = None) -> None:
    """The checkpoint of `step`, then `resume.pt` naming it: written only once the checkpoint
    folder is complete, so a resume never starts from half a checkpoint. `seconds`: the run's
    training time up to `step` (None: not known), so that a resumed run's `train_seconds`
    counts every start."""
    ckpt_dir = run_dir / "checkpoints"
    save_checkpoint(model, ckpt_dir / f"step-{step}", run, source)
    tmp = ckpt_dir / "resume.pt.tmp"
    try:
        with rundir.library_writes(tmp):
            torch.save({"step": step, "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        **({} if seconds is None else {"train_seconds": float(seconds)})}, tmp)
        stopping.fault_point("resume", step)
        tmp.replace(ckpt_dir / "resume.pt")
    except OSError:  # resume.pt still names the previous checkpoint: this one is no resume point
        tmp.unlink(missing_ok=True)
        shutil.rmtree(ckpt_dir / f"step-{step}", ignore_errors=True)
        raise
