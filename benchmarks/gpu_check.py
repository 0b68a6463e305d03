"""One command that measures a GPU (`benchmarks/gpu_check.sh`; issue 11), in one process:

- training throughput, useful (non-padding) tokens/s, paper model on the real G1 mixture, ours
  against the naive per-example loop (`bench_train.measure`), and evaluation time for
  1024 examples x 40 lengths x 3 tasks;
- `lgt run g1` at its one-GPU budget, one seed, both variants: accuracy per length, time per
  run, tokens/s, peak GPU memory (from each run's manifest and logs);
- `lgt heads` on the with-aux run: time;
- greedy generation against the one-pass exact match on that run's last checkpoint.

Writes `OUT/<gpu-name>-<date>.json` and `.md`. `--small` runs the same steps at CPU scale (a
small model, a few steps), so CI keeps the script working. Installs nothing, needs no network.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from datetime import date
from pathlib import Path

import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import measure  # noqa: E402

from lgtransfer.cli import main as lgt  # noqa: E402
from lgtransfer.data.groups import GroupTask
from lgtransfer.data.mixture import Mixture  # noqa: E402
from lgtransfer.engine.evaluate import exact_match, greedy_generate  # noqa: E402
from lgtransfer.engine.model import load_model  # noqa: E402
from lgtransfer.runtime import rundir  # noqa: E402

# `--small`: G1 at a size a CPU runs in seconds (the same command, the same code paths)
SMALL_G1 = ["model.n_layer=1", "model.n_head=4", "model.d_model=32", "model.d_ff=64",
            "train.steps=10", "train.batch_size=16", "train.eval_every=10",
            "train.checkpoint_every=10", "eval.n=4"]
SMALL_HEADS = ["--n", "8", "--random-draws", "2", "--steps", "last"]


def run_g1(out: Path, small: bool) -> dict:
    """`lgt run g1` with one seed; each variant's numbers from its run folder."""
    t0 = time.perf_counter()
    argv = ["run", "g1", "--budget", "gpu", "--set", "seeds=[43]", "--out", str(out), "--quiet",
            "--executor", "inline"]
    for s in SMALL_G1 if small else []:
        argv += ["--set", s]
    assert lgt(argv) == 0
    result = {"command_seconds": round(time.perf_counter() - t0, 1), "runs": {}}
    for run in sorted((out / "gpu" / "g1").glob("*_seed43_*")):
        manifest = rundir.read_json(run / "manifest.json")
        rows = rundir.read_jsonl(run / "eval.jsonl")
        last = max(r["step"] for r in rows)
        result["runs"][manifest["variant"]] = {
            "dir": str(run), "train_seconds": manifest["train_seconds"],
            "tokens_per_s": rundir.read_jsonl(run / "metrics.jsonl")[-1]["tokens_per_s"],
            "peak_gpu_memory_gb": manifest.get("peak_gpu_memory_gb"),
            "precision": manifest["precision"], "compiled": manifest["compiled"],
            "accuracy": {r["task"]: {} for r in rows}}
        for r in rows:
            if r["step"] == last:
                result["runs"][manifest["variant"]]["accuracy"][r["task"]][r["length"]] = \
                    r["accuracy"]
    return result


def greedy_check(run: Path, n: int, lengths: list[int]) -> dict:
    """Real greedy decoding equals the one-pass exact match, example by example."""
    ckpt = max((run / "checkpoints").glob("step-*"), key=lambda p: int(p.name[5:]))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(ckpt).to(device)
    mixture = Mixture([GroupTask("reverse_add", "main", 16)], n, 7)
    agree, correct, total = 0, 0, 0
    for length in lengths:
        batch = mixture.eval_set("reverse_add", length)
        one_pass = exact_match(model, batch, device)
        _, greedy = greedy_generate(model, batch, device)
        agree += int((one_pass == greedy).sum())
        correct += int(one_pass.sum())
        total += len(batch)
    return {"examples": total, "agree": agree, "exact_match": correct, "equal": agree == total}


def markdown(r: dict) -> str:
    t = r["train"]
    lines = [f"# GPU check: {r['device']}, {r['date']}", "",
             f"torch {r['torch']}, transformers {r['transformers']}; small: {r['small']}; "
             f"total {r['total_seconds']:.0f} s", "",
             "| what | value |", "|---|---|",
             f"| training, ours (useful tokens/s) | {t['train_tokens_per_s']:,.0f} |",
             f"| training, naive loop (useful tokens/s) | {t['naive_train_tokens_per_s']:,.0f} |",
             f"| naive loop with its data path (tokens/s) | "
             f"{t['naive_end_to_end_tokens_per_s']:,.0f} |",
             f"| evaluation, {t['eval_examples']} examples (s) | {t['eval_seconds']:.2f} |"]
    for variant, v in r["g1"]["runs"].items():
        lines.append(f"| g1 {variant}: time (s), tokens/s, peak GPU memory (GB) | "
                     f"{v['train_seconds']:.0f}, {v['tokens_per_s']:,.0f}, "
                     f"{v['peak_gpu_memory_gb']} |")
    lines += [f"| lgt heads on g1 with_aux (s) | {r['heads_seconds']:.1f} |",
              f"| greedy = one-pass exact match | {r['greedy']['agree']}/"
              f"{r['greedy']['examples']} |", "", "## g1 accuracy per length (last step)", ""]
    for variant, v in r["g1"]["runs"].items():
        for task, acc in v["accuracy"].items():
            lines.append(f"- {variant} {task}: " + " ".join(
                f"{n}:{a:.2f}" for n, a in sorted(acc.items(), key=lambda x: int(x[0]))))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="CPU scale, for CI")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--work", default="runs/gpu-check", help="run folders (g1, heads)")
    args = parser.parse_args()
    t0 = time.perf_counter()
    cuda = torch.cuda.is_available()
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
    device = torch.cuda.get_device_name() if cuda else "cpu"
    result = {"device": device, "date": date.today().isoformat(), "torch": torch.__version__,
              "transformers": transformers.__version__, "small": args.small}
    print("training and evaluation throughput ...", flush=True)
    result["train"] = measure(args.small, steps=6 if args.small else 30,
                              data_seconds=0.5 if args.small else 3.0)
    print("lgt run g1 ...", flush=True)
    result["g1"] = run_g1(Path(args.work), args.small)
    with_aux = Path(result["g1"]["runs"]["with_aux"]["dir"])
    print("lgt heads ...", flush=True)
    t = time.perf_counter()
    assert lgt(["heads", str(with_aux), "--quiet", *(SMALL_HEADS if args.small else [])]) == 0
    result["heads_seconds"] = round(time.perf_counter() - t, 1)
    result["greedy"] = greedy_check(with_aux, 8 if args.small else 64,
                                    [4, 8] if args.small else [8, 16, 17, 20])
    result["total_seconds"] = round(time.perf_counter() - t0, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{re.sub(r'[^a-z0-9]+', '-', device.lower()).strip('-')}-{result['date']}"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{stem}.md").write_text(markdown(result))
    print(f"wrote {out / stem}.json and .md ({result['total_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
