"""Models: Hugging Face `LlamaForCausalLM`, built fresh from a small config or loaded from disk.

One model class serves training, checkpoints, generation and head analysis, and every
checkpoint loads with `from_pretrained`. The paper's from-scratch model is the default: 6 layers,
6 heads of 64 dims (width 384), SwiGLU feed-forward 1536, RMSNorm, untied embeddings, RoPE base
1e5, init std 0.02, about 14M parameters.

Positional encoding is explicit. `nope` swaps the rotary module for one that returns cos = 1 and
sin = 0, so attention sees no position at all; the choice is saved in the checkpoint's config
(`lgt_pos_encoding`) and `load_model` restores it. Setting rope_theta to infinity would not do:
stock RoPE's first inverse frequency is inf**0 = 1, so one dimension pair would still rotate.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, PreTrainedModel
from transformers.utils import logging as hf_logging

from lgtransfer import tokenizer as tok
from lgtransfer.config.schema import ModelConfig
from lgtransfer.errors import UsageError

hf_logging.disable_progress_bar()  # one bar per checkpoint save would drown the training bar


def hf_config(cfg: ModelConfig) -> LlamaConfig:
    """The Hugging Face config of our from-scratch model."""
    return LlamaConfig(
        vocab_size=vocab_size_padded(),
        hidden_size=cfg.d_model,
        intermediate_size=cfg.d_ff,
        num_hidden_layers=cfg.n_layer,
        num_attention_heads=cfg.n_head,
        num_key_value_heads=cfg.n_head,
        max_position_embeddings=cfg.max_positions,
        rope_theta=cfg.rope_theta,
        rms_norm_eps=1e-6,
        initializer_range=0.02,
        tie_word_embeddings=False,
        attention_dropout=0.0,
        bos_token_id=tok.BOS,
        eos_token_id=tok.EOS,
        pad_token_id=tok.PAD,
        lgt_pos_encoding=cfg.pos_encoding,
        lgt_model_config=asdict(cfg),
    )


def vocab_size_padded(size: int = tok.VOCAB_SIZE) -> int:
    """A vocabulary (ours by default) rounded up to a multiple of 64, which GPU matrix kernels
    prefer."""
    return -(-size // 64) * 64


class NoRotation(nn.Module):
    """Stands in for the rotary module: cos = 1, sin = 0, i.e. no position information."""

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        head_dim = getattr(self, "head_dim", 64)
        shape = (*position_ids.shape, head_dim)
        return (torch.ones(shape, dtype=x.dtype, device=x.device),
                torch.zeros(shape, dtype=x.dtype, device=x.device))


def apply_pos_encoding(model: PreTrainedModel, pos_encoding: str) -> PreTrainedModel:
    if pos_encoding == "nope":
        rotation = NoRotation()
        rotation.head_dim = model.config.hidden_size // model.config.num_attention_heads
        model.model.rotary_emb = rotation
    return model


def build_model(cfg: ModelConfig, seed: int) -> LlamaForCausalLM:
    """A freshly initialized model; the seed fixes the initialization and nothing else."""
    cfg.validate()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(hf_config(cfg))
    return apply_pos_encoding(model, cfg.pos_encoding)


def load_model(path: str | Path, attn_implementation: str | None = None) -> PreTrainedModel:
    """A checkpoint saved by lgtransfer (or any Hugging Face causal LM folder, a Llama for the
    head analysis), its position encoding restored. Never touches the network."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise UsageError(f"no model checkpoint at {path} (config.json missing)")
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    # fp32 weights whatever the checkpoint's dtype: training keeps fp32 master weights and
    # evaluation runs in fp32 (PAPER.md §6)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, local_files_only=True,
                                                 **kwargs)
    return apply_pos_encoding(model, getattr(model.config, "lgt_pos_encoding", "rope"))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
