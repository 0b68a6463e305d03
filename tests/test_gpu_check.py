"""`benchmarks/gpu_check.sh --small`: the GPU measurement, end to end at CPU scale, so the script
CI never runs on a GPU cannot rot."""

import json
import os
import subprocess
import sys
from pathlib import Path

from lgtransfer.runtime import rundir

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_small_writes_both_result_files(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable,
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([str(ROOT / "benchmarks" / "gpu_check.sh"), "--small", "--out",
                           str(tmp_path / "results"), "--work", str(tmp_path / "work")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (js,) = (tmp_path / "results").glob("cpu-*.json")
    assert js.with_suffix(".md").is_file()
    r = json.loads(js.read_text())
    assert r["device"] == "cpu" and r["small"] is True
    assert {"train_tokens_per_s", "naive_train_tokens_per_s", "eval_seconds",
            "eval_examples"} <= set(r["train"])
    assert set(r["g1"]["runs"]) == {"with_aux", "main_only"}
    for run in r["g1"]["runs"].values():
        # the run's own numbers, read back from its folder (how fast: the benchmark's business)
        manifest = rundir.read_json(Path(run["dir"]) / rundir.MANIFEST)
        assert manifest["status"] == "complete"
        assert run["train_seconds"] == manifest["train_seconds"]
        assert run["tokens_per_s"] == rundir.read_jsonl(
            Path(run["dir"]) / "metrics.jsonl")[-1]["tokens_per_s"] > 0
        assert "peak_gpu_memory_gb" in run and run["precision"] == "fp32"
        assert len(run["accuracy"]["reverse_add"]) == 40  # lengths 1..40
    assert set(r["g1"]["runs"]["with_aux"]["accuracy"]) == {"reverse_add", "no_carry",
                                                           "carry_only"}
    assert r["heads_seconds"] > 0 and r["greedy"]["equal"] is True
    assert r["total_seconds"] > 0  # recorded; how long it may take is a benchmark's business
