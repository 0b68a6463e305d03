"""Spend a GPU window well (`benchmarks/gpu_evidence.sh`; issue 24; docs/gpu.md).

    gpu_evidence.py [--small] [--minutes M] --out DIR [--pack-to DIR] [--runs FILE]
    gpu_evidence.py unpack FILE... --into results/gpu

Within M minutes: checks the machine and measures training throughput (`bench_train.measure`),
measures how many runs side by side raise total throughput (1, 2, 4 the first time a device is
seen; the choice is recorded and comes back), trains the next pending runs of the ordered list
(`benchmarks/gpu_runs.yaml`) that will finish before the deadline, and packs the complete ones
(no checkpoints) into at most 8 files of at most 16 MiB (DIR/pack, or --pack-to). Runs complete
under --results (default: results/gpu, the committed ones) or in DIR are skipped. `unpack` checks
the files (plain relative paths, JSON / YAML only, complete runs) and adds them to a folder.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

STARTED = time.monotonic()  # the window's clock starts with the command
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from lgtransfer.errors import UsageError  # noqa: E402


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise UsageError(message)


def _window(argv: list[str]) -> int:
    p = _Parser(prog="gpu_evidence.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="run folders, records and packs go here")
    p.add_argument("--minutes", type=float, default=9.0,
                   help="the whole call, packing included (default 9: one 10-minute command)")
    p.add_argument("--small", action="store_true", help="CPU scale, seconds (CI)")
    p.add_argument("--runs", default=str(HERE / "gpu_runs.yaml"), help="the ordered run list")
    p.add_argument("--results", default=str(HERE.parent / "results" / "gpu"),
                   help="committed runs of the budget: skipped (default: results/gpu)")
    p.add_argument("--pack-to", help="where the packed files go (default: OUT/pack)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="an override for every run, after --small's (repeatable)")
    args = p.parse_args(argv)
    if not 0 < args.minutes <= 600:
        raise UsageError(f"--minutes must be in (0, 600], got {args.minutes}")
    if not Path(args.runs).is_file():
        raise UsageError(f"no run list {args.runs}")
    from lgtransfer.orchestration.gpu_queue import Window, run_window

    w = Window(Path(args.out), args.minutes, Path(args.runs), Path(args.results),
               args.small, Path(args.pack_to) if args.pack_to else None, args.set, STARTED)
    record = run_window(w, log=lambda m: print(f"[{time.monotonic() - STARTED:6.1f} s] {m}",
                                            flush=True))
    pack = record["pack"]
    print(f"packed {len(pack['runs'])} run(s) into {len(pack['files'])} file(s) in "
          f"{w.pack_to or w.out / 'pack'}" + (f"; left out: {', '.join(pack['left_out'])}"
                                             if pack["left_out"] else ""))
    if record.get("error"):
        print(f"gpu_evidence: error: {record['error']}", file=sys.stderr)
        return 1
    signum = record.get("stopped_by_signal")
    return 128 + signum if signum else 0


def _unpack(argv: list[str]) -> int:
    p = _Parser(prog="gpu_evidence.sh unpack",
                description="check packed files and add their runs to a folder")
    p.add_argument("files", nargs="+")
    p.add_argument("--into", required=True, help="e.g. results/gpu")
    args = p.parse_args(argv)
    from lgtransfer.orchestration.evidence_pack import unpack

    out = unpack([Path(f) for f in args.files], Path(args.into))
    print(f"{args.into}: {len(out['runs'])} run(s) added, {len(out['kept'])} already there, "
          f"{out['indexes']} experiment index(es) merged, {out['records']} record(s)")
    return 0


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["unpack"]:
            return _unpack(argv[1:])
        return _window(argv)
    except UsageError as e:
        print(f"gpu_evidence: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
