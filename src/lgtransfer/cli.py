"""The `lgt` command line.

Every subcommand imports what it needs inside its function, so `lgt tasks` and `lgt sample`
never pay for torch. Bad input raises `UsageError`, which becomes one line on stderr and exit
status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from lgtransfer.errors import UsageError

Command = Callable[[argparse.Namespace], int | None]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors: one line, exit 2
        raise UsageError(message)


# ----------------------------------------------------------------------------- commands


def cmd_tasks(args: argparse.Namespace) -> None:
    import numpy as np

    from lgtransfer.tasks import TASKS

    rows = [("task", "family", "length counts", "example (length 5)")]
    for name, task in TASKS.items():
        length = max(5, task.min_length)
        ex = task.sample(np.random.default_rng(0), length)[0]
        rows.append((name, task.family, task.length_unit, f"{ex.prompt} -> {ex.target}"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join([c.ljust(w) for c, w in zip(row, widths, strict=False)] + [row[3]]))


def cmd_sample(args: argparse.Namespace) -> None:
    import numpy as np

    from lgtransfer.tasks import get_task

    task = get_task(args.task)
    task.check_length(args.length)
    if args.count < 1:
        raise UsageError(f"--count must be at least 1, got {args.count}")
    examples = task.sample(np.random.default_rng(args.seed), args.length, args.count)
    sys.stdout.write("".join(json.dumps(e.as_dict()) + "\n" for e in examples))


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lgt", description="Length-generalization transfer experiments.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("tasks", help="list every task with one example")
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser("sample", help="print examples of a task as JSON lines")
    p.add_argument("task")
    p.add_argument("--length", type=int, required=True)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_sample)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args) or 0
    except UsageError as e:
        print(f"lgt: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `lgt sample ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
