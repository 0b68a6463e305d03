"""The simple form of a task: one Python function that makes one example as text.

    from lgtransfer.tasks import simple_task

    @simple_task("sort_digits", family="string", length_unit="digits", max_length=64)
    def sort_digits(rng, length):
        s = "".join(str(d) for d in rng.integers(0, 10, length))
        return s + "=", "".join(sorted(s))

`example(rng, length)` returns `(prompt, target)`, or `(prompt, target, loss_mask)` with one 0/1
per target character (0: the character is given to the model, neither trained nor scored, as
MQAR's queries). It must make an example of exactly `length` for every length in
[min_length, max_length], draw all its randomness from `rng` (a numpy Generator), and use only
characters the tokenizer has (printable ASCII; `[k]` for maze node k). lgtransfer adds BOS, EOS
and the task markers. The decorator wraps the function in a `Task` and registers it under
`name`; `lgt tasks --check FILE` validates it. A task made this way is slower than a vectorized
one (a Python call and an encode per example; docs/tasks.md has the measured ratio),
which matters only when the data is the bottleneck: subclass `Task` then.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from lgtransfer.errors import UsageError
from lgtransfer.tasks import tokenizer as tok
from lgtransfer.tasks.base import Task, TaskBatch, pad_rows, register

ExampleFn = Callable[[np.random.Generator, int], tuple[Any, ...]]


class SimpleTask(Task):
    """A `Task` made of a per-example function (`simple_task`); batches are built row by row."""

    def __init__(self, fn: ExampleFn, space: Callable[[int], float] | None = None) -> None:
        self.fn, self.space = fn, space

    def batch(self, rng: np.random.Generator, lengths: np.ndarray) -> TaskBatch:
        prompts, targets, masks = [], [], []
        for length in lengths:
            prompt, target, mask = self.encoded(rng, int(length))
            prompts.append(prompt)
            targets.append(target)
            masks.append(mask)
        p, p_len = pad_rows(prompts)
        t, t_len = pad_rows(targets)
        m = np.zeros(t.shape, dtype=bool)
        for i, mask in enumerate(masks):
            m[i, : len(mask)] = mask
        return TaskBatch(self.name, np.asarray(lengths, dtype=np.int64), p, p_len, t, t_len, m)

    def encoded(self, rng: np.random.Generator, length: int) -> tuple[list[int], list[int],
                                                                     list[bool]]:
        """One example as ids: (prompt, target, loss mask), checked as it is made."""
        made = self.fn(rng, length)
        if not isinstance(made, tuple) or len(made) not in (2, 3):
            raise UsageError(f"task {self.name!r}: example(rng, {length}) must return (prompt, "
                             f"target) or (prompt, target, loss_mask), got {type(made).__name__}")
        prompt, target = (self._ids(s, what) for s, what in zip(made, ("prompt", "target"),
                                                                   strict=False))
        if not target:
            raise UsageError(f"task {self.name!r}: empty target at length {length}")
        mask = [True] * len(target) if len(made) == 2 else [bool(v) for v in made[2]]
        if len(mask) != len(target):
            raise UsageError(f"task {self.name!r}: loss mask of {len(mask)} entries for a target "
                             f"of {len(target)} tokens at length {length}")
        return prompt, target, mask

    def _ids(self, text: Any, what: str) -> list[int]:
        if not isinstance(text, str):
            raise UsageError(f"task {self.name!r}: the {what} must be a str, got "
                             f"{type(text).__name__}")
        try:
            ids = tok.encode(text)
        except (KeyError, ValueError):
            ids = None
        if ids is None or any(i >= tok.VOCAB_SIZE or i == tok.UNK for i in ids):
            bad = sorted({c for c in text if not (" " <= c <= "~")})
            raise UsageError(f"task {self.name!r}: the {what} {text!r} has characters the "
                             f"vocabulary lacks "
                             f"({''.join(bad) or 'see lgtransfer.tasks.tokenizer'}): "
                             "printable ASCII and [k] for maze nodes only")
        return ids

    def space_size(self, length: int) -> float:
        return self.space(length) if self.space is not None else math.inf


def simple_task(name: str, *, family: str = "user", length_unit: str = "characters",
                min_length: int = 1, max_length: int = 64,
                space_size: Callable[[int], float] | None = None
                ) -> Callable[[ExampleFn], ExampleFn]:
    """Register `example(rng, length)` as the task `name` (see the module's docstring).
    `space_size(length)`, when given, is how many distinct prompts exist at a length, so that
    `--check` can tell when an evaluation set would be larger than the task itself."""
    def wrap(fn: ExampleFn) -> ExampleFn:
        cls = type(f"SimpleTask_{name}", (SimpleTask,), {
            "name": name, "family": family, "length_unit": length_unit,
            "min_length": min_length, "max_length": max_length,
            "__init__": lambda self: SimpleTask.__init__(self, fn, space_size),
            "__doc__": fn.__doc__})
        register(cls)
        return fn
    return wrap
