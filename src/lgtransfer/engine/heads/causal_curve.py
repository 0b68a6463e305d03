"""The causal test over k, at one checkpoint: for each k, the k heads most important to the aux
tasks ablated together against random k-head sets drawn with the same per-layer counts, on the
main task at every length of the transfer band (issue 33). The conditions run as a tree over
the layers (`layer_tree`): sets that agree up to a layer share its passes.

Why per-layer counts: the top-k heads of a small model sit mostly in some layers, and ablating
a layer's heads costs more in some layers than in others; random sets drawn over all heads
would then differ from the top-k set in where they are as well as in which heads they are.

Why several k: at the old test's single k the top-k ablation drove the main task to 0 on every
seed (saturated), so the comparison said nothing beyond "both hurt"; the curve shows where the
main task is not at the floor, and the registration names the k it tests.

Rows (heads.jsonl, task = the main task, band = the band's name, and three more fields: `k`,
`length` (null: the mean over the band's lengths, each length weighted alike), `draw` (null:
not a draw, or the mean over draws)):

- `kcausal_examples` (per length): the examples measured there;
- `kcausal_intact_acc` (k null): the main task's exact match with nothing ablated;
- `kcausal_topk_acc`: with the k top aux heads ablated;
- `kcausal_random_acc`: with draw d's heads ablated (draw = d), and the mean over draws;
- `kcausal_noattn_acc`, `kcausal_noattn_tok` (k null): with every attention head ablated,
  the floor of each measure (token accuracy keeps what needs no attention, about 0.2 for G1);
- `kcausal_intact_tok`, `kcausal_topk_tok`, `kcausal_random_tok`: the same in token accuracy
  (the share of answer tokens right, teacher-forced). Why: ablating a single head can zero
  exact match past L_main (a cpu-tier G1 model at 4x the steps: top-1 ablation put it at 0 on
  every seed), where token accuracy still shows how much of the answer each set destroys;
- `kcausal_topk_at_floor` (band mean only): 1.0 where the top-k accuracy is below FLOOR;
- `kcausal_random_distinct`: the share of draws that differ from the top-k set (below 1 only
  when no other set with those per-layer counts exists);
- `kcausal_topk_head` (layer, head set; value 1): the top-k heads at that k.
"""

from __future__ import annotations

import numpy as np
import torch

from lgtransfer.analysis.stats import top_k
from lgtransfer.data.mixture import SeqBatch
from lgtransfer.engine.heads.layer_tree import tree_ablation_scores

FLOOR = 0.02  # the main task's accuracy under ablation below this: at the floor (saturated)
# the two measures of the main task, each a set of rows: exact match (`_acc`, the claims'
# measure so far) and token accuracy (`_tok`: one wrong digit costs one digit, not the example)
MEASURES = {"acc": 0, "tok": 1}
SALT = 0x4B4355  # random sets of this test are drawn apart from the old test's


def layer_counts(heads: list[int], n_layers: int, n_heads: int) -> np.ndarray:
    """How many of the flat head indices sit in each layer."""
    return np.bincount(np.asarray(heads, dtype=int) // n_heads, minlength=n_layers)


def matched_random_sets(top: list[int], n_layers: int, n_heads: int, draws: int,
                        rng: np.random.Generator) -> list[list[int]]:
    """`draws` sets of flat head indices, each with as many heads in each layer as `top` (the
    heads of a layer drawn without replacement), each different from `top` where another such
    set exists (redrawn until it differs). Draws may repeat one another."""
    counts = layer_counts(top, n_layers, n_heads)
    others_exist = bool(((counts > 0) & (counts < n_heads)).any())
    target = sorted(top)
    out = []
    for _ in range(draws):
        while True:
            heads = sorted(int(layer * n_heads + h) for layer, c in enumerate(counts) if c
                           for h in rng.choice(n_heads, int(c), replace=False))
            if heads != target or not others_exist:
                break
        out.append(heads)
    return out


def curve_sets(importance: np.ndarray, ks: list[int], draws: int, seed: int,
               step: int) -> dict[int, tuple[list[int], list[list[int]]]]:
    """k -> (the top-k heads of `importance` (layers x heads), its random sets), for each k
    below the number of heads (a random set of every head is no control). Fixed by (seed,
    step, k)."""
    n_layers, n_heads = importance.shape
    out = {}
    for k in sorted(set(ks)):
        if k >= n_layers * n_heads:
            continue
        top = sorted(top_k(importance, k))
        rng = np.random.default_rng([seed, SALT, step, k])
        out[k] = (top, matched_random_sets(top, n_layers, n_heads, draws, rng))
    return out


def unique_masks(sets: dict[int, tuple[list[int], list[list[int]]]], n_layers: int,
                 n_heads: int) -> tuple[torch.Tensor, dict[tuple[int, ...], int]]:
    """(C, layers, heads) masks of every distinct head set (row 0: none ablated), and each
    set's row: a set drawn twice (or equal to a top-k set) is evaluated once."""
    index: dict[tuple[int, ...], int] = {(): 0}
    for top, draws in sets.values():
        for heads in (top, *draws):
            index.setdefault(tuple(heads), len(index))
    masks = torch.zeros(len(index), n_layers * n_heads, dtype=torch.bool)
    for heads, row in index.items():
        masks[row, list(heads)] = True
    return masks.view(-1, n_layers, n_heads), index


def causal_curve(model: torch.nn.Module, importance: np.ndarray,
                 batches: dict[int, SeqBatch], *, ks: list[int], draws: int, ablation: str,
                 seed: int, step: int, device: torch.device, max_tokens: int,
                 band: str, task: str) -> list[dict]:
    """The test's rows (see the module docstring) on the main task's `batches` (length ->
    examples), ablating `ablation` (mean | zero)."""
    n_layers, n_heads = importance.shape
    sets = curve_sets(importance, ks, draws, seed, step)
    masks, index = unique_masks(sets, n_layers, n_heads)
    # the floor of each measure: what the main task keeps with every attention head ablated
    everything = len(masks)
    masks = torch.cat([masks, torch.ones(1, n_layers, n_heads, dtype=torch.bool)])
    scores = {length: tree_ablation_scores(model, b, masks, ablation, device, max_tokens)
              for length, b in sorted(batches.items())}
    lengths = sorted(scores)
    rows: list[dict] = []

    def add(metric: str, value: float, k: int | None = None, length: int | None = None,
            draw: int | None = None, layer: int | None = None, head: int | None = None) -> None:
        rows.append({"task": task, "metric": metric, "band": band, "layer": layer,
                     "head": head, "value": float(value), "k": k, "length": length,
                     "draw": draw})

    def per_length(metric: str, acc: dict[int, np.ndarray], row: int, k: int | None = None,
                   draw: int | None = None) -> None:
        for n in lengths:
            add(metric, acc[n][row], k, n, draw)
        add(metric, np.mean([acc[n][row] for n in lengths]), k, None, draw)

    for n in lengths:
        add("kcausal_examples", len(batches[n]), length=n)
    for measure, which in MEASURES.items():  # exact match, then token accuracy
        acc = {n: scores[n][which].mean(axis=1) for n in lengths}  # length -> (C,)
        per_length(f"kcausal_intact_{measure}", acc, 0)
        per_length(f"kcausal_noattn_{measure}", acc, everything)
        for k, (top, random_sets) in sets.items():
            per_length(f"kcausal_topk_{measure}", acc, index[tuple(top)], k)
            for d, heads in enumerate(random_sets):
                per_length(f"kcausal_random_{measure}", acc, index[tuple(heads)], k, d)
            rand = np.array([[acc[n][index[tuple(h)]] for h in random_sets] for n in lengths])
            for i, n in enumerate(lengths):
                add(f"kcausal_random_{measure}", rand[i].mean(), k, n)
            add(f"kcausal_random_{measure}", rand.mean(), k)
    exact = {n: scores[n][MEASURES["acc"]].mean(axis=1) for n in lengths}
    for k, (top, random_sets) in sets.items():
        topk_band = np.mean([exact[n][index[tuple(top)]] for n in lengths])
        add("kcausal_topk_at_floor", float(topk_band < FLOOR), k)
        add("kcausal_random_distinct", np.mean([h != top for h in random_sets]), k)
        for i in top:
            add("kcausal_topk_head", 1.0, k, layer=i // n_heads, head=i % n_heads)
    return rows
