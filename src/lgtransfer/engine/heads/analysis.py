"""Attention-head reuse between the main and the auxiliary tasks (docs/paper.md §8): measured over
training, correlated with the generalization gap, and tested causally. `lgt heads DIR`.

At every checkpoint of every with-aux run (DIR is one run folder, or an experiment or sweep
folder), in two length bands, this measures (see `heads.measure` for how):

- per task, each head's **importance** (exact-match drop under mean or zero ablation), on that
  task's own fixed evaluation examples (the run's evaluation sets, the first n of them);
- per (main, aux) pair, the **importance difference** |imp_main - imp_aux| per head, the top-k
  overlap (Jaccard) and the rank correlation of the two maps, and the **attention difference**
  per head on aligned inputs;
- the **causal test**: ablate the k heads most important to the aux tasks (importance averaged
  over the aux tasks and bands) and measure the main task's accuracy, against k random heads
  (several draws); extra drop = mean acc(random) - acc(top-k), with a bootstrap interval over
  examples and draws (`heads.causal`);
- the generalization gap, from eval.jsonl at that step (measured here when the step is missing).

Bands: `in_dist` = the main task's longest training length L_main; `transfer` = L_main +
max(1, (L_aux - L_main) // 4), near the start of the range past L_main, where transfer shows
first and accuracy is not yet at the floor (G1: 20; quick: 7). No transfer band when the aux
tasks are not longer. One length per band keeps the analysis within its time budget; pass
several (`--in-dist 8,16 --transfer 20,24`) and results are averaged over them.

Writes `DIR/heads/heads.jsonl` (one row per run, step, task or `main|aux` pair, metric, band,
layer, head; layer and head are null on the scalar rows, the mean over heads),
`DIR/heads/summary.json` (`heads.stats.summarize_reuse`), the figures and heads.md/html
(`heads.plots`).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from lgtransfer.analysis.heads_stats import summarize_reuse
from lgtransfer.analysis.metrics import generalization_gap
from lgtransfer.analysis.stats import jaccard, spearman, top_k
from lgtransfer.config.files import task_files
from lgtransfer.config.schema import CAUSAL_BANDS
from lgtransfer.data.groups import GroupRoles, GroupTask
from lgtransfer.data.mixture import Mixture, SeqBatch, map_ids
from lgtransfer.engine.heads.causal import causal_test
from lgtransfer.engine.heads.causal_curve import causal_curve
from lgtransfer.engine.heads.measure import (
    aligned_pair,
    attention_difference,
    head_shape,
    importance_map,
    select_rows,
)
from lgtransfer.errors import UsageError
from lgtransfer.runtime import rundir
from lgtransfer.tasks import get_task

ABLATIONS = ("mean", "zero")
RECORDED = "heads.jsonl"  # in a run folder: head metrics recorded while training (`record`)


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
    # the causal test over k (`causal_curve`), at a run's last step only; none when empty
    causal_ks: list[int] = field(default_factory=list)
    causal_draws: int = 20  # random k-sets with the top-k set's per-layer counts, per k
    causal_n: int = 128  # examples per length (at most the run's eval.n)
    causal_band: str = "transfer_all"  # every length in (L_main, L_aux], or the transfer band

    def validate(self) -> None:
        if self.ablation not in ABLATIONS:
            raise UsageError(f"--ablation must be one of {ABLATIONS}, got {self.ablation!r}")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise UsageError(f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.steps not in ("all", "last"):
            raise UsageError(f"--steps must be all or last, got {self.steps!r}")
        if self.causal_band not in CAUSAL_BANDS:
            raise UsageError(f"--causal-band must be one of {', '.join(CAUSAL_BANDS)}, got "
                             f"{self.causal_band!r}")
        for name, value, least in (("--k", self.k, 1), ("--n", self.n, 1),
                                   ("--random-draws", self.random_draws, 1),
                                   ("--causal-ks", min(self.causal_ks, default=1), 1),
                                   ("--causal-draws", self.causal_draws, 1),
                                   ("--causal-n", self.causal_n, 1)):
            if value < least:
                raise UsageError(f"{name} must be at least {least}, got {value}")


# ----------------------------------------------------------------------------- one checkpoint


@dataclass
class TrainedRun(GroupRoles):
    """A trained run's folder, read back for analysis: identity, task group, checkpoints."""

    dir: Path
    name: str  # the run's path relative to the analysed folder
    experiment: str
    variant: str
    seed: int
    group: list[GroupTask]
    eval_n: int
    eval_seed: int
    checkpoints: dict[int, Path] = field(default_factory=dict)


def length_bands(run: TrainedRun, opts: HeadOptions) -> dict[str, list[int]]:
    """The band -> lengths measured (see the module docstring for the defaults)."""
    l_main, l_aux = run.main.max_length, max(t.max_length for t in run.aux)
    bands = {"in_dist": opts.in_dist or [l_main]}
    if opts.transfer or l_aux > l_main:
        bands["transfer"] = opts.transfer or [l_main + max(1, (l_aux - l_main) // 4)]
    return bands


def task_takes_length(task: str, length: int) -> bool:
    """Whether `task` generates examples of this length."""
    t = get_task(task)
    return t.min_length <= length <= t.max_length


@dataclass
class Checkpoint:
    """One loaded checkpoint and what measuring it needs."""

    model: torch.nn.Module
    run: TrainedRun
    mixture: Mixture
    opts: HeadOptions
    device: torch.device
    step: int

    @property
    def max_tokens(self) -> int:
        return self.opts.max_tokens or (2**18 if self.device.type == "cuda" else 2**15)

    def eval_batches(self, task: str, lengths: list[int]) -> list[SeqBatch]:
        """The first opts.n evaluation examples of `task` at each length it takes."""
        batches = [self.mixture.eval_set(task, n) for n in lengths if task_takes_length(task, n)]
        return [select_rows(b, np.arange(min(self.opts.n, len(b)))) for b in batches]


class RowWriter:
    """Collects heads.jsonl rows (task, metric, band, layer, head, value) for one checkpoint."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add_row(self, task: str, metric: str, band: str | None,
                value: float | np.ndarray) -> None:
        """A (layers, heads) array adds one row per head, then the mean over heads."""
        if isinstance(value, np.ndarray):
            for (layer, head), v in np.ndenumerate(value):
                self.rows.append({"task": task, "metric": metric, "band": band, "layer": layer,
                                  "head": head, "value": float(v)})
        self.rows.append({"task": task, "metric": metric, "band": band, "layer": None,
                          "head": None, "value": float(np.mean(value))})


def measure_importance(ck: Checkpoint, band: str, lengths: list[int],
                       out: RowWriter) -> dict[str, np.ndarray]:
    """Each task's accuracy and importance map in one band; returns the maps by task."""
    maps: dict[str, np.ndarray] = {}
    for task in [ck.run.main.task, *(t.task for t in ck.run.aux)]:
        batches = ck.eval_batches(task, lengths)
        if not batches:
            continue
        results = [importance_map(ck.model, b, ck.opts.ablation, ck.device, ck.max_tokens)
                   for b in batches]
        out.add_row(task, "accuracy", band, float(np.mean([acc for acc, _ in results])))
        maps[task] = np.mean([m for _, m in results], axis=0)
        out.add_row(task, "importance", band, maps[task])
    return maps


def measure_pair(ck: Checkpoint, other: str, band: str, lengths: list[int],
                 maps: dict[str, np.ndarray], out: RowWriter) -> None:
    """The reuse metrics of (main, other) in one band: importance difference, top-k overlap,
    rank correlation of the maps, attention difference on aligned inputs."""
    main, k = ck.run.main.task, ck.opts.k
    pair = f"{main}|{other}"
    if main in maps and other in maps:
        out.add_row(pair, "importance_diff", band, np.abs(maps[main] - maps[other]))
        out.add_row(pair, "topk_jaccard", band, jaccard(top_k(maps[main], k),
                                                        top_k(maps[other], k)))
        out.add_row(pair, "importance_spearman", band,
                    spearman(maps[main].ravel(), maps[other].ravel()))
    fits = [n for n in lengths if task_takes_length(main, n) and task_takes_length(other, n)]
    if fits:
        names = [t.task for t in ck.run.group]
        diffs = [attention_difference(ck.model, *(map_ids(b, ck.mixture.id_map) for b in (
            aligned_pair(names, main, other, n, ck.opts.n, ck.opts.seed))), ck.device,
            ck.max_tokens) for n in fits]
        out.add_row(pair, "attn_diff", band, np.mean(diffs, axis=0))


def add_causal_test(ck: Checkpoint, bands: dict[str, list[int]], aux_importance: np.ndarray,
                    out: RowWriter) -> None:
    """The causal test's rows: its numbers per band, then one row per top-k head."""
    main, opts = ck.run.main.task, ck.opts
    batches = {band: ck.eval_batches(main, lengths) for band, lengths in bands.items()}
    top, by_band = causal_test(
        ck.model, aux_importance, {b: v for b, v in batches.items() if v}, k=opts.k,
        random_draws=opts.random_draws, ablation=opts.ablation, n_boot=opts.n_boot,
        seed=opts.seed, step=ck.step, device=ck.device, max_tokens=ck.max_tokens)
    for band, metrics in by_band.items():
        for metric, value in metrics.items():
            out.add_row(main, metric, band, float(value))
    n_heads = head_shape(ck.model)[1]
    out.rows += [{"task": main, "metric": "causal_topk_head", "band": None,
                  "layer": i // n_heads, "head": i % n_heads, "value": 1.0} for i in top]


def curve_lengths(run: TrainedRun, opts: HeadOptions) -> list[int]:
    """The lengths of the causal test over k: every length in (L_main, L_aux] the main task
    takes (`transfer_all`), or those of the transfer band."""
    if opts.causal_band == "transfer":
        return length_bands(run, opts).get("transfer", [])
    l_main, l_aux = run.main.max_length, max(t.max_length for t in run.aux)
    return [n for n in range(l_main + 1, l_aux + 1) if task_takes_length(run.main.task, n)]


def add_causal_curve(ck: Checkpoint, aux_importance: np.ndarray, out: RowWriter) -> None:
    """The causal test over k (`causal_curve`): its rows, on the first causal_n evaluation
    examples of the main task at each of its lengths."""
    opts, main = ck.opts, ck.run.main.task
    batches = {n: ck.mixture.eval_set(main, n) for n in curve_lengths(ck.run, opts)}
    batches = {n: select_rows(b, np.arange(min(opts.causal_n, len(b))))
               for n, b in batches.items()}
    if not batches:
        return
    # on a CPU, passes of about 4k tokens run this test about 15 % faster than 32k (cache)
    tokens = ck.max_tokens if opts.max_tokens or ck.device.type == "cuda" else 2**12
    out.rows += causal_curve(ck.model, aux_importance, batches, ks=opts.causal_ks,
                             draws=opts.causal_draws, ablation=opts.ablation, seed=opts.seed,
                             step=ck.step, device=ck.device, max_tokens=tokens,
                             band=opts.causal_band, task=main)


def analyze_checkpoint(ck: Checkpoint, bands: dict[str, list[int]],
                       causal: bool = True, curve: bool = False) -> list[dict]:
    """Every measurement at one checkpoint, as rows (task, metric, band, layer, head, value);
    the causal test unless `causal` is false, the causal test over k where `curve` is true and
    the options name its ks."""
    out = RowWriter()
    aux = [t.task for t in ck.run.aux]
    aux_maps = []
    for band, lengths in bands.items():
        maps = measure_importance(ck, band, lengths, out)
        for other in aux:
            measure_pair(ck, other, band, lengths, maps, out)
        aux_maps += [maps[t] for t in aux if t in maps]
    # one set of heads for the causal test: those most important to the aux tasks, all bands
    if aux_maps and causal:
        add_causal_test(ck, bands, np.mean(aux_maps, axis=0), out)
    if aux_maps and curve and ck.opts.causal_ks:
        add_causal_curve(ck, np.mean(aux_maps, axis=0), out)
    return out.rows


# ----------------------------------------------------------------------------- runs


def find_runs(path: Path, trust_code: bool = False) -> list[TrainedRun]:
    """The with-aux run folders to analyse: `path` itself, or every complete run under it
    (`trust_code`: see `read_run`)."""
    if not path.is_dir():
        raise UsageError(f"no such folder {path}")
    if (path / "config.yaml").is_file():
        dirs = [path]
    else:
        from lgtransfer.analysis.results import run_folders

        dirs = [d for d in run_folders(path)
                if rundir.is_complete(d, strict=True) and (d / "config.yaml").is_file()]
        if not dirs:
            raise UsageError(f"no run folder in {path} (no config.yaml, no complete run under it)")
    runs = [r for r in (read_run(d, path, trust_code) for d in dirs) if r.aux]
    if not runs:
        raise UsageError(f"no run with an auxiliary task in {path} (main-only runs are skipped)")
    for r in runs:
        # a run that recorded its heads while training is read as it is when its checkpoints
        # are gone (committed evidence keeps none)
        if (r.dir / "checkpoints").is_dir() or not (r.dir / RECORDED).is_file():
            find_checkpoints(r)
    return runs


def read_run(run_dir: Path, root: Path, trust_code: bool = False) -> TrainedRun:
    """A run's identity and task group, from its config.yaml. Task files it names are
    imported only with `trust_code` (`config.files.task_files`)."""
    import yaml

    try:
        cfg = rundir.read_yaml(run_dir / "config.yaml")
        group = [GroupTask(**g) for g in cfg["group"]]
        info = TrainedRun(run_dir, run_dir.relative_to(root).as_posix() if run_dir != root
                       else run_dir.name, cfg["name"], cfg["variant"], int(cfg["seed"]), group,
                       int(cfg["eval"]["n"]), int(cfg["eval"]["seed"]))
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as e:
        raise UsageError(f"{run_dir / 'config.yaml'} is not a run config: {e}") from None
    task_files(cfg.get("tasks_from") or [], run_dir, str(run_dir / "config.yaml"), trust_code)
    return info


def find_checkpoints(run: TrainedRun) -> None:
    """Fill run.checkpoints with every complete `checkpoints/step-N` folder."""
    ckpt = run.dir / "checkpoints"
    if not ckpt.is_dir():
        raise UsageError(f"no checkpoints folder in {run.dir}")
    for d in ckpt.glob("step-*"):
        if d.name[5:].isdigit() and (d / "config.json").is_file():
            run.checkpoints[int(d.name[5:])] = d
    if not run.checkpoints:
        raise UsageError(f"no checkpoint in {ckpt}")


def gaps_from_eval(run: TrainedRun) -> dict[int, float]:
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


def checkpoint_gap(model: torch.nn.Module, run: TrainedRun, mixture: Mixture,
                   device: torch.device) -> float:
    """The gap measured here, for a checkpoint whose step eval.jsonl lacks."""
    from lgtransfer.engine.evaluate import evaluate

    l_main, l_aux = run.main.max_length, max(t.max_length for t in run.aux)
    lengths = {t.task: [n for n in range(min(l_main, l_aux) + 1, max(l_main, l_aux))
                        if task_takes_length(t.task, n)] for t in run.group}
    wanted = {k: v for k, v in lengths.items() if v}
    if not wanted:  # no length between the two training lengths (main 2, aux 3): undefined
        return math.nan
    curves: dict[str, dict[int, float]] = {}
    for r in evaluate(model, mixture, wanted, device):
        curves.setdefault(r["task"], {})[r["length"]] = r["accuracy"]
    if run.main.task not in curves:
        return 0.0
    return generalization_gap(curves[run.main.task], [curves.get(t.task, {}) for t in run.aux],
                              l_main, l_aux)


def analyze_run(run: TrainedRun, opts: HeadOptions, progress: bool = False) -> list[dict]:
    """Rows of every measurement at every selected checkpoint of one run, with the gap."""
    from lgtransfer.engine.evaluate import pick_device
    from lgtransfer.engine.from_pretrained import checkpoint_id_map
    from lgtransfer.engine.model import load_model

    device = pick_device(opts.device)
    # a run from a pretrained model reads that model's token ids (None: ours)
    id_map = checkpoint_id_map(run.checkpoints[max(run.checkpoints)]) if run.checkpoints else None
    mixture = Mixture(run.group, run.eval_n, run.eval_seed, id_map)
    bands = length_bands(run, opts)
    for band, lengths in bands.items():
        if not any(task_takes_length(t.task, n) for t in run.group for n in lengths):
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
        found += analyze_checkpoint(Checkpoint(model, run, mixture, opts, device, step), bands,
                                    curve=step == max(run.checkpoints))
        rows += [{**meta, "step": step, **r} for r in found]
    return rows


def recorded_rows(run: TrainedRun) -> list[dict]:
    """The rows a run recorded while training (`heads.record`), named as `lgt heads` names
    the run; the options then are the run's own (`heads.*` of its config)."""
    return [{**r, "run": run.name} for r in rundir.read_jsonl(run.dir / RECORDED)]


def run_heads(path: Path, opts: HeadOptions, progress: bool = False,
              trust_code: bool = False) -> Path:
    """Analyse every with-aux run at or under `path`; write `path/heads/` (rows, summary,
    plots, heads.md/html). Returns the summary's path. A run without checkpoints that recorded
    its head metrics while training (`heads.jsonl` in its folder) is read, not measured."""
    from lgtransfer.analysis.report.heads_plots import write_outputs

    opts.validate()
    runs = find_runs(path, trust_code)
    rows = []
    for run in runs:
        rows += analyze_run(run, opts, progress) if run.checkpoints else recorded_rows(run)
    out = path / "heads"
    rundir.write_jsonl(out / "heads.jsonl", [clean_row(r) for r in rows])
    summary = {"options": asdict(opts), **summarize_reuse(rows, opts.n_boot, opts.seed)}
    summary["bands"] = {r.name: length_bands(r, opts) for r in runs}
    rundir.write_json(out / "summary.json", summary)
    write_outputs(path, rows, summary)
    return out / "summary.json"


def clean_row(row: dict) -> dict:
    """JSON has no nan: undefined values become null."""
    v = row["value"]
    return {**row, "value": None if v is None or not math.isfinite(v) else v}
