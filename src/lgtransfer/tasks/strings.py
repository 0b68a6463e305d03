"""String tasks over the 52 letters a-z and A-Z, drawn uniformly.

Encoding (s = qRtxa, length = number of characters of s):

    copy                qRtxa=  ->  qRtxa
    reverse             qRtxa=  ->  axtRq
    capitalize          qRtxa=  ->  QrTXA   (swap case)
    capitalize_reverse  qRtxa=  ->  AXTrQ
    mqar                qRtxa=  ->  Rtxa    k = ceil(length / 4) queries, each a character that
                                            occurs exactly once in s and not at its end, in random
                                            order, each followed by the character after it in s.

MQAR's query characters are teacher-forced (loss mask 0); only its answers are trained and scored.
Each answer is an induction-style look-up (find the query, read the next character), the same
look-up copying needs, which is why MQAR is the auxiliary task for copy.
"""

from __future__ import annotations

import math

import numpy as np

from lgtransfer.tasks import tokenizer as tok
from lgtransfer.tasks.base import (
    Task,
    TaskBatch,
    by_length,
    count_as_float,
    register,
    valid_mask,
)

LETTERS = np.array([tok.char_id(c) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"])
CASE_SHIFT = tok.char_id("a") - tok.char_id("A")  # 32
EQUALS = tok.char_id("=")


def random_strings(rng: np.random.Generator, lengths: np.ndarray) -> np.ndarray:
    """(B, max length) letter ids, PAD past each row's length."""
    width = int(lengths.max(initial=1))
    s = LETTERS[rng.integers(0, len(LETTERS), (len(lengths), width))]
    s[~valid_mask(lengths, width)] = tok.PAD
    return s


def reversed_rows(s: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Each row's first lengths[i] entries reversed; padding stays at the end."""
    col = np.arange(s.shape[1])
    src = np.clip(lengths[:, None] - 1 - col, 0, None)
    out = np.take_along_axis(s, src, axis=1)
    out[~valid_mask(lengths, s.shape[1])] = tok.PAD
    return out


def swapped_case(s: np.ndarray) -> np.ndarray:
    upper = s < tok.char_id("a")
    return np.where(s == tok.PAD, s, np.where(upper, s + CASE_SHIFT, s - CASE_SHIFT))


class _StringTask(Task):
    """`s=` -> f(s) for a character-wise transformation f."""

    family = "string"
    length_unit = "characters of the input string"
    max_length = 500

    def transform(self, s: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def space_size(self, length: int) -> float:
        return count_as_float(len(LETTERS) ** length)

    def batch(self, rng: np.random.Generator, lengths: np.ndarray) -> TaskBatch:
        s = random_strings(rng, lengths)
        prompt = np.pad(s, ((0, 0), (0, 1)), constant_values=tok.PAD)
        prompt[np.arange(len(s)), lengths] = EQUALS
        target = self.transform(s, lengths)
        return TaskBatch(self.name, lengths.copy(), prompt, lengths + 1, target, lengths.copy(),
                         valid_mask(lengths, target.shape[1]))


@register
class Copy(_StringTask):
    name = "copy"

    def transform(self, s: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return s.copy()


@register
class Reverse(_StringTask):
    name = "reverse"

    def transform(self, s: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return reversed_rows(s, lengths)


@register
class Capitalize(_StringTask):
    name = "capitalize"

    def transform(self, s: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return swapped_case(s)


@register
class CapitalizeReverse(_StringTask):
    name = "capitalize_reverse"

    def transform(self, s: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return swapped_case(reversed_rows(s, lengths))


@register
class MultiQueryRecall(Task):
    """Multi-query associative recall over a random string (see the module docstring)."""

    name = "mqar"
    family = "string"
    length_unit = "characters of the input string"
    min_length = 2
    # Past 64 letters a string rarely has ceil(n/4) characters that occur exactly once.
    max_length = 64

    @staticmethod
    def n_queries(length: int) -> int:
        return math.ceil(length / 4)

    def space_size(self, length: int) -> float:
        # Strings with too few askable characters never occur: at length 2 those whose letters
        # repeat, at 3 those starting with a doubled letter. Past 3, 52**L (over 7 million) serves.
        return count_as_float({2: 52 * 51, 3: 52**3 - 52**2}.get(length, len(LETTERS) ** length))

    def batch(self, rng: np.random.Generator, lengths: np.ndarray) -> TaskBatch:
        return by_length(lengths, lambda n, count: self._fixed_length(rng, n, count))

    def _fixed_length(self, rng: np.random.Generator, n: int, count: int) -> TaskBatch:
        k = self.n_queries(n)
        letters = np.empty((count, n), dtype=np.int64)
        usable = np.empty((count, n), dtype=bool)
        todo = np.arange(count)
        while len(todo):  # draw again every string with fewer than k usable characters
            s = rng.integers(0, len(LETTERS), (len(todo), n))
            counts = (s[:, :, None] == np.arange(len(LETTERS))).sum(axis=1)  # (B, 52)
            once = np.take_along_axis(counts, s, axis=1) == 1
            once[:, -1] = False  # the last character has no successor
            letters[todo], usable[todo] = s, once
            todo = todo[once.sum(axis=1) < k]
        keys = np.where(usable, rng.random((count, n)), 2.0)
        where = np.argsort(keys, axis=1)[:, :k]  # k usable positions in random order
        pairs = np.stack([np.take_along_axis(letters, where, 1),
                          np.take_along_axis(letters, where + 1, 1)], axis=2)  # (B, k, 2)
        target = LETTERS[pairs.reshape(count, 2 * k)]
        mask = np.tile([False, True], (count, k))
        prompt = np.concatenate([LETTERS[letters], np.full((count, 1), EQUALS)], axis=1)
        return TaskBatch(self.name, np.full(count, n), prompt, np.full(count, n + 1),
                         target, np.full(count, 2 * k), mask)
