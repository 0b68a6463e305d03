"""Hooks and measurements on one model: head ablation, importance maps, attention differences.

A head is the slice `h*d:(h+1)*d` of the input of a layer's `o_proj`, where the per-head outputs
are concatenated (query heads under grouped-query attention, so pretrained GQA models work as
they are; Hugging Face Llama has no `head_mask`).

- **Ablation, batched.** `ablation_correct` evaluates C ablation conditions at once: the batch is
  replicated once per condition along dim 0 and a forward pre-hook on each `o_proj` replaces, in
  each copy, the heads that copy's mask marks. Mean ablation uses the per-position mean of the
  *clean* head output over the examples, so a multi-head ablation replaces each head by its clean
  mean, and with a one-example batch mean ablation changes nothing.
- **Importance** of a head = clean exact match - exact match with that head ablated.
- **Attention difference** per head: the L1 distance between the head's attention distributions
  on two tasks, on aligned inputs, averaged over the query rows the two sequences share and over
  examples: a mean of distances between probability distributions, in [0, 2] whatever the
  length, so runs and lengths compare. Causal attention makes the leading T x T block of an
  attention matrix independent of what follows, so the common leading block is a fair
  comparison when the two targets differ in length.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

from lgtransfer.data.mixture import SeqBatch, to_sequences
from lgtransfer.engine.evaluate import teacher_forced_correct
from lgtransfer.tasks import TaskBatch, get_task

ALIGN_SALT = 0x4C4754  # aligned inputs are drawn apart from the evaluation sets


# ----------------------------------------------------------------------------- hooks


def head_shape(model: torch.nn.Module) -> tuple[int, int, int]:
    """(layers, query heads, head dim) of a Llama-style model."""
    cfg = model.config
    n_heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_heads
    return cfg.num_hidden_layers, n_heads, head_dim


def _o_projs(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [layer.self_attn.o_proj for layer in model.model.layers]


@contextlib.contextmanager
def capture_head_outputs(model: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """Within the block, each forward pass appends every layer's o_proj input (B, T, H*d) to the
    yielded list, in layer order."""
    outs: list[torch.Tensor] = []
    handles = [m.register_forward_pre_hook(lambda _m, args: outs.append(args[0].detach()))
               for m in _o_projs(model)]
    try:
        yield outs
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def ablated(model: torch.nn.Module, row_masks: torch.Tensor,
            means: torch.Tensor | None) -> Iterator[None]:
    """Within the block, row n of a forward batch has the heads marked in row_masks[n] (N, L, H)
    replaced at the o_proj input by `means` (L, T, H*d), or by zeros when means is None."""
    n_layers, n_heads, head_dim = head_shape(model)
    handles = []

    def hook_for(layer: int):  # noqa: ANN202
        mask = row_masks[:, layer]  # (N, H)

        def hook(_module: torch.nn.Module, args: tuple) -> tuple:
            x = args[0]
            rows, width = x.shape[:2]
            heads = x.reshape(rows, width, n_heads, head_dim)  # (N, T, H, d)
            if means is None:
                fill = torch.zeros((), dtype=x.dtype, device=x.device)
            else:
                fill = means[layer, :width].reshape(1, width, n_heads, head_dim)
            out = torch.where(mask[:, None, :, None], fill, heads)
            return (out.reshape(rows, width, n_heads * head_dim), *args[1:])

        return hook

    for layer, module in enumerate(_o_projs(model)):
        if row_masks[:, layer].any():
            handles.append(module.register_forward_pre_hook(hook_for(layer)))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


# ----------------------------------------------------------------------------- measurements


def _chunks(total: int, width: int, max_tokens: int) -> Iterator[slice]:
    per = max(1, max_tokens // max(1, width))
    for start in range(0, total, per):
        yield slice(start, min(start + per, total))


def _tensors(batch: SeqBatch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int]:
    width = int(batch.seq_len.max())
    tokens = torch.from_numpy(batch.tokens[:, :width]).to(device)
    mask = torch.from_numpy(batch.loss_mask[:, :width]).to(device)
    return tokens, mask, width


@torch.no_grad()
def head_means(model: torch.nn.Module, batch: SeqBatch, device: torch.device,
               max_tokens: int = 2**15) -> torch.Tensor:
    """(L, T, H*d) per-position mean of every head's output over the examples that reach that
    position (right padding is left out of the mean)."""
    tokens, _, width = _tensors(batch, device)
    valid = torch.arange(width, device=device) < torch.from_numpy(batch.seq_len).to(device)[:, None]
    sums: torch.Tensor | None = None
    for rows in _chunks(len(batch), width, max_tokens):
        with capture_head_outputs(model) as outs:
            model.model(input_ids=tokens[rows])
        part = torch.stack([(x * valid[rows, :, None]).sum(0) for x in outs])  # (L, T, H*d)
        sums = part if sums is None else sums + part
    assert sums is not None
    return sums / valid.sum(0).clamp(min=1)[None, :, None]


@torch.no_grad()
def ablation_correct(model: torch.nn.Module, batch: SeqBatch, masks: torch.Tensor,
                     ablation: str, device: torch.device, max_tokens: int = 2**15) -> np.ndarray:
    """(C, B) exact match of every example under each of C ablations; masks is (C, L, H) bool.

    The C conditions run as copies of the batch in as few forward passes as `max_tokens` allows.
    """
    tokens, loss_mask, width = _tensors(batch, device)
    means = head_means(model, batch, device, max_tokens) if ablation == "mean" else None
    masks = masks.to(device)
    n_cond, n = masks.shape[0], len(batch)
    out = torch.empty(n_cond * n, dtype=torch.bool)
    for rows in _chunks(n_cond * n, width, max_tokens):
        flat = torch.arange(rows.start, rows.stop, device=device)
        cond, example = flat // n, flat % n  # copy c of example i is flat row c * n + i
        with ablated(model, masks[cond], means):
            out[rows] = teacher_forced_correct(model, tokens[example], loss_mask[example]).cpu()
    return out.view(n_cond, n).numpy()


def single_head_masks(n_layers: int, n_heads: int) -> torch.Tensor:
    """(1 + L*H, L, H): no ablation, then each head alone in layer-major order."""
    eye = torch.eye(n_layers * n_heads, dtype=torch.bool).view(-1, n_layers, n_heads)
    return torch.cat([torch.zeros(1, n_layers, n_heads, dtype=torch.bool), eye])


def importance_map(model: torch.nn.Module, batch: SeqBatch, ablation: str,
                   device: torch.device, max_tokens: int = 2**15) -> tuple[float, np.ndarray]:
    """Clean exact match and the (L, H) map of accuracy drops, one head ablated at a time."""
    n_layers, n_heads, _ = head_shape(model)
    acc = ablation_correct(model, batch, single_head_masks(n_layers, n_heads), ablation, device,
                           max_tokens).mean(axis=1)
    return float(acc[0]), (acc[0] - acc[1:]).reshape(n_layers, n_heads)


@torch.no_grad()
def attention_difference(model: torch.nn.Module, a: SeqBatch, b: SeqBatch,
                         device: torch.device, max_tokens: int = 2**15) -> np.ndarray:
    """(L, H) mean over examples and shared query rows of sum_k |A_a[t, k] - A_b[t, k]|.

    Row t of example i counts when t < min(len_a[i], len_b[i]); the value is in [0, 2]. Needs a
    model loaded with eager attention (the only implementation that returns the weights).
    """
    width = int(max(a.seq_len.max(), b.seq_len.max()))
    pair = SeqBatch.concat([a, b])  # pads both to one width: the second half is b
    tokens = torch.from_numpy(pair.tokens[:, :width]).to(device)
    shared = torch.from_numpy(np.minimum(a.seq_len, b.seq_len)).to(device)
    rows_ok = torch.arange(width, device=device) < shared[:, None]  # (B, T)
    n_layers, n_heads, _ = head_shape(model)
    sums = torch.zeros(n_layers, n_heads, device=device)
    for rows in _chunks(len(a), 2 * width, max_tokens):
        idx = torch.arange(rows.start, rows.stop, device=device)
        att = model.model(input_ids=tokens[torch.cat([idx, idx + len(a)])],
                          output_attentions=True).attentions  # L x (2b, H, T, T)
        for layer, w in enumerate(att):
            half = len(idx)
            dist = (w[:half] - w[half:]).abs().sum(-1)  # (b, H, T)
            sums[layer] += (dist * rows_ok[rows, None, :]).sum((0, 2))
    return (sums / rows_ok.sum()).cpu().numpy()


def same_prompts(x: TaskBatch, y: TaskBatch) -> np.ndarray:
    """(B,) bool: example i of x and of y have the same prompt, token for token."""
    width = max(x.prompt.shape[1], y.prompt.shape[1])
    pad = [np.pad(b.prompt, ((0, 0), (0, width - b.prompt.shape[1])), constant_values=-1)
           for b in (x, y)]
    return (x.prompt_len == y.prompt_len) & (pad[0] == pad[1]).all(axis=1)


def aligned_pair(group: list[str], task_a: str, task_b: str, length: int, n: int,
                 seed: int) -> tuple[SeqBatch, SeqBatch]:
    """n examples of each task at `length` drawn from the same generator state, so that tasks
    sharing an input format draw the same operands, string or maze (the tests check which).

    When most pairs have identical prompts (the add family with one operator, string tasks,
    mazes), the pairs that do not (MQAR redraws strings with too few once-only letters) are
    dropped; otherwise (add vs subtract, whose prompts differ in the operator and, after the
    a >= b swap, in operand order) every pair is kept: same operands. Task markers differ
    anyway: each task keeps its own, as in training.
    """
    a, b = (get_task(t).batch(np.random.default_rng([seed, ALIGN_SALT, length]),
                              np.full(n, length)) for t in (task_a, task_b))
    same = same_prompts(a, b)
    if same.mean() >= 0.5:
        a, b = a.select(same), b.select(same)
    return to_sequences(a, group.index(task_a)), to_sequences(b, group.index(task_b))


def select_rows(batch: SeqBatch, rows: np.ndarray) -> SeqBatch:
    return SeqBatch(batch.tokens[rows], batch.loss_mask[rows], batch.seq_len[rows],
                    batch.task_index[rows], batch.length[rows])
