"""The `lgt` argument parser: every option with what it does and its default.

Building it imports no config or torch code (start-up time of `lgt tasks` / `lgt sample`); the
one list that comes from the config, the presets, is read only when `lgt run --help` is shown.
"""

from __future__ import annotations

import argparse
import textwrap

import lgtransfer
from lgtransfer.errors import ArgumentParser

# `config.schema.BUDGETS`, `executors.EXECUTORS`, `schema.TRACKERS`: written here so that
# building the parser imports no config code; tests/test_architecture.py checks they agree
BUDGETS = ("cpu", "gpu", "paper")
EXECUTORS = ("auto", "inline", "local", "submitit")

# a run folder or checkpoint handed to you may name Python task files: they are imported only
# when you say so (`lgt run`'s experiment files follow the same rule)
TRUST_RUN_HELP = ("import the Python task files the run names (`tasks_from`); default: "
                  "refused, as is LGT_TRUST_TASK_CODE unset")


Parser = ArgumentParser  # argparse's own errors: one line, exit 2


class HelpFormatter(argparse.HelpFormatter):
    """Each option's default after its description, unless the description says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default  # 0 is a default to show; None, False and [] are not
        shown = not (default is None or default is False or default == []
                     or default == argparse.SUPPRESS)
        if shown and action.option_strings and "default" not in text:
            text += " (default: %(default)s)"
        return text

    # never break a line inside a name (`smollm-\npath`): wrap at spaces only
    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return textwrap.fill(" ".join(text.split()), width, initial_indent=indent,
                             subsequent_indent=indent, break_on_hyphens=False)


class RunParser(Parser):
    """`lgt run --help` ends with the presets, read from the package when it is shown."""

    def format_help(self) -> str:
        from lgtransfer.config.files import preset_names

        self.epilog = ("presets: " + ", ".join(preset_names()) + ". An EXPERIMENT may also be "
                       "your own YAML file (docs/experiments.md).")
        return super().format_help()


def positive(text: str) -> int:
    """An integer of at least 1 (a count, a number of workers)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser(commands: dict) -> argparse.ArgumentParser:
    """The parser; `commands` maps each subcommand to the function that runs it."""
    parser = Parser(prog="lgt", description="Length-generalization transfer experiments.",
                    formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"lgt {lgtransfer.__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, formatter_class=HelpFormatter)
        p.set_defaults(func=commands[name])
        return p

    tasks_from = {"action": "append", "default": [], "metavar": "FILE",
                  "help": "a Python file of your own tasks, imported (run) to register them "
                  "(repeatable; default: none; docs/tasks.md)"}
    p = command("tasks", "list every task with one example, or --check a task file")
    p.add_argument("--tasks-from", **tasks_from)
    p.add_argument("--check", metavar="FILE",
                   help="validate the tasks of FILE: one line per problem, exit 2 if any "
                   "(default: none; list the tasks)")
    p.add_argument("--eval-n", type=int, default=1024,
                   help="with --check: the evaluation set size to check the task can fill")

    p = command("sample", "print examples of a task as JSON lines (the same arguments give "
                "the same bytes)")
    p.add_argument("task", help="a task name (lgt tasks lists them)")
    p.add_argument("--length", type=int, required=True, help="the length of every example")
    p.add_argument("--count", type=int, default=1, help="how many examples")
    p.add_argument("--seed", type=int, default=0, help="the seed they are drawn with")
    p.add_argument("--tasks-from", **tasks_from)

    p = command("run", "train an experiment (every seed, with the baseline), evaluate and "
                "write its report")
    p.__class__ = RunParser  # argparse makes every subparser of one class: this one lists presets
    p.add_argument("experiment", nargs="+",
                   help="preset names, experiment files or sweep files")
    p.add_argument("--budget", choices=BUDGETS,
                   help="cpu (2 cores), gpu (one GPU) or paper (the paper's); default: the "
                   "file's own budget if it fixes one, else gpu when an NVIDIA driver is present "
                   "(/proc/driver/nvidia/version or nvidia-smi on PATH; torch is not imported to "
                   "ask) and CUDA_VISIBLE_DEVICES does not hide every device, else cpu")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. train.steps=500 (repeatable; default: "
                   "none)")
    p.add_argument("--out", default="runs",
                   help="output folder (default: runs); runs go to OUT/BUDGET/[SWEEP/]EXPERIMENT")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--log", action="append", default=[], metavar="TRACKER",
                   help="also send every run's curves to wandb (offline unless WANDB_MODE "
                   "says otherwise) and/or tensorboard, e.g. --log wandb,tensorboard "
                   "(repeatable; added to the experiment's own `log:`; default: none; "
                   "docs/tracking.md)")
    p.add_argument("--tasks-from", **tasks_from)
    p.add_argument("--trust-task-code", action="store_true",
                   help="let the experiment files import the Python files their `tasks_from:` "
                   "names (default: refused, as is LGT_TRUST_TASK_CODE unset)")
    p.add_argument("--executor", default="auto", choices=EXECUTORS,
                   help="auto (the local pool when more than one run is pending) | inline | "
                   "local (a process pool) | submitit (SLURM job array)")
    p.add_argument("--workers", type=positive, default=None,
                   help="processes of the local pool, at least 1 (default: one per core, or "
                   "per GPU); with submitit, the most array jobs at once (default: 64)")
    p.add_argument("--dry-run", action="store_true",
                   help="check everything the run checks, then list every run and whether it "
                   "is complete, partial or pending; writes nothing")
    p.add_argument("--explain", action="store_true",
                   help="with --dry-run: each experiment's every value, and where it came from "
                   "(schema default, budgets.yaml, the file or its base, its budgets: block, a "
                   "sweep's set or grid, --set)")
    p.add_argument("--cluster", default=None,
                   help="submitit cluster: slurm | local | debug (default: detect)")
    p.add_argument("--cluster-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a submitit parameter, e.g. slurm_partition=gpu (repeatable; default: "
                   "none)")

    p = command("report", "(re)write the report of an experiment, sweep or suite folder")
    p.add_argument("dir", help="the folder: an experiment's, a sweep's or one of several")

    p = command("results", "gather every eval.jsonl under a folder into one table, with "
                "per-seed metrics and statistics over seeds")
    p.add_argument("dir", help="the folder to gather (results.csv, per_seed.csv and stats.csv "
                   "are written there)")

    p = command("generate", "greedy generation from a checkpoint")
    p.add_argument("checkpoint", help="a checkpoint folder, RUN/checkpoints/step-N")
    p.add_argument("task", help="a task the run trained")
    p.add_argument("--length", type=int, required=True, help="the length of every example")
    p.add_argument("--count", type=int, default=5, help="how many examples")
    p.add_argument("--seed", type=int, default=0, help="the seed they are drawn with")
    p.add_argument("--trust-task-code", action="store_true", help=TRUST_RUN_HELP)

    p = command("pretrain", "train a small Llama language model on offline text, saving "
                "checkpoints along the way (a pretraining ladder)")
    p.add_argument("--size", default="small", help="tiny | quick | small (default: small, "
                   "the paper's model, for a GPU; quick: a CPU ladder)")
    p.add_argument("--corpus", nargs="+", metavar="PATH",
                   help="text files or folders (default: the Python standard library's docs "
                   "and sources)")
    p.add_argument("--corpus-mb", type=float,
                   help="cap on the corpus size, in MB (default: the size's own)")
    p.add_argument("--out", help="output folder (default: runs/pretrain-SIZE)")
    p.add_argument("--steps", type=int, help="training steps (default: the size's own)")
    stages = p.add_mutually_exclusive_group()
    stages.add_argument("--stages", type=int, help="N checkpoints at doubling steps, the last "
                        "at --steps (default: the size's own)")
    stages.add_argument("--save-every", type=int,
                        help="a checkpoint every N steps (default: --stages instead)")
    for flag, what in (("--seq-len", "tokens per sequence"), ("--batch-size", "sequences per "
                       "step"), ("--lr", "peak learning rate"), ("--seed", "the seed")):
        p.add_argument(flag, type=float if flag == "--lr" else int,
                       help=f"{what} (default: the size's own)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = command("heads", "attention-head reuse of a run, or of every run under a folder: "
                "metrics, correlations with the gap, causal test")
    p.add_argument("dir", help="a run folder, or an experiment or sweep folder")
    p.add_argument("--k", type=int, default=3, help="top-k heads (overlap, causal test)")
    p.add_argument("--ablation", default="mean", help="mean | zero")
    p.add_argument("--n", type=int, default=512, help="examples per task and length")
    p.add_argument("--steps", default="all", help="all | last: checkpoints to analyse")
    p.add_argument("--random-draws", type=int, default=10, help="random k-head sets")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--in-dist", help="lengths of the in-distribution band, e.g. 16 or 8,16 "
                   "(default: the main task's training length)")
    p.add_argument("--transfer", help="lengths of the transfer band, e.g. 20,24 (default: "
                   "a quarter of the way from the main to the auxiliary training length)")
    p.add_argument("--trust-task-code", action="store_true", help=TRUST_RUN_HELP)
    p.add_argument("--causal-ks", help="the causal test over k at each run's last checkpoint, "
                   "e.g. 1,2,3,4,6 (default: not run)")
    p.add_argument("--causal-draws", type=int, default=20,
                   help="random k-sets with the top-k set's per-layer counts, per k")
    p.add_argument("--causal-n", type=int, default=128, help="examples per length (over k)")
    p.add_argument("--causal-band", default="transfer_all",
                   help="transfer_all (every length in (L_main, L_aux]) | transfer")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser
