"""Complete runs into the evidence: new runs added, a retrained run replaces the old one with
its final rows kept in retrained.jsonl, checkpoints and partial runs never copied, the same
training never recorded twice; and the hardware-noise table from what was kept."""

import shutil
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
    # an experiment stopped before any run completed (a pilot): its index stays out too
    fake_run(tmp_path / "pilot", "main_only", 0, 0.1, finished=2.0, status="running")
    shutil.move(tmp_path / "pilot" / "g1", runs / "g9")
    for experiment in ("g1", "g9"):
        rundir.write_json(runs / experiment / rundir.EXPERIMENT_INDEX, {"runs": []})
    assert import_runs(runs, evidence) == (1, 1)
    assert import_runs(runs, evidence) == (0, 0)  # the same trainings: nothing to do
    assert (evidence / "g1" / rundir.EXPERIMENT_INDEX).is_file()
    assert not (evidence / "g9").exists()
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


def test_import_command_checks_every_target_before_writing(tmp_path, capsys):
    from lgtransfer.analysis.evidence import main

    evidence, runs = tmp_path / "evidence", tmp_path / "runs"
    evidence.mkdir()
    fake_run(runs, "with_aux", 0, 0.3, finished=2.0)
    page = tmp_path / "page.md"
    page.write_text("no markers here\n")
    assert main([str(runs), str(evidence), "--docs", str(page)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no <!-- what-reproduces -->" in err[0]
    assert not any(evidence.iterdir()) and page.read_text() == "no markers here\n"
    assert main([str(tmp_path / "missing"), str(evidence)]) == 2
    assert "missing: not a folder" in capsys.readouterr().err
    assert main([str(runs)]) == 2  # the evidence folder left out: argparse's error, one line
    assert not any(evidence.iterdir())
    readme = tmp_path / "README.md"  # one experiment, not a tier: no claims.md for its block
    readme.write_text("<!-- summary -->\nold\n<!-- /summary -->\n")
    capsys.readouterr()
    assert main([str(runs), str(evidence), "--readme", str(readme)]) == 2
    assert "no claims.md" in capsys.readouterr().err
    assert readme.read_text() == "<!-- summary -->\nold\n<!-- /summary -->\n"


def test_import_command_regenerates_the_tables_docs_and_readme(tmp_path):
    from lgtransfer.analysis.evidence import main

    evidence, runs = tmp_path / "evidence", tmp_path / "runs"
    evidence.mkdir()
    committed = Path(__file__).parents[1] / "results" / "cpu"
    for run in [r for g in ("g1", "g5") for r in sorted((committed / g).glob("*_seed[0-2]_*"))
                if r.name.startswith(("with_aux", "main_only_seed"))]:
        out = runs / run.relative_to(committed)
        out.mkdir(parents=True)
        for name in ("config.yaml", "manifest.json", "eval.jsonl", "metrics.jsonl"):
            shutil.copy2(run / name, out / name)  # no head metrics: the tables only
    page, readme = tmp_path / "page.md", tmp_path / "README.md"
    page.write_text("a\n<!-- what-reproduces -->\nold\n<!-- /what-reproduces -->\n"
                    "<!-- tier-cost -->\nold\n<!-- /tier-cost -->\nb\n")
    readme.write_text("top\n<!-- summary -->\nold\n<!-- /summary -->\nend\n")
    assert main([str(runs), str(evidence), "--docs", str(page), "--readme", str(readme)]) == 0
    assert len(list(evidence.rglob("manifest.json"))) == 12
    claims = (evidence / "claims.md").read_text()
    assert "| g1 |" in claims and "| g5 |" in claims
    assert claims.strip() in page.read_text() and "old" not in page.read_text()
    text = readme.read_text()
    assert text.startswith("top\n<!-- summary -->\n") and text.endswith("<!-- /summary -->\nend\n")
    assert "reaches about L_aux | inconclusive: g1, g5" in text and "old" not in text
    assert not (evidence / "confirm-vs-exploratory.md").exists()  # no confirm registration
    before = {f: f.stat().st_mtime_ns for f in evidence.rglob("manifest.json")}
    assert main([str(runs), str(evidence)]) == 0  # again: nothing new is copied
    assert before == {f: f.stat().st_mtime_ns for f in evidence.rglob("manifest.json")}
