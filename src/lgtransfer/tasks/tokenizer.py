"""The character-level vocabulary every from-scratch model uses.

Ids follow the paper's code so checkpoints line up with its conventions:

    0..5     [CLS] [EOS] [SEP] [BOS] [PAD] [UNK]
    6..100   the 95 printable ASCII characters, in ASCII order (' ' is 6, '~' is 100)
    101..164 maze node tokens [1]..[64], one per cell of the 8x8 grid
    165..190 task markers <A>..<Z>, dedicated tokens so that a marker never collides with a
             letter of a string task

Text and ids convert both ways exactly: a maze node is written `[k]`, a marker `<X>`, and every
other character stands for itself. Special tokens have no text form; `decode` drops them.
Only numpy is imported here, so the command-line paths that list and sample tasks stay fast.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

SPECIALS = ("[CLS]", "[EOS]", "[SEP]", "[BOS]", "[PAD]", "[UNK]")
CLS, EOS, SEP, BOS, PAD, UNK = range(6)
CHAR_OFFSET = 6 - 32  # id of a printable character = ord(c) + CHAR_OFFSET
N_NODES = 64
NODE_OFFSET = 100  # id of maze node [k] = k + NODE_OFFSET, k in 1..64
MARKER_OFFSET = NODE_OFFSET + N_NODES + 1  # id of marker <A>
N_MARKERS = 26
VOCAB_SIZE = MARKER_OFFSET + N_MARKERS  # 191

_PIECE = re.compile(r"\[(\d+)\]|<([A-Z])>|(.)", re.DOTALL)


def char_id(c: str) -> int:
    """Id of one printable ASCII character."""
    return ord(c) + CHAR_OFFSET


def node_id(k: int | np.ndarray) -> int | np.ndarray:
    """Id of maze node [k] (k in 1..64); works elementwise on arrays."""
    return k + NODE_OFFSET


def marker_id(index: int) -> int:
    """Id of the marker of the task at position `index` of its group (<A>, <B>, ...)."""
    if not 0 <= index < N_MARKERS:
        raise ValueError(f"a group holds at most {N_MARKERS} tasks, got task index {index}")
    return MARKER_OFFSET + index


def encode(text: str) -> list[int]:
    """Ids of a task's text; raises ValueError on a character outside the vocabulary."""
    ids = []
    for m in _PIECE.finditer(text):
        node, marker, char = m.groups()
        if node is not None:
            k = int(node)
            if not 1 <= k <= N_NODES:
                raise ValueError(f"no maze node [{k}]: nodes are [1]..[{N_NODES}]")
            ids.append(k + NODE_OFFSET)
        elif marker is not None:
            ids.append(marker_id(ord(marker) - ord("A")))
        elif " " <= char <= "~":
            ids.append(ord(char) + CHAR_OFFSET)
        else:
            raise ValueError(f"character {char!r} is not in the vocabulary")
    return ids


def token_text(i: int) -> str:
    """Text of one id; special tokens give their bracketed name."""
    if i < 6:
        return SPECIALS[i]
    if i <= NODE_OFFSET:
        return chr(i - CHAR_OFFSET)
    if i < MARKER_OFFSET:
        return f"[{i - NODE_OFFSET}]"
    if i < VOCAB_SIZE:
        return f"<{chr(ord('A') + i - MARKER_OFFSET)}>"
    raise ValueError(f"id {i} is outside the vocabulary of {VOCAB_SIZE}")


# Lookup table: id -> text, specials mapped to "" so that decode drops them.
_TEXT = [""] * 6 + [token_text(i) for i in range(6, VOCAB_SIZE)]


def decode(ids: Iterable[int]) -> str:
    """Text of a sequence of ids, special tokens dropped."""
    return "".join(_TEXT[int(i)] for i in ids)
