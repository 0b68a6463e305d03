"""`lgt generate`: real greedy generation from a run's checkpoint, one dict per example.

The checkpoint's `lgt_run.json` says which tasks the run trained (generation is offered for
those only), which user task files it loaded, and, for a run from a pretrained model, the id map
between our vocabulary and the model's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lgtransfer.config.files import task_files
from lgtransfer.data.mixture import map_ids, to_sequences
from lgtransfer.engine import from_pretrained as pretrained
from lgtransfer.engine.evaluate import greedy_generate
from lgtransfer.errors import UsageError
from lgtransfer.runtime import rundir
from lgtransfer.tasks import get_task
from lgtransfer.tasks import tokenizer as tok


def generate(ckpt: Path, task_name: str, length: int, count: int, seed: int,
             trust_code: bool = False) -> list[dict]:
    """`count` examples of `task_name` at `length` (drawn with `seed`), each with the model's
    greedy prediction and whether it is exactly the target. Task files the run names are
    imported only with `trust_code` (`config.files.task_files`)."""
    if not (ckpt / "lgt_run.json").is_file():
        raise UsageError(f"no lgtransfer checkpoint at {ckpt} (lgt_run.json missing)")
    try:
        meta = rundir.read_json(ckpt / "lgt_run.json")
        group = meta["group"]
    except (ValueError, KeyError):
        raise UsageError(f"{ckpt / 'lgt_run.json'} is not a valid run description") from None
    # the run's own task files, if it had any: code, so only when the user trusts it
    task_files(meta.get("tasks_from") or [], ckpt, str(ckpt / "lgt_run.json"), trust_code)
    task = get_task(task_name)
    task.check_length(length)
    if task_name not in group:
        raise UsageError(f"task {task_name!r} was not trained in this run ({', '.join(group)})")
    try:
        source = pretrained.load_checkpoint(ckpt)  # with the id map of a pretrained model
    except (UsageError, MemoryError):
        raise
    except Exception as e:  # damaged weights, or a pickle (refused: it could run code)
        first = (str(e).splitlines() or [""])[0][:160]
        raise UsageError(f"cannot load the model in {ckpt} ({type(e).__name__}: {first}): "
                         "damaged, or weights that are not plain tensors (a pickle that could "
                         "run code is refused)") from None
    examples = task.batch(np.random.default_rng(seed), np.full(count, length))
    seqs = map_ids(to_sequences(examples, group.index(task_name)), source.id_map)
    generated, correct = greedy_generate(source.model, seqs, torch.device("cpu"), source.id_map)
    eos = tok.EOS if source.id_map is None else int(source.id_map[tok.EOS])
    return [{"prompt": ex.prompt,
             "prediction": pretrained.decode([i for i in ids if i != eos], source.id_map),
             "target": ex.target, "correct": bool(ok)}
            for ex, ids, ok in zip(examples.examples(), generated, correct, strict=True)]
