"""The smollm2 presets through `lgt run`, with a tiny pretrained Llama standing in for
SmolLM2-135M: the pilot evaluates the main task at 1-6 every 25 steps in bf16 and
benchmarks/smollm2_pilot.py reads the step it learned from; smollm2-g1's four arms train and
`lgt report` judges the registered claims from their eval.jsonl (pending at 1 of 7 seeds)."""

import importlib.util
import shutil
from pathlib import Path

import pytest
import yaml
from test_pretrained import make_tiny_lm

from lgtransfer.cli import main
from lgtransfer.runtime import rundir

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    return make_tiny_lm(tmp_path_factory.mktemp("lm") / "tiny")


def lgt_run(preset, out, *sets):
    argv = ["run", preset, "--out", str(out), "--quiet", "--executor", "inline"]
    return main(argv + [x for s in sets for x in ("--set", s)])


def test_the_pilot_evaluates_in_distribution_every_25_steps(lm, tmp_path, capsys):
    out = tmp_path / "runs"
    assert lgt_run("smollm2-pilot", out, f"model.stages=[{lm}]", "train.steps=50",
                   "train.checkpoint_every=50", "eval.n=4", "train.threads=1") == 0
    (run,) = (out / "cpu" / "smollm2-pilot").glob("main_only_*")
    manifest = rundir.read_json(run / "manifest.json")
    assert manifest["execution"] == "bf16" and manifest["init"] == str(lm)
    rows = rundir.read_jsonl(run / "eval.jsonl")
    assert {(r["step"], r["length"]) for r in rows} == {(s, n) for s in (25, 50)
                                                        for n in range(1, 7)}
    spec = importlib.util.spec_from_file_location("smollm2_pilot",
                                                  ROOT / "benchmarks" / "smollm2_pilot.py")
    pilot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pilot)
    capsys.readouterr()
    assert pilot.main([str(out / "cpu" / "smollm2-pilot")]) == 0
    text = capsys.readouterr().out
    assert run.name in text and "s a step with evaluations" in text and "25:" in text
    assert pilot.learned_from({25: 0.5, 50: 0.96, 75: 0.9, 100: 0.97, 125: 1.0}) == 100
    assert pilot.learned_from({25: 0.5}) is None
    assert pilot.main([str(tmp_path / "nothing")]) == 2


def test_smollm2_g1_trains_four_arms_a_seed_and_the_report_judges_them(lm, tmp_path):
    out = tmp_path / "runs"
    assert lgt_run("smollm2-g1", out, f"model.stages=[{lm}, scratch]", "seeds=[0]",
                   "train.steps=2", "train.eval_every=1", "train.checkpoint_every=2",
                   "eval.n=2", "eval.lengths=[2, 7]", "train.threads=1") == 0
    manifests = [rundir.read_json(p / "manifest.json")
                 for p in (out / "cpu" / "smollm2-g1").glob("*_seed0_*")]
    assert sorted((m["variant"], m["reinit"]) for m in manifests) == [
        ("main_only", False), ("main_only", True), ("with_aux", False), ("with_aux", True)]
    assert lgt_run("smollm2-pilot", out, f"model.stages=[{lm}]", "train.steps=1", "eval.n=2",
                   "train.threads=1") == 0  # a second experiment: the folder is a suite
    reg = yaml.safe_load((ROOT / "docs" / "registration-smollm2.example.yaml").read_text())
    reg["stages"]["pretrained"] = str(lm)
    (out / "cpu" / "registration-smollm2.yaml").write_text(yaml.safe_dump(reg))
    assert main(["report", str(out / "cpu")]) == 0
    claims = (out / "cpu" / "claims.md").read_text()
    assert claims.count("pending: 1 of 7 registered seeds in") == 3, claims
    shutil.rmtree(out)
