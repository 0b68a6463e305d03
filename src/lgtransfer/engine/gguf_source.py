"""GGUF files as a pretrained source: `model.init=PATH.gguf`, or an installed model by short name.

A GGUF file (llama.cpp's format) holds weights, config and tokenizer in one file. transformers
reads it (`from_pretrained(folder, gguf_file=name)`, which needs the `gguf` package) and
dequantizes every tensor to fp32, so from there on the run is the same as from a Hugging Face
folder: the tokenizer goes through the same vocabulary map, and checkpoints are ordinary
safetensors folders that `from_pretrained` and `lgt generate` load without the GGUF file.

Finding the file (a path, or an installed model by short name) and checking it before anything
loads is torch-free, in `config/model_files.py`; this module loads it.

Only llama-architecture files are read: the rest of lgtransfer (the head analysis above all)
needs a Llama-like causal LM, and a file of another architecture is refused before anything
loads, as are missing and damaged files, each in one line (`UsageError`).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
from transformers import modeling_gguf_pytorch_utils as gguf_utils


def file_sha256(path: Path) -> str:
    """sha256 of the file's bytes (the manifest's `weights_sha256` for a GGUF source)."""
    h = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No progress bar for dequantizing: transformers draws it with plain tqdm, outside the
    progress-bar switch `model.py` turns off, and it would break `--quiet` and the run bars."""
    bar = gguf_utils.tqdm
    gguf_utils.tqdm = partial(bar, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = bar


def _plain(config: Any) -> Any:
    """The config without its GGUF `quantization_config`: the weights are dequantized fp32,
    and a checkpoint whose config.json kept it would ask for the GGUF file again on loading."""
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    return config


def load_tokenizer(path: Path) -> Any:
    with _quiet():
        return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


def load_config(path: Path) -> Any:
    with _quiet():
        return _plain(AutoConfig.from_pretrained(path.parent, gguf_file=path.name))


def load_model(path: Path) -> Any:
    """The model, dequantized to fp32, as an ordinary (unquantized) transformers model."""
    with _quiet():
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                     dtype=torch.float32)
    _plain(model.config)
    model.hf_quantizer = None  # nothing is quantized any more; save_pretrained must not ask
    return model
