"""Complete runs into the evidence: new runs added, a retrained run replaces the old one with
its final rows kept in retrained.jsonl, checkpoints and partial runs never copied, the same
training never recorded twice; and the hardware-noise table from what was kept."""

from pathlib import Path

import pandas as pd

from lgtransfer.analysis.evidence import import_runs
from lgtransfer.analysis.report.noise import RETRAINED, hardware_noise, noise_summary
from lgtransfer.runtime import rundir


def fake_run(root: Path, name: str, seed: int, past: float, finished: float,
             status: str = "complete", checkpoint: bool = True) -> Path:
    d = root / "g1" / f"{name}_seed{seed}_abc{seed}"
    rows = [{"experiment": "g1", "variant": name, "seed": seed, "step": step, "task": task,
             "role": role, "train_max_length": l_train, "length": n, "n": 8,
             "accuracy": 1.0 if n <= l_train else (past if role == "main" else 0.0)}
            for step in (10, 20) for task, role, l_train in (("reverse_add", "main", 4),
                                                            ("no_carry", "aux", 8))
            for n in range(1, 10)]
    rundir.write_jsonl(d / "eval.jsonl", rows)
    rundir.write_jsonl(d / "metrics.jsonl", [{"step": 20, "loss": 0.1}])
    rundir.write_yaml(d / "config.yaml", {"name": "g1", "seed": seed})
    rundir.write_json(d / "manifest.json", {"status": status, "finished": finished,
                                            "torch": "2.13.0+cpu"})
    if checkpoint:
        (d / "checkpoints" / "step-20").mkdir(parents=True)
    return d


def test_import_adds_replaces_and_keeps_what_retraining_moved(tmp_path):
    evidence, runs = tmp_path / "evidence", tmp_path / "runs"
    for seed, past in enumerate((0.2, 0.4, 0.6)):
        fake_run(evidence, "with_aux", seed, past, finished=1.0, checkpoint=False)
    fake_run(runs, "with_aux", 0, 0.3, finished=2.0)  # seed 0 trained again: moved by 0.1
    fake_run(runs, "with_aux", 3, 0.5, finished=2.0)  # a new seed
    fake_run(runs, "with_aux", 4, 0.5, finished=2.0, status="running")  # not complete
    assert import_runs(runs, evidence) == (1, 1)
    assert import_runs(runs, evidence) == (0, 0)  # the same trainings: nothing to do
    assert not list(evidence.rglob("checkpoints"))
    assert not (evidence / "g1" / "with_aux_seed4_abc4").exists()
    kept = rundir.read_jsonl(evidence / RETRAINED)
    assert {r["run"] for r in kept} == {"g1/with_aux_seed0_abc0"} and len(kept) == 18
    assert {r["step"] for r in kept} == {20} and all(r["finished"] == 1.0 for r in kept)
    table = hardware_noise(evidence)
    (row,) = table.to_dict("records")
    # past L_main = lengths 5-8: 0.2 before, 0.3 after
    assert (row["run"], row["before"], row["retrained"], row["moved"]) == (
        "g1/with_aux_seed0_abc0", 0.2, 0.3, 0.1)
    assert "moved by 0.100 on average" in noise_summary(table)
    assert "executed the same way" not in noise_summary(table)  # one way only: no split
    mixed = pd.concat([table.assign(moved=0.0), table.assign(**{"compiled now": True})])
    assert noise_summary(mixed).endswith("Executed the same way, 1 moved by 0.000 on average "
                                         "(bit for bit); the other way, 1 by 0.100.")
