"""The `lgt` command line.

Every subcommand imports what it needs inside its function, so `lgt tasks` and `lgt sample`
never pay for torch. Bad input raises `UsageError`, which becomes one line on stderr and exit
status 2.
"""

from __future__ import annotations

import argparse
import errno
import json
import signal
import sys
from collections.abc import Callable, Sequence

from lgtransfer.cli import parser as cli_parser
from lgtransfer.cli.parser import BUDGETS  # noqa: F401 (tests check it against the config's)
from lgtransfer.errors import DiskFull, Interrupted, UsageError

Command = Callable[[argparse.Namespace], int | None]


# ----------------------------------------------------------------------------- commands


def _check_count_and_seed(args: argparse.Namespace) -> None:
    if args.count < 1:
        raise UsageError(f"--count must be at least 1, got {args.count}")
    if args.seed < 0:
        raise UsageError(f"--seed must be non-negative, got {args.seed}")


def cmd_tasks(args: argparse.Namespace) -> int:
    import numpy as np

    from lgtransfer.tasks import TASKS
    from lgtransfer.tasks.user import load_entry_points, load_files, source_of

    if args.check:
        from lgtransfer.tasks.check import check_file

        names, problems = check_file(args.check, args.eval_n)
        for line in problems:
            print(f"lgt: error: {line}", file=sys.stderr)
        if problems:
            return 2
        print(f"{args.check}: {len(names)} task(s) OK: {', '.join(names)}")
        return 0
    load_files(args.tasks_from)
    load_entry_points()
    rows = [("task", "family", "length counts", "example (length 5)")]
    for name, task in TASKS.items():
        length = min(max(5, task.min_length), task.max_length)
        ex = task.sample(np.random.default_rng(0), length)[0]
        origin = source_of(name)
        where = "" if origin["from"] == "lgtransfer" else f"   [{origin.get('path')}]"
        rows.append((name, task.family, task.length_unit, f"{ex.prompt} -> {ex.target}{where}"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join([c.ljust(w) for c, w in zip(row, widths, strict=False)] + [row[3]]))
    return 0


def cmd_sample(args: argparse.Namespace) -> None:
    import numpy as np

    from lgtransfer.tasks import get_task
    from lgtransfer.tasks.user import load_files

    load_files(args.tasks_from)
    task = get_task(args.task)
    task.check_length(args.length)
    _check_count_and_seed(args)
    examples = task.sample(np.random.default_rng(args.seed), args.length, args.count)
    sys.stdout.write("".join(json.dumps(e.as_dict()) + "\n" for e in examples))


def _loaded(files: list[str]) -> list[str]:
    """`--tasks-from` files, loaded, as absolute paths (every experiment then carries them)."""
    from pathlib import Path

    from lgtransfer.tasks.user import load_file

    paths = [str(Path(f).resolve()) for f in files]
    for p in paths:
        load_file(p)
    return paths


def _check_user_tasks(experiments: list) -> None:
    """A user's task in a group is checked as `lgt tasks --check` would, before any run folder
    exists; the first problem is the error."""
    from lgtransfer.tasks import get_task
    from lgtransfer.tasks.check import check_task
    from lgtransfer.tasks.user import source_of

    checked: set[str] = set()
    for e in experiments:
        for t in e.config.group:
            if source_of(t.task)["from"] != "lgtransfer" and t.task not in checked:
                checked.add(t.task)
                problems = check_task(get_task(t.task), e.config.eval.n)
                if problems:
                    raise UsageError(problems[0])


def cmd_run(args: argparse.Namespace) -> None:
    from pathlib import Path

    from lgtransfer.config import load_experiments, validate_runs
    from lgtransfer.orchestration.executors import execute
    from lgtransfer.orchestration.preflight import check_run
    from lgtransfer.orchestration.sweep import describe, plan, record_experiments

    options = dict(_key_value(o, "--cluster-option") for o in args.cluster_option)
    files = _loaded(args.tasks_from)  # before the experiments: their groups may name them
    experiments = load_experiments(args.experiment, args.set, args.budget,
                                   trust_code=args.trust_task_code)
    trackers = _trackers(args.log)
    for e in experiments:
        if files:
            e.sources.assigned("--tasks-from", "tasks_from", files)
        if trackers:
            e.sources.assigned("--log", "log", trackers)
        e.config.tasks_from = sorted({*e.config.tasks_from, *files})
        e.config.log = sorted({*e.config.log, *trackers})  # not in a run's key: no retraining
        # every bad input is caught before a run folder exists, by a dry run too
        validate_runs(e.config)
    _check_user_tasks(experiments)
    out = Path(args.out)
    check_run(experiments, out, args.executor)
    if not args.dry_run:  # the models' tokenizers: the torch side, which a dry run skips
        from lgtransfer.engine.from_pretrained import validate_models

        for e in experiments:
            validate_models(e.config)
    planned = plan(experiments, out)
    for note in dict.fromkeys(n for e in experiments for n in e.notes):  # once each
        print(note if args.dry_run else f"lgt: {note}", file=sys.stdout if args.dry_run
              else sys.stderr)
    if args.dry_run:
        if args.explain:
            print("\n\n".join(e.explain() for e in experiments), end="\n\n")
        print(describe(planned))
        return
    record_experiments(experiments, planned, out)
    busy = execute(planned, executor=args.executor, workers=args.workers or 0,
                   progress=not args.quiet, cluster=args.cluster, cluster_options=options)
    busy_dirs = {p.directory for p in busy}
    if busy:
        print(f"lgt: note: {len(busy)} run(s) are being trained by another process; "
              "their results join the report once it is rerun", file=sys.stderr)
    from lgtransfer.analysis.report.experiment import curves_text, seed_table
    from lgtransfer.analysis.report.suite import write_report
    from lgtransfer.analysis.results import load_eval
    from lgtransfer.runtime import stopping

    for e in experiments:
        if e.sweep:
            continue  # a sweep's experiments: reported with their sweep, below
        dirs = [p.directory for p in planned
                if p.experiment_dir == out / e.folder and p.directory not in busy_dirs]
        if not dirs:
            continue
        stopping.fault_point("report", 0)
        report = write_report(out / e.folder, dirs)
        if len(experiments) == 1:
            df = load_eval(out / e.folder, dirs)
            print(f"{curves_text(df)}\n\n{seed_table(df)}")
        print(f"report: {report} (and report.html; figures and tables beside it)")
    for sweep in sorted({e.folder.parent for e in experiments if e.sweep}):
        print(f"report: {write_report(out / sweep)} (one section per paper figure; each "
              "experiment's own report in its folder)")


def _trackers(values: list[str]) -> list[str]:
    """`--log wandb --log tensorboard` or `--log wandb,tensorboard`, checked."""
    from lgtransfer.config.schema import TRACKERS

    trackers = [t.strip() for value in values for t in value.split(",") if t.strip()]
    unknown = [t for t in trackers if t not in TRACKERS]
    if unknown or (values and not trackers):
        raise UsageError(f"--log: unknown tracker {(unknown or [''])[0]!r}; trackers: "
                         f"{', '.join(TRACKERS)}")
    return trackers


def _key_value(text: str, flag: str) -> tuple[str, object]:
    import yaml

    from lgtransfer.runtime.rundir import load_yaml_text

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"{flag} expects key=value, got {text!r}")
    try:
        return key, load_yaml_text(value)
    except yaml.YAMLError:
        raise UsageError(f"{flag} {key}: cannot parse value {value!r}") from None


def cmd_report(args: argparse.Namespace) -> None:
    from pathlib import Path

    from lgtransfer.analysis.report.scaling_plan import is_scaling_study
    from lgtransfer.analysis.report.suite import write_report
    from lgtransfer.analysis.results import experiment_folders, select_runs

    path = Path(args.dir)
    if not path.is_dir():
        raise UsageError(f"no such folder {path}")
    # a suite or sweep: a section per paper figure; a registered study: its own claims
    if len(experiment_folders(path)) > 1 or is_scaling_study(path):
        print(f"report: {write_report(path)}")
        return
    dirs, skipped = select_runs(path)
    if skipped:
        print(f"lgt: note: {skipped} complete run(s) of other configs under {path} left out",
              file=sys.stderr)
    print(f"report: {write_report(path, dirs)}")


def cmd_results(args: argparse.Namespace) -> None:
    from pathlib import Path

    from lgtransfer.analysis.results import write_results

    path = Path(args.dir)
    if not path.is_dir():
        raise UsageError(f"no such folder {path}")
    for name, file in write_results(path).items():
        print(f"{name}: {file}")


def cmd_generate(args: argparse.Namespace) -> None:
    from pathlib import Path

    from lgtransfer.engine.generate import generate

    _check_count_and_seed(args)
    for row in generate(Path(args.checkpoint), args.task, args.length, args.count, args.seed,
                        args.trust_task_code):
        print(json.dumps(row))


def cmd_pretrain(args: argparse.Namespace) -> None:
    from pathlib import Path

    from lgtransfer.engine.pretraining import config_from_args, pretrain

    cfg = config_from_args(args.size, steps=args.steps, stages=args.stages,
                           save_every=args.save_every, seq_len=args.seq_len,
                           batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                           corpus_mb=args.corpus_mb)
    if args.save_every is None and args.stages is not None:
        cfg.save_every = 0
    out = Path(args.out or f"runs/pretrain-{args.size}")
    from lgtransfer.orchestration.preflight import check_out

    check_out(out)
    pretrain(cfg, out, args.corpus, device_name=args.device, progress=not args.quiet)
    steps = ", ".join(f"step-{s}" for s in cfg.stage_steps())
    print(f"checkpoints in {out}: {steps}\nfine-tune them with model.init: {out} and "
          f"model.stages: [{steps}, scratch]")
def cmd_heads(args: argparse.Namespace) -> None:
    import time
    from pathlib import Path

    from lgtransfer.engine.heads.analysis import HeadOptions, run_heads

    opts = HeadOptions(k=args.k, ablation=args.ablation, n=args.n, steps=args.steps,
                       random_draws=args.random_draws, device=args.device,
                       in_dist=_lengths(args.in_dist), transfer=_lengths(args.transfer),
                       causal_ks=_lengths(args.causal_ks, "--causal-ks") or [],
                       causal_draws=args.causal_draws, causal_n=args.causal_n,
                       causal_band=args.causal_band)
    start = time.perf_counter()
    summary = run_heads(Path(args.dir), opts, progress=not args.quiet,
                        trust_code=args.trust_task_code)
    print(f"heads: {summary.parent} (heads.jsonl, summary.json, heads.md, figures) in "
          f"{time.perf_counter() - start:.0f} s")


def _lengths(text: str | None, flag: str = "") -> list[int] | None:
    """Comma-separated positive integers (lengths, or the ks of `--causal-ks`)."""
    if text is None:
        return None
    what = f"{flag} expects " if flag else "expected "
    try:
        lengths = [int(x) for x in text.split(",")]
    except ValueError:
        raise UsageError(f"{what}comma-separated {'numbers' if flag else 'lengths'}, "
                         f"got {text!r}") from None
    if not lengths or min(lengths) < 1:
        raise UsageError(f"{flag or 'lengths'} must be positive, got {text!r}")
    return lengths


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    commands = {"tasks": cmd_tasks, "sample": cmd_sample, "run": cmd_run, "report": cmd_report,
                "results": cmd_results, "generate": cmd_generate, "pretrain": cmd_pretrain,
                "heads": cmd_heads}
    return cli_parser.build_parser(commands)


def _free(path: str | None) -> str:
    """Free space on the file system of `path` (or its nearest existing parent), in MB."""
    import shutil
    from pathlib import Path

    p = Path(path or ".").absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return f"{shutil.disk_usage(p).free / 2**20:.1f} MB"
    except OSError:
        return "unknown"


# errors of writing where the user pointed us: bad input (one line, exit 2), not a crash
NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR,
                errno.EEXIST)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args) or 0
    except UsageError as e:
        print(f"lgt: error: {e}", file=sys.stderr)
        return 2
    except DiskFull as e:
        print(f"lgt: error: disk full writing {e.path} ({_free(e.path)} free there); the run in "
              f"{e.run_dir} stopped cleanly: free some space and `lgt run` again resumes it",
              file=sys.stderr)
        return DiskFull.STATUS
    except BrokenPipeError:  # `lgt sample ... | head` (an OSError: caught before the next)
        return 0
    except OSError as e:  # a full disk outside a run (a report, a table): nothing to resume
        if e.errno in NOT_WRITABLE and e.filename:  # a folder the user cannot write in
            print(f"lgt: error: cannot write {e.filename}: {e.strerror}", file=sys.stderr)
            return 2
        if e.errno != errno.ENOSPC:
            raise
        print(f"lgt: error: disk full writing {e.filename or 'a file'} ({_free(e.filename)} "
              "free there); free some space and run the command again (finished runs are "
              "kept)", file=sys.stderr)
        return DiskFull.STATUS
    except Interrupted as e:
        name = signal.Signals(e.signum).name
        print(f"lgt: stopped by {name}: {e.where} (resume point written; `lgt run` again "
              "resumes it)", file=sys.stderr)
        return 128 + e.signum
