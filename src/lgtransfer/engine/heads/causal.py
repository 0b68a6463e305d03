"""The causal test at one checkpoint: ablate together the k heads most important to the aux
tasks and measure the main task's exact match, against R random sets of k heads.

extra drop = mean acc(random) - acc(top-k), with a bootstrap interval over examples and draws
(`heads.stats.causal_interval`). All conditions run in one batched pass per batch
(`heads.measure.ablation_correct`): row 0 clean, row 1 the top-k heads, rows 2.. the R draws.
"""

from __future__ import annotations

import numpy as np
import torch

from lgtransfer.analysis.heads_stats import causal_interval
from lgtransfer.analysis.stats import top_k
from lgtransfer.data.mixture import SeqBatch
from lgtransfer.engine.heads.measure import ablation_correct, head_shape
from lgtransfer.errors import UsageError


def random_head_sets(n_total: int, k: int, draws: int, seed: int, step: int) -> list[np.ndarray]:
    """R random sets of k flat head indices, fixed by (seed, step)."""
    rng = np.random.default_rng([seed, step])
    return [rng.choice(n_total, k, replace=False) for _ in range(draws)]


def condition_masks(top: list[int], draws: list[np.ndarray], n_layers: int,
                    n_heads: int) -> torch.Tensor:
    """(2 + R, layers, heads) ablation masks: none, the top-k heads, then each random set."""
    masks = torch.zeros(2 + len(draws), n_layers * n_heads, dtype=torch.bool)
    masks[1, sorted(top)] = True
    for i, heads in enumerate(draws):
        masks[2 + i, heads] = True
    return masks.view(-1, n_layers, n_heads)


def causal_metrics(correct: np.ndarray, n_boot: int, seed: int) -> dict[str, float]:
    """The test's numbers from (2 + R, examples) exact match."""
    acc = correct.mean(axis=1)
    lo, hi = causal_interval(correct, n_boot, seed)
    return {"causal_clean_acc": acc[0], "causal_topk_acc": acc[1],
            "causal_random_acc": acc[2:].mean(), "causal_extra_drop": acc[2:].mean() - acc[1],
            "causal_extra_drop_lo": lo, "causal_extra_drop_hi": hi}


def causal_test(model: torch.nn.Module, aux_importance: np.ndarray,
                main_batches: dict[str, list[SeqBatch]], *, k: int, random_draws: int,
                ablation: str, n_boot: int, seed: int, step: int, device: torch.device,
                max_tokens: int) -> tuple[list[int], dict[str, dict[str, float]]]:
    """The top-k heads of `aux_importance` (layers x heads) and, per band, the test's numbers
    on the main task's batches of that band (bands without batches are left out)."""
    n_layers, n_heads, _ = head_shape(model)
    if not 0 < k < n_layers * n_heads:  # a random k-set of every head is no control
        raise UsageError(f"--k {k} must be between 1 and {n_layers * n_heads - 1}: the model "
                         f"has {n_layers} x {n_heads} heads")
    top = sorted(top_k(aux_importance, k))
    draws = random_head_sets(n_layers * n_heads, k, random_draws, seed, step)
    masks = condition_masks(top, draws, n_layers, n_heads)
    by_band = {}
    for band, batches in main_batches.items():
        correct = np.concatenate([ablation_correct(model, b, masks, ablation, device, max_tokens)
                                  for b in batches], axis=1).astype(float)
        by_band[band] = causal_metrics(correct, n_boot, seed)
    return top, by_band
