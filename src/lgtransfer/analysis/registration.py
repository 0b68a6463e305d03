"""The registration a folder of evidence may carry (`registration.yaml`, e.g. results/cpu/): which
experiments must reach which seeds before their claims get a verdict. Torch-free.

The file is written for people (results/cpu/registration.yaml); this reads the three things the
report needs from it: `seeds.extended`, the seed list; which experiments it applies to, the
ids (g1, c2, a1, ...) named in the claims of every family whose `seeds` says `extended`, less
those that family marks n/a in brackets ("extended (g3, g6, g7: n/a, not extended)"); and, from
`seeds.outcome_chosen`, the seed on whose outcome an experiment's setting was picked, which its
verdicts state they include; and `causal_over_k`, the causal test over k it registers (the k
tested, its Holm family, its claims: `heads_causal`). Without the file, nothing is pending.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lgtransfer.errors import UsageError

FILE = "registration.yaml"
ID = re.compile(r"\b([gca]\d)\b")
# `outcome_chosen`: "seed 1 of G1 transfers", "g2.yaml kept its settings because ... at seed 0"
CHOSEN = re.compile(r"\bseed (\d+) of ([gca]\d)\b|\b([gca]\d)\.yaml\b[^.]*?\bseed (\d+)",
                    re.IGNORECASE)


@dataclass
class CausalK:
    """`causal_over_k: {k: 2, family: causal-k, claims: [g1, g5, g1 - c1], min_effect: 0.05,
    measure: acc}`:
    the k whose per-seed statistic is tested, and for which experiments (a "group - control"
    claim is the contrast, withheld where the control sits at the floor)."""

    k: int
    family: str = "causal-k"
    claims: list[str] = field(default_factory=lambda: ["g1", "g5"])
    min_effect: float = 0.05
    measure: str = "acc"  # acc (exact match) | tok (token accuracy): analysis/heads_causal.py


@dataclass
class Registration:
    seeds: list[int] = field(default_factory=list)
    experiments: set[str] = field(default_factory=set)  # ids: g1, c1, a1, ...
    date: str = ""
    chosen: dict[str, int] = field(default_factory=dict)  # id -> the seed a setting was picked on
    causal_k: CausalK | None = None  # the causal test over k, where registered

    def seeds_for(self, experiment: str) -> list[int] | None:
        """The registered seeds of an experiment (g1, a1-both, ...), None if not extended."""
        # an ablation's experiments are named after it (a1-both, a1-no-carry); g2-signed is
        # an experiment of its own, not G2's
        name = experiment.split(" ")[0]
        ablation = name[:1] == "a" and name.split("-")[0] in self.experiments
        return self.seeds if name in self.experiments or ablation else None


# the registration that governs the rows being judged, when it is not the folder's own: the
# confirmatory section judges the runs of registration-confirm.yaml with the same row code
_GOVERNING: ContextVar[Registration | None] = ContextVar("governing", default=None)


@contextmanager
def governing(reg: Registration) -> Iterator[Registration]:
    """Within the block, `load` gives `reg` whatever folder it is asked about."""
    token = _GOVERNING.set(reg)
    try:
        yield reg
    finally:
        _GOVERNING.reset(token)


def listed_sizes(folder: Path) -> dict[str, int]:
    """family -> how many claims the folder's registration lists in it (its Holm m as
    registered), for the families whose every listed claim names one experiment or one contrast
    of two (`g2`, `g1 - c1 (...)`); a family whose items each stand for several claims ("per
    metric and group (g1, g2, g5)") has no countable m and is left out."""
    path = folder / FILE
    if not path.is_file():
        return {}
    raw = yaml.safe_load(path.read_text()) or {}
    out = {}
    for name, family in (raw.get("families") or {}).items():
        claims = [str(c) for c in (family or {}).get("claims") or []]
        if claims and all(1 <= len(ID.findall(c)) <= 2 for c in claims):
            out[str(name)] = len(claims)
    return out


def load(folder: Path) -> Registration:
    governing_now = _GOVERNING.get()
    if governing_now is not None:
        return governing_now
    path = folder / FILE
    if not path.is_file():
        return Registration()
    raw = yaml.safe_load(path.read_text()) or {}
    reg = Registration(list(raw.get("seeds", {}).get("extended") or []),
                       date=str(raw.get("registered", "")))
    for family in (raw.get("families") or {}).values():
        seeds = str(family.get("seeds", ""))
        if not seeds.startswith("extended"):
            continue
        excluded = set(ID.findall(seeds.partition("(")[2]))
        claims = " ".join(str(c) for c in family.get("claims") or [])
        reg.experiments |= set(ID.findall(claims)) - excluded
    chosen = " ".join(str((raw.get("seeds") or {}).get("outcome_chosen", "")).split())
    for seed, exp, exp2, seed2 in CHOSEN.findall(chosen):
        reg.chosen[(exp or exp2).lower()] = int(seed or seed2)
    causal = raw.get("causal_over_k")
    if isinstance(causal, dict) and "k" in causal:
        reg.causal_k = causal_k_of(causal)
    return reg


def causal_k_of(block: dict) -> CausalK:
    """A `causal_over_k` block (registration.yaml's, or the confirmatory registration's); an
    unknown measure or a claims entry that is not a list is one line, exit 2."""
    if block.get("measure", "acc") not in ("acc", "tok"):
        raise UsageError(f"`causal_over_k.measure` must be one of acc, tok, got "
                         f"{block['measure']!r}")
    if not isinstance(block.get("claims", []), list):
        raise UsageError(f"`causal_over_k.claims` must be a list (g1, g5, g1 - c1), got "
                         f"{block['claims']!r}")
    return CausalK(int(block["k"]), str(block.get("family", "causal-k")),
                   [str(c) for c in block.get("claims") or ["g1", "g5"]],
                   float(block.get("min_effect", 0.05)), str(block.get("measure", "acc")))
