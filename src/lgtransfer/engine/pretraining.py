"""`lgt pretrain`: our own pretraining ladder, a small Llama language model trained on offline text.

The paper fine-tunes SmolLM2-360M checkpoints from along its pretraining (§7). Our build and test
machines cannot reach a model hub, so this module makes a ladder of its own: a byte-level BPE
tokenizer and a Llama trained as a plain language model on text already on the machine, saving
Hugging Face checkpoints `OUT/step-N/` (model and tokenizer; `from_pretrained` loads them) at
chosen steps. A stage sweep (`model.init: OUT`, `model.stages: [step-N, ..., scratch]`) then
fine-tunes every rung and the same architecture from scratch.

- **Corpus**: the user's text files or folders, else the Python standard library's own `.txt` and
  `.rst` documentation and `.py` sources (`sysconfig` finds them on any installation), in a fixed
  order up to a size cap. The manifest records the files, byte count and a sha256 of the text.
- **Tokenizer**: BPE over bytes, with digits split off one by one before merging, so every digit
  is a token of its own (as in SmolLM2) and every ASCII character is a token (the byte alphabet):
  the per-character id map of `from_pretrained.py` always exists.
- **Training**: the fine-tuning machinery itself (`train.train_step`: AdamW, bf16 autocast on a
  GPU; `train.lr_factor`: warmup-stable-decay), on random windows of the token stream; the batch
  at step s is a pure function of (seed, s). A held-out tail of the corpus gives a validation
  loss at every checkpoint.
"""

from __future__ import annotations

import hashlib
import shutil
import sysconfig
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from tqdm import tqdm
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from lgtransfer.config import TrainConfig
from lgtransfer.config.schema import ModelConfig
from lgtransfer.data.mixture import SeqBatch
from lgtransfer.engine import machine
from lgtransfer.engine.model import hf_config, vocab_size_padded
from lgtransfer.engine.train import lr_factor, masked_loss, pick_device, train_step
from lgtransfer.errors import UsageError
from lgtransfer.runtime import rundir

EOS_TEXT, PAD_TEXT = "<|endoftext|>", "<|pad|>"
DOC_SUFFIXES = (".txt", ".rst")  # the default corpus: documentation first, then sources


@dataclass
class PretrainConfig:
    """One ladder: model size, tokenizer, data and schedule."""

    n_layer: int = 6
    n_head: int = 6
    d_model: int = 384
    d_ff: int = 1536
    vocab_size: int = 4096
    seq_len: int = 256
    batch_size: int = 128
    steps: int = 4000
    stages: int = 5  # checkpoints at steps/2**(stages-1), ..., steps/2, steps
    save_every: int = 0  # instead: a checkpoint every this many steps (and at the end)
    lr: float = 1e-3
    warmup: float = 0.05
    decay: float = 0.2
    corpus_mb: float = 32.0  # cap on the corpus text
    seed: int = 0

    def stage_steps(self) -> list[int]:
        """The steps that get a checkpoint: doubling (more rungs early, where the model changes
        fastest), or every `save_every` steps."""
        if self.save_every:
            return sorted({*range(self.save_every, self.steps, self.save_every), self.steps})
        return sorted({max(1, round(self.steps / 2 ** (self.stages - 1 - i)))
                       for i in range(self.stages)})

    def validate(self) -> None:
        for name in ("n_layer", "n_head", "d_model", "d_ff", "seq_len", "batch_size", "steps",
                     "stages"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
        if self.save_every < 0 or self.vocab_size < 300 or not self.corpus_mb > 0:
            raise UsageError("--save-every must be >= 0, the vocabulary >= 300 tokens (256 bytes "
                             "and the specials) and the corpus cap positive")
        if self.d_model % self.n_head:
            raise UsageError(f"width {self.d_model} is not divisible by {self.n_head} heads")


SIZES = {
    # the tests: seconds on a CPU core
    "tiny": PretrainConfig(n_layer=2, n_head=2, d_model=32, d_ff=64, vocab_size=320, seq_len=32,
                           batch_size=8, steps=20, stages=2, lr=3e-3, corpus_mb=0.2),
    # the CPU ladder (`ladder-quick`): the `quick` preset's model, about 10 minutes on one core
    "quick": PretrainConfig(n_layer=3, n_head=4, d_model=128, d_ff=256, vocab_size=1024,
                            seq_len=128, batch_size=16, steps=1600, stages=4, lr=2e-3,
                            corpus_mb=4),
    # the GPU ladder (`ladder`): the paper's from-scratch model, a few minutes on one H100
    "small": PretrainConfig(),
}


# ----------------------------------------------------------------------------- corpus


def default_corpus_files() -> list[Path]:
    """The standard library's documentation and sources, in a fixed order (docs first)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = [p for p in root.rglob("*") if p.suffix in (*DOC_SUFFIXES, ".py") and p.is_file()
             and not {"site-packages", "dist-packages", "__pycache__"} & set(p.parts)]
    return sorted(files, key=lambda p: (p.suffix == ".py", p.relative_to(root).as_posix()))


def corpus_files(paths: list[str]) -> list[Path]:
    """Files named, and every file under folders named, in a fixed order."""
    out: list[Path] = []
    for name in paths:
        p = Path(name).expanduser()
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file())
        else:
            raise UsageError(f"--corpus: no file or folder {p}")
    return out


def read_corpus(files: list[Path], cap_bytes: int) -> tuple[list[str], dict]:
    """The text of the files (binary or non-UTF-8 ones skipped) up to about `cap_bytes`."""
    docs, used, total, h = [], [], 0, hashlib.sha256()
    for f in files:
        if total >= cap_bytes:
            break
        try:
            text = f.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if "\0" in text or not text.strip():
            continue
        text = text[: cap_bytes - total]
        docs.append(text)
        used.append(str(f))
        size = len(text.encode())
        total += size
        h.update(text.encode() + b"\0")
    if not docs:
        raise UsageError("the corpus has no readable text")
    return docs, {"files": len(used), "bytes": total, "sha256": h.hexdigest(),
                  "first": used[0], "last": used[-1]}


# ----------------------------------------------------------------------------- tokenizer


def train_tokenizer(docs: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE with individual digits; EOS doubles as BOS, as in SmolLM2."""
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False)])
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS_TEXT, PAD_TEXT],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    core.train_from_iterator(docs, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token=EOS_TEXT,
                                   eos_token=EOS_TEXT, pad_token=PAD_TEXT)


def encode_corpus(tokenizer, docs: list[str]) -> np.ndarray:
    """One token stream: the documents, each followed by EOS."""
    encoded = tokenizer.backend_tokenizer.encode_batch(docs, add_special_tokens=False)
    eos = [tokenizer.eos_token_id]
    return np.concatenate([np.array(e.ids + eos, dtype=np.int64) for e in encoded])


# ----------------------------------------------------------------------------- training


def _windows(stream: np.ndarray, starts: np.ndarray, seq_len: int) -> SeqBatch:
    tokens = stream[starts[:, None] + np.arange(seq_len)]
    mask = np.ones_like(tokens, dtype=bool)
    mask[:, 0] = False  # every token after the first is predicted and trained
    n = len(starts)
    return SeqBatch(tokens, mask, np.full(n, seq_len), np.zeros(n, np.int64), np.zeros(n, np.int64))


def _val_loss(model, val: np.ndarray, cfg: PretrainConfig, device) -> float:
    n = min(64, (len(val) - 1) // cfg.seq_len)
    if n < 1:
        return float("nan")
    batch = _windows(val, np.arange(n) * cfg.seq_len, cfg.seq_len)
    model.eval()
    with torch.no_grad():
        tokens = torch.from_numpy(batch.tokens).to(device)
        mask = torch.from_numpy(batch.loss_mask).to(device)
        loss = float(masked_loss(model, tokens, mask)) / int(batch.loss_mask[:, 1:].sum())
    model.train()
    return loss


def build_lm(cfg: PretrainConfig, tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    arch = ModelConfig(n_layer=cfg.n_layer, n_head=cfg.n_head, d_model=cfg.d_model,
                       d_ff=cfg.d_ff, max_positions=max(1024, cfg.seq_len))
    hf = hf_config(arch)
    hf.vocab_size = vocab_size_padded(len(tokenizer))
    hf.bos_token_id, hf.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
    hf.pad_token_id = tokenizer.pad_token_id
    hf.lgt_model_config = {"pretrain": asdict(cfg)}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return LlamaForCausalLM(hf)


def _prepare_out(out: Path, key: dict) -> bool:
    """True when `out` already holds this very ladder, complete. Clears an unfinished one."""
    manifest = out / "pretrain.json"
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return False
    if not manifest.is_file():
        raise UsageError(f"{out} exists and is not an `lgt pretrain` folder; pick another --out")
    old = rundir.read_json(manifest)
    same = {k: old.get(k) for k in key} == key
    if old.get("status") == "complete":
        if same:
            return True
        raise UsageError(f"{out} holds a different finished ladder; pick another --out")
    for stale in out.glob("step-*"):  # an interrupted ladder restarts from step 0
        shutil.rmtree(stale)
    return False


def pretrain(cfg: PretrainConfig, out: Path, corpus: list[str] | None = None,
             device_name: str = "auto", progress: bool = True) -> Path:
    """Train the ladder into `out` (checkpoints `out/step-N/`); returns `out`."""
    cfg.validate()
    device = pick_device(device_name)
    files = corpus_files(corpus) if corpus else default_corpus_files()
    docs, corpus_info = read_corpus(files, int(cfg.corpus_mb * 1e6))
    key = {"settings": asdict(cfg), "corpus": corpus_info}
    if _prepare_out(out, key):
        print(f"lgt: {out} already holds this ladder (complete)")
        return out
    t0 = time.perf_counter()
    tokenizer = train_tokenizer(docs, cfg.vocab_size)
    stream = encode_corpus(tokenizer, docs)
    n_val = max(cfg.seq_len * 8 + 1, len(stream) // 100)
    if len(stream) < n_val + 2 * cfg.seq_len:
        raise UsageError(f"the corpus is too small: {len(stream)} tokens for windows of "
                         f"{cfg.seq_len} and a held-out part")
    train, val = stream[:-n_val], stream[-n_val:]
    model = build_lm(cfg, tokenizer).to(device).train()
    out.mkdir(parents=True, exist_ok=True)
    manifest = {**key, "status": "running", "started": rundir.now(), "train_tokens": len(train),
                "val_tokens": len(val), "vocab": len(tokenizer), "stages": cfg.stage_steps(),
                "parameters": sum(p.numel() for p in model.parameters()),
                "prepare_seconds": round(time.perf_counter() - t0, 2),
                **machine.environment(str(device))}
    rundir.write_json(out / "pretrain.json", manifest)
    rundir.write_jsonl(out / "metrics.jsonl", [])

    tcfg = TrainConfig(steps=cfg.steps, lr=cfg.lr, warmup=cfg.warmup, decay=cfg.decay)
    optimizer = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, betas=tuple(tcfg.betas),
                                  eps=tcfg.eps, weight_decay=tcfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, tcfg))
    if device.type == "cuda":  # in place, so checkpoint keys stay plain
        model.model.compile()
    saves, rungs = set(cfg.stage_steps()), []
    t_start = time.perf_counter()
    for step in tqdm(range(cfg.steps), disable=not progress, unit="step", desc="pretrain",
                     dynamic_ncols=True):
        rng = np.random.default_rng([cfg.seed, step])
        batch = _windows(train, rng.integers(0, len(train) - cfg.seq_len, cfg.batch_size),
                         cfg.seq_len)
        loss, _ = train_step(model, optimizer, batch, device, 1, tcfg.grad_clip)
        scheduler.step()
        done = step + 1
        if done % 50 == 0 or done in saves:
            rundir.append_jsonl(out / "metrics.jsonl", [{
                "step": done, "loss": float(loss), "lr": scheduler.get_last_lr()[0],
                "tokens_per_s": done * cfg.batch_size * cfg.seq_len / (
                    time.perf_counter() - t_start)}])
        if done in saves:
            rung = {"step": done, "tokens_seen": done * cfg.batch_size * cfg.seq_len,
                    "train_loss": float(loss), "val_loss": _val_loss(model, val, cfg, device)}
            _save(model, tokenizer, out / f"step-{done}", rung)
            rungs.append(rung)
    manifest.update(status="complete", finished=rundir.now(), checkpoints=rungs,
                    train_seconds=round(time.perf_counter() - t_start, 2))
    rundir.write_json(out / "pretrain.json", manifest)
    return out


def _save(model, tokenizer, path: Path, rung: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    rundir.write_json(tmp / "lgt_pretrain.json", rung)
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)


def config_from_args(size: str, **overrides) -> PretrainConfig:
    if size not in SIZES:
        raise UsageError(f"--size must be one of {', '.join(SIZES)}, got {size!r}")
    return replace(SIZES[size], **{k: v for k, v in overrides.items() if v is not None})
