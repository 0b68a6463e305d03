"""Task groups: sequence layout (BOS, markers, EOS, loss mask), task proportions and lengths of
training batches, fixed evaluation sets, the leak filter, and determinism."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import reference as ref

from lgtransfer.data.groups import GroupTask
from lgtransfer.data.mixture import (
    LEAK_FILTER_RATIO,
    MARKER_REPEAT,
    Mixture,
    SeqBatch,
    fixed_eval_set,
)
from lgtransfer.errors import UsageError
from lgtransfer.tasks import get_task
from lgtransfer.tasks import tokenizer as tok

# Every task in one group, so that markers <A>..<M> are all exercised; short ranges keep it fast.
SMALL_RANGE = {
    **{name: (1, 9) for name in ref.ARITHMETIC},
    "cot_mul": (1, 5),
    **{name: (1, 14) for name in ref.STRINGS},
    "mqar": (2, 14),
    "dfs_trace": (2, 12),
    "shortest_path": (2, 12),
}
ALL_SPECS = [GroupTask(name, "main" if i == 0 else "aux", SMALL_RANGE[name][1],
                       SMALL_RANGE[name][0])
             for i, name in enumerate(ref.ALL_TASKS)]
G1 = [GroupTask("reverse_add", "main", 16, 1), GroupTask("no_carry", "aux", 32, 1),
      GroupTask("carry_only", "aux", 32, 1)]


def split_row(batch: SeqBatch, r: int) -> tuple[int, list[int], list[int]]:
    """(marker index, prompt ids, target ids) of row r, checking the layout
    `[BOS] <X>*4 prompt <X>*4 target [EOS] [PAD]...`."""
    n = int(batch.seq_len[r])
    row = batch.tokens[r].tolist()
    assert row[0] == tok.BOS and row[n - 1] == tok.EOS
    assert all(t == tok.PAD for t in row[n:])
    body = row[1 : n - 1]
    marker = body[0]
    assert tok.MARKER_OFFSET <= marker < tok.VOCAB_SIZE
    assert body[:MARKER_REPEAT] == [marker] * MARKER_REPEAT
    rest = body[MARKER_REPEAT:]
    split = next(j for j, t in enumerate(rest) if t >= tok.MARKER_OFFSET)
    prompt, rest = rest[:split], rest[split:]
    assert rest[:MARKER_REPEAT] == [marker] * MARKER_REPEAT
    target = rest[MARKER_REPEAT:]
    for ids in (prompt, target):  # no markers or specials inside
        assert all(6 <= t < tok.MARKER_OFFSET for t in ids)
    return marker - tok.MARKER_OFFSET, prompt, target


def expected_mask(task: str, prompt: list[int], target: list[int], width: int) -> list[bool]:
    if task == "mqar":
        target_mask = [i % 2 == 1 for i in range(len(target))]  # answers only
    else:
        target_mask = [True] * len(target)
    head = 1 + 2 * MARKER_REPEAT + len(prompt)
    mask = [False] * head + target_mask + [True]  # ... and the EOS
    return mask + [False] * (width - len(mask))


def check_sequences(mixture: Mixture, batch: SeqBatch, training: bool = True) -> Counter:
    """Every row is laid out right, correct by the reference, and (training) within its task's
    range."""
    assert batch.tokens.shape == batch.loss_mask.shape
    width = batch.tokens.shape[1]
    assert int(batch.seq_len.max()) == width
    per_task = Counter()
    for r in range(len(batch)):
        index, prompt_ids, target_ids = split_row(batch, r)
        assert index == batch.task_index[r]
        spec = mixture.specs[index]
        prompt, target = tok.decode(prompt_ids), tok.decode(target_ids)
        assert prompt.endswith("=")
        ref.check(spec.task, prompt, target)
        length = int(batch.length[r])
        assert ref.task_length(spec.task, prompt) == length
        if training:
            assert spec.min_length <= length <= spec.max_length
        if training and spec.task in ref.ARITHMETIC and spec.task != "cot_mul":
            for operand in ref.parse_arithmetic(spec.task, prompt):
                assert spec.min_length <= len(operand) <= spec.max_length
        assert batch.loss_mask[r].tolist() == expected_mask(spec.task, prompt_ids, target_ids,
                                                            width)
        per_task[spec.task] += 1
    return per_task


def test_training_sequences_are_well_formed_for_every_task():
    mixture = Mixture(ALL_SPECS, eval_n=16)
    rng = np.random.default_rng(0)
    seen = Counter()
    for _ in range(6):
        batch = mixture.train_batch(rng, 300)
        assert len(batch) == 300
        seen += check_sequences(mixture, batch)
    assert set(seen) == set(ref.ALL_TASKS)


@pytest.mark.parametrize("name", ["reverse_add", "cot_mul", "mqar", "dfs_trace", "capitalize"])
def test_eval_sequences_are_well_formed(name):
    mixture = Mixture(ALL_SPECS, eval_n=40)
    index = mixture.index(name)
    for length in (get_task(name).min_length, 7, 20):
        batch = mixture.eval_set(name, length)
        assert len(batch) == 40
        assert (batch.task_index == index).all() and (batch.length == length).all()
        check_sequences(mixture, batch, training=False)


def test_marker_is_the_group_position():
    """The same task gets <A> as the first task of a group and <C> as the third."""
    first = Mixture([GroupTask("copy", "main", 8, 1)], eval_n=8)
    third = Mixture([GroupTask("reverse", "aux", 8, 1), GroupTask("mqar", "aux", 8, 2),
                     GroupTask("copy", "main", 8, 1)], eval_n=8)
    a, c = first.eval_set("copy", 5), third.eval_set("copy", 5)
    assert split_row(a, 0)[0] == 0 and split_row(c, 0)[0] == 2
    assert (a.tokens[:, 1:5] == tok.marker_id(0)).all()
    assert (c.tokens[:, 1:5] == tok.marker_id(2)).all()
    # everything but the markers is the same
    assert (np.where(a.tokens >= tok.MARKER_OFFSET, 0, a.tokens)
            == np.where(c.tokens >= tok.MARKER_OFFSET, 0, c.tokens)).all()
    np.testing.assert_array_equal(a.loss_mask, c.loss_mask)


# ----------------------------------------------------------------------------- sampling


def test_task_proportions_follow_weights():
    specs = [GroupTask("copy", "main", 8, 1, weight=1.0),
             GroupTask("reverse_add", "aux", 8, 1, weight=2.0),
             GroupTask("capitalize", "aux", 8, 1, weight=5.0)]
    mixture = Mixture(specs, eval_n=8)
    rng = np.random.default_rng(1)
    counts = np.zeros(3)
    total = 0
    for _ in range(40):
        batch = mixture.train_batch(rng, 1000)
        assert len(batch) == 1000
        counts += np.bincount(batch.task_index, minlength=3)
        total += 1000
    expected = total * np.array([1, 2, 5]) / 8
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 16  # 2 degrees of freedom: p ~ 3e-4 above this


def test_uniform_weights_by_default():
    mixture = Mixture(G1, eval_n=8)
    np.testing.assert_allclose(mixture.weights, [1 / 3] * 3)


@pytest.mark.parametrize(("name", "lo", "hi"), [("copy", 3, 17), ("mqar", 2, 32),
                                               ("cot_mul", 1, 16), ("shortest_path", 2, 64)])
def test_lengths_are_uniform_in_the_range(name, lo, hi):
    mixture = Mixture([GroupTask(name, "main", hi, lo)], eval_n=8)
    rng = np.random.default_rng(2)
    size = 600 if get_task(name).family == "maze" else 3000
    lengths = np.concatenate([mixture.train_batch(rng, size).length for _ in range(5)])
    assert lengths.min() == lo and lengths.max() == hi
    counts = np.bincount(lengths - lo, minlength=hi - lo + 1)
    expected = len(lengths) / (hi - lo + 1)
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    dof = hi - lo
    assert chi2 < dof + 5 * math.sqrt(2 * dof)


def test_arithmetic_lengths_are_the_max_of_two_independent_counts():
    """Training example length = max of two uniform digit counts: P(n) = (2n - 1) / N^2."""
    mixture = Mixture([GroupTask("no_carry", "aux", 8, 1)], eval_n=8)
    rng = np.random.default_rng(3)
    lengths = np.concatenate([mixture.train_batch(rng, 4000).length for _ in range(4)])
    counts = np.bincount(lengths, minlength=9)[1:]
    expected = len(lengths) * (2 * np.arange(1, 9) - 1) / 64
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 25  # 7 degrees of freedom


def test_training_is_deterministic():
    one, two = Mixture(G1, eval_n=32), Mixture(G1, eval_n=32)
    a = one.train_batch(np.random.default_rng(5), 500)
    b = two.train_batch(np.random.default_rng(5), 500)
    c = one.train_batch(np.random.default_rng(6), 500)
    for field in ("tokens", "loss_mask", "seq_len", "task_index", "length"):
        assert getattr(a, field).tobytes() == getattr(b, field).tobytes()
    assert a.tokens.tobytes() != c.tokens.tobytes()


def test_maze_training_is_deterministic():
    specs = [GroupTask("dfs_trace", "main", 32, 2), GroupTask("shortest_path", "aux", 64, 2)]
    a = Mixture(specs, eval_n=8).train_batch(np.random.default_rng(9), 100)
    b = Mixture(specs, eval_n=8).train_batch(np.random.default_rng(9), 100)
    assert a.tokens.tobytes() == b.tokens.tobytes()
    assert a.loss_mask.tobytes() == b.loss_mask.tobytes()


# ----------------------------------------------------------------------------- evaluation sets


def _same(x, y) -> bool:
    return all(getattr(x, f).tobytes() == getattr(y, f).tobytes()
               for f in ("length", "prompt", "prompt_len", "target", "target_len", "target_mask"))


def test_eval_sets_are_fixed_across_groups_and_training():
    """A pure function of (eval seed, task, length): the same in any group, whatever training
    drew before, and from a direct `fixed_eval_set` call."""
    g1 = Mixture(G1, eval_n=64, eval_seed=3)
    other_specs = [GroupTask("copy_first_op", "aux", 32, 1), GroupTask("reverse_add", "main", 8, 1)]
    other = Mixture(other_specs, eval_n=64, eval_seed=3)
    g1.train_batch(np.random.default_rng(1), 200)  # training draws must not move eval sets
    for _ in range(3):
        other.train_batch(np.random.default_rng(2), 200)
    for length in (1, 5, 16, 17, 40):
        a = g1.eval_examples("reverse_add", length)
        b = other.eval_examples("reverse_add", length)
        c = fixed_eval_set("reverse_add", length, 64, 3)
        assert _same(a, b) and _same(a, c)
        assert len(a) == 64 and (a.length == length).all()
        for ex in a.examples():
            x, y = ref.parse_arithmetic("reverse_add", ex.prompt)
            assert len(x) == len(y) == length  # evaluation: both operands exactly n digits
    fresh = Mixture(G1, eval_n=64, eval_seed=3)
    assert _same(fresh.eval_examples("no_carry", 20), g1.eval_examples("no_carry", 20))
    # only the marker differs between the groups' sequences
    s1, s2 = g1.eval_set("reverse_add", 9), other.eval_set("reverse_add", 9)
    assert (s1.tokens[:, 1:5] == tok.marker_id(0)).all()
    assert (s2.tokens[:, 1:5] == tok.marker_id(1)).all()
    assert (s1.tokens[:, 5:] == s2.tokens[:, 5:])[s1.tokens[:, 5:] < tok.MARKER_OFFSET].all()


def test_eval_sets_change_with_the_eval_seed_and_task():
    a = fixed_eval_set("copy", 12, 32, 0)
    assert not _same(a, fixed_eval_set("copy", 12, 32, 1))
    assert a.prompt.tobytes() != fixed_eval_set("reverse", 12, 32, 0).prompt.tobytes()


@pytest.mark.parametrize(
    ("name", "length", "n"),
    [("reverse_add", 2, 1024), ("reverse_sub", 2, 1024), ("cot_mul", 1, 1024),
     ("copy", 2, 1024), ("mqar", 2, 1024), ("dfs_trace", 3, 1024), ("shortest_path", 4, 1024),
     ("capitalize_reverse", 20, 1024), ("shortest_path", 30, 256)],
)
def test_eval_sets_have_no_duplicate_prompts(name, length, n):
    """Where the space holds n distinct prompts, the set has no repeats (at these sizes random
    draws alone would almost surely repeat some)."""
    batch = fixed_eval_set(name, length, n, 0)
    prompts = [ex.prompt for ex in batch.examples()]
    assert len(prompts) == n and len(set(prompts)) == n
    assert (batch.length == length).all()
    for ex in batch.examples():
        ref.check(name, ex.prompt, ex.target)


@pytest.mark.parametrize(("name", "distinct"), [("reverse_add", 81), ("reverse_sub", 45),
                                                ("copy", 52), ("cot_mul", None),
                                                ("dfs_trace", None)])
def test_eval_sets_repeat_prompts_when_the_space_is_small(name, distinct):
    """At the shortest length there are fewer prompts than examples: repeats, no error."""
    length = get_task(name).min_length
    n = 10_000 if name == "cot_mul" else 1024
    batch = fixed_eval_set(name, length, n, 0)
    prompts = {ex.prompt for ex in batch.examples()}
    assert len(batch) == n and len(prompts) < n
    if distinct is not None:
        assert len(prompts) == distinct


def test_eval_set_just_above_the_number_of_prompts():
    """60 examples of a space of 45 (subtraction at length 1): repeats, no error."""
    batch = fixed_eval_set("reverse_sub", 1, 60, 0)
    assert len(batch) == 60
    assert len({ex.prompt for ex in batch.examples()}) <= 45


# ----------------------------------------------------------------------------- leak filter


def _prompts(batch: SeqBatch) -> list[str]:
    return [tok.decode(split_row(batch, r)[1]) for r in range(len(batch))]


@pytest.mark.parametrize(
    ("name", "length", "eval_n", "draws"),
    [("reverse_add", 3, 8000, 40_000), ("reverse_sub", 3, 4000, 40_000),
     ("cot_mul", 2, 800, 40_000), ("copy", 3, 1400, 40_000), ("mqar", 3, 1300, 40_000),
     ("shortest_path", 6, 3600, 12_000)],
)
def test_training_never_sees_eval_prompts(name, length, eval_n, draws):
    """Lengths where the filter applies and about 1% of random prompts are evaluation prompts:
    unfiltered draws would hit hundreds of them, training hits none."""
    task = get_task(name)
    assert task.space_size(length) >= LEAK_FILTER_RATIO * eval_n  # the filter applies here
    mixture = Mixture([GroupTask(name, "main", length, length)], eval_n=eval_n, eval_seed=4)
    held_out = {ex.prompt for ex in mixture.eval_examples(name, length).examples()}
    assert len(held_out) == eval_n

    raw = task.train_batch(np.random.default_rng(5), draws, length, length)
    unfiltered_hits = sum(ex.prompt in held_out for ex in raw.examples())
    assert unfiltered_hits > draws * eval_n / task.space_size(length) / 3

    rng = np.random.default_rng(5)
    size = draws // 10
    for _ in range(10):
        batch = mixture.train_batch(rng, size)
        assert len(batch) == size
        assert not held_out.intersection(_prompts(batch))


def test_no_filter_below_the_ratio():
    """With fewer than LEAK_FILTER_RATIO prompts per eval example, training covers the space
    anyway and eval prompts are not removed."""
    eval_n = 8200  # 810000 prompts at length 3: a ratio just under 100
    assert get_task("reverse_add").space_size(3) < LEAK_FILTER_RATIO * eval_n
    mixture = Mixture([GroupTask("reverse_add", "main", 3, 3)], eval_n=eval_n, eval_seed=4)
    held_out = {ex.prompt for ex in mixture.eval_examples("reverse_add", 3).examples()}
    batch = mixture.train_batch(np.random.default_rng(5), 20_000)
    assert held_out.intersection(_prompts(batch))


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "specs",
    [
        [],
        [GroupTask("nope", "main", 8, 1)],
        [GroupTask("copy", "main", 8, 1), GroupTask("copy", "aux", 16, 1)],
        [GroupTask("copy", "helper", 8, 1)],
        [GroupTask("copy", "main", 8, 9)],
        [GroupTask("copy", "main", 8, 0)],
        [GroupTask("mqar", "aux", 8, 1)],
        [GroupTask("dfs_trace", "main", 65, 2)],
        [GroupTask("copy", "main", 8, 1, weight=0.0)],
        [GroupTask("copy", "main", 8, 1, weight=-1.0)],
    ],
)
def test_bad_groups_are_usage_errors(specs):
    with pytest.raises(UsageError):
        Mixture(specs, eval_n=8)


def test_bad_eval_n_and_unknown_task_are_usage_errors():
    with pytest.raises(UsageError):
        Mixture(G1, eval_n=0)
    with pytest.raises(UsageError):
        Mixture(G1, eval_n=8).index("copy")
    with pytest.raises(UsageError):
        Mixture(G1, eval_n=8).eval_examples("reverse_add", 321)


def test_eval_sets_ignore_global_random_state():
    """Seeding numpy's or Python's global generators (as a model seed would) changes nothing."""
    import random

    np.random.seed(1)
    random.seed(1)
    a = fixed_eval_set("shortest_path", 10, 16, 0)
    np.random.seed(2)
    random.seed(2)
    b = fixed_eval_set("shortest_path", 10, 16, 0)
    assert _same(a, b)
