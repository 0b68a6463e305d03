"""Attention-head reuse between the main and the auxiliary tasks (PAPER.md §8), measured and
tested causally.

A head is the slice `h*d:(h+1)*d` of the input of a layer's `o_proj` (query heads under
grouped-query attention, so pretrained GQA models work as they are). Three measurements:

- **attention difference** per head: the L1 distance between the head's attention distributions
  on the two tasks, on aligned inputs (`aligned_pair`), averaged over the query rows the two
  sequences share and over the examples. Dividing by the number of rows makes it a mean of
  distances between probability distributions, in [0, 2] whatever the length, so runs and
  lengths compare. Causal attention makes the leading T x T block of a sequence's attention
  matrix independent of what follows, so the common leading block is a fair comparison even when
  the two targets differ in length.
- **importance** per head and task: the drop in exact-match accuracy when that head's output is
  replaced by its per-position mean over the examples (mean ablation; `zero` is an option). All
  single-head ablations of one evaluation set run in a few forward passes: the batch is
  replicated once per ablated head and a forward pre-hook on `o_proj` replaces, in each copy, the
  heads that copy's mask marks. Means come from the clean pass, so a multi-head ablation replaces
  each head by its clean mean, and with one example mean ablation changes nothing.
- **causal test**: ablate the k heads most important to the auxiliary tasks and measure the main
  task's accuracy, against k heads drawn at random (several draws). The extra drop is
  mean(acc, random k) - acc(top-k aux heads), with a bootstrap interval over examples and draws.

Each is measured at every checkpoint in two length bands: `in_dist` (by default the main task's
longest training length) and `transfer` (by default L_main + max(1, (L_aux - L_main) // 4), the
first stretch past it, where transfer shows first and accuracy is not yet at the floor; no
transfer band when the aux tasks are not longer). Importance is measured per task on that task's
own fixed evaluation examples (the run's evaluation sets, the first n of them). `lgt heads` runs
this over one run folder or every with-aux run under a folder; `heads_report` turns the rows into
the correlations, top-k overlaps and causal results of `summary.json` (see `headstats.py`).
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from lgtransfer import rundir
from lgtransfer.config import GroupTask
from lgtransfer.errors import UsageError
from lgtransfer.evaluate import generalization_gap, teacher_forced_correct
from lgtransfer.headstats import causal_interval, jaccard, spearman, summarize, top_k
from lgtransfer.mixture import Mixture, SeqBatch, to_sequences
from lgtransfer.tasks import TaskBatch, get_task

ABLATIONS = ("mean", "zero")
ALIGN_SALT = 0x4C4754  # aligned inputs are drawn apart from the evaluation sets


@dataclass
class HeadOptions:
    k: int = 3  # heads in the top-k overlap and the causal test
    ablation: str = "mean"  # mean | zero
    n: int = 512  # examples per task and length (at most the run's eval.n)
    steps: str = "all"  # all | last: which checkpoints
    random_draws: int = 10  # random k-head sets in the causal test
    device: str = "auto"
    in_dist: list[int] | None = None  # lengths of the in-distribution band (default: L_main)
    transfer: list[int] | None = None  # lengths of the transfer band (default: see above)
    max_tokens: int = 0  # tokens per forward pass; 0 = 2**18 on a GPU, 2**15 on a CPU
    n_boot: int = 2000
    seed: int = 0  # random heads and bootstrap

    def validate(self) -> None:
        if self.ablation not in ABLATIONS:
            raise UsageError(f"--ablation must be one of {ABLATIONS}, got {self.ablation!r}")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise UsageError(f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.steps not in ("all", "last"):
            raise UsageError(f"--steps must be all or last, got {self.steps!r}")
        for name, value, least in (("--k", self.k, 1), ("--n", self.n, 1),
                                   ("--random-draws", self.random_draws, 1)):
            if value < least:
                raise UsageError(f"{name} must be at least {least}, got {value}")


# ----------------------------------------------------------------------------- hooks


def head_shape(model: torch.nn.Module) -> tuple[int, int, int]:
    """(layers, query heads, head dim) of a Llama-style model."""
    cfg = model.config
    n_heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_heads
    return cfg.num_hidden_layers, n_heads, head_dim


def _o_projs(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [layer.self_attn.o_proj for layer in model.model.layers]


@contextlib.contextmanager
def capture_head_outputs(model: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """Within the block, each forward pass appends every layer's o_proj input (B, T, H*d) to the
    yielded list, in layer order."""
    outs: list[torch.Tensor] = []
    handles = [m.register_forward_pre_hook(lambda _m, args: outs.append(args[0].detach()))
               for m in _o_projs(model)]
    try:
        yield outs
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def ablated(model: torch.nn.Module, row_masks: torch.Tensor,
            means: torch.Tensor | None) -> Iterator[None]:
    """Within the block, row n of a forward batch has the heads marked in row_masks[n] (N, L, H)
    replaced at the o_proj input by `means` (L, T, H*d), or by zeros when means is None."""
    n_layers, n_heads, head_dim = head_shape(model)
    handles = []

    def hook_for(layer: int):  # noqa: ANN202
        mask = row_masks[:, layer]  # (N, H)

        def hook(_module: torch.nn.Module, args: tuple) -> tuple:
            x = args[0]
            rows, width = x.shape[:2]
            heads = x.reshape(rows, width, n_heads, head_dim)  # (N, T, H, d)
            if means is None:
                fill = torch.zeros((), dtype=x.dtype, device=x.device)
            else:
                fill = means[layer, :width].reshape(1, width, n_heads, head_dim)
            out = torch.where(mask[:, None, :, None], fill, heads)
            return (out.reshape(rows, width, n_heads * head_dim), *args[1:])

        return hook

    for layer, module in enumerate(_o_projs(model)):
        if row_masks[:, layer].any():
            handles.append(module.register_forward_pre_hook(hook_for(layer)))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


# ----------------------------------------------------------------------------- measurements


def _chunks(total: int, width: int, max_tokens: int) -> Iterator[slice]:
    per = max(1, max_tokens // max(1, width))
    for start in range(0, total, per):
        yield slice(start, min(start + per, total))


def _tensors(batch: SeqBatch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int]:
    width = int(batch.seq_len.max())
    tokens = torch.from_numpy(batch.tokens[:, :width]).to(device)
    mask = torch.from_numpy(batch.loss_mask[:, :width]).to(device)
    return tokens, mask, width


@torch.no_grad()
def head_means(model: torch.nn.Module, batch: SeqBatch, device: torch.device,
               max_tokens: int = 2**15) -> torch.Tensor:
    """(L, T, H*d) per-position mean of every head's output over the examples that reach that
    position (right padding is left out of the mean)."""
    tokens, _, width = _tensors(batch, device)
    valid = torch.arange(width, device=device) < torch.from_numpy(batch.seq_len).to(device)[:, None]
    sums: torch.Tensor | None = None
    for rows in _chunks(len(batch), width, max_tokens):
        with capture_head_outputs(model) as outs:
            model.model(input_ids=tokens[rows])
        part = torch.stack([(x * valid[rows, :, None]).sum(0) for x in outs])  # (L, T, H*d)
        sums = part if sums is None else sums + part
    assert sums is not None
    return sums / valid.sum(0).clamp(min=1)[None, :, None]


@torch.no_grad()
def ablation_correct(model: torch.nn.Module, batch: SeqBatch, masks: torch.Tensor,
                     ablation: str, device: torch.device, max_tokens: int = 2**15) -> np.ndarray:
    """(C, B) exact match of every example under each of C ablations; masks is (C, L, H) bool.

    The C conditions run as copies of the batch in as few forward passes as `max_tokens` allows.
    """
    tokens, loss_mask, width = _tensors(batch, device)
    means = head_means(model, batch, device, max_tokens) if ablation == "mean" else None
    masks = masks.to(device)
    n_cond, n = masks.shape[0], len(batch)
    out = torch.empty(n_cond * n, dtype=torch.bool)
    for rows in _chunks(n_cond * n, width, max_tokens):
        flat = torch.arange(rows.start, rows.stop, device=device)
        cond, example = flat // n, flat % n  # copy c of example i is flat row c * n + i
        with ablated(model, masks[cond], means):
            out[rows] = teacher_forced_correct(model, tokens[example], loss_mask[example]).cpu()
    return out.view(n_cond, n).numpy()


def single_head_masks(n_layers: int, n_heads: int) -> torch.Tensor:
    """(1 + L*H, L, H): no ablation, then each head alone in layer-major order."""
    eye = torch.eye(n_layers * n_heads, dtype=torch.bool).view(-1, n_layers, n_heads)
    return torch.cat([torch.zeros(1, n_layers, n_heads, dtype=torch.bool), eye])


def importance_map(model: torch.nn.Module, batch: SeqBatch, ablation: str,
                   device: torch.device, max_tokens: int = 2**15) -> tuple[float, np.ndarray]:
    """Clean exact match and the (L, H) map of accuracy drops, one head ablated at a time."""
    n_layers, n_heads, _ = head_shape(model)
    acc = ablation_correct(model, batch, single_head_masks(n_layers, n_heads), ablation, device,
                           max_tokens).mean(axis=1)
    return float(acc[0]), (acc[0] - acc[1:]).reshape(n_layers, n_heads)


@torch.no_grad()
def attention_difference(model: torch.nn.Module, a: SeqBatch, b: SeqBatch,
                         device: torch.device, max_tokens: int = 2**15) -> np.ndarray:
    """(L, H) mean over examples and shared query rows of sum_k |A_a[t, k] - A_b[t, k]|.

    Row t of example i counts when t < min(len_a[i], len_b[i]); the value is in [0, 2]. Needs a
    model loaded with eager attention (the only implementation that returns the weights).
    """
    width = int(max(a.seq_len.max(), b.seq_len.max()))
    pair = SeqBatch.concat([a, b])  # pads both to one width: the second half is b
    tokens = torch.from_numpy(pair.tokens[:, :width]).to(device)
    shared = torch.from_numpy(np.minimum(a.seq_len, b.seq_len)).to(device)
    rows_ok = torch.arange(width, device=device) < shared[:, None]  # (B, T)
    n_layers, n_heads, _ = head_shape(model)
    sums = torch.zeros(n_layers, n_heads, device=device)
    for rows in _chunks(len(a), 2 * width, max_tokens):
        idx = torch.arange(rows.start, rows.stop, device=device)
        att = model.model(input_ids=tokens[torch.cat([idx, idx + len(a)])],
                          output_attentions=True).attentions  # L x (2b, H, T, T)
        for layer, w in enumerate(att):
            half = len(idx)
            dist = (w[:half] - w[half:]).abs().sum(-1)  # (b, H, T)
            sums[layer] += (dist * rows_ok[rows, None, :]).sum((0, 2))
    return (sums / rows_ok.sum()).cpu().numpy()


def same_prompts(x: TaskBatch, y: TaskBatch) -> np.ndarray:
    """(B,) bool: example i of x and of y have the same prompt, token for token."""
    width = max(x.prompt.shape[1], y.prompt.shape[1])
    pad = [np.pad(b.prompt, ((0, 0), (0, width - b.prompt.shape[1])), constant_values=-1)
           for b in (x, y)]
    return (x.prompt_len == y.prompt_len) & (pad[0] == pad[1]).all(axis=1)


def aligned_pair(group: list[str], task_a: str, task_b: str, length: int, n: int,
                 seed: int) -> tuple[SeqBatch, SeqBatch]:
    """n examples of each task at `length` drawn from the same generator state, so that tasks
    sharing an input format draw the same operands, string or maze (the tests check which).

    When most pairs have identical prompts (the add family with one operator, string tasks,
    mazes), the pairs that do not (MQAR redraws strings with too few once-only letters) are
    dropped; otherwise (add vs subtract, whose prompts differ in the operator and, after the
    a >= b swap, in operand order) every pair is kept: same operands. Task markers differ
    anyway: each task keeps its own, as in training.
    """
    a, b = (get_task(t).batch(np.random.default_rng([seed, ALIGN_SALT, length]),
                              np.full(n, length)) for t in (task_a, task_b))
    same = same_prompts(a, b)
    if same.mean() >= 0.5:
        a, b = a.select(same), b.select(same)
    return to_sequences(a, group.index(task_a)), to_sequences(b, group.index(task_b))


def _select(batch: SeqBatch, rows: np.ndarray) -> SeqBatch:
    return SeqBatch(batch.tokens[rows], batch.loss_mask[rows], batch.seq_len[rows],
                    batch.task_index[rows], batch.length[rows])


# ----------------------------------------------------------------------------- one checkpoint


@dataclass
class RunInfo:
    """What the analysis needs to know about a run folder."""

    dir: Path
    name: str  # the run's path relative to the analysed folder
    experiment: str
    variant: str
    seed: int
    group: list[GroupTask]
    eval_n: int
    eval_seed: int
    checkpoints: dict[int, Path] = field(default_factory=dict)

    @property
    def main(self) -> GroupTask:
        return next(t for t in self.group if t.role == "main")

    @property
    def aux(self) -> list[GroupTask]:
        return [t for t in self.group if t.role == "aux"]


def length_bands(run: RunInfo, opts: HeadOptions) -> dict[str, list[int]]:
    """The band -> lengths measured (see the module docstring for the defaults)."""
    l_main, l_aux = run.main.max_length, max(t.max_length for t in run.aux)
    bands = {"in_dist": opts.in_dist or [l_main]}
    if opts.transfer or l_aux > l_main:
        bands["transfer"] = opts.transfer or [l_main + max(1, (l_aux - l_main) // 4)]
    return bands


def _first(batch: SeqBatch, n: int) -> SeqBatch:
    return _select(batch, np.arange(min(n, len(batch))))


def _fits(task: str, length: int) -> bool:
    t = get_task(task)
    return t.min_length <= length <= t.max_length


def analyze_checkpoint(model: torch.nn.Module, run: RunInfo, mixture: Mixture,
                       bands: dict[str, list[int]], opts: HeadOptions, device: torch.device,
                       step: int) -> list[dict]:
    """Every measurement at one checkpoint, as rows (task, metric, band, layer, head, value)."""
    n_layers, n_heads, _ = head_shape(model)
    max_tokens = opts.max_tokens or (2**18 if device.type == "cuda" else 2**15)
    rows: list[dict] = []

    def emit(task: str, metric: str, band: str | None, value: float | np.ndarray) -> None:
        if isinstance(value, np.ndarray):  # one row per head
            for (layer, head), v in np.ndenumerate(value):
                rows.append({"task": task, "metric": metric, "band": band, "layer": layer,
                             "head": head, "value": float(v)})
        rows.append({"task": task, "metric": metric, "band": band, "layer": None, "head": None,
                     "value": float(np.mean(value))})

    main, aux = run.main.task, [t.task for t in run.aux]
    aux_ranking = []
    for band, lengths in bands.items():
        maps: dict[str, np.ndarray] = {}
        for task in [main, *aux]:
            fits = [n for n in lengths if _fits(task, n)]
            if not fits:
                continue
            results = [importance_map(model, _first(mixture.eval_set(task, n), opts.n),
                                      opts.ablation, device, max_tokens) for n in fits]
            emit(task, "accuracy", band, float(np.mean([acc for acc, _ in results])))
            maps[task] = np.mean([m for _, m in results], axis=0)
            emit(task, "importance", band, maps[task])
        for other in aux:
            pair = f"{main}|{other}"
            if main in maps and other in maps:
                emit(pair, "importance_diff", band, np.abs(maps[main] - maps[other]))
                top_main, top_aux = top_k(maps[main], opts.k), top_k(maps[other], opts.k)
                emit(pair, "topk_jaccard", band, jaccard(top_main, top_aux))
                emit(pair, "importance_spearman", band,
                     spearman(maps[main].ravel(), maps[other].ravel()))
            fits = [n for n in lengths if _fits(main, n) and _fits(other, n)]
            if fits:
                names = [t.task for t in run.group]
                diffs = [attention_difference(model, *aligned_pair(
                    names, main, other, n, opts.n, opts.seed), device, max_tokens) for n in fits]
                emit(pair, "attn_diff", band, np.mean(diffs, axis=0))
        aux_ranking += [maps[t] for t in aux if t in maps]

    # causal test: one set of heads, those most important to the aux tasks over every band
    if aux_ranking:
        top = top_k(np.mean(aux_ranking, axis=0), opts.k)
        rng = np.random.default_rng([opts.seed, step])
        draws = [rng.choice(n_layers * n_heads, opts.k, replace=False)
                 for _ in range(opts.random_draws)]
        masks = torch.zeros(2 + len(draws), n_layers * n_heads, dtype=torch.bool)
        masks[1, sorted(top)] = True
        for i, heads in enumerate(draws):
            masks[2 + i, heads] = True
        masks = masks.view(-1, n_layers, n_heads)
        for band, lengths in bands.items():
            fits = [n for n in lengths if _fits(main, n)]
            if not fits:
                continue
            correct = np.concatenate([ablation_correct(
                model, _first(mixture.eval_set(main, n), opts.n), masks, opts.ablation, device,
                max_tokens) for n in fits], axis=1).astype(float)  # (2 + R, examples)
            acc = correct.mean(axis=1)
            lo, hi = causal_interval(correct, opts.n_boot, opts.seed)
            for metric, value in (("causal_clean_acc", acc[0]), ("causal_topk_acc", acc[1]),
                                  ("causal_random_acc", acc[2:].mean()),
                                  ("causal_extra_drop", acc[2:].mean() - acc[1]),
                                  ("causal_extra_drop_lo", lo), ("causal_extra_drop_hi", hi)):
                emit(main, metric, band, float(value))
        rows += [{"task": main, "metric": "causal_topk_head", "band": None,
                  "layer": i // n_heads, "head": i % n_heads, "value": 1.0} for i in sorted(top)]
    return rows


# ----------------------------------------------------------------------------- runs


def find_runs(path: Path) -> list[RunInfo]:
    """The with-aux run folders to analyse: `path` itself, or every complete run under it."""
    if not path.is_dir():
        raise UsageError(f"no such folder {path}")
    if (path / "config.yaml").is_file():
        dirs = [path]
    else:
        dirs = sorted(m.parent for m in path.rglob("manifest.json")
                      if rundir.is_complete(m.parent) and (m.parent / "config.yaml").is_file())
        if not dirs:
            raise UsageError(f"no run folder in {path} (no config.yaml, no complete run under it)")
    runs = [read_run(d, path) for d in dirs]
    runs = [r for r in runs if r.aux]
    if not runs:
        raise UsageError(f"no run with an auxiliary task in {path} (main-only runs are skipped)")
    return runs


def read_run(run_dir: Path, root: Path) -> RunInfo:
    import yaml

    try:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
        group = [GroupTask(**g) for g in cfg["group"]]
        info = RunInfo(run_dir, run_dir.relative_to(root).as_posix() if run_dir != root
                       else run_dir.name, cfg["name"], cfg["variant"], int(cfg["seed"]), group,
                       int(cfg["eval"]["n"]), int(cfg["eval"]["seed"]))
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as e:
        raise UsageError(f"{run_dir / 'config.yaml'} is not a run config: {e}") from None
    ckpt = run_dir / "checkpoints"
    if not ckpt.is_dir():
        raise UsageError(f"no checkpoints folder in {run_dir}")
    for d in ckpt.glob("step-*"):
        if d.name[5:].isdigit() and (d / "config.json").is_file():
            info.checkpoints[int(d.name[5:])] = d
    if not info.checkpoints:
        raise UsageError(f"no checkpoint in {ckpt}")
    return info


def gaps_from_eval(run: RunInfo) -> dict[int, float]:
    """Generalization gap at every step that eval.jsonl has."""
    curves: dict[int, dict[str, dict[int, float]]] = {}
    for r in rundir.read_jsonl(run.dir / "eval.jsonl"):
        curves.setdefault(r["step"], {}).setdefault(r["task"], {})[r["length"]] = r["accuracy"]
    l_main, l_aux = run.main.max_length, max(t.max_length for t in run.aux)
    out = {}
    for step, by_task in curves.items():
        if run.main.task in by_task and all(t.task in by_task for t in run.aux):
            out[step] = generalization_gap(by_task[run.main.task],
                                           [by_task[t.task] for t in run.aux], l_main, l_aux)
    return out


def checkpoint_gap(model: torch.nn.Module, run: RunInfo, mixture: Mixture,
                   device: torch.device) -> float:
    """The gap measured here, for a checkpoint whose step eval.jsonl lacks."""
    from lgtransfer.evaluate import evaluate

    l_main, l_aux = run.main.max_length, max(t.max_length for t in run.aux)
    lengths = {t.task: [n for n in range(min(l_main, l_aux) + 1, max(l_main, l_aux))
                        if _fits(t.task, n)] for t in run.group}
    curves: dict[str, dict[int, float]] = {}
    for r in evaluate(model, mixture, {k: v for k, v in lengths.items() if v}, device):
        curves.setdefault(r["task"], {})[r["length"]] = r["accuracy"]
    if run.main.task not in curves:
        return 0.0
    return generalization_gap(curves[run.main.task], [curves.get(t.task, {}) for t in run.aux],
                              l_main, l_aux)


def analyze_run(run: RunInfo, opts: HeadOptions, progress: bool = False) -> list[dict]:
    """Rows of every measurement at every selected checkpoint of one run, with the gap."""
    from lgtransfer.model import load_model
    from lgtransfer.train import make_mixture, pick_device

    device = pick_device(opts.device)
    mixture = make_mixture(run.group, run.eval_n, run.eval_seed)
    bands = length_bands(run, opts)
    for band, lengths in bands.items():
        if not any(_fits(t.task, n) for t in run.group for n in lengths):
            raise UsageError(f"no task of {run.name} takes the {band} lengths {lengths}")
    gaps = gaps_from_eval(run)
    steps = sorted(run.checkpoints)
    if opts.steps == "last":
        steps = steps[-1:]
    meta = {"run": run.name, "experiment": run.experiment, "variant": run.variant,
            "seed": run.seed}
    rows = []
    for step in steps:
        if progress:
            print(f"  {run.name} step {step}", flush=True)
        model = load_model(run.checkpoints[step], attn_implementation="eager").to(device).eval()
        gap = gaps[step] if step in gaps else checkpoint_gap(model, run, mixture, device)
        found = [{"task": run.main.task, "metric": "gap", "band": None, "layer": None,
                  "head": None, "value": gap}]
        found += analyze_checkpoint(model, run, mixture, bands, opts, device, step)
        rows += [{**meta, "step": step, **r} for r in found]
    return rows


def run_heads(path: Path, opts: HeadOptions, progress: bool = False) -> Path:
    """Analyse every with-aux run at or under `path`; write `path/heads/` (rows, summary,
    plots, heads.md/html). Returns the summary's path."""
    from lgtransfer.heads_plots import write_outputs

    opts.validate()
    runs = find_runs(path)
    rows = []
    for run in runs:
        rows += analyze_run(run, opts, progress)
    out = path / "heads"
    rundir.write_jsonl(out / "heads.jsonl", [_clean(r) for r in rows])
    summary = {"options": asdict(opts), **summarize(rows, opts.n_boot, opts.seed)}
    summary["bands"] = {r.name: length_bands(r, opts) for r in runs}
    rundir.write_json(out / "summary.json", summary)
    write_outputs(path, rows, summary)
    return out / "summary.json"


def _clean(row: dict) -> dict:
    """JSON has no nan: undefined values become null."""
    v = row["value"]
    return {**row, "value": None if v is None or not math.isfinite(v) else v}
