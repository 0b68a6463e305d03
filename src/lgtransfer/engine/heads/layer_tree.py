"""Many ablation conditions on one batch, layer by layer, sharing what they share: the exact
match of `measure.ablation_correct`, computed as a tree over the layers.

Conditions that ablate the same heads in layers 0..l have the same residual stream after layer
l, so that part is computed once for all of them; they branch where their masks first differ.
The causal test over k draws its random sets with the top-k set's per-layer counts, so a layer
the top-k set leaves alone is shared by every set of that k, and an early layer has few ways to
choose its heads: at the `cpu` model (3 x 4 heads) with a G1-like ranking, ks 1-6 and 20 draws
give 75 distinct sets and 105 layer passes instead of 225. A test checks the result equals
`ablation_correct`'s.

The decoder layers are called one at a time with the keyword arguments the model itself passes
them (causal mask, position embeddings), caught by a hook on a one-row forward pass: they
depend on the sequence length only and broadcast over any batch.
"""

from __future__ import annotations

import numpy as np
import torch

from lgtransfer.data.mixture import SeqBatch
from lgtransfer.engine.heads.measure import ablated, head_means, head_shape


def _layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    return list(model.model.layers)


def layer_kwargs(model: torch.nn.Module, tokens: torch.Tensor) -> dict:
    """The keyword arguments the model passes its first decoder layer for sequences like
    `tokens` (from a forward pass on its first row)."""
    caught: dict = {}

    def hook(_module: torch.nn.Module, _args: tuple, kwargs: dict) -> None:
        caught.update(kwargs)

    handle = _layers(model)[0].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        model.model(input_ids=tokens[:1], use_cache=False)
    finally:
        handle.remove()
    return caught


def tree_ablation_correct(model: torch.nn.Module, batch: SeqBatch, masks: torch.Tensor,
                          ablation: str, device: torch.device,
                          max_tokens: int = 2**12) -> np.ndarray:
    """(C, B) exact match of every example under each of C ablations (masks (C, L, H) bool),
    as `ablation_correct` gives it, sharing the layers conditions have in common."""
    return tree_ablation_scores(model, batch, masks, ablation, device, max_tokens)[0]


@torch.no_grad()
def tree_ablation_scores(model: torch.nn.Module, batch: SeqBatch, masks: torch.Tensor,
                         ablation: str, device: torch.device,
                         max_tokens: int = 2**12) -> tuple[np.ndarray, np.ndarray]:
    """(exact match (C, B) bool, token accuracy (C, B) float) of every example under each of C
    ablations. Token accuracy is the share of the answer's tokens predicted right given the
    right ones before them (teacher forcing, as exact match is scored): it falls by degrees
    where exact match, which one wrong digit zeroes, is already at 0."""
    n_layers, _, _ = head_shape(model)
    width = int(batch.seq_len.max())
    tokens = torch.from_numpy(batch.tokens[:, :width]).to(device)
    loss_mask = torch.from_numpy(batch.loss_mask[:, :width]).to(device)
    means = head_means(model, batch, device, max_tokens) if ablation == "mean" else None
    kwargs = layer_kwargs(model, tokens)
    layers = _layers(model)
    rows_per_pass = max(1, max_tokens // width)
    masks = masks.to(device)
    out = np.zeros((len(masks), len(batch)), dtype=bool)
    tok = np.zeros((len(masks), len(batch)), dtype=np.float64)

    def run_layer(layer: int, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        parts = []
        for start in range(0, len(hidden), rows_per_pass):
            part = hidden[start:start + rows_per_pass]
            with ablated(model, mask[None].expand(len(part), -1, -1), means):
                parts.append(layers[layer](part, **kwargs))
        return torch.cat(parts)

    def correct(hidden: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        hidden = model.model.norm(hidden)
        scored = loss_mask[:, 1:]
        logits = model.lm_head(hidden[:, :-1][scored])
        wrong = torch.zeros_like(scored)
        wrong[scored] = logits.argmax(-1) != tokens[:, 1:][scored]
        right = (scored & ~wrong).sum(dim=1) / scored.sum(dim=1).clamp(min=1)
        return (~wrong.any(dim=1)).cpu().numpy(), right.double().cpu().numpy()

    def branch(layer: int, hidden: torch.Tensor, conditions: list[int]) -> None:
        if layer == n_layers:
            out[conditions], tok[conditions] = correct(hidden)
            return
        groups: dict[bytes, list[int]] = {}
        for c in conditions:  # conditions with the same heads ablated in this layer
            groups.setdefault(masks[c, layer].cpu().numpy().tobytes(), []).append(c)
        for members in groups.values():
            branch(layer + 1, run_layer(layer, hidden, masks[members[0]]), members)

    branch(0, model.model.embed_tokens(tokens), list(range(len(masks))))
    return out, tok
