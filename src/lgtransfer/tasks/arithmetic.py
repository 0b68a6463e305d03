"""Arithmetic tasks on numbers written least-significant digit first.

Encoding (a = 4857, b = 923; both operands reversed in the prompt, no leading zeros):

    reverse_add     7584+329=  ->  08750   4857 + 923 = 5780, reversed, zero-padded to length + 1
    no_carry        7584+329=  ->  07740   (a_i + b_i) mod 10, then zeros up to length + 1
    carry_only      7584+329=  ->  01010   the carry *into* digit i; digit 0 is always 0
    reverse_sub     7584-329=  ->  43930   a - b, operands swapped first if a < b
    reverse_sub_signed                     a - b as the authors' earlier code wrote it (no swap):
                    8421-4573= ->  6052-   1248 - 3754 < 0: |a - b| reversed, '-', zeros to L + 1
                    4573-8421= ->  60520   3754 - 1248 >= 0: as reverse_sub
    copy_first_op   7584+329=  ->  75840   control: a as written, padded to length + 1
    cot_mul         7584*329=  ->  17541+04179+0031734=1103844
                    partial products a*b_i*10^i reversed (so i leading zeros), then the product

Length is the digit count of the longer operand (of `a` for cot_mul, where b has 3 digits).
An evaluation example at length n has both operands exactly n digits; training draws the two
digit counts independently, as the paper's code does. Numbers are digit arrays (B, W) so that a
whole batch is added, subtracted or multiplied with one loop over columns.
"""

from __future__ import annotations

import numpy as np

from lgtransfer.tasks import tokenizer as tok
from lgtransfer.tasks.base import (
    Ragged,
    Task,
    TaskBatch,
    concat_ragged,
    const,
    count_as_float,
    register,
    valid_mask,
)

D0 = tok.char_id("0")


def random_operand(rng: np.random.Generator, lengths: np.ndarray, width: int) -> np.ndarray:
    """(B, width) digits, least significant first: lengths[i] digits, top one nonzero, then 0s."""
    digits = rng.integers(0, 10, (len(lengths), width))
    digits[~valid_mask(lengths, width)] = 0
    digits[np.arange(len(lengths)), lengths - 1] = rng.integers(1, 10, len(lengths))
    return digits


def number_length(digits: np.ndarray) -> np.ndarray:
    """Digits each number needs when written without leading zeros (at least 1, for 0)."""
    nonzero = digits != 0
    top = digits.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)
    return np.where(nonzero.any(axis=1), top, 1)


def add_with_carries(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum digits (B, W+1) and the carry into each digit (B, W+1) of a + b."""
    batch, width = a.shape
    total = np.zeros((batch, width + 1), dtype=np.int64)
    carry_in = np.zeros((batch, width + 1), dtype=np.int64)
    carry = np.zeros(batch, dtype=np.int64)
    for i in range(width):
        s = a[:, i] + b[:, i] + carry
        total[:, i] = s % 10
        carry = s // 10
        carry_in[:, i + 1] = carry
    total[:, width] = carry
    return total, carry_in


def subtract(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Digits of a - b for a >= b, same width."""
    out = np.zeros_like(a)
    borrow = np.zeros(len(a), dtype=np.int64)
    for i in range(a.shape[1]):
        d = a[:, i] - b[:, i] - borrow
        borrow = (d < 0).astype(np.int64)
        out[:, i] = d + 10 * borrow
    return out


def less_than(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(B,) bool: a < b, comparing from the most significant differing digit."""
    diff = a - b
    differs = diff != 0
    top = a.shape[1] - 1 - np.argmax(differs[:, ::-1], axis=1)
    return differs.any(axis=1) & (diff[np.arange(len(a)), top] < 0)


def times_digit(a: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Digits (B, W+1) of a * d for a single digit d per row."""
    return normalized(np.pad(a * d[:, None], ((0, 0), (0, 1))))


def normalized(columns: np.ndarray) -> np.ndarray:
    """Digits of the number whose column i holds columns[:, i] * 10**i (carries propagated)."""
    out = columns.copy()
    for i in range(out.shape[1] - 1):
        out[:, i + 1] += out[:, i] // 10
        out[:, i] %= 10
    return out


def shifted(digits: np.ndarray, places: int, width: int) -> np.ndarray:
    """digits * 10**places, as a (B, width) array."""
    out = np.zeros((len(digits), width), dtype=np.int64)
    out[:, places : places + digits.shape[1]] = digits[:, : width - places]
    return out


def _as_tokens(digits: np.ndarray, lengths: np.ndarray) -> Ragged:
    return digits + D0, lengths


class _TwoOperandTask(Task):
    """`a OP b =` with a and b reversed; subclasses say what the target is."""

    family = "arithmetic"
    length_unit = "digits of the longer operand"
    max_length = 320
    op = "+"
    ordered = False  # swap the operands where a < b, so the prompt always shows a >= b

    def solve(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Target digits (B, W+1) for operands of width W; read up to length + 1."""
        raise NotImplementedError

    def target_tokens(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Target token ids (B, W+1): the solved digits as characters."""
        return self.solve(a, b) + D0

    def space_size(self, length: int) -> float:
        return count_as_float((9 * 10 ** (length - 1)) ** 2)

    def batch(self, rng: np.random.Generator, lengths: np.ndarray) -> TaskBatch:
        return self._make(rng, lengths, lengths)

    def train_batch(self, rng: np.random.Generator, count: int, lo: int, hi: int) -> TaskBatch:
        return self._make(rng, rng.integers(lo, hi + 1, count), rng.integers(lo, hi + 1, count))

    def _make(self, rng: np.random.Generator, len_a: np.ndarray, len_b: np.ndarray) -> TaskBatch:
        count = len(len_a)
        width = int(max(len_a.max(initial=1), len_b.max(initial=1)))
        a, b = random_operand(rng, len_a, width), random_operand(rng, len_b, width)
        if self.ordered:  # operands swapped where needed so that the result is >= 0
            swap = less_than(a, b)
            a[swap], b[swap] = b[swap], a[swap].copy()
            len_a, len_b = np.where(swap, len_b, len_a), np.where(swap, len_a, len_b)
        length = np.maximum(len_a, len_b)
        prompt, prompt_len = concat_ragged([
            _as_tokens(a, len_a), const(count, tok.char_id(self.op)),
            _as_tokens(b, len_b), const(count, tok.char_id("=")),
        ])
        target = self.target_tokens(a, b)
        target_len = length + 1
        target_mask = valid_mask(target_len, target.shape[1])
        target[~target_mask] = tok.PAD  # rows shorter than the batch's widest: PAD, not '0'
        return TaskBatch(self.name, length, prompt, prompt_len, target, target_len, target_mask)


@register
class ReverseAdd(_TwoOperandTask):
    name = "reverse_add"

    def solve(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return add_with_carries(a, b)[0]


@register
class NoCarry(_TwoOperandTask):
    name = "no_carry"

    def solve(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.pad((a + b) % 10, ((0, 0), (0, 1)))


@register
class CarryOnly(_TwoOperandTask):
    name = "carry_only"

    def solve(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return add_with_carries(a, b)[1]


@register
class ReverseSub(_TwoOperandTask):
    """Subtraction with a non-negative result: the operands are swapped where a < b (our
    default; docs/paper.md §3: the paper leaves its choice open)."""

    name = "reverse_sub"
    op = "-"
    ordered = True

    def space_size(self, length: int) -> float:
        m = 9 * 10 ** (length - 1)  # the prompt always shows a >= b: unordered pairs
        return count_as_float(m * (m + 1) // 2)

    def solve(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.pad(subtract(a, b), ((0, 0), (0, 1)))


@register
class ReverseSubSigned(_TwoOperandTask):
    """Subtraction as the authors' earlier public code wrote it (`get_reverse_sub` in
    transformer_arithmetic_v2): no swap, so about half the results are negative. A negative
    result is |a - b| reversed without padding, then `-`, then zeros up to length + 1
    characters: `899-999=` (998 - 999) -> `1-00`. A non-negative one is written as in
    `reverse_sub`."""

    name = "reverse_sub_signed"
    op = "-"

    def target_tokens(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        negative = less_than(a, b)
        big = np.where(negative[:, None], b, a)
        small = np.where(negative[:, None], a, b)
        magnitude = subtract(big, small)
        out = np.pad(magnitude, ((0, 0), (0, 1))) + D0  # digits above |a - b|'s are zeros
        rows = np.flatnonzero(negative)
        out[rows, number_length(magnitude)[rows]] = tok.char_id("-")
        return out


@register
class CopyFirstOp(_TwoOperandTask):
    name = "copy_first_op"

    def solve(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.pad(a, ((0, 0), (0, 1)))


@register
class CotMultiply(Task):
    """n-digit by 3-digit multiplication with its partial products written out first."""

    name = "cot_mul"
    family = "arithmetic"
    length_unit = "digits of the first operand (the second has 3)"
    max_length = 200
    b_digits = 3

    def space_size(self, length: int) -> float:
        return count_as_float(9 * 10 ** (length - 1) * 900)

    def batch(self, rng: np.random.Generator, lengths: np.ndarray) -> TaskBatch:
        count, width = len(lengths), int(lengths.max(initial=1))
        a = random_operand(rng, lengths, width)
        b = random_operand(rng, np.full(count, self.b_digits), self.b_digits)
        out_width = width + self.b_digits + 1
        parts: list[Ragged] = []
        partials = [shifted(times_digit(a, b[:, i]), i, out_width) for i in range(self.b_digits)]
        for i, partial in enumerate(partials):  # a * b_i * 10^i, reversed: i zeros, then a * b_i
            parts += [_as_tokens(partial, number_length(partial[:, i:]) + i),
                      const(count, tok.char_id("+" if i < self.b_digits - 1 else "="))]
        product = normalized(sum(partials))
        parts.append(_as_tokens(product, number_length(product)))
        target, target_len = concat_ragged(parts)
        prompt, prompt_len = concat_ragged([
            _as_tokens(a, lengths), const(count, tok.char_id("*")),
            _as_tokens(b, np.full(count, self.b_digits)), const(count, tok.char_id("=")),
        ])
        return TaskBatch(self.name, lengths.copy(), prompt, prompt_len, target, target_len,
                         valid_mask(target_len, target.shape[1]))
