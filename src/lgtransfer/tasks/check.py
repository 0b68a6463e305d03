"""`lgt tasks --check FILE`: what is wrong with a user's tasks, one line each, before any run.

Each task of the file is made at every length from its shortest up to 16 longer (and at its
longest), a few examples each, and checked for: determinism (the same seed gives the same
batch), exactly the asked length, ids the vocabulary has, a non-empty target, a loss mask the
shape of the target, and, at its shorter lengths, enough distinct prompts for an evaluation set
of `eval_n` (or a declared `space_size`). Loading the file also catches names that collide with
a built-in task.
"""

from __future__ import annotations

import numpy as np

from lgtransfer.errors import UsageError
from lgtransfer.tasks import tokenizer as tok
from lgtransfer.tasks.base import Task, TaskBatch
from lgtransfer.tasks.user import load_file

PER_LENGTH = 4  # examples made per length
SPACE_LENGTHS = 8  # lengths from the shortest at which the evaluation space is measured


def check_file(path: str, eval_n: int = 1024) -> tuple[list[str], list[str]]:
    """(the file's task names, its problems as lines); loading errors are a problem too."""
    from lgtransfer.tasks import get_task

    try:
        names = load_file(path)
    except UsageError as e:
        return [], [str(e)]
    if not names:
        return [], [f"{path}: defines no task (decorate a Task subclass with @register, or a "
                    "function with @simple_task)"]
    return names, [p for n in names for p in check_task(get_task(n), eval_n)]


def check_task(task: Task, eval_n: int = 1024) -> list[str]:
    lo, hi = task.min_length, task.max_length
    problems: list[str] = []
    for length in sorted({*range(lo, min(hi, lo + 16) + 1), hi}):
        problem = _check_length(task, length)
        if problem:
            problems.append(f"task {task.name!r}: {problem}")
            break  # the first bad length says enough
    if not problems:
        for length in range(lo, min(hi, lo + SPACE_LENGTHS - 1) + 1):
            problem = _check_space(task, length, eval_n)
            if problem:
                problems.append(f"task {task.name!r}: {problem}")
                break
    return problems


def _make(task: Task, length: int, seed: int = 0, count: int = PER_LENGTH) -> TaskBatch:
    return task.batch(np.random.default_rng(seed), np.full(count, length, dtype=np.int64))


def _check_length(task: Task, length: int) -> str | None:
    try:
        a, b = _make(task, length), _make(task, length)
    except UsageError as e:
        return str(e).removeprefix(f"task {task.name!r}: ")
    except Exception as e:  # the user's code
        return f"cannot make length {length}: {type(e).__name__}: {e}"
    if not all(np.array_equal(x, y) for x, y in zip(_arrays(a), _arrays(b), strict=True)):
        return (f"not deterministic for a seed: two batches from seed 0 at length {length} "
                "differ (draw every random number from the rng argument)")
    if len(a) != PER_LENGTH or not (a.length == length).all():
        return f"asked for {PER_LENGTH} examples of length {length}, made {a.length.tolist()}"
    if a.target_mask.shape != a.target.shape:
        return (f"loss mask of shape {a.target_mask.shape} for targets of shape "
                f"{a.target.shape} at length {length}")
    if (a.target_len == 0).any():
        return f"empty target at length {length}"
    for what, ids, n in (("prompt", a.prompt, a.prompt_len), ("target", a.target, a.target_len)):
        valid = np.arange(ids.shape[1]) < n[:, None]
        bad = valid & ((ids < tok.CHAR_OFFSET + 32) | (ids >= tok.VOCAB_SIZE))
        if bad.any():
            return (f"the {what} at length {length} has ids the vocabulary lacks as text "
                    f"({sorted(set(ids[bad].tolist()))[:5]}): printable characters and maze "
                    "nodes only")
    return None


def _check_space(task: Task, length: int, eval_n: int) -> str | None:
    declared = task.space_size(length)
    if declared < eval_n:
        return None  # declared small: the evaluation set is then all of it, repeats allowed
    try:
        prompts = _make(task, length, seed=1, count=4 * eval_n)
    except Exception as e:  # noqa: BLE001 (reported by the length check already)
        return f"cannot make length {length}: {type(e).__name__}: {e}"
    rows = {tuple(p[:n]) for p, n in zip(prompts.prompt.tolist(), prompts.prompt_len, strict=True)}
    if len(rows) < eval_n:
        return (f"an evaluation set of {eval_n} examples is larger than the task at length "
                f"{length}: {len(rows)} distinct prompts in {4 * eval_n} draws; declare its "
                "space_size, raise its min_length or lower eval.n")
    return None


def _arrays(b: TaskBatch) -> list[np.ndarray]:
    return [b.length, b.prompt, b.prompt_len, b.target, b.target_len, b.target_mask]
