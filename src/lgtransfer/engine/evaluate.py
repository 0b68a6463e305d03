"""Exact-match evaluation and real greedy generation (the summary metrics are in `metrics.py`).

Why one forward pass is enough: greedy decoding reproduces a target exactly iff every scored
target token (EOS included) is the argmax given the correct prefix. If all are, greedy follows
the correct prefix step by step; if one is not, greedy emits a wrong token there. So exact match
is "every scored position argmax-correct" under teacher forcing, and a whole evaluation set is one
batched forward pass. `greedy_correct` does real cached generation, so tests can check the claim.
Unscored target positions (MQAR's query characters) are teacher-forced in both.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import numpy as np
import torch
from transformers import DynamicCache

from lgtransfer.data.mixture import Mixture, SeqBatch
from lgtransfer.errors import UsageError
from lgtransfer.tasks import tokenizer as tok


def pick_device(name: str) -> torch.device:
    """`auto`: a CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"train.device is {name!r} but no CUDA device is available")
    return torch.device(name)


def as_tensors(batch: SeqBatch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    tokens = torch.from_numpy(batch.tokens).to(device, non_blocking=True)
    mask = torch.from_numpy(batch.loss_mask).to(device, non_blocking=True)
    return tokens, mask


def scored_logits(model: torch.nn.Module, tokens: torch.Tensor,
                  mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, V) at the N positions that predict a scored token, and those tokens (N,).

    Token t is predicted at position t - 1; the LM head runs at those positions only. Right
    padding is harmless under causal attention, so no attention mask is needed.
    """
    # no KV cache: nothing reads it, and building one costs memory and time on every call
    hidden = model.model(input_ids=tokens, use_cache=False).last_hidden_state  # (B, T, D)
    scored = mask[:, 1:]
    return model.lm_head(hidden[:, :-1][scored]), tokens[:, 1:][scored]


@torch.no_grad()
def teacher_forced_correct(model: torch.nn.Module, tokens: torch.Tensor,
                           mask: torch.Tensor) -> torch.Tensor:
    """(B,) bool: every scored token is the argmax given the true prefix."""
    logits, targets = scored_logits(model, tokens, mask)
    wrong = torch.zeros_like(mask[:, 1:])
    wrong[mask[:, 1:]] = logits.argmax(-1) != targets
    return ~wrong.any(dim=1)


def exact_match(model: torch.nn.Module, batch: SeqBatch, device: torch.device,
                max_tokens: int = 65536) -> np.ndarray:
    """(B,) bool exact match, in chunks of about `max_tokens` tokens sorted by length."""
    order = np.argsort(batch.seq_len, kind="stable")
    out = np.zeros(len(batch), dtype=bool)
    start = 0
    while start < len(order):
        stop = start + 1
        while stop < len(order) and (stop - start + 1) * batch.seq_len[order[stop]] <= max_tokens:
            stop += 1
        rows = order[start:stop]
        width = int(batch.seq_len[rows].max())
        tokens = torch.from_numpy(batch.tokens[rows, :width]).to(device)
        mask = torch.from_numpy(batch.loss_mask[rows, :width]).to(device)
        out[rows] = teacher_forced_correct(model, tokens, mask).cpu().numpy()
        start = stop
    return out


def evaluate(model: torch.nn.Module, mixture: Mixture, lengths: dict[str, Sequence[int]],
             device: torch.device) -> list[dict]:
    """Accuracy per (task, length) on the mixture's fixed evaluation sets."""
    was_training = model.training
    model.eval()
    parts, keys = [], []
    for task, task_lengths in lengths.items():
        for n in task_lengths:
            parts.append(mixture.eval_set(task, n))
            keys.append((task, n))
    batch = SeqBatch.concat(parts)
    correct = exact_match(model, batch, device)
    rows, start = [], 0
    for (task, n), part in zip(keys, parts, strict=True):
        hits = correct[start : start + len(part)]
        rows.append({"task": task, "length": n, "n": len(part), "accuracy": float(hits.mean())})
        start += len(part)
    model.train(was_training)
    return rows


def _cache_keyword(model: torch.nn.Module) -> str:
    """The forward keyword that takes a KV cache: `cache` from transformers 5.2x on (where
    `past_key_values` is deprecated, to be removed in 5.40), `past_key_values` before."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


@torch.no_grad()
def greedy_generate(model: torch.nn.Module, batch: SeqBatch, device: torch.device,
                    id_map: np.ndarray | None = None) -> tuple[list[list[int]], np.ndarray]:
    """Real greedy decoding with a KV cache, one example at a time.

    Each example starts from `[BOS] markers prompt markers`; at every target position the model's
    argmax is appended, except at unscored positions (MQAR queries), which are teacher-forced.
    Decoding stops after EOS or at the target's length plus one. Returns the generated ids and
    whether each equals its target followed by EOS. A batch in a pretrained model's ids comes
    with the `id_map` that made it (`mixture.map_ids`).

    The cache is a `DynamicCache` made here and filled in place by every forward, so no output
    field is read back: the same code runs on transformers versions that name the keyword
    `past_key_values` and on those that name it `cache`.
    """
    eos = tok.EOS if id_map is None else int(id_map[tok.EOS])
    markers = None if id_map is None else id_map[tok.MARKER_OFFSET : tok.VOCAB_SIZE]
    keyword = _cache_keyword(model)
    model.eval()
    outputs, correct = [], np.zeros(len(batch), dtype=bool)
    for i in range(len(batch)):
        seq = batch.tokens[i, : batch.seq_len[i]]
        scored = batch.loss_mask[i, : batch.seq_len[i]]
        start = _target_start(batch.tokens[i], batch.seq_len[i], markers)
        cache = {keyword: DynamicCache()}
        ids = torch.tensor(seq[:start], device=device)[None]
        out = model(input_ids=ids, use_cache=True, **cache)
        generated = []
        for t in range(start, len(seq) + 1):
            pred = int(out.logits[0, -1].argmax())
            nxt = pred if t >= len(seq) or scored[t] else int(seq[t])
            generated.append(nxt)
            if nxt == eos and (t >= len(seq) or scored[t]):
                break
            out = model(input_ids=torch.tensor([[nxt]], device=device), use_cache=True, **cache)
        outputs.append(generated)
        correct[i] = generated == seq[start:].tolist()
    return outputs, correct


def _target_start(tokens: np.ndarray, seq_len: int, markers: np.ndarray | None = None) -> int:
    """Index of the first target token: just after the second run of markers."""
    is_marker = (tokens[:seq_len] >= tok.MARKER_OFFSET if markers is None
                 else np.isin(tokens[:seq_len], markers))
    runs = np.flatnonzero(is_marker)
    return int(runs[-1]) + 1
