"""The training loop of one run: data stream, AdamW with warmup-stable-decay, eval, checkpoints.

The batch at step s is a pure function of (data seed, s), so the stream is identical across model
seeds, can be prefetched by worker processes, and resumes exactly. The model seed only picks the
initialization. Loss is cross-entropy on target tokens and EOS only; the LM head runs only at
those positions. How a run executes (`config/execution.py`: fp32 or bf16, eager or compiled)
is part of its key; `auto` is bf16 and compiled on a GPU, and on a CPU bf16 only for models wide
enough to gain from it; the tests run every combination's code on the CPU. bf16 is autocast with
fp32 weights and optimizer, the fused AdamW, and on a CPU attention as plain matmuls (the fused
attention kernel is slower in bf16 there). Evaluation always runs in fp32 (docs/paper.md §6:
bf16 near-ties could make the one-pass exact match differ from greedy decoding).

Resuming: `checkpoints/resume.pt` names the last complete checkpoint and holds the optimizer,
scheduler and step, as tensors and plain data only (loaded with `weights_only`: nothing in it
can run code); logs past that step are dropped and written again. A complete run deletes it
(twice the model's size, of no use once done) unless `train.keep_resume` is set.

A run whose `model.init` names a pretrained model starts from it (`from_pretrained.py`): the mixture
then hands out batches in that model's token ids, and checkpoints carry its extended tokenizer
and the id map.
"""

from __future__ import annotations

import dataclasses
import errno
import math
import multiprocessing
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lgtransfer.config import RunSpec, TrainConfig, execution
from lgtransfer.data.mixture import (
    Mixture,
    SeqBatch,
    eval_lengths,
    init_worker,
    step_batch,
    worker_batch,
)
from lgtransfer.engine import from_pretrained as pretrained
from lgtransfer.engine import machine, tracking
from lgtransfer.engine.checkpoints import (
    read_resume_point,
    remove_temporaries,
    save_resume_point,
)
from lgtransfer.engine.evaluate import evaluate, pick_device, scored_logits
from lgtransfer.engine.heads.record import HEADS_FILE, HeadRecorder
from lgtransfer.engine.model import build_model
from lgtransfer.errors import DiskFull, Interrupted, UsageError
from lgtransfer.runtime import rundir, stopping
from lgtransfer.tasks.user import load_files, source_of

# ----------------------------------------------------------------------------- set-up


def execution_on(run: RunSpec, device: torch.device) -> execution.Execution:
    """How `run` executes on `device`: the execution its key was planned with, or a one-line
    error when this device would run it otherwise (a key planned for a GPU, trained on a CPU)."""
    how = execution.resolve(dataclasses.asdict(run.train), dataclasses.asdict(run.model),
                            device.type)
    if how != run.execution:
        raise UsageError(f"this run was planned to execute as {run.execution.name} but would "
                         f"run as {how.name} on {device.type}; set train.device, "
                         "train.precision and train.compile explicitly")
    return how


def autocast_dtype(how: execution.Execution) -> torch.dtype:
    """The dtype matmuls run in under autocast (float32: autocast off)."""
    return torch.bfloat16 if how.precision == "bf16" else torch.float32


def attention_for(how: execution.Execution, device: torch.device) -> str | None:
    """The attention kernel bf16 trains with on a CPU: plain matmuls ("eager"; the fused
    kernel runs slower in bf16 there than in fp32). None: the model's own (sdpa)."""
    return "eager" if how.precision == "bf16" and device.type == "cpu" else None


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Warmup-stable-decay: linear warm-up, constant, cosine decay to 0 over the last part."""
    warmup = max(1, round(cfg.warmup * cfg.steps))
    decay_start = cfg.steps - round(cfg.decay * cfg.steps)
    if step < warmup:
        return (step + 1) / warmup
    if step < decay_start:
        return 1.0
    progress = (step - decay_start) / max(1, cfg.steps - decay_start)
    return 0.5 * (1 + math.cos(math.pi * progress))


# ----------------------------------------------------------------------------- data stream

def batch_stream(mixture: Mixture, seed: int, start: int, stop: int, size: int,
                 workers: int) -> Iterator[SeqBatch]:
    """Batches for steps start..stop-1, made ahead by `workers` processes (0: inline)."""
    if workers == 0:
        for step in range(start, stop):
            yield step_batch(mixture, seed, step, size)
        return
    context = multiprocessing.get_context("spawn")  # never fork a process that runs CUDA
    with ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker,
                             initargs=(mixture,)) as pool:
        ahead: list[Future] = []
        step = start
        while step < stop or ahead:
            while step < stop and len(ahead) < 2 * workers:
                ahead.append(pool.submit(worker_batch, seed, step, size))
                step += 1
            yield ahead.pop(0).result()


# ----------------------------------------------------------------------------- one run

def masked_loss(model: torch.nn.Module, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy over the trained tokens (target and EOS)."""
    logits, targets = scored_logits(model, tokens, mask)
    return torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum")


def length_buckets(batch: SeqBatch, buckets: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The batch sorted by length and cut into `buckets` chunks, each trimmed to its longest
    sequence: less padding for the same examples (the gradient is the same)."""
    order = np.argsort(batch.seq_len, kind="stable")
    out = []
    for rows in np.array_split(order, buckets):
        if len(rows):
            width = int(batch.seq_len[rows].max())
            out.append((batch.tokens[rows, :width], batch.loss_mask[rows, :width]))
    return out


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: SeqBatch,
               device: torch.device, buckets: int, grad_clip: float,
               dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    """One optimizer step on a batch, under autocast to `dtype` unless float32 (the weights and
    optimizer stay fp32 either way); returns the loss and grad norm."""
    optimizer.zero_grad(set_to_none=True)
    n_scored = int(batch.loss_mask[:, 1:].sum())
    loss = torch.zeros((), device=device)
    for tokens_np, mask_np in length_buckets(batch, buckets):
        tokens = torch.from_numpy(tokens_np).to(device, non_blocking=True)
        mask = torch.from_numpy(mask_np).to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            part = masked_loss(model, tokens, mask) / n_scored
        part.backward()
        loss += part.detach()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss, grad_norm


def train_run(run: RunSpec, run_dir: Path, progress: bool = True, position: int = 0) -> None:
    """Train, evaluate and checkpoint one run; resumes a partial run; skips a complete one. A
    full disk stops it cleanly (`errors.DiskFull`): temporary files removed, still resumable."""
    try:
        with tracking.Tracking(run, run_dir) as tracker:  # W&B / TensorBoard, when asked
            _train_run(run, run_dir, progress, position, tracker)
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        remove_temporaries(run_dir)
        raise DiskFull(str(e.filename or run_dir), str(run_dir)) from None


def init_from(run: RunSpec, run_dir: Path
              ) -> tuple[int, dict | None, torch.nn.Module, pretrained.ModelSource | None]:
    """Where the model comes from, in this order (nanoGPT's `init_from`): the run's own resume
    point (a partial run goes on from its last complete checkpoint), else the pretrained model
    `model.init` names, else fresh weights drawn from the model seed. Returns the step to start
    at, the optimizer and scheduler state to restore (None: new ones), the model, and its
    source (a pretrained or resumed model's tokenizer and id map; None for a fresh model)."""
    if (resumed := read_resume_point(run_dir)) is not None:
        step, state, source = resumed
        return step, state, source.model, source
    if run.model.init:
        source = pretrained.load_source(run.model, run.seed, [t.task for t in run.experiment.group])
        return 0, None, source.model, source
    return 0, None, build_model(run.model, run.seed), None


def _train_run(run: RunSpec, run_dir: Path, progress: bool, position: int,
               tracker: tracking.Tracking) -> None:
    if rundir.is_complete(run_dir):
        return
    load_files(run.experiment.tasks_from)  # user tasks, in whichever process trains the run
    cfg, tcfg = run.experiment, run.train
    device = pick_device(tcfg.device)
    if tcfg.threads:
        torch.set_num_threads(tcfg.threads)
    how = execution_on(run, device)
    start, resume_state, model, source = init_from(run, run_dir)
    if (attention := attention_for(how, device)) is not None:
        model.set_attn_implementation(attention)
    mixture = Mixture(run.group, cfg.eval.n, cfg.eval.seed, source.id_map if source else None)
    # every variant is evaluated up to the same length (at least the group's longest training
    # length), so the baseline and the with-aux run cover the same lengths
    lengths = eval_lengths(mixture, cfg.eval.lengths, cfg.eval_max_length,
                           [t.max_length for t in run.group])
    prepare_model(model, device, tcfg)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    # the folder appears only once the model is in hand: bad input leaves nothing behind
    manifest = start_manifest(run, run_dir, device, start, source, how)
    tracker.open(start)
    optimizer, scheduler = make_optimizer(model, tcfg, resume_state,
                                          fused=how.precision == "bf16")
    if how.compiled:
        # in place: checkpoint keys stay plain; the loss stays eager. Dynamic shapes: one graph
        # for every batch and bucket shape, not one compile per shape. The reset first: runs
        # trained one after another in one process (the inline executor, one GPU) would else
        # pile up graphs towards dynamo's recompile limit and silently fall back to eager
        torch._dynamo.reset()
        model.model.compile(dynamic=True)
    dtype = autocast_dtype(how)
    recorder = HeadRecorder(run, run_dir, mixture, model, device) \
        if HeadRecorder.wanted(run, model) else None

    stream = batch_stream(mixture, tcfg.data_seed, start, tcfg.steps, tcfg.batch_size,
                          data_workers(tcfg, device))
    bar = tqdm(total=tcfg.steps, initial=start, disable=not progress, unit="step",
               position=position, leave=position == 0,
               desc=f"{cfg.name}/{run.variant}/seed{run.seed}", dynamic_ncols=True)
    t_start, tokens_seen = time.perf_counter(), 0
    # the training time of the steps before this start (a resume point written by a version
    # that did not keep it: None, and train_seconds is this start's alone)
    before = 0.0 if resume_state is None else resume_state.get("train_seconds")

    def seconds() -> float | None:
        return None if before is None else before + time.perf_counter() - t_start
    with stopping.stop_at_step_boundaries():
        for step, batch in enumerate(stream, start=start):
            loss, grad_norm = train_step(model, optimizer, batch, device, tcfg.buckets,
                                         tcfg.grad_clip, dtype)
            stopping.fault_point("mid_step", step + 1)  # the weights moved, the schedule not
            scheduler.step()
            tokens_seen += int(batch.seq_len.sum())
            done = step + 1
            last = done == tcfg.steps
            if done % LOG_EVERY == 0 or last:
                row = {"step": done, "loss": float(loss), "grad_norm": float(grad_norm),
                       "lr": scheduler.get_last_lr()[0],
                       "tokens_per_s": tokens_seen / (time.perf_counter() - t_start)}
                rundir.append_jsonl(run_dir / "metrics.jsonl", [row])
                tracker.metrics(row)
                heartbeat(run_dir, manifest)
                bar.set_postfix(loss=f"{row['loss']:.4f}", tok_s=f"{row['tokens_per_s']:.3g}")
            bar.update(1)
            if done % tcfg.eval_every == 0 or last:
                rows = eval_rows(model, mixture, lengths, device, run, done)
                stopping.fault_point("eval", done)
                rundir.append_jsonl(run_dir / "eval.jsonl", rows)
                tracker.evals(done, rows)
                stopping.fault_point("eval_written", done)
            if recorder is not None and recorder.due(done):
                rundir.append_jsonl(run_dir / HEADS_FILE, recorder.measure(model, done))
            if done % tcfg.checkpoint_every == 0 or last:
                save_resume_point(model, optimizer, scheduler, run, run_dir, done, source,
                                  seconds())
            stopping.fault_point("step", done)
            signum = stopping.requested()
            if signum is not None and not last:  # its logs are complete up to `done`
                bar.close()
                stop(model, optimizer, scheduler, run, run_dir, done, source, manifest, signum,
                     seconds())
    bar.close()
    if device.type == "cuda":
        manifest["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
    stopping.fault_point("finish", tcfg.steps)  # everything written but the manifest's status
    finish_manifest(run_dir, manifest, time.perf_counter() - t_start, before)
    # after `complete`, so a kill in between costs disk space, never a retraining
    if not tcfg.keep_resume:  # the checkpoints stay; the optimizer state is of no further use
        (run_dir / "checkpoints" / "resume.pt").unlink(missing_ok=True)
    for ckpt in (run_dir / "checkpoints").glob("step-*"):  # those a stop wrote off the cadence
        n = ckpt.name.split("-")[1]
        if n.isdigit() and int(n) % tcfg.checkpoint_every and int(n) != tcfg.steps:
            shutil.rmtree(ckpt)


LOG_EVERY = 50  # steps between rows of metrics.jsonl
# What the manifest of a run from a pretrained model records about it (`ModelSource.info`).
PRETRAINED_KEYS = ("init", "revision", "model_file", "model_commit", "reinit", "weights_sha256",
                   "embedding_rows_added")


def prepare_model(model: torch.nn.Module, device: torch.device, tcfg: TrainConfig) -> None:
    model.to(device).train()
    if tcfg.gradient_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x
            model.activation_checkpointing_enable({"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable({"use_reentrant": False})
        model.config.use_cache = False


def make_optimizer(model: torch.nn.Module, tcfg: TrainConfig, resume_state: dict | None,
                   fused: bool = False
                   ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW with the warmup-stable-decay schedule, restored from a resume point if given.
    `fused`: one kernel for every parameter's update (bf16 runs; about 3x faster than the loop
    the reference runs, whose rounding it does not repeat bit for bit)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, betas=tuple(tcfg.betas),
                                  eps=tcfg.eps, weight_decay=tcfg.weight_decay,
                                  **({"fused": True} if fused else {}))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, tcfg))
    if resume_state is not None:
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
    return optimizer, scheduler


def data_workers(tcfg: TrainConfig, device: torch.device) -> int:
    """Processes making batches ahead; auto: a few on a GPU, none (inline) on a CPU."""
    if tcfg.data_workers >= 0:
        return tcfg.data_workers
    return 0 if device.type == "cpu" else min(8, max(1, (os.cpu_count() or 2) // 2))


# ----------------------------------------------------------------------------- run records


def start_manifest(run: RunSpec, run_dir: Path, device: torch.device, start: int,
                   source: pretrained.ModelSource | None, how: execution.Execution) -> dict:
    """Create (or reopen) the run folder: config.yaml, a `running` manifest, and the logs cut
    back to the resume step (rows past it will be written again)."""
    cfg = run.experiment
    if start:
        check_task_code(run, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    rundir.write_yaml(run_dir / "config.yaml", run.resolved())
    manifest = {"status": "running", "config_hash": run.key, "experiment": cfg.name,
                "figure": cfg.figure,
                "experiment_key": run.experiment_key, "variant": run.variant, "seed": run.seed,
                "started": rundir.now(), **rundir.owner(), **machine.environment(str(device)),
                # how it executed (in the key too, unless the fp32-eager reference)
                "execution": how.name, "precision": how.precision, "compiled": how.compiled,
                "attention": attention_for(how, device) or "sdpa",
                "optimizer": "adamw-fused" if how.precision == "bf16" else "adamw"}
    if run.stage is not None:
        manifest["stage"] = run.stage
    # where each task's code came from (a user's file or package: with its sha256)
    manifest["task_sources"] = {t.task: source_of(t.task) for t in run.group}
    if run.model.init:  # where the weights came from (kept from the first start on resume)
        try:
            old = rundir.read_json(run_dir / rundir.MANIFEST) if start else {}
        except (OSError, ValueError):  # a damaged manifest: the run resumes all the same
            old = {}
        info = source.info if not start else {k: old.get(k) for k in PRETRAINED_KEYS}
        manifest.update({k: info.get(k) for k in PRETRAINED_KEYS})
    if start:
        manifest["resumed_from_step"] = start
    rundir.write_json(run_dir / rundir.MANIFEST, manifest)
    for log in ("metrics.jsonl", "eval.jsonl", HEADS_FILE):
        if log != HEADS_FILE or (run_dir / log).exists():
            rundir.truncate_jsonl(run_dir / log, start)
    return manifest


def check_task_code(run: RunSpec, run_dir: Path) -> None:
    """A partial run resumes only with the task code it started with: a user's task file
    edited since would mix examples of two versions in one run."""
    try:
        before = rundir.read_json(run_dir / rundir.MANIFEST).get("task_sources") or {}
    except (OSError, ValueError):
        return  # a damaged manifest: nothing to compare with
    for t in run.group:
        old, now = before.get(t.task, {}).get("sha256"), source_of(t.task).get("sha256")
        if old and now and old != now:
            raise UsageError(f"task {t.task!r}: {source_of(t.task).get('path')} changed since "
                             f"{run_dir} started; restore it, or delete that folder to train "
                             "the run again with the new code")


def heartbeat(run_dir: Path, manifest: dict) -> None:
    """Tell other sweeps this run is alive (at most once a minute)."""
    if time.time() - manifest["heartbeat"] > 60:
        manifest["heartbeat"] = rundir.now()
        rundir.write_json(run_dir / rundir.MANIFEST, manifest)


def finish_manifest(run_dir: Path, manifest: dict, this_start: float,
                    before: float | None = 0.0) -> None:
    """`train_seconds`: the training time of every start that kept its steps; a resumed run
    also says how much of it came before this start (`train_seconds_before_resume`). A resume
    point that did not keep its time (None): this start's alone, and no such key, so that
    `resumed_from_step` says the time is partial."""
    for key in ("pid", "heartbeat"):
        manifest.pop(key)
    total = this_start + (before or 0.0)
    manifest.update(status="complete", finished=rundir.now(), train_seconds=round(total, 2))
    if before and manifest.get("resumed_from_step"):
        manifest["train_seconds_before_resume"] = round(before, 2)
    rundir.write_json(run_dir / rundir.MANIFEST, manifest)


def eval_rows(model: torch.nn.Module, mixture: Mixture, lengths: dict[str, list[int]],
              device: torch.device, run: RunSpec, step: int) -> list[dict]:
    """Exact match of every task at every length, as `eval.jsonl` rows (docs/design.md §3,
    contract 5)."""
    roles = {t.task: (t.role, t.max_length) for t in run.group}
    rows = [{"experiment": run.experiment.name, "variant": run.variant, "seed": run.seed,
             "step": step, "task": r["task"], "role": roles[r["task"]][0],
             "train_max_length": roles[r["task"]][1], "length": r["length"], "n": r["n"],
             "accuracy": r["accuracy"]} for r in evaluate(model, mixture, lengths, device)]
    if run.stage is not None:
        for row in rows:
            row["stage"] = run.stage
    return rows


def stop(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
         scheduler: torch.optim.lr_scheduler.LambdaLR, run: RunSpec, run_dir: Path, step: int,
         source: pretrained.ModelSource | None, manifest: dict, signum: int,
         seconds: float | None = None) -> None:
    """A requested stop: the resume point of `step` (its logs are complete up to it), the
    manifest marked `interrupted`, then `Interrupted` up to the command line. A checkpoint
    step was saved a moment ago: saving it again would only widen the window in which a kill
    finds `resume.pt` naming a folder being replaced."""
    if step % run.train.checkpoint_every:
        save_resume_point(model, optimizer, scheduler, run, run_dir, step, source, seconds)
    for key in ("pid", "heartbeat"):
        manifest.pop(key, None)
    manifest.update(status="interrupted", interrupted_at_step=step, stopped=rundir.now())
    rundir.write_json(run_dir / rundir.MANIFEST, manifest)
    raise Interrupted(signum, f"{run_dir} at step {step}")


