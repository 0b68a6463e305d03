"""Maze tasks: tree-shaped mazes on a fixed 8x8 grid.

Cell (row r, column c) is node [8r + c + 1], a single token, so no node is unseen at test time
whatever the maze size. A maze of `length` N nodes is a spanning tree grown with Wilson's
algorithm (loop-erased random walks) from a uniform root, each walk starting at a uniform cell
outside the tree, stopped once the tree holds N nodes; a walk that would overshoot adds only its
part next to the tree.

Encoding (edges 1-2, 1-9, 9-10, 9-17, 10-18; start [1], goal [18]):

    prompt         [1][2][9] [2][1] [9][1][10][17] [10][9][18] [17][9] [18][10] ?[1][18]=
    dfs_trace      [1][2][1][9][10][18]   neighbours in increasing id; a backtrack re-emits the
                                          parent; stops when the goal is emitted
    shortest_path  [1][9][10][18]         the unique tree path, both ends included

The prompt lists every node in increasing id followed by its neighbours in increasing id.
Mazes are built in plain Python (a walk is inherently sequential) with a `random.Random`
seeded from the numpy generator, so a batch is still a pure function of the generator's state.
"""

from __future__ import annotations

import random

import numpy as np

from lgtransfer.tasks import tokenizer as tok
from lgtransfer.tasks.base import Task, TaskBatch, pad_rows, register, valid_mask

SIDE = 8
CELLS = SIDE * SIDE
NEIGHBOURS = tuple(
    tuple(
        (r + dr) * SIDE + (c + dc)
        for dr, dc in ((-1, 0), (0, -1), (0, 1), (1, 0))
        if 0 <= r + dr < SIDE and 0 <= c + dc < SIDE
    )
    for r in range(SIDE)
    for c in range(SIDE)
)
# Each cell's neighbours repeated to 12 entries (12 = lcm of the degrees 2, 3, 4), so that one
# uniform draw indexes a uniform neighbour without looking up the degree.
MOVES = tuple(nbrs * (12 // len(nbrs)) for nbrs in NEIGHBOURS)
NODE = tuple(tok.node_id(cell + 1) for cell in range(CELLS))  # cell index -> token id
SPACE, QUERY, EQUALS = tok.char_id(" "), tok.char_id("?"), tok.char_id("=")
# Distinct maze prompts of N nodes: N-node subtrees of the 8x8 grid (112, 292, 948, 3316, 12320,
# 47224, 185764, 742264, 3000776 for N = 2..10) times the N(N-1) ordered (start, goal) pairs.
MAZE_PROMPTS = {2: 224, 3: 1752, 4: 11376, 5: 66320, 6: 369600, 7: 1983408, 8: 10402784,
                9: 53443008, 10: 270069840}


def grow_tree(rand: random.Random, n: int) -> list[list[int]]:
    """Adjacency lists (by cell, each sorted) of an n-node tree grown by Wilson's algorithm."""
    uniform = rand.random  # bound once: the walk below is the hot loop of maze generation
    in_tree = [False] * CELLS
    adjacency: list[list[int]] = [[] for _ in range(CELLS)]
    outside = list(range(CELLS))  # cells not in the tree, in any order
    where = list(range(CELLS))  # position of each cell in `outside`

    def add(cell: int) -> None:
        in_tree[cell] = True
        last = outside.pop()
        if last != cell:  # swap-remove: move the last entry into the freed slot
            outside[where[cell]] = last
            where[last] = where[cell]

    add(int(uniform() * CELLS))
    step = [0] * CELLS  # the walk's last exit from each cell: following it erases loops
    while CELLS - len(outside) < n:
        start = cell = outside[int(uniform() * len(outside))]
        while not in_tree[cell]:
            nxt = MOVES[cell][int(uniform() * 12)]
            step[cell] = nxt
            cell = nxt
        path = [start]
        while not in_tree[path[-1]]:
            path.append(step[path[-1]])
        room = n - (CELLS - len(outside))
        new = path[-1 - min(len(path) - 1, room) :]  # the part next to the tree
        for a, b in zip(new, new[1:], strict=False):
            adjacency[a].append(b)
            adjacency[b].append(a)
            add(a)
    for nbrs in adjacency:
        nbrs.sort()
    return adjacency


def dfs_trace(adjacency: list[list[int]], start: int, goal: int) -> tuple[list[int], list[int]]:
    """The DFS visit sequence (backtracks re-emit the parent) and the stack at the goal."""
    trace, stack = [start], [start]
    pending = [iter(adjacency[start])]
    seen = {start}
    while stack[-1] != goal:
        nxt = next((c for c in pending[-1] if c not in seen), None)
        if nxt is None:  # dead end: back to the parent
            stack.pop()
            pending.pop()
            trace.append(stack[-1])
        else:
            seen.add(nxt)
            stack.append(nxt)
            pending.append(iter(adjacency[nxt]))
            trace.append(nxt)
    return trace, stack


def maze_prompt(adjacency: list[list[int]], start: int, goal: int) -> list[int]:
    ids: list[int] = []
    for cell, nbrs in enumerate(adjacency):
        if nbrs:
            ids.append(NODE[cell])
            ids += [NODE[c] for c in nbrs]
            ids.append(SPACE)
    ids += (QUERY, NODE[start], NODE[goal], EQUALS)
    return ids


class _MazeTask(Task):
    family = "maze"
    length_unit = "nodes of the maze (a tree on the 8x8 grid)"
    min_length = 2
    max_length = CELLS

    def solve(self, adjacency: list[list[int]], start: int, goal: int) -> list[int]:
        raise NotImplementedError

    def space_size(self, length: int) -> float:
        # Ordered (start, goal) pairs on every tree: 112 grid edges x 2 for two nodes;
        # 292 three-cell trees (96 straight, 196 bent) x 6 for three; beyond, N-node subtrees of
        # the grid counted by enumeration, times N(N-1); astronomically many past 10 nodes.
        return float(MAZE_PROMPTS.get(length, float("inf")))

    def batch(self, rng: np.random.Generator, lengths: np.ndarray) -> TaskBatch:
        rand = random.Random(int(rng.integers(2**63)))
        prompts, targets = [], []
        for n in lengths.tolist():
            adjacency = grow_tree(rand, n)
            nodes = [c for c in range(CELLS) if adjacency[c]]
            start, goal = rand.sample(nodes, 2)
            prompts.append(maze_prompt(adjacency, start, goal))
            targets.append([NODE[c] for c in self.solve(adjacency, start, goal)])
        prompt, prompt_len = pad_rows(prompts)
        target, target_len = pad_rows(targets)
        return TaskBatch(self.name, lengths.copy(), prompt, prompt_len, target, target_len,
                         valid_mask(target_len, target.shape[1]))


@register
class DfsTrace(_MazeTask):
    name = "dfs_trace"

    def solve(self, adjacency: list[list[int]], start: int, goal: int) -> list[int]:
        return dfs_trace(adjacency, start, goal)[0]


@register
class ShortestPath(_MazeTask):
    name = "shortest_path"

    def solve(self, adjacency: list[list[int]], start: int, goal: int) -> list[int]:
        return dfs_trace(adjacency, start, goal)[1]  # in a tree the DFS stack is the only path
