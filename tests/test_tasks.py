"""Every task against the independent reference solvers in `reference.py`, plus the format rules
of docs/paper.md §2-3: operand digit counts, padding, maze structure, MQAR queries, length limits
and the paper's worked examples."""

from __future__ import annotations

import itertools
import math
from collections import Counter, deque

import numpy as np
import pytest
import reference as ref
from hypothesis import given, settings
from hypothesis import strategies as st

from lgtransfer.errors import UsageError
from lgtransfer.tasks import TASKS, TaskBatch, get_task, mazes
from lgtransfer.tasks import tokenizer as tok

MAX_LENGTH = {"arithmetic": 320, "cot_mul": 200, "string": 500, "mqar": 64, "maze": 64}
ADDITION_FAMILY = ("reverse_add", "no_carry", "carry_only", "reverse_sub", "reverse_sub_signed",
                   "copy_first_op")
# How many examples one hypothesis case draws: mazes are built in Python, one at a time.
BATCH = {"arithmetic": 64, "string": 64, "maze": 12}


def seeds() -> st.SearchStrategy[int]:
    return st.integers(0, 2**32 - 1)


def lengths_for(name: str) -> st.SearchStrategy[int]:
    """Mostly the lengths experiments use, sometimes anything up to the task's limit."""
    task = get_task(name)
    return st.one_of(
        st.integers(task.min_length, min(task.max_length, 40)),
        st.integers(task.min_length, task.max_length),
    )


def check_arrays(batch: TaskBatch) -> None:
    """Padding, masks and ids of a batch are consistent with its lengths."""
    n = len(batch)
    for arr in (batch.length, batch.prompt_len, batch.target_len):
        assert arr.shape == (n,)
    assert batch.prompt.shape[0] == batch.target.shape[0] == batch.target_mask.shape[0] == n
    assert batch.target_mask.shape == batch.target.shape
    p_valid = np.arange(batch.prompt.shape[1]) < batch.prompt_len[:, None]
    t_valid = np.arange(batch.target.shape[1]) < batch.target_len[:, None]
    assert (batch.prompt[~p_valid] == tok.PAD).all()
    assert (batch.target[~t_valid] == tok.PAD).all()
    assert not batch.target_mask[~t_valid].any()
    for ids in (batch.prompt[p_valid], batch.target[t_valid]):  # text tokens only, no specials
        assert ((ids >= 6) & (ids < tok.MARKER_OFFSET)).all()


def check_examples(name: str, batch: TaskBatch, lengths: np.ndarray | None = None) -> None:
    """Every example is correct by the reference and has the length the batch claims."""
    check_arrays(batch)
    if lengths is not None:
        np.testing.assert_array_equal(batch.length, lengths)
    for ex in batch.examples():
        assert ex.task == name
        ref.check(name, ex.prompt, ex.target)
        assert ref.task_length(name, ex.prompt) == ex.length
        if name == "mqar":
            k = ref.mqar_queries(ex.length)
            assert ex.loss_mask == [0, 1] * k
        else:
            assert ex.loss_mask is None
        if name in ADDITION_FAMILY:
            assert len(ex.target) == ex.length + 1


# ----------------------------------------------------------------------------- registry


def test_registry_holds_the_14_tasks():
    assert set(TASKS) == set(ref.ALL_TASKS)
    assert len(TASKS) == 14  # the paper's 13 and the signed subtraction of its authors' code
    families = {name: task.family for name, task in TASKS.items()}
    assert {n for n, f in families.items() if f == "arithmetic"} == set(ref.ARITHMETIC)
    assert {n for n, f in families.items() if f == "string"} == set(ref.STRINGS)
    assert {n for n, f in families.items() if f == "maze"} == set(ref.MAZES)
    for name, task in TASKS.items():
        assert task.name == name
        assert get_task(name) is task


def test_unknown_task_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown task"):
        get_task("reverse_addition")


# ----------------------------------------------------------------------------- vs the reference


@pytest.mark.parametrize("name", ref.ALL_TASKS)
def test_eval_batches_match_reference(name):
    """Examples of exactly one length (as evaluation draws them) match the reference."""
    family = get_task(name).family

    @settings(max_examples=30 if family != "maze" else 25)
    @given(seed=seeds(), length=lengths_for(name))
    def run(seed, length):
        lengths = np.full(BATCH[family], length)
        batch = get_task(name).batch(np.random.default_rng(seed), lengths)
        check_examples(name, batch, lengths)

    run()


@pytest.mark.parametrize("name", ref.ALL_TASKS)
def test_mixed_length_batches_match_reference(name):
    """One batch with a different length in every row (padding must not leak into answers)."""
    task = get_task(name)
    hi = min(task.max_length, 40)

    @settings(max_examples=15)
    @given(seed=seeds())
    def run(seed):
        rng = np.random.default_rng(seed)
        lengths = rng.integers(task.min_length, hi + 1, BATCH[task.family] * 2)
        check_examples(name, task.batch(rng, lengths), lengths)

    run()


@pytest.mark.parametrize("name", ref.ALL_TASKS)
def test_train_batches_match_reference(name):
    task = get_task(name)

    @settings(max_examples=20)
    @given(seed=seeds(), bounds=st.lists(lengths_for(name), min_size=2, max_size=2))
    def run(seed, bounds):
        lo, hi = sorted(bounds)
        count = BATCH[task.family] * 2
        batch = task.train_batch(np.random.default_rng(seed), count, lo, hi)
        assert len(batch) == count
        assert ((batch.length >= lo) & (batch.length <= hi)).all()
        check_examples(name, batch)

    run()


@pytest.mark.parametrize("name", ref.ALL_TASKS)
def test_batches_are_deterministic(name):
    task = get_task(name)
    lengths = np.arange(task.min_length, task.min_length + 20)
    one = task.batch(np.random.default_rng(7), lengths)
    two = task.batch(np.random.default_rng(7), lengths)
    other = task.batch(np.random.default_rng(8), lengths)
    for field in ("prompt", "prompt_len", "target", "target_len", "target_mask", "length"):
        assert getattr(one, field).tobytes() == getattr(two, field).tobytes()
    assert one.prompt.tobytes() != other.prompt.tobytes()


# ----------------------------------------------------------------------------- arithmetic


@pytest.mark.parametrize("name", ref.ARITHMETIC)
@settings(max_examples=20)
@given(seed=seeds(), length=st.integers(1, 60))
def test_eval_operands_have_exactly_length_digits(name, seed, length):
    for ex in get_task(name).sample(np.random.default_rng(seed), length, 16):
        assert ex.prompt.endswith("=")
        a, b = ref.parse_arithmetic(name, ex.prompt)
        assert len(a) == length
        assert len(b) == (3 if name == "cot_mul" else length)
        assert a[-1] != "0" and b[-1] != "0"  # reversed: the last character is the leading digit
        if name in ADDITION_FAMILY:
            assert len(ex.target) == length + 1


@pytest.mark.parametrize("name", ["reverse_add", "no_carry", "carry_only", "copy_first_op"])
def test_train_operand_lengths_are_independent_and_uniform(name):
    lo, hi, count = 1, 6, 36_000
    batch = get_task(name).train_batch(np.random.default_rng(1), count, lo, hi)
    pairs = Counter()
    for ex in batch.examples():
        a, b = ref.parse_arithmetic(name, ex.prompt)
        assert max(len(a), len(b)) == ex.length
        pairs[len(a), len(b)] += 1
    cells = list(itertools.product(range(lo, hi + 1), repeat=2))
    assert set(pairs) == set(cells)  # both lengths vary, every combination occurs
    expected = count / len(cells)
    chi2 = sum((pairs[c] - expected) ** 2 / expected for c in cells)
    assert chi2 < 70  # 35 degrees of freedom: p < 1e-4 above this


def test_reverse_sub_train_lengths_are_independent_then_ordered():
    """Digit counts drawn independently, then operands swapped so that a >= b."""
    lo, hi, count = 1, 6, 36_000
    batch = get_task("reverse_sub").train_batch(np.random.default_rng(2), count, lo, hi)
    pairs = Counter()
    for ex in batch.examples():
        a, b = ref.parse_arithmetic("reverse_sub", ex.prompt)
        assert ref.value(a) >= ref.value(b)
        assert max(len(a), len(b)) == ex.length
        pairs[len(a), len(b)] += 1
    cells = [(i, j) for i in range(lo, hi + 1) for j in range(lo, i + 1)]
    assert set(pairs) == set(cells)
    n = hi - lo + 1
    chi2 = 0.0
    for i, j in cells:  # a swap folds (j, i) onto (i, j)
        expected = count * (1 if i == j else 2) / n**2
        chi2 += (pairs[i, j] - expected) ** 2 / expected
    assert chi2 < 50  # 20 degrees of freedom


def test_cot_mul_train_lengths_are_uniform_with_three_digit_multiplier():
    batch = get_task("cot_mul").train_batch(np.random.default_rng(3), 6000, 2, 7)
    counts = Counter()
    for ex in batch.examples():
        a, b = ref.parse_arithmetic("cot_mul", ex.prompt)
        assert len(a) == ex.length and len(b) == 3
        counts[ex.length] += 1
    assert set(counts) == set(range(2, 8))
    assert min(counts.values()) > 900


@settings(max_examples=40)
@given(seed=seeds(), length=st.integers(1, 80))
def test_no_carry_plus_carry_only_is_reverse_add(seed, length):
    """Same rng, same operands: (no_carry[i] + carry_only[i]) mod 10 == reverse_add[i]."""
    out = {}
    for name in ("reverse_add", "no_carry", "carry_only"):
        out[name] = get_task(name).sample(np.random.default_rng(seed), length, 16)
    for add, nc, co in zip(out["reverse_add"], out["no_carry"], out["carry_only"], strict=True):
        assert add.prompt == nc.prompt == co.prompt
        assert len(add.target) == len(nc.target) == len(co.target) == length + 1
        for s, x, y in zip(add.target, nc.target, co.target, strict=True):
            assert (int(x) + int(y)) % 10 == int(s)


def test_digits_are_uniform():
    batch = get_task("reverse_add").batch(np.random.default_rng(4), np.full(4000, 10))
    lead, rest = Counter(), Counter()
    for ex in batch.examples():
        for operand in ref.parse_arithmetic("reverse_add", ex.prompt):
            lead[operand[-1]] += 1
            rest.update(operand[:-1])
    assert set(lead) == set("123456789")
    assert set(rest) == set("0123456789")
    assert max(rest.values()) / min(rest.values()) < 1.05
    assert max(lead.values()) / min(lead.values()) < 1.15


# ----------------------------------------------------------------------------- strings


def test_letters_are_uniform_over_52():
    batch = get_task("copy").batch(np.random.default_rng(5), np.full(2000, 26))
    counts = Counter("".join(ex.target for ex in batch.examples()))
    assert set(counts) == set(ref.LETTERS)
    expected = 2000 * 26 / 52
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    assert chi2 < 110  # 51 degrees of freedom


@pytest.mark.parametrize("length", [2, 3, 4, 5, 8, 9, 16, 17, 31, 32, 33, 48, 64])
def test_mqar_queries_and_mask(length):
    batch = get_task("mqar").batch(np.random.default_rng(length), np.full(200, length))
    k = math.ceil(length / 4)
    assert (batch.target_len == 2 * k).all()
    np.testing.assert_array_equal(batch.target_mask, np.tile([False, True], (200, k)))
    for ex in batch.examples():
        ref.check_mqar(ex.prompt, ex.target)
        assert ex.loss_mask == [0, 1] * k


def test_mqar_query_order_is_random():
    """Queries are not always asked in order of position (nor always in reverse)."""
    batch = get_task("mqar").batch(np.random.default_rng(6), np.full(2000, 8))
    in_order = 0
    for ex in batch.examples():
        s = ex.prompt[:-1]
        first, second = ref.check_mqar(ex.prompt, ex.target)
        in_order += s.index(first) < s.index(second)
    assert 850 < in_order < 1150


# ----------------------------------------------------------------------------- mazes


@pytest.mark.parametrize("name", ref.MAZES)
@settings(max_examples=30)
@given(seed=seeds(), length=st.integers(2, 64))
def test_maze_structure(name, seed, length):
    """A tree of exactly N nodes, edges between grid neighbours, ids [8r+c+1], start != goal."""
    for ex in get_task(name).sample(np.random.default_rng(seed), length, 8):
        assert ex.prompt.endswith("=")
        assert ref.maze_problems(ex.prompt, length) == []
        ref.check(name, ex.prompt, ex.target)


@settings(max_examples=20)
@given(seed=seeds(), length=st.integers(2, 64))
def test_maze_tasks_share_their_mazes(seed, length):
    """Same rng, same maze: the trace ends at the goal and contains the path's nodes."""
    dfs = get_task("dfs_trace").sample(np.random.default_rng(seed), length, 6)
    path = get_task("shortest_path").sample(np.random.default_rng(seed), length, 6)
    for d, p in zip(dfs, path, strict=True):
        assert d.prompt == p.prompt
        trace, route = ref.nodes_of(d.target), ref.nodes_of(p.target)
        _, start, goal = ref.parse_maze(d.prompt)
        assert trace[0] == route[0] == start and trace[-1] == route[-1] == goal
        assert set(route) <= set(trace)
        assert len(trace) >= len(route)


def test_maze_start_and_goal_cover_the_tree():
    """Start and goal are drawn from all nodes, not only leaves or the root."""
    starts, goals = Counter(), Counter()
    for ex in get_task("shortest_path").sample(np.random.default_rng(9), 5, 3000):
        adjacency, start, goal = ref.parse_maze(ex.prompt)
        starts[len(adjacency[start])] += 1  # degree of the start node
        goals[len(adjacency[goal])] += 1
    assert set(starts) >= {1, 2} and set(goals) >= {1, 2}


# ----------------------------------------------------------------------------- space sizes


def _distinct_prompts(name: str, length: int, count: int) -> int:
    batch = get_task(name).batch(np.random.default_rng(11), np.full(count, length))
    return len({ex.prompt for ex in batch.examples()})


@pytest.mark.parametrize(
    ("name", "length", "count"),
    [
        ("reverse_add", 1, 3000),
        ("copy_first_op", 1, 3000),
        ("reverse_sub", 1, 3000),
        ("reverse_sub", 2, 60_000),
        ("cot_mul", 1, 120_000),
        ("capitalize", 1, 3000),
        ("copy", 2, 40_000),
        ("mqar", 2, 40_000),
        ("dfs_trace", 2, 4000),
        ("shortest_path", 3, 30_000),
    ],
)
def test_space_size_is_the_number_of_distinct_prompts(name, length, count):
    """Where the space is small, sampling finds exactly `space_size` distinct prompts."""
    assert _distinct_prompts(name, length, count) == get_task(name).space_size(length)


@pytest.mark.parametrize("length", [1, 2, 3, 7, 20])
def test_space_size_formulas(length):
    m = 9 * 10 ** (length - 1)  # operands of exactly `length` digits

    def size(name: str) -> float:
        return get_task(name).space_size(length)

    for name in ("reverse_add", "no_carry", "carry_only", "copy_first_op", "reverse_sub_signed"):
        assert math.isclose(size(name), m * m, rel_tol=1e-12)
    assert math.isclose(size("reverse_sub"), m * (m + 1) // 2, rel_tol=1e-12)  # a >= b
    assert math.isclose(size("cot_mul"), m * 900, rel_tol=1e-12)
    for name in ("copy", "reverse", "capitalize", "capitalize_reverse"):
        assert math.isclose(size(name), 52**length, rel_tol=1e-12)


@pytest.mark.parametrize("length", [2, 3])
def test_mqar_space_size_counts_usable_strings(length):
    """Strings with at least ceil(L/4) askable characters, by brute force."""
    k = ref.mqar_queries(length)
    usable = sum(
        1 for s in itertools.product(ref.LETTERS, repeat=length) if ref.mqar_usable(s) >= k
    )
    assert get_task("mqar").space_size(length) == usable


@pytest.mark.parametrize("length", [2, 3, 4, 5, 6])
def test_maze_space_size_counts_grid_subtrees(length):
    """Ordered (start, goal) pairs on every `length`-node subtree of the 8x8 grid."""
    count = ref.count_grid_subtrees(length) * length * (length - 1)
    for name in ref.MAZES:
        assert get_task(name).space_size(length) == count


# ----------------------------------------------------------------------------- length limits


LIMITS = {
    **{name: (1, 320) for name in ADDITION_FAMILY},
    "cot_mul": (1, 200),
    **{name: (1, 500) for name in ("copy", "reverse", "capitalize", "capitalize_reverse")},
    "mqar": (2, 64),
    "dfs_trace": (2, 64),
    "shortest_path": (2, 64),
}


@pytest.mark.parametrize("name", ref.ALL_TASKS)
def test_length_limits(name):
    task = get_task(name)
    lo, hi = LIMITS[name]
    assert (task.min_length, task.max_length) == (lo, hi)
    rng = np.random.default_rng(0)
    for bad in (lo - 1, hi + 1, -3, 10_000):
        with pytest.raises(UsageError, match=name):
            task.check_length(bad)
        with pytest.raises(UsageError):
            task.sample(rng, bad)
    for good in (lo, hi):
        task.check_length(good)
        check_examples(name, task.batch(rng, np.full(3, good)), np.full(3, good))


# ----------------------------------------------------------------------------- the paper's examples


class ScriptedRng:
    """Stands in for a numpy Generator, returning planned draws so a task builds given operands."""

    def __init__(self, *draws):
        self.draws = deque(draws)

    def _next(self, kind, args, size):
        planned_kind, planned_args, values = self.draws.popleft()
        assert (kind, args) == (planned_kind, planned_args), (kind, args, planned_kind)
        return np.asarray(values).reshape(size)

    def integers(self, low, high=None, size=None):
        return self._next("integers", (low, high), size)

    def random(self, size=None):
        return self._next("random", (), size)

    def assert_used_up(self):
        assert not self.draws


def digits(reversed_text: str) -> list[list[int]]:
    return [[int(c) for c in reversed_text]]


# a = 4857 (written 7584), b = 923 (written 329): digit counts, then each operand's digits and
# its top digit, the way random_operand draws them (digits past an operand's length are zeroed).
OPERAND_DRAWS = [
    ("integers", (1, 5), [4]), ("integers", (1, 5), [3]),
    ("integers", (0, 10), digits("7584")), ("integers", (1, 10), [4]),
    ("integers", (0, 10), digits("3295")), ("integers", (1, 10), [9]),
]
SWAPPED_DRAWS = [  # a = 923, b = 4857: subtraction swaps them
    ("integers", (1, 5), [3]), ("integers", (1, 5), [4]),
    ("integers", (0, 10), digits("3291")), ("integers", (1, 10), [9]),
    ("integers", (0, 10), digits("7584")), ("integers", (1, 10), [4]),
]


@pytest.mark.parametrize(
    ("name", "prompt", "target"),
    [
        ("reverse_add", "7584+329=", "08750"),
        ("no_carry", "7584+329=", "07740"),
        ("carry_only", "7584+329=", "01010"),
        ("reverse_sub", "7584-329=", "43930"),
        ("copy_first_op", "7584+329=", "75840"),
    ],
)
def test_paper_arithmetic_examples(name, prompt, target):
    assert ref.solve_arithmetic(name, prompt) == target
    draws = [OPERAND_DRAWS] + ([SWAPPED_DRAWS] if name == "reverse_sub" else [])
    for script in draws:
        rng = ScriptedRng(*script)
        (ex,) = get_task(name).train_batch(rng, 1, 1, 4).examples()
        rng.assert_used_up()
        assert (ex.prompt, ex.target, ex.length) == (prompt, target, 4)


def test_paper_cot_mul_example():
    prompt, target = "7584*329=", "17541+04179+0031734=1103844"
    assert ref.solve_arithmetic("cot_mul", prompt) == target
    rng = ScriptedRng(
        ("integers", (0, 10), digits("7584")), ("integers", (1, 10), [4]),
        ("integers", (0, 10), digits("329")), ("integers", (1, 10), [9]),
    )
    (ex,) = get_task("cot_mul").batch(rng, np.array([4])).examples()
    rng.assert_used_up()
    assert (ex.prompt, ex.target, ex.length) == (prompt, target, 4)


def _letter_draw(s: str):
    return ("integers", (0, 52), [[ref.LETTERS.index(c) for c in s]])


@pytest.mark.parametrize(
    ("name", "target"),
    [("copy", "qRtxa"), ("reverse", "axtRq"), ("capitalize", "QrTXA"),
     ("capitalize_reverse", "AXTrQ")],
)
def test_paper_string_examples(name, target):
    assert ref.solve_string(name, "qRtxa=") == target
    rng = ScriptedRng(_letter_draw("qRtxa"))
    (ex,) = get_task(name).batch(rng, np.array([5])).examples()
    rng.assert_used_up()
    assert (ex.prompt, ex.target) == ("qRtxa=", target)


def test_paper_mqar_example():
    """`qRtxa=` with k = 2: query R (answer t), then query x (answer a)."""
    assert ref.check_mqar("qRtxa=", "Rtxa") == ["R", "x"]
    # random sort keys per position: R (position 1) first, then x (position 3)
    rng = ScriptedRng(_letter_draw("qRtxa"), ("random", (), [[0.9, 0.1, 0.8, 0.2, 0.0]]))
    (ex,) = get_task("mqar").batch(rng, np.array([5])).examples()
    rng.assert_used_up()
    assert (ex.prompt, ex.target, ex.loss_mask) == ("qRtxa=", "Rtxa", [0, 1, 0, 1])


def test_paper_maze_example():
    """Edges 1-2, 1-9, 9-10, 9-17, 10-18 (node ids), start [1], goal [18]."""
    prompt = "[1][2][9] [2][1] [9][1][10][17] [10][9][18] [17][9] [18][10] ?[1][18]="
    trace, path = "[1][2][1][9][10][18]", "[1][9][10][18]"
    assert ref.maze_problems(prompt, 6) == []
    assert ref.solve_maze("dfs_trace", prompt) == trace
    assert ref.solve_maze("shortest_path", prompt) == path

    adjacency: list[list[int]] = [[] for _ in range(64)]  # by cell index = node id - 1
    for u, v in [(1, 2), (1, 9), (9, 10), (9, 17), (10, 18)]:
        adjacency[u - 1].append(v - 1)
        adjacency[v - 1].append(u - 1)
    for nbrs in adjacency:
        nbrs.sort()
    start, goal = 0, 17
    assert tok.decode(mazes.maze_prompt(adjacency, start, goal)) == prompt
    visits, stack = mazes.dfs_trace(adjacency, start, goal)
    assert ref.maze_text([c + 1 for c in visits]) == trace
    assert ref.maze_text([c + 1 for c in stack]) == path
    for name, expected in (("dfs_trace", trace), ("shortest_path", path)):
        ids = [tok.node_id(c + 1) for c in get_task(name).solve(adjacency, start, goal)]
        assert tok.decode(ids) == expected


@pytest.mark.parametrize("name", sorted(TASKS))
def test_space_size_holds_at_every_length(name):
    """The length-ratio sweep trains arithmetic at 256 digits: 10**511 prompts, beyond a float."""
    task = TASKS[name]
    sizes = [task.space_size(n) for n in range(task.min_length, task.max_length + 1)]
    assert all(s > 0 for s in sizes)
    assert sizes == sorted(sizes)  # more prompts at longer lengths, infinity at worst


@pytest.mark.parametrize(("prompt", "target"), [
    ("8421-4573=", "6052-"), ("899-999=", "1-00"), ("4573-8421=", "60520"),
    ("7584-329=", "43930"), ("329-7584=", "4393-"), ("5-5=", "00"), ("1-2=", "1-")])
def test_signed_subtraction_as_the_authors_code_writes_it(prompt, target):
    """The issue's examples against the reference solver and the generator: no swap, and a
    negative result is |a - b| reversed, '-', then zeros up to length + 1."""
    assert ref.solve_arithmetic("reverse_sub_signed", prompt) == target
    a, b = ref.parse_arithmetic("reverse_sub_signed", prompt)
    n = max(len(a), len(b))
    tokens = [np.array([[int(c) for c in x.ljust(n, "0")]]) for x in (a, b)]
    out = get_task("reverse_sub_signed").target_tokens(*tokens)
    assert tok.decode(out[0, : n + 1].tolist()) == target


def test_signed_subtraction_is_negative_about_half_the_time():
    batch = get_task("reverse_sub_signed").train_batch(np.random.default_rng(3), 4000, 1, 8)
    negative = np.mean(["-" in ex.target for ex in batch.examples()])
    assert 0.45 < negative < 0.55
