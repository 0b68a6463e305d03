"""Independent reference solvers for every task, written from the spec (docs/paper.md §2-3 and the
task modules' docstrings) in plain Python: Python ints, string operations, a BFS and a recursive
DFS on a parsed adjacency list. Nothing here imports `lgtransfer`, so a shared mistake between
the implementation and the tests would have to be made twice.

Every function takes prompt text as `lgt sample` prints it (no BOS/EOS, no markers, maze nodes
written `[k]`) and returns the expected target text, or raises AssertionError when the prompt is
malformed. MQAR's query order is random, so it is verified (`check_mqar`) instead of solved.
"""

from __future__ import annotations

import math
import re
from collections import deque

ARITHMETIC = ("reverse_add", "no_carry", "carry_only", "reverse_sub", "reverse_sub_signed",
              "copy_first_op", "cot_mul")
STRINGS = ("copy", "reverse", "capitalize", "capitalize_reverse", "mqar")
MAZES = ("dfs_trace", "shortest_path")
ALL_TASKS = ARITHMETIC + STRINGS + MAZES
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
OPERATOR = {"reverse_sub": "-", "reverse_sub_signed": "-", "cot_mul": "*"}  # else "+"
SIDE = 8  # mazes live on a fixed 8x8 grid, node [8r + c + 1] at row r, column c

_OPERAND = re.compile(r"\d*[1-9]")  # reversed: the last digit is the leading one


# ----------------------------------------------------------------------------- arithmetic


def parse_arithmetic(task: str, prompt: str) -> tuple[str, str]:
    """The two operands of `A op B =` as written (least significant digit first)."""
    op = OPERATOR.get(task, "+")
    assert prompt.endswith("="), prompt
    left, sep, right = prompt[:-1].partition(op)
    assert sep == op and op not in right, prompt
    for operand in (left, right):
        assert _OPERAND.fullmatch(operand), f"bad operand {operand!r} in {prompt!r}"
    return left, right


def value(reversed_digits: str) -> int:
    return int(reversed_digits[::-1])


def written(n: int) -> str:
    """n least significant digit first, no padding."""
    return str(n)[::-1]


def arithmetic_length(task: str, prompt: str) -> int:
    a, b = parse_arithmetic(task, prompt)
    return len(a) if task == "cot_mul" else max(len(a), len(b))


def solve_arithmetic(task: str, prompt: str) -> str:
    a_text, b_text = parse_arithmetic(task, prompt)
    a, b = value(a_text), value(b_text)
    length = max(len(a_text), len(b_text))

    def padded(digits: str) -> str:  # right-padded with zeros to length + 1
        assert len(digits) <= length + 1
        return digits + "0" * (length + 1 - len(digits))

    if task == "reverse_add":
        return padded(written(a + b))
    if task == "no_carry":
        x, y = a_text.ljust(length, "0"), b_text.ljust(length, "0")
        return padded("".join(str((int(p) + int(q)) % 10) for p, q in zip(x, y, strict=True)))
    if task == "carry_only":  # the carry *into* each digit, computed with whole numbers
        carries = []
        for i in range(length + 1):
            low = 10**i
            carries.append(str((a % low + b % low) // low))
        return "".join(carries)
    if task == "reverse_sub":
        assert a >= b, f"operands not ordered: {prompt!r}"
        return padded(written(a - b))
    if task == "reverse_sub_signed":  # negative: |a - b| reversed, "-", then zeros
        return padded(written(a - b) if a >= b else written(b - a) + "-")
    if task == "copy_first_op":
        return padded(a_text)
    if task == "cot_mul":
        assert len(b_text) == 3, prompt
        partials = ["0" * i + written(a * int(d)) for i, d in enumerate(b_text)]
        return "+".join(partials) + "=" + written(a * b)
    raise KeyError(task)


# ----------------------------------------------------------------------------- strings


def parse_string(prompt: str) -> str:
    assert prompt.endswith("="), prompt
    s = prompt[:-1]
    assert s and all(c in LETTERS for c in s), prompt
    return s


def solve_string(task: str, prompt: str) -> str:
    s = parse_string(prompt)
    if task == "copy":
        return s
    if task == "reverse":
        return s[::-1]
    if task == "capitalize":
        return s.swapcase()
    if task == "capitalize_reverse":
        return s[::-1].swapcase()
    raise KeyError(task)


def mqar_queries(length: int) -> int:
    return math.ceil(length / 4)


def check_mqar(prompt: str, target: str) -> list[str]:
    """Verify an MQAR target: k = ceil(L/4) distinct queries, each a character occurring exactly
    once in s and not at its end, each followed by the character after it in s. Returns the
    queries in the order the target asks them."""
    s = parse_string(prompt)
    k = mqar_queries(len(s))
    assert len(target) == 2 * k, (prompt, target)
    queries = []
    for q, answer in zip(target[::2], target[1::2], strict=True):
        assert s.count(q) == 1, f"query {q!r} does not occur exactly once in {s!r}"
        at = s.index(q)
        assert at < len(s) - 1, f"query {q!r} is the last character of {s!r}"
        assert answer == s[at + 1], f"wrong answer {answer!r} to {q!r} in {s!r}"
        queries.append(q)
    assert len(set(queries)) == k, f"repeated query in {target!r}"
    return queries


def mqar_usable(s: str) -> int:
    """How many characters of s could be asked: occurring once and not last."""
    return sum(1 for i, c in enumerate(s[:-1]) if s.count(c) == 1)


# ----------------------------------------------------------------------------- mazes

_NODE = re.compile(r"\[(\d+)\]")
_ENTRY = re.compile(r"(?:\[\d+\])+")


def nodes_of(text: str) -> list[int]:
    """Node ids of a run of `[k]` tokens; the text must be nothing else."""
    assert _ENTRY.fullmatch(text), f"not a run of nodes: {text!r}"
    return [int(k) for k in _NODE.findall(text)]


def parse_maze(prompt: str) -> tuple[dict[int, list[int]], int, int]:
    """Adjacency (node -> neighbours, as listed), start and goal of a maze prompt
    `[n][nbr]... [n][nbr]... ?[start][goal]=`."""
    assert prompt.endswith("="), prompt
    body, sep, query = prompt[:-1].partition("?")
    assert sep == "?" and body.endswith(" "), prompt
    adjacency: dict[int, list[int]] = {}
    for entry in body[:-1].split(" "):
        node, *neighbours = nodes_of(entry)
        assert node not in adjacency, f"node [{node}] listed twice"
        adjacency[node] = neighbours
    ends = nodes_of(query)
    assert len(ends) == 2, prompt
    return adjacency, ends[0], ends[1]


def cell(node: int) -> tuple[int, int]:
    """(row, column) of node [8r + c + 1]."""
    assert 1 <= node <= SIDE * SIDE, node
    return divmod(node - 1, SIDE)


def grid_adjacent(u: int, v: int) -> bool:
    (r1, c1), (r2, c2) = cell(u), cell(v)
    return abs(r1 - r2) + abs(c1 - c2) == 1


def shortest_path(adjacency: dict[int, list[int]], start: int, goal: int) -> list[int]:
    """BFS from start; the path to goal read back through the parents."""
    parent = {start: start}
    queue = deque([start])
    while queue:
        u = queue.popleft()
        for v in adjacency[u]:
            if v not in parent:
                parent[v] = u
                queue.append(v)
    assert goal in parent, "goal unreachable"
    path = [goal]
    while path[-1] != start:
        path.append(parent[path[-1]])
    return path[::-1]


def dfs_trace(adjacency: dict[int, list[int]], start: int, goal: int) -> list[int]:
    """Recursive DFS, neighbours in increasing id; returning from a child re-emits the parent;
    stops as soon as the goal is emitted."""
    trace: list[int] = []
    seen: set[int] = set()

    def visit(u: int) -> bool:
        seen.add(u)
        trace.append(u)
        if u == goal:
            return True
        for v in sorted(adjacency[u]):
            if v not in seen:
                if visit(v):
                    return True
                trace.append(u)  # back from a dead end
        return False

    assert visit(start), "goal unreachable"
    return trace


def maze_text(nodes: list[int]) -> str:
    return "".join(f"[{k}]" for k in nodes)


def solve_maze(task: str, prompt: str) -> str:
    adjacency, start, goal = parse_maze(prompt)
    if task == "dfs_trace":
        return maze_text(dfs_trace(adjacency, start, goal))
    if task == "shortest_path":
        return maze_text(shortest_path(adjacency, start, goal))
    raise KeyError(task)


def maze_problems(prompt: str, length: int) -> list[str]:
    """Everything wrong with a maze prompt of `length` nodes (empty when it is well formed)."""
    adjacency, start, goal = parse_maze(prompt)
    problems = []
    nodes = list(adjacency)
    if len(nodes) != length:
        problems.append(f"{len(nodes)} nodes, expected {length}")
    if nodes != sorted(nodes):
        problems.append("nodes not in increasing id")
    if not all(1 <= k <= SIDE * SIDE for k in nodes):
        problems.append("node id outside [1]..[64]")
    edges = set()
    for u, nbrs in adjacency.items():
        if nbrs != sorted(nbrs) or len(set(nbrs)) != len(nbrs):
            problems.append(f"neighbours of [{u}] not strictly increasing")
        for v in nbrs:
            if u not in adjacency.get(v, []):
                problems.append(f"edge [{u}]-[{v}] listed one way only")
            if not grid_adjacent(u, v):
                problems.append(f"edge [{u}]-[{v}] joins cells that are not grid neighbours")
            edges.add((min(u, v), max(u, v)))
    if len(edges) != len(nodes) - 1:
        problems.append(f"{len(edges)} edges for {len(nodes)} nodes: not a tree")
    if nodes and len(reachable(adjacency, nodes[0])) != len(nodes):
        problems.append("not connected")
    if start == goal:
        problems.append("start equals goal")
    if start not in adjacency or goal not in adjacency:
        problems.append("start or goal is not a node of the maze")
    return problems


def reachable(adjacency: dict[int, list[int]], root: int) -> set[int]:
    seen, queue = {root}, deque([root])
    while queue:
        for v in adjacency[queue.popleft()]:
            if v not in seen:
                seen.add(v)
                queue.append(v)
    return seen


def count_grid_subtrees(n: int) -> int:
    """How many n-node trees the 8x8 grid graph has as subgraphs, by growing edge sets."""
    grid_edges = [
        (u, v)
        for u in range(1, SIDE * SIDE + 1)
        for v in (u + 1, u + SIDE)
        if v <= SIDE * SIDE and grid_adjacent(u, v)
    ]
    if n == 1:
        return SIDE * SIDE
    trees = {frozenset([e]) for e in grid_edges}
    for _ in range(n - 2):
        grown = set()
        for tree in trees:
            nodes = {x for e in tree for x in e}
            for u, v in grid_edges:
                if (u in nodes) != (v in nodes):  # touches the tree at exactly one end
                    grown.add(tree | {(u, v)})
        trees = grown
    return len(trees)


# ----------------------------------------------------------------------------- dispatch


def task_length(task: str, prompt: str) -> int:
    if task in ARITHMETIC:
        return arithmetic_length(task, prompt)
    if task in STRINGS:
        return len(parse_string(prompt))
    return len(parse_maze(prompt)[0])


def check(task: str, prompt: str, target: str) -> None:
    """AssertionError unless `target` is a correct answer to `prompt`."""
    if task == "mqar":
        check_mqar(prompt, target)
        return
    if task in ARITHMETIC:
        expected = solve_arithmetic(task, prompt)
    elif task in STRINGS:
        expected = solve_string(task, prompt)
    elif task in MAZES:
        expected = solve_maze(task, prompt)
    else:
        raise KeyError(task)
    assert target == expected, f"{task}: {prompt!r} -> {target!r}, expected {expected!r}"
