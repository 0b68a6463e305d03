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

from lgtransfer.errors import DiskFull, Interrupted, UsageError

# `config.schema.BUDGETS`, written here so that building the parser imports no config code
# (start-up time of `lgt tasks` / `lgt sample`); tests/test_architecture.py checks they agree
BUDGETS = ("cpu", "gpu", "paper")

Command = Callable[[argparse.Namespace], int | None]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors: one line, exit 2
        raise UsageError(message)


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
            print(f"lgt: {line}", file=sys.stderr)
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
    from lgtransfer.orchestration.sweep import describe, plan, record_experiments

    files = _loaded(args.tasks_from)  # before the experiments: their groups may name them
    experiments = load_experiments(args.experiment, args.set, args.budget)
    trackers = _trackers(args.log)
    for e in experiments:
        if files:
            e.sources.assigned("--tasks-from", "tasks_from", files)
        if trackers:
            e.sources.assigned("--log", "log", trackers)
        e.config.tasks_from = sorted({*e.config.tasks_from, *files})
        e.config.log = sorted({*e.config.log, *trackers})  # not in a run's key: no retraining
        # every bad input is caught before a run folder exists (a dry run lists runs even when
        # their pretrained models are not on this machine yet)
        validate_runs(e.config)
        if not args.dry_run:
            from lgtransfer.engine.from_pretrained import validate_models

            validate_models(e.config)
    _check_user_tasks(experiments)
    out = Path(args.out)
    planned = plan(experiments, out)
    if args.dry_run:
        if args.explain:
            print("\n\n".join(e.explain() for e in experiments), end="\n\n")
        print(describe(planned))
        return
    record_experiments(experiments, planned, out)
    options = dict(_key_value(o, "--cluster-option") for o in args.cluster_option)
    busy = execute(planned, executor=args.executor, workers=args.workers,
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

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"{flag} expects key=value, got {text!r}")
    return key, yaml.safe_load(value)


def cmd_report(args: argparse.Namespace) -> None:
    from pathlib import Path

    from lgtransfer.analysis.report.scaling import is_scaling_study
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
    for row in generate(Path(args.checkpoint), args.task, args.length, args.count, args.seed):
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
                       in_dist=_lengths(args.in_dist), transfer=_lengths(args.transfer))
    start = time.perf_counter()
    summary = run_heads(Path(args.dir), opts, progress=not args.quiet)
    print(f"heads: {summary.parent} (heads.jsonl, summary.json, heads.md, figures) in "
          f"{time.perf_counter() - start:.0f} s")


def _lengths(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        lengths = [int(x) for x in text.split(",")]
    except ValueError:
        raise UsageError(f"expected comma-separated lengths, got {text!r}") from None
    if not lengths or min(lengths) < 1:
        raise UsageError(f"lengths must be positive, got {text!r}")
    return lengths


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:

    parser = _Parser(prog="lgt", description="Length-generalization transfer experiments.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    tasks_from = {"action": "append", "default": [], "metavar": "FILE",
                  "help": "a Python file of your own tasks (repeatable; docs/tasks.md)"}
    p = sub.add_parser("tasks", help="list every task with one example, or --check a task file")
    p.add_argument("--tasks-from", **tasks_from)
    p.add_argument("--check", metavar="FILE",
                   help="validate the tasks of FILE: one line per problem, exit 2 if any")
    p.add_argument("--eval-n", type=int, default=1024,
                   help="with --check: the evaluation set size to check the task can fill")
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser("sample", help="print examples of a task as JSON lines")
    p.add_argument("task")
    p.add_argument("--length", type=int, required=True)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tasks-from", **tasks_from)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("run", help="train an experiment (every seed, with the baseline), "
                       "evaluate and write its report")
    p.add_argument("experiment", nargs="+",
                   help="preset names, experiment files or sweep files")
    p.add_argument("--budget", choices=BUDGETS,
                   help="cpu (2 cores), gpu (one GPU) or paper (the paper's); default: the "
                   "file's own budget if it fixes one, else gpu when an NVIDIA driver is present "
                   "(/proc/driver/nvidia/version or nvidia-smi on PATH; torch is not imported to "
                   "ask) and CUDA_VISIBLE_DEVICES does not hide every device, else cpu")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. train.steps=500 (repeatable)")
    p.add_argument("--out", default="runs",
                   help="output folder (default: runs); runs go to OUT/BUDGET/[SWEEP/]EXPERIMENT")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--log", action="append", default=[], metavar="TRACKER",
                   help="also send every run's curves to wandb (offline unless WANDB_MODE "
                   "says otherwise) and/or tensorboard, e.g. --log wandb,tensorboard "
                   "(repeatable; added to the experiment's own `log:`; docs/tracking.md)")
    p.add_argument("--tasks-from", **tasks_from)
    p.add_argument("--executor", default="auto",
                   help="auto | inline | local (a process pool) | submitit (SLURM job array)")
    p.add_argument("--workers", type=int, default=0,
                   help="processes of the local pool (default: one per core, or per GPU); "
                   "with submitit, the most array jobs at once")
    p.add_argument("--dry-run", action="store_true",
                   help="list every run and whether it is complete, partial or pending")
    p.add_argument("--explain", action="store_true",
                   help="with --dry-run: each experiment's every value, and where it came from "
                   "(schema default, budgets.yaml, the file or its base, its budgets: block, a "
                   "sweep's set or grid, --set)")
    p.add_argument("--cluster", default=None,
                   help="submitit cluster: slurm | local | debug (default: detect)")
    p.add_argument("--cluster-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a submitit parameter, e.g. slurm_partition=gpu (repeatable)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="write the report of an experiment folder")
    p.add_argument("dir")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("results", help="gather every eval.jsonl under a folder into one table, "
                       "with per-seed metrics and statistics over seeds")
    p.add_argument("dir")
    p.set_defaults(func=cmd_results)

    p = sub.add_parser("generate", help="greedy generation from a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("task")
    p.add_argument("--length", type=int, required=True)
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("pretrain", help="train a small Llama language model on offline text, "
                       "saving checkpoints along the way (a pretraining ladder)")
    p.add_argument("--size", default="small", help="tiny | quick | small (default: small, "
                   "the paper's model, for a GPU; quick: a CPU ladder)")
    p.add_argument("--corpus", nargs="+", metavar="PATH",
                   help="text files or folders (default: the Python standard library's docs "
                   "and sources)")
    p.add_argument("--corpus-mb", type=float, help="cap on the corpus size, in MB")
    p.add_argument("--out", help="output folder (default: runs/pretrain-SIZE)")
    p.add_argument("--steps", type=int)
    stages = p.add_mutually_exclusive_group()
    stages.add_argument("--stages", type=int,
                        help="N checkpoints at doubling steps, the last at --steps")
    stages.add_argument("--save-every", type=int, help="a checkpoint every N steps")
    p.add_argument("--seq-len", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_pretrain)
    p = sub.add_parser("heads", help="attention-head reuse of a run, or of every run under a "
                       "folder: metrics, correlations with the gap, causal test")
    p.add_argument("dir", help="a run folder, or an experiment or sweep folder")
    p.add_argument("--k", type=int, default=3, help="top-k heads (overlap, causal test)")
    p.add_argument("--ablation", default="mean", help="mean | zero")
    p.add_argument("--n", type=int, default=512, help="examples per task and length")
    p.add_argument("--steps", default="all", help="all | last: checkpoints to analyse")
    p.add_argument("--random-draws", type=int, default=10, help="random k-head sets")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--in-dist", help="lengths of the in-distribution band, e.g. 16 or 8,16")
    p.add_argument("--transfer", help="lengths of the transfer band, e.g. 20,24")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_heads)

    return parser


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
    except OSError as e:  # a full disk outside a run (a report, a table): nothing to resume
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
    except BrokenPipeError:  # `lgt sample ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
