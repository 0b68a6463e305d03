"""Attention-head reuse between the main and the auxiliary tasks (PAPER.md §8): measured over
training, correlated with the generalization gap, and tested causally. `lgt heads DIR`.

At every checkpoint of every with-aux run (DIR is one run folder, or an experiment or sweep
folder), in two length bands, this measures (see `heads_measure.py` for how):

- per task, each head's **importance** (exact-match drop under mean or zero ablation), on that
  task's own fixed evaluation examples (the run's evaluation sets, the first n of them);
- per (main, aux) pair, the **importance difference** |imp_main - imp_aux| per head, the top-k
  overlap (Jaccard) and the rank correlation of the two maps, and the **attention difference**
  per head on aligned inputs;
- the **causal test**: ablate the k heads most important to the aux tasks (importance averaged
  over the aux tasks and bands) and measure the main task's accuracy, against k random heads
  (several draws); extra drop = mean acc(random) - acc(top-k), with a bootstrap interval over
  examples and draws;
- the generalization gap, from eval.jsonl at that step (measured here when the step is missing).

Bands: `in_dist` = the main task's longest training length L_main; `transfer` = L_main +
max(1, (L_aux - L_main) // 4), near the start of the range past L_main, where transfer shows
first and accuracy is not yet at the floor (G1: 20; quick: 7). No transfer band when the aux
tasks are not longer. One length per band keeps the analysis within its time budget; pass
several (`--in-dist 8,16 --transfer 20,24`) and results are averaged over them.

Writes `DIR/heads/heads.jsonl` (one row per run, step, task or `main|aux` pair, metric, band,
layer, head; layer and head are null on the scalar rows, the mean over heads),
`DIR/heads/summary.json` (`headstats.summarize`), the figures and heads.md/html
(`heads_plots.py`).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from lgtransfer import rundir
from lgtransfer.errors import UsageError
from lgtransfer.heads_measure import (
    ablation_correct,
    aligned_pair,
    attention_difference,
    head_shape,
    importance_map,
    select_rows,
)
from lgtransfer.heads_plots import heads_section
from lgtransfer.headstats import causal_interval, summarize
from lgtransfer.metrics import generalization_gap
from lgtransfer.mixture import GroupTask, Mixture, SeqBatch, map_ids
from lgtransfer.stats import jaccard, spearman, top_k
from lgtransfer.tasks import get_task

__all__ = ["HeadOptions", "analyze_run", "find_runs", "heads_section", "run_heads"]

ABLATIONS = ("mean", "zero")


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
    return select_rows(batch, np.arange(min(n, len(batch))))


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
                diffs = [attention_difference(model, *(map_ids(b, mixture.id_map) for b in (
                    aligned_pair(names, main, other, n, opts.n, opts.seed))), device, max_tokens)
                    for n in fits]
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
        from lgtransfer.results import run_folders

        dirs = [d for d in run_folders(path)
                if rundir.is_complete(d) and (d / "config.yaml").is_file()]
        if not dirs:
            raise UsageError(f"no run folder in {path} (no config.yaml, no complete run under it)")
    runs = [r for r in (read_run(d, path) for d in dirs) if r.aux]
    if not runs:
        raise UsageError(f"no run with an auxiliary task in {path} (main-only runs are skipped)")
    for r in runs:
        find_checkpoints(r)
    return runs


def read_run(run_dir: Path, root: Path) -> RunInfo:
    """A run's identity and task group, from its config.yaml."""
    import yaml

    try:
        cfg = rundir.read_yaml(run_dir / "config.yaml")
        group = [GroupTask(**g) for g in cfg["group"]]
        info = RunInfo(run_dir, run_dir.relative_to(root).as_posix() if run_dir != root
                       else run_dir.name, cfg["name"], cfg["variant"], int(cfg["seed"]), group,
                       int(cfg["eval"]["n"]), int(cfg["eval"]["seed"]))
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as e:
        raise UsageError(f"{run_dir / 'config.yaml'} is not a run config: {e}") from None
    return info


def find_checkpoints(run: RunInfo) -> None:
    """Fill run.checkpoints with every complete `checkpoints/step-N` folder."""
    ckpt = run.dir / "checkpoints"
    if not ckpt.is_dir():
        raise UsageError(f"no checkpoints folder in {run.dir}")
    for d in ckpt.glob("step-*"):
        if d.name[5:].isdigit() and (d / "config.json").is_file():
            run.checkpoints[int(d.name[5:])] = d
    if not run.checkpoints:
        raise UsageError(f"no checkpoint in {ckpt}")


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
    from lgtransfer.pretrained import checkpoint_id_map
    from lgtransfer.train import pick_device

    device = pick_device(opts.device)
    # a run from a pretrained model reads that model's token ids (None: ours)
    id_map = checkpoint_id_map(run.checkpoints[max(run.checkpoints)]) if run.checkpoints else None
    mixture = Mixture(run.group, run.eval_n, run.eval_seed, id_map)
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
