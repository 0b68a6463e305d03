"""What the causal test over k (`engine/heads/causal_curve.py`) costs at a budget's model.

    python benchmarks/bench_causal_curve.py                        # G1 at cpu, one thread
    python benchmarks/bench_causal_curve.py --ks 1,2,3,4 --draws 10

Times the test once per setting on fresh weights (a trained model costs the same compute): the
main task at every length of (L_main, L_aux], `--n` examples each, mean ablation, with a
G1-like ranking of the heads (the committed G1 top-3 sets take heads of layers 0 and 2). The
cost is set by the distinct ablations (a set drawn twice is evaluated once), printed with the
time: CPU seconds of this one thread (what it adds to a run when both cores train) and wall
seconds. Prints one JSON line per setting.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from transformers import LlamaForCausalLM

from lgtransfer.config import load_experiment
from lgtransfer.data.mixture import Mixture
from lgtransfer.engine.heads.causal_curve import causal_curve, curve_sets, unique_masks
from lgtransfer.engine.heads.measure import select_rows
from lgtransfer.engine.model import hf_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", default="g1")
    parser.add_argument("--budget", default="cpu")
    parser.add_argument("--ks", action="append", help="comma-separated ks (repeatable); "
                        "default: 1-6, and 1,2,3,4,6")
    parser.add_argument("--draws", type=int, action="append", help="default: 20 and 10")
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_experiment(args.experiment, budget=args.budget)
    torch.manual_seed(0)
    model = LlamaForCausalLM._from_config(hf_config(cfg.model),
                                          attn_implementation="eager").eval()
    mixture = Mixture(cfg.group, cfg.eval.n, cfg.eval.seed)
    main_task, l_aux = cfg.main, max(t.max_length for t in cfg.aux)
    batches = {n: select_rows(mixture.eval_set(main_task.task, n), np.arange(args.n))
               for n in range(main_task.max_length + 1, l_aux + 1)}
    layers, heads = cfg.model.n_layer, cfg.model.n_head
    ranking = np.zeros((layers, heads))
    ranking[0] = np.linspace(0.9, 0.5, heads)
    ranking[-1] = np.linspace(0.8, 0.4, heads)
    for ks in args.ks or ["1,2,3,4,5,6", "1,2,3,4,6"]:
        for draws in args.draws or [20, 10]:
            k_list = [int(k) for k in ks.split(",")]
            conditions = len(unique_masks(curve_sets(ranking, k_list, draws, 0, 0), layers,
                                          heads)[1])
            wall, cpu = time.perf_counter(), time.process_time()
            causal_curve(model, ranking, batches, ks=k_list, draws=draws, ablation="mean",
                         seed=0, step=0, device=torch.device("cpu"), max_tokens=2**12,
                         band="transfer_all", task=main_task.task)
            print(json.dumps({"experiment": args.experiment, "budget": args.budget, "ks": k_list,
                              "draws": draws, "lengths": sorted(batches), "n": args.n,
                              "conditions": conditions,
                              "cpu_s": round(time.process_time() - cpu, 1),
                              "wall_s": round(time.perf_counter() - wall, 1)}), flush=True)


if __name__ == "__main__":
    main()
