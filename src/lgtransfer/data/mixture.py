"""Task groups: training batches drawn from several tasks, and fixed evaluation sets.

A group lists tasks with a role (main or aux), a training length range and a weight. The task at
position i of the group gets marker i (<A>, <B>, ...) around its prompt, because several tasks
share one input format (no-carry, carry-only and reverse add all read `a+b=`):

    [BOS] <C><C><C><C> 7584+329= <C><C><C><C> 08750 [EOS]

Only target tokens and the EOS are trained (for MQAR, only the answers). A training batch draws
each example's task by weight and its length uniformly in that task's range (arithmetic draws
the two operands' digit counts independently). Evaluation sets are a pure function of
(evaluation seed, task, length): identical for every model seed and every group the task is in.
Wherever the example space is large enough for it to mean something, evaluation prompts are kept
out of training.

A pretrained model reads its own token ids: a mixture given an `id_map` (`engine.from_pretrained`)
translates every batch it hands out, and nothing downstream changes.
"""

from __future__ import annotations

import itertools
import signal
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from lgtransfer.data.groups import GroupTask
from lgtransfer.errors import UsageError
from lgtransfer.tasks import TaskBatch, get_task
from lgtransfer.tasks import tokenizer as tok
from lgtransfer.tasks.base import concat_ragged

MARKER_REPEAT = 4
# Evaluation prompts are removed from training at lengths with at least this many distinct
# prompts per evaluation example; below it, training sees most of the space anyway (the paper's
# code filters from 8 digits up).
LEAK_FILTER_RATIO = 100
_HASH_BASE = np.uint64(0x9E3779B97F4A7C15)


@dataclass
class SeqBatch:
    """Model-ready sequences: `[BOS] markers prompt markers target [EOS]`, right-padded."""

    tokens: np.ndarray  # (B, T) int64
    loss_mask: np.ndarray  # (B, T) bool: token t is trained, i.e. predicted from position t-1
    seq_len: np.ndarray  # (B,)
    task_index: np.ndarray  # (B,) position of each example's task in the group
    length: np.ndarray  # (B,) task length of each example

    def __len__(self) -> int:
        return len(self.seq_len)

    @staticmethod
    def concat(batches: Sequence[SeqBatch]) -> SeqBatch:
        width = max(b.tokens.shape[1] for b in batches)

        def pad(a: np.ndarray, fill: int | bool) -> np.ndarray:
            return np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=fill)

        return SeqBatch(
            np.concatenate([pad(b.tokens, tok.PAD) for b in batches]),
            np.concatenate([pad(b.loss_mask, False) for b in batches]),
            np.concatenate([b.seq_len for b in batches]),
            np.concatenate([b.task_index for b in batches]),
            np.concatenate([b.length for b in batches]),
        )


def to_sequences(batch: TaskBatch, task_index: int) -> SeqBatch:
    """Wrap a task's examples with BOS, its markers and EOS; build the loss mask alongside."""
    n = len(batch)
    marker = np.full((n, MARKER_REPEAT), tok.marker_id(task_index))
    one, four, none = np.ones(n, np.int64), np.full(n, MARKER_REPEAT), np.zeros((n, 1), bool)
    layout = [  # (tokens, mask, lengths) of each segment, in order
        (np.full((n, 1), tok.BOS), none, one),
        (marker, np.zeros((n, MARKER_REPEAT), bool), four),
        (batch.prompt, np.zeros(batch.prompt.shape, bool), batch.prompt_len),
        (marker, np.zeros((n, MARKER_REPEAT), bool), four),
        (batch.target, batch.target_mask, batch.target_len),
        (np.full((n, 1), tok.EOS), ~none, one),
    ]
    tokens, seq_len = concat_ragged([(t, lens) for t, _, lens in layout])
    mask, _ = concat_ragged([(m.astype(np.int64), lens) for _, m, lens in layout], fill=0)
    return SeqBatch(tokens, mask.astype(bool), seq_len, np.full(n, task_index), batch.length)


def map_ids(batch: SeqBatch, id_map: np.ndarray | None) -> SeqBatch:
    """The batch in another model's token ids (`pretrained.build_id_map`); masks, lengths and
    layout unchanged. A -1 in the map marks a character that model cannot read as one token."""
    if id_map is None:
        return batch
    tokens = id_map[batch.tokens]
    if tokens.min() < 0:
        bad = tok.decode(np.unique(batch.tokens[tokens < 0]))
        raise UsageError(f"the pretrained tokenizer has no single token for {bad!r}")
    return replace(batch, tokens=tokens)


def prompt_hashes(batch: TaskBatch) -> np.ndarray:
    """(B,) uint64 hash of each prompt, independent of padding width."""
    width = batch.prompt.shape[1]
    valid = np.arange(width) < batch.prompt_len[:, None]
    ids = np.where(valid, batch.prompt + 1, 0).astype(np.uint64)
    powers = np.cumprod(np.full(width, _HASH_BASE, dtype=np.uint64))  # wraps mod 2**64
    return (ids * powers).sum(axis=1, dtype=np.uint64)


def contains(sorted_values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """(len(queries),) bool: which queries are in the sorted array (faster than np.isin here)."""
    at = np.searchsorted(sorted_values, queries).clip(max=len(sorted_values) - 1)
    return sorted_values[at] == queries


class Mixture:
    """A task group with its fixed evaluation sets."""

    def __init__(self, specs: Sequence[GroupTask], eval_n: int = 1024, eval_seed: int = 0,
                 id_map: np.ndarray | None = None):
        if not specs:
            raise UsageError("a task group needs at least one task")
        for spec in specs:
            spec.validate()
        if len({s.task for s in specs}) < len(specs):
            raise UsageError("a task appears twice in one group")
        if eval_n < 1:
            raise UsageError(f"eval.n must be at least 1, got {eval_n}")
        self.specs = list(specs)
        self.tasks = [get_task(s.task) for s in specs]
        self.eval_n, self.eval_seed = eval_n, eval_seed
        self.id_map = id_map  # our ids -> a pretrained model's ids (None: our own vocabulary)
        weights = np.array([s.weight for s in specs], dtype=float)
        self.weights = weights / weights.sum()
        self._eval_cache: dict[tuple[str, int], TaskBatch] = {}
        self._leaks: list[np.ndarray] = [self._leak_hashes(i) for i in range(len(specs))]

    def __getstate__(self) -> dict:
        """Pickled by task name (a spawned worker looks each task up, loading user task files
        first), so a task defined in a user's file travels too."""
        from lgtransfer.tasks.user import files_of

        state = dict(self.__dict__)
        state["tasks"] = [t.name for t in self.tasks]
        state["task_files"] = files_of(state["tasks"])
        return state

    def __setstate__(self, state: dict) -> None:
        from lgtransfer.tasks.user import load_files

        load_files(state.pop("task_files"))
        state["tasks"] = [get_task(n) for n in state["tasks"]]
        self.__dict__.update(state)

    def index(self, task: str) -> int:
        for i, spec in enumerate(self.specs):
            if spec.task == task:
                return i
        raise UsageError(f"task {task!r} is not in this group")

    # ------------------------------------------------------------------ training

    def train_batch(self, rng: np.random.Generator, size: int) -> SeqBatch:
        """`size` training sequences: task by weight, length uniform in its range."""
        counts = rng.multinomial(size, self.weights)
        parts = [
            to_sequences(self._train_examples(rng, i, int(c)), i)
            for i, c in enumerate(counts) if c > 0
        ]
        return map_ids(SeqBatch.concat(parts), self.id_map)

    def _train_examples(self, rng: np.random.Generator, i: int, count: int) -> TaskBatch:
        spec, task = self.specs[i], self.tasks[i]
        kept: list[TaskBatch] = []
        while count > 0:
            batch = task.train_batch(rng, count, spec.shortest, spec.max_length)
            if len(self._leaks[i]):
                batch = batch.select(~contains(self._leaks[i], prompt_hashes(batch)))
            kept.append(batch)
            count -= len(batch)
        return TaskBatch.concat(kept) if len(kept) > 1 else kept[0]

    def _leak_hashes(self, i: int) -> np.ndarray:
        spec, task = self.specs[i], self.tasks[i]
        lengths = [n for n in range(spec.shortest, spec.max_length + 1)
                   if task.space_size(n) >= LEAK_FILTER_RATIO * self.eval_n]
        if not lengths:
            return np.zeros(0, np.uint64)
        return np.unique(  # sorted, for `contains`
            np.concatenate([prompt_hashes(self.eval_examples(spec.task, n)) for n in lengths]))

    # ------------------------------------------------------------------ evaluation

    def eval_examples(self, task_name: str, length: int) -> TaskBatch:
        """The fixed evaluation examples of a task at one length (cached)."""
        key = (task_name, length)
        if key not in self._eval_cache:
            self._eval_cache[key] = fixed_eval_set(task_name, length, self.eval_n, self.eval_seed)
        return self._eval_cache[key]

    def eval_set(self, task_name: str, length: int) -> SeqBatch:
        return map_ids(to_sequences(self.eval_examples(task_name, length), self.index(task_name)),
                       self.id_map)


def step_batch(mixture: Mixture, seed: int, step: int, size: int) -> SeqBatch:
    """The training batch of one step: a pure function of (data seed, step)."""
    return mixture.train_batch(np.random.default_rng([seed, step]), size)


# The data-worker pool of training (`train.batch_stream`) runs these two. They live here, not in
# train.py, so that a worker process imports numpy only, never torch (seconds per worker).
_WORKER_MIXTURE: Mixture | None = None


def init_worker(mixture: Mixture) -> None:
    """A data worker ignores SIGINT / SIGTERM / SIGUSR2: Ctrl-C (and a cluster's signals) reach
    every process of the group, and the training process it serves stops at a step boundary and
    shuts it down."""
    global _WORKER_MIXTURE
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2):  # USR2: submitit's notice
        signal.signal(sig, signal.SIG_IGN)
    _WORKER_MIXTURE = mixture


def worker_batch(seed: int, step: int, size: int) -> SeqBatch:
    assert _WORKER_MIXTURE is not None
    return step_batch(_WORKER_MIXTURE, seed, step, size)


def fixed_eval_set(task_name: str, length: int, n: int, seed: int) -> TaskBatch:
    """n examples of exactly `length`, a pure function of (seed, task, length); no duplicate
    prompts unless the task has fewer than n distinct prompts at that length."""
    task = get_task(task_name)
    task.check_length(length)
    rng = np.random.default_rng([seed, zlib.crc32(task_name.encode()), length])
    batch = task.batch(rng, np.full(n, length))
    if task.space_size(length) < n:
        return batch
    for _ in range(1000):  # rejection: replace repeats until every prompt is distinct
        _, first = np.unique(prompt_hashes(batch), return_index=True)
        if len(first) == n:
            return batch
        fresh = task.batch(rng, np.full(n - len(first), length))
        batch = TaskBatch.concat([batch.select(np.sort(first)), fresh])
    raise UsageError(f"could not draw {n} distinct {task_name} examples of length {length}: "
                     "the task has fewer; declare its space_size, raise its min_length or lower "
                     "eval.n (`lgt tasks --check` finds this)")


# ----------------------------------------------------------------------------- evaluation lengths

# Past this width, an interval between training lengths is evaluated at 16 evenly spaced lengths
# instead of every integer (docs/paper.md §6), which keeps the length-ratio sweep's 256s affordable.
DENSE_WIDTH, SPARSE_POINTS = 64, 16


def length_grid(lo: int, hi: int, breakpoints: list[int]) -> list[int]:
    """Lengths lo..hi: every integer between consecutive breakpoints (training lengths) when
    they are at most DENSE_WIDTH apart, else 16 evenly spaced; breakpoints and the length just
    past each are always in."""
    points = sorted({lo, hi, *(b for b in breakpoints if lo < b < hi)})
    out = {lo, hi}
    for a, b in itertools.pairwise(points):
        if b - a <= DENSE_WIDTH:
            out.update(range(a, b + 1))
        else:
            out.update(int(round(x)) for x in np.linspace(a, b, SPARSE_POINTS))
            out.add(a + 1)
    return sorted(out)


def eval_lengths(mixture: Mixture, lengths: list[int] | None, max_length: int,
                 breakpoints: list[int] | None = None) -> dict[str, list[int]]:
    """Lengths to evaluate per task: the explicit list, else `length_grid` up to max_length."""
    out = {}
    for task in mixture.tasks:
        wanted = lengths or length_grid(task.min_length, max_length, breakpoints or [])
        out[task.name] = [n for n in wanted if task.min_length <= n <= task.max_length]
    return out
