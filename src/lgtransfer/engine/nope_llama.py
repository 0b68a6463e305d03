"""A Llama without position encoding (NoPE), as a model type of its own.

Saving a NoPE model copies this file into the checkpoint and records it in `config.json`'s
`auto_map`, under a `model_type` stock transformers does not know. So the checkpoint cannot
load as a RoPE Llama by mistake: plain `AutoModelForCausalLM.from_pretrained(path)` refuses it
(asking for `trust_remote_code=True`), and with that flag it runs this file and gets NoPE.

This file imports only torch and transformers, never lgtransfer: it must run from inside a
checkpoint folder on a machine without lgtransfer.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM


class NoPELlamaConfig(LlamaConfig):
    model_type = "lgt_nope_llama"


class NoRotation(nn.Module):
    """Stands in for the rotary module: cos = 1, sin = 0, i.e. no position information.

    (Setting rope_theta to infinity would not do: stock RoPE's first inverse frequency is
    inf**0 = 1, so one dimension pair would still rotate.)
    """

    def __init__(self, head_dim: int):
        super().__init__()
        self.head_dim = head_dim

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        shape = (*position_ids.shape, self.head_dim)
        return (torch.ones(shape, dtype=x.dtype, device=x.device),
                torch.zeros(shape, dtype=x.dtype, device=x.device))


def remove_rotation(model: LlamaForCausalLM) -> LlamaForCausalLM:
    """Swap the rotary module of a Llama for `NoRotation`, in place."""
    config = model.config
    head_dim = getattr(config, "head_dim", None) or (
        config.hidden_size // config.num_attention_heads)
    model.model.rotary_emb = NoRotation(head_dim)
    return model


class NoPELlamaForCausalLM(LlamaForCausalLM):
    config_class = NoPELlamaConfig

    def __init__(self, config: NoPELlamaConfig):
        super().__init__(config)
        remove_rotation(self)


# `save_pretrained` then copies this file into the checkpoint and writes the `auto_map`
NoPELlamaConfig.register_for_auto_class()
NoPELlamaForCausalLM.register_for_auto_class("AutoModelForCausalLM")
