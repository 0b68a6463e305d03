"""What a task is, the registry of tasks, and the ragged-array helpers tasks build batches with.

A task turns random numbers into (prompt, target) pairs of token ids. Tasks generate whole
batches at once with numpy, because training draws a fresh batch every step and the data must
never be the bottleneck; a single example is a batch of one. Everything a task produces is plain
token ids of `lgtransfer.tasks.tokenizer` without BOS, EOS or task markers: `mixture.py` adds those.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lgtransfer.errors import UsageError
from lgtransfer.tasks import tokenizer as tok


@dataclass(frozen=True)
class Example:
    """One example as text, the form `lgt sample` prints."""

    task: str
    length: int
    prompt: str
    target: str
    loss_mask: list[int] | None  # per target token; None when every target token is trained

    def as_dict(self) -> dict:
        d = {"task": self.task, "length": self.length, "prompt": self.prompt, "target": self.target}
        if self.loss_mask is not None:
            d["loss_mask"] = self.loss_mask
        return d


@dataclass
class TaskBatch:
    """A batch of one task's examples as right-padded id arrays (B rows)."""

    task: str
    length: np.ndarray  # (B,) the task length of each example
    prompt: np.ndarray  # (B, Wp) ids, PAD past prompt_len
    prompt_len: np.ndarray  # (B,)
    target: np.ndarray  # (B, Wt) ids, PAD past target_len
    target_len: np.ndarray  # (B,)
    target_mask: np.ndarray  # (B, Wt) bool: target tokens that are trained and scored

    def __len__(self) -> int:
        return len(self.length)

    def select(self, rows: np.ndarray) -> TaskBatch:
        """The examples at `rows` (indices or a boolean mask), in that order."""
        return TaskBatch(
            self.task, self.length[rows], self.prompt[rows], self.prompt_len[rows],
            self.target[rows], self.target_len[rows], self.target_mask[rows],
        )

    @staticmethod
    def concat(batches: Sequence[TaskBatch]) -> TaskBatch:
        """Batches of the same task stacked, re-padded to the widest."""
        return TaskBatch(
            batches[0].task,
            np.concatenate([b.length for b in batches]),
            _stack_padded([b.prompt for b in batches], tok.PAD),
            np.concatenate([b.prompt_len for b in batches]),
            _stack_padded([b.target for b in batches], tok.PAD),
            np.concatenate([b.target_len for b in batches]),
            _stack_padded([b.target_mask for b in batches], False),
        )

    def examples(self) -> list[Example]:
        out = []
        for i in range(len(self)):
            t_len = int(self.target_len[i])
            mask = self.target_mask[i, :t_len]
            out.append(Example(
                task=self.task,
                length=int(self.length[i]),
                prompt=tok.decode(self.prompt[i, : self.prompt_len[i]]),
                target=tok.decode(self.target[i, :t_len]),
                loss_mask=None if mask.all() else mask.astype(int).tolist(),
            ))
        return out


class Task(ABC):
    """A task: its family, what its length counts, its length limits, and its generator."""

    name: ClassVar[str]
    family: ClassVar[str]  # "arithmetic" | "string" | "maze"
    length_unit: ClassVar[str]  # what `length` counts, in words
    min_length: ClassVar[int] = 1
    max_length: ClassVar[int]

    @abstractmethod
    def batch(self, rng: np.random.Generator, lengths: np.ndarray) -> TaskBatch:
        """One example per entry of `lengths`, each exactly that length (evaluation-style)."""

    def train_batch(self, rng: np.random.Generator, count: int, lo: int, hi: int) -> TaskBatch:
        """`count` training examples with lengths uniform in [lo, hi]."""
        return self.batch(rng, rng.integers(lo, hi + 1, count))

    def space_size(self, length: int) -> float:
        """How many distinct prompts exist at `length` (math.inf when astronomically many)."""
        return math.inf

    def check_length(self, length: int) -> None:
        if not self.min_length <= length <= self.max_length:
            raise UsageError(
                f"task {self.name!r} takes lengths {self.min_length}..{self.max_length} "
                f"({self.length_unit}), got {length}"
            )

    def sample(self, rng: np.random.Generator, length: int, count: int = 1) -> list[Example]:
        """`count` examples of exactly `length`, as text."""
        self.check_length(length)
        return self.batch(rng, np.full(count, length, dtype=np.int64)).examples()


# ----------------------------------------------------------------------------- registry

TASKS: dict[str, Task] = {}


def register(cls: type[Task]) -> type[Task]:
    """Class decorator: make a task available by its `name`."""
    if cls.name in TASKS:
        raise ValueError(f"task {cls.name!r} registered twice")
    TASKS[cls.name] = cls()
    return cls


# Called with no arguments when a name is not registered, before giving up: `tasks.user` adds
# the loader of installed packages' entry points, so their tasks load on first use.
ON_MISS: list[Callable[[], object]] = []


def get_task(name: str) -> Task:
    """The task registered as `name` (or by an installed package, loaded on the first miss)."""
    if name not in TASKS:
        for hook in ON_MISS:
            hook()
    try:
        return TASKS[name]
    except KeyError:
        known = ", ".join(sorted(TASKS))
        raise UsageError(f"unknown task {name!r}; known tasks: {known}") from None


# ----------------------------------------------------------------------------- ragged helpers

Ragged = tuple[np.ndarray, np.ndarray]  # (values (B, W), lengths (B,)): row i is values[i, :len[i]]


def const(count: int, token: int) -> Ragged:
    """A one-token column, for separators such as `+` and `=`."""
    return np.full((count, 1), token, dtype=np.int64), np.ones(count, dtype=np.int64)


def concat_ragged(parts: Sequence[Ragged], fill: int = tok.PAD) -> Ragged:
    """Row-wise concatenation of ragged parts, re-packed to the left and padded with `fill`."""
    values = np.concatenate([v for v, _ in parts], axis=1)
    keep = np.concatenate([np.arange(v.shape[1]) < n[:, None] for v, n in parts], axis=1)
    lengths = keep.sum(axis=1)
    out = np.full((len(values), int(lengths.max(initial=0))), fill, dtype=values.dtype)
    dest = np.cumsum(keep, axis=1) - 1  # where each kept entry lands in its row
    rows = np.broadcast_to(np.arange(len(values))[:, None], keep.shape)
    out[rows[keep], dest[keep]] = values[keep]
    return out, lengths


def pad_rows(rows: Sequence[Sequence[int]], fill: int = tok.PAD) -> Ragged:
    """Python lists of ids as a right-padded array."""
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    out = np.full((len(rows), int(lengths.max(initial=0))), fill, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out, lengths


def valid_mask(lengths: np.ndarray, width: int) -> np.ndarray:
    """(B, width) bool: True on the first lengths[i] entries of row i."""
    return np.arange(width) < lengths[:, None]


def by_length(lengths: np.ndarray, make: Callable[[int, int], TaskBatch]) -> TaskBatch:
    """Build a batch group by group of equal length with `make(length, count)`, rows in order."""
    groups = [(n, np.flatnonzero(lengths == n)) for n in np.unique(lengths)]
    merged = TaskBatch.concat([make(int(n), len(idx)) for n, idx in groups])
    order = np.empty(len(lengths), dtype=np.int64)
    order[np.concatenate([idx for _, idx in groups])] = np.arange(len(lengths))
    return merged.select(order)


def _stack_padded(arrays: Sequence[np.ndarray], fill: int | bool) -> np.ndarray:
    width = max(a.shape[1] for a in arrays)
    out = np.full((sum(len(a) for a in arrays), width), fill, dtype=arrays[0].dtype)
    start = 0
    for a in arrays:
        out[start : start + len(a), : a.shape[1]] = a
        start += len(a)
    return out


def count_as_float(count: int) -> float:
    """An exact (Python int) count as a float, infinite where a float cannot hold it (a 256-digit
    operand pair has 10**511 values)."""
    return float(count) if count.bit_length() < 1000 else math.inf
