"""Models: Hugging Face `LlamaForCausalLM`, built fresh from a small config or loaded from disk.

One model class serves training, checkpoints, generation and head analysis, and every
checkpoint loads with `from_pretrained`. The paper's from-scratch model is the default: 6 layers,
6 heads of 64 dims (width 384), SwiGLU feed-forward 1536, RMSNorm, untied embeddings, RoPE base
1e5, init std 0.02, about 14M parameters.

Positional encoding is explicit. `nope` swaps the rotary module for one that returns cos = 1 and
sin = 0, so attention sees no position at all. A NoPE model is a model type of its own
(`nope_llama.py`), saved with its code: plain `AutoModelForCausalLM.from_pretrained` refuses a
NoPE checkpoint unless given `trust_remote_code=True`, and then loads it as NoPE; it never loads
it silently as a RoPE Llama. `load_model` loads it with the installed class, no remote code.
Setting rope_theta to infinity would not do: stock RoPE's first inverse frequency is inf**0 = 1,
so one dimension pair would still rotate.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.utils import logging as hf_logging

from lgtransfer.config.schema import ModelConfig
from lgtransfer.engine.nope_llama import NoPELlamaConfig, NoPELlamaForCausalLM, remove_rotation
from lgtransfer.errors import UsageError
from lgtransfer.runtime import rundir
from lgtransfer.tasks import tokenizer as tok

hf_logging.disable_progress_bar()  # one bar per checkpoint save would drown the training bar


def hf_config(cfg: ModelConfig) -> LlamaConfig:
    """The Hugging Face config of our from-scratch model (NoPE: its own model type)."""
    return (NoPELlamaConfig if cfg.pos_encoding == "nope" else LlamaConfig)(
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


def apply_pos_encoding(model: PreTrainedModel, pos_encoding: str) -> PreTrainedModel:
    """NoPE for a model of a plain Llama type whose config asks for it (checkpoints saved before
    NoPE had its own type)."""
    return remove_rotation(model) if pos_encoding == "nope" else model


def build_model(cfg: ModelConfig, seed: int) -> LlamaForCausalLM:
    """A freshly initialized model; the seed fixes the initialization and nothing else."""
    cfg.validate()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        config = hf_config(cfg)
        return (NoPELlamaForCausalLM if cfg.pos_encoding == "nope" else LlamaForCausalLM)(config)


def load_config(path: str | Path) -> PretrainedConfig:
    """The config of a model folder; ours for a NoPE checkpoint (no remote code)."""
    if rundir.read_json(Path(path) / "config.json").get("model_type") == \
            NoPELlamaConfig.model_type:
        return NoPELlamaConfig.from_pretrained(path, local_files_only=True)
    return AutoConfig.from_pretrained(path, local_files_only=True)


def model_class(config: PretrainedConfig) -> type[PreTrainedModel]:
    return NoPELlamaForCausalLM if isinstance(config, NoPELlamaConfig) else AutoModelForCausalLM


def fresh_model(config: PretrainedConfig) -> PreTrainedModel:
    """Random weights in the architecture of `config` (fp32), NoPE if it says so."""
    if isinstance(config, NoPELlamaConfig):
        return NoPELlamaForCausalLM(config)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).float()
    return apply_pos_encoding(model, getattr(config, "lgt_pos_encoding", "rope"))


def load_model(path: str | Path, attn_implementation: str | None = None) -> PreTrainedModel:
    """A checkpoint saved by lgtransfer (or any Hugging Face causal LM folder, a Llama for the
    head analysis), its position encoding restored. Never touches the network."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise UsageError(f"no model checkpoint at {path} (config.json missing)")
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    config = load_config(path)
    # fp32 weights whatever the checkpoint's dtype: training keeps fp32 master weights and
    # evaluation runs in fp32 (docs/paper.md §6)
    model = model_class(config).from_pretrained(path, config=config, dtype=torch.float32,
                                                local_files_only=True, **kwargs)
    return apply_pos_encoding(model, getattr(model.config, "lgt_pos_encoding", "rope"))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
