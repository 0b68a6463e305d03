"""Starting a run from a pretrained language model: find it offline, map our ids to its ids.

**Finding the model.** `model.init` is a local folder, a model id in the local Hugging Face
cache, or a GGUF file, or the short name of an installed one (found and checked, torch-free, by
`config/model_files.py`; a GGUF file loads through `gguf_source.py`).
`model.revision` is a branch, tag or commit of a cached repo (SmolLM2's intermediate
checkpoints are branches `step-160000`, ...), or a subfolder of a local folder (`lgt pretrain`
writes `step-N/` subfolders). Nothing here touches the network: a model that is not on this
machine is a `UsageError` that names what is missing.

**Token ids: per character, through a vocabulary map.** The pipeline keeps working in our own
character ids (`tasks/tokenizer.py`) and translates at the end: `build_id_map` gives, for each
of our ids, the pretrained tokenizer's id of that character alone, and `mixture.map_ids` applies
it to whole batches with one numpy lookup. The alternative, running the pretrained tokenizer over
the text, would let BPE merge characters (`abc` as one token) so that the prompt/target boundary,
the loss mask (MQAR trains only some target characters) and the length of an example would no
longer line up with our arrays; per-character ids keep all of them exact, vectorized and
identical to a from-scratch run. Nothing is lost for arithmetic: SmolLM2's tokenizer, like ours
from `lgt pretrain`, splits digits into single tokens anyway. Maze nodes `[k]` and task markers
`<X>` become new tokens (`<lgt_node_k>`, `<lgt_task_X>`, never existing pieces such as `[1]`)
whose embedding rows are appended (`mean_resizing`: the mean of the old rows plus noise, drawn
from the run's seed). BOS, EOS and padding become the tokenizer's own (BOS falls back to EOS,
as in SmolLM2 where both are `<|endoftext|>`). The map is saved in each checkpoint's
`lgt_run.json` beside the extended tokenizer, so generation and head analysis can rebuild it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from transformers import AutoTokenizer
from transformers.utils import logging as hf_logging

from lgtransfer.config.model_files import check_files, is_gguf, locate, resolve, weight_files
from lgtransfer.config.runs import stage_model
from lgtransfer.config.schema import ExperimentConfig, ModelConfig
from lgtransfer.engine import gguf_source
from lgtransfer.errors import UsageError
from lgtransfer.tasks import tokenizer as tok

NODE_TOKENS = [f"<lgt_node_{k}>" for k in range(1, tok.N_NODES + 1)]
MARKER_TOKENS = [f"<lgt_task_{chr(ord('A') + i)}>" for i in range(tok.N_MARKERS)]
EOS_TOKEN = "<lgt_eos>"  # added only when a tokenizer has no EOS of its own


@dataclass
class ModelSource:
    """A model ready to train, with what it takes to feed it and to record where it came from."""

    model: Any  # transformers.PreTrainedModel, fp32
    tokenizer: Any | None  # the (extended) pretrained tokenizer; None: our own vocabulary
    id_map: np.ndarray | None  # our ids -> the model's ids; None: the identity
    info: dict = field(default_factory=dict)  # for the manifest


# ----------------------------------------------------------------------------- finding it


def weights_sha256(path: Path) -> str:
    """sha256 over the weight files (name and bytes, in name order): which weights a run used."""
    h = hashlib.sha256()
    for f in weight_files(path):
        h.update(f.name.encode() + b"\0")
        with f.open("rb") as stream:
            while chunk := stream.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def load_tokenizer(path: Path) -> Any:
    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as e:
        raise UsageError(f"model.init: cannot load the tokenizer in {path}: "
                         f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def check_source(m: ModelConfig, tasks: list[str]) -> None:
    """Fail now, before any run folder exists, if the model or a needed token is missing."""
    tokenizer = open_source(m).tokenizer()
    if not is_character_vocab(tokenizer):
        build_id_map(tokenizer, tasks)


class Located(NamedTuple):
    """A model found on this machine, with the readers of its kind (folder or GGUF file)."""

    path: Path  # the model folder, or the GGUF file
    commit: str | None  # the Hub commit of a cache entry
    tokenizer: Callable[[], Any]
    config: Callable[[], Any]
    model: Callable[[], Any]
    sha256: Callable[[], str]  # of the weights


def open_source(m: ModelConfig) -> Located:
    """Find `m.init` at `m.revision`: a GGUF file or short name (`gguf_source.py`), else a
    folder or a Hub cache entry, checked for the files it needs."""
    from lgtransfer.engine import model as lgt_model

    if is_gguf(m.init):
        f = locate(m.init, m.revision)
        return Located(f, None, partial(gguf_source.load_tokenizer, f),
                       partial(gguf_source.load_config, f), partial(gguf_source.load_model, f),
                       partial(gguf_source.file_sha256, f))
    path, commit = resolve(m.init, m.revision)
    check_files(path, weights=not m.reinit)
    return Located(path, commit, partial(load_tokenizer, path),
                   partial(lgt_model.load_config, path), partial(lgt_model.load_model, path),
                   partial(weights_sha256, path))


# ----------------------------------------------------------------------------- the id map


def is_character_vocab(tokenizer: Any) -> bool:
    """True for an lgtransfer from-scratch checkpoint: it already reads our own ids."""
    probe = ["[BOS]", "[EOS]", "<A>", "<Z>", "[64]"]
    ids = [tokenizer.convert_tokens_to_ids(t) for t in probe]
    return ids == [tok.BOS, tok.EOS, tok.marker_id(0), tok.marker_id(25), tok.node_id(64)]


def needed_chars(tasks: list[str]) -> list[int]:
    """Our ids of every character the tasks write (found by sampling them, deterministically)."""
    from lgtransfer.tasks import get_task

    seen: set[int] = set()
    for name in tasks:
        task = get_task(name)
        for n in sorted({task.min_length, min(task.max_length, max(task.min_length, 16))}):
            b = task.batch(np.random.default_rng(0), np.full(256, n))
            seen |= set(np.unique(b.prompt).tolist()) | set(np.unique(b.target).tolist())
    return sorted(i for i in seen if 6 <= i <= tok.NODE_OFFSET)


def _single_token(tokenizer: Any, vocab: dict[str, int], char: str) -> int:
    """The tokenizer's id for one character alone, or -1 when it takes several tokens."""
    ids = tokenizer.encode(char, add_special_tokens=False)
    return ids[0] if len(ids) == 1 else vocab.get(char, -1)


def build_id_map(tokenizer: Any, tasks: list[str]) -> np.ndarray:
    """(VOCAB_SIZE,) our id -> the tokenizer's id, adding node and marker tokens to it in place.

    Characters the tasks need must each be one token of their own (distinct from every other
    character's); a character no task writes may be unmappable (-1).
    """
    vocab = tokenizer.get_vocab()
    new = [t for t in NODE_TOKENS + MARKER_TOKENS if t not in vocab]
    if tokenizer.eos_token_id is None and EOS_TOKEN not in vocab:
        new.append(EOS_TOKEN)
    if new:
        tokenizer.add_tokens(new)
        vocab = tokenizer.get_vocab()
    id_map = np.full(tok.VOCAB_SIZE, -1, np.int64)
    for i in range(6, tok.NODE_OFFSET + 1):
        id_map[i] = _single_token(tokenizer, vocab, tok.token_text(i))
    chars = id_map[6 : tok.NODE_OFFSET + 1]
    values, counts = np.unique(chars, return_counts=True)
    chars[np.isin(chars, values[counts > 1])] = -1  # e.g. a lower-casing tokenizer: not exact
    for k, name in enumerate(NODE_TOKENS, start=1):
        id_map[tok.node_id(k)] = vocab[name]
    for i, name in enumerate(MARKER_TOKENS):
        id_map[tok.marker_id(i)] = vocab[name]
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else vocab[EOS_TOKEN]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    id_map[tok.EOS] = eos
    id_map[tok.BOS] = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos
    id_map[[tok.PAD, tok.CLS, tok.SEP, tok.UNK]] = pad  # only PAD ever appears, in padding
    missing = [i for i in needed_chars(tasks) if id_map[i] < 0]
    if missing:
        raise UsageError("the pretrained tokenizer has no single token for "
                         f"{tok.decode(missing)!r}, which the tasks need")
    return id_map


def inverse_map(id_map: np.ndarray) -> dict[int, int]:
    """The model's id -> ours. Where several of ours share one id (EOS and PAD, say), the
    lowest of ours wins: EOS (1) before BOS (3) and PAD (4)."""
    inverse: dict[int, int] = {}
    for ours in range(tok.VOCAB_SIZE - 1, -1, -1):
        if id_map[ours] >= 0:
            inverse[int(id_map[ours])] = ours
    return inverse


def decode(ids: list[int], id_map: np.ndarray | None) -> str:
    """Text of the model's ids; an id outside the map shows as U+FFFD."""
    if id_map is None:
        return tok.decode(ids)
    inverse = inverse_map(id_map)
    return "".join(tok.decode([inverse[i]]) if i in inverse else "\ufffd" for i in ids)


# ----------------------------------------------------------------------------- loading


def grow_embeddings(model: Any, n_tokens: int) -> int:
    """Make room for `n_tokens` (rounded up to a multiple of 64); returns the rows added."""
    old = model.get_input_embeddings().weight.shape[0]
    if n_tokens <= old:
        return 0
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # not the note on how mean resizing works, on every run
    try:
        model.resize_token_embeddings(n_tokens, pad_to_multiple_of=64, mean_resizing=True)
    finally:
        hf_logging.set_verbosity(verbosity)
    return model.get_input_embeddings().weight.shape[0] - old


def load_source(m: ModelConfig, seed: int, tasks: list[str]) -> ModelSource:
    """The model `m.init` at `m.revision` (random weights with `m.reinit`), in fp32, its
    embeddings grown for the new tokens; the seed draws the new rows (and, with `reinit`, every
    weight)."""
    from lgtransfer.engine.model import fresh_model

    source = open_source(m)
    tokenizer = source.tokenizer()
    id_map = None if is_character_vocab(tokenizer) else build_id_map(tokenizer, tasks)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = fresh_model(source.config()) if m.reinit else source.model()
        added = grow_embeddings(model, len(tokenizer)) if id_map is not None else 0
    if not (hasattr(model, "model") and hasattr(model, "lm_head")):
        raise UsageError(f"model.init: {type(model).__name__} is not supported (lgtransfer needs "
                         "a Llama-like causal LM with .model and .lm_head)")
    info = {"init": m.init, "revision": m.revision, "model_path": str(source.path),
            "model_file": source.path.name if source.path.is_file() else None,
            "model_commit": source.commit, "reinit": m.reinit, "embedding_rows_added": added,
            "weights_sha256": None if m.reinit else source.sha256()}
    return ModelSource(model, tokenizer if id_map is not None else None, id_map, info)


def load_checkpoint(path: str | Path) -> ModelSource:
    """A checkpoint written by a run, with the id map it was trained with (None: our ids)."""
    from lgtransfer.engine.model import load_model

    path = Path(path)
    model = load_model(path)
    id_map = checkpoint_id_map(path)
    tokenizer = load_tokenizer(path) if id_map is not None else None
    return ModelSource(model, tokenizer, id_map)


def checkpoint_id_map(path: str | Path) -> np.ndarray | None:
    """The id map recorded in a checkpoint's `lgt_run.json` (None: our own ids)."""
    meta = Path(path) / "lgt_run.json"
    if not meta.is_file():
        return None
    id_map = json.loads(meta.read_text()).get("id_map")
    return None if id_map is None else np.asarray(id_map, dtype=np.int64)


def validate_models(cfg: ExperimentConfig) -> None:
    """Every pretrained model the runs of `cfg` start from is on this machine (one line, exit 2
    otherwise): each stage's `model.init`, checked before any run folder exists."""
    for stage in cfg.model.stages or [None]:
        model = stage_model(cfg.model, stage)
        if model.init:
            check_source(model, [t.task for t in cfg.group])
