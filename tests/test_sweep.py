"""Sweeps: sweep files expand, --dry-run tells the state of every run, the local pool and
submitit's local executor train tiny sweeps, and a killed sweep resumes without redoing anything."""

import os
import signal
import subprocess
import sys

import pytest

from lgtransfer.cli import main
from lgtransfer.config import load_experiments
from lgtransfer.errors import UsageError
from lgtransfer.orchestration.executors import execute
from lgtransfer.orchestration.sweep import describe, plan, training_tokens
from lgtransfer.runtime import rundir

BASE = ("group: [{task: copy, role: main, max_length: 3}, {task: reverse, role: aux, "
        "max_length: 5}]\n"
        "model: {n_layer: 1, n_head: 2, d_model: 32, d_ff: 64}\n"
        "train: {steps: 20, batch_size: 8, eval_every: 10, checkpoint_every: 10}\n"
        "eval: {n: 8, max_length: 6}\nseeds: [0]\nbaseline: false\n")


def sweep_file(tmp_path, values=(4, 5), steps=20, name="sw"):
    (tmp_path / "base.yaml").write_text(BASE)
    f = tmp_path / f"{name}.yaml"
    f.write_text(f"sweep: {name}\nset: {{train.steps: {steps}, figure: '10'}}\n"
                 f"experiments:\n  - {{base: {tmp_path / 'base.yaml'}, name: 'aux{{aux}}'}}\n"
                 f"grid:\n  aux: {{keys: [group.1.max_length], values: {list(values)}}}\n")
    return f


def test_sweep_file_expands_its_grid(tmp_path):
    experiments = load_experiments([str(sweep_file(tmp_path, values=(4, 5, 6)))], ["seeds=[1,2]"])
    assert [str(e.folder) for e in experiments] == ["cpu/sw/aux4", "cpu/sw/aux5", "cpu/sw/aux6"]
    assert [e.config.group[1].max_length for e in experiments] == [4, 5, 6]
    assert all(e.config.seeds == [1, 2] and e.config.train.steps == 20 for e in experiments)
    assert all(e.config.figure == "10" for e in experiments)
    assert len(plan(experiments, tmp_path / "out")) == 6  # 3 experiments x 2 seeds, no baseline


def test_a_sweeps_budget_overrides_its_set_and_grid(tmp_path):
    """`budgets: {cpu: {set, grid}}`: the budget's `set` comes after the sweep's and the
    entries' own, its grid axes replace the sweep's; a budget it lacks is an error."""
    f = sweep_file(tmp_path, values=(4, 5, 6))
    f.write_text(f.read_text() + "budgets:\n  cpu: {set: {seeds: [7]}, grid: {aux: {keys: "
                 "[group.1.max_length], values: [3]}}}\n  gpu: {}\n")
    cpu = load_experiments([str(f)], budget="cpu")
    assert [(str(e.folder), e.config.seeds, e.config.budget) for e in cpu] == [
        ("cpu/sw/aux3", [7], "cpu")]
    gpu = load_experiments([str(f)], budget="gpu")
    assert [str(e.folder) for e in gpu] == ["gpu/sw/aux4", "gpu/sw/aux5", "gpu/sw/aux6"]
    with pytest.raises(UsageError, match="has no 'paper' budget; it has cpu, gpu"):
        load_experiments([str(f)], budget="paper")


@pytest.mark.parametrize("body, message", [
    ("sweep: x\n", "non-empty list 'experiments'"),
    ("sweep: x\nexperiments: [{base: quick}]\n", "'base' and 'name'"),
    ("sweep: x\nexperiments: [{base: quick, name: a}]\ngrid: {a: {keys: [seeds]}}\n",
     "'keys' and 'values'"),
    ("sweep: x\nfoo: 1\nexperiments: [{base: quick, name: a}]\n", "unknown sweep key 'foo'"),
    ("sweep: x\nexperiments: [{base: quick, name: a, set: {train.nope: 1}}]\n",
     "unknown config key"),
    ("sweep: x\nexperiments: [{base: quick, name: a}, {base: quick, name: a}]\n",
     "share a name"),
])
def test_bad_sweep_files_exit_2(tmp_path, capsys, body, message):
    f = tmp_path / "bad.yaml"
    f.write_text(body)
    with pytest.raises(UsageError, match=message):
        load_experiments([str(f)])
    assert main(["run", str(f), "--out", str(tmp_path / "out"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.split("'")[0] in err
    assert not (tmp_path / "out").exists()


def test_dry_run_tells_complete_partial_and_pending(tmp_path, capsys):
    f = sweep_file(tmp_path, values=(4, 5, 6))
    planned = plan(load_experiments([str(f)]), tmp_path / "out")
    rundir.write_json(planned[0].directory / "manifest.json", {"status": "complete"})
    (planned[1].directory / "checkpoints" / "step-10").mkdir(parents=True)
    (planned[1].directory / "checkpoints" / "resume.pt").write_bytes(b"")
    text = describe(planned)
    assert text.splitlines()[0].startswith("complete")
    assert "partial (resumes at step 10)" in text.splitlines()[1]
    assert text.splitlines()[2].startswith("pending")
    assert text.splitlines()[-1].startswith("3 runs: 1 complete, 1 partial, 1 pending; ")
    assert main(["run", str(f), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    assert capsys.readouterr().out.strip() == text
    # a complete run's measured time gives the time still to go, at its speed
    tokens = training_tokens(planned[0].run)
    rundir.write_json(planned[0].directory / "manifest.json",
                      {"status": "complete", "train_seconds": tokens / 1000})
    last = describe(planned).splitlines()[-1]
    to_go = (training_tokens(planned[1].run) + training_tokens(planned[2].run)) / 1000 / 3600
    assert last.startswith("at the median speed of its 1 complete runs (1,000 tokens/s a run)")
    assert f"~{to_go:.1f} h of run time to go" in last


def _started(out):
    return {p.parent.name: rundir.read_json(p)["started"] for p in out.rglob("manifest.json")
            if rundir.is_complete(p.parent)}


def test_local_pool_sweep_completes_and_a_rerun_redoes_nothing(tmp_path, capsys):
    f, out = sweep_file(tmp_path), tmp_path / "out"
    argv = ["run", str(f), "--out", str(out), "--quiet", "--executor", "local", "--workers", "2"]
    assert main(argv) == 0
    started = _started(out)
    assert len(started) == 2
    for name in ("report.md", "report.html"):  # the sweep's own report, per figure
        assert (out / "cpu" / "sw" / name).is_file()
    assert "Length ratio" in (out / "cpu" / "sw" / "report.md").read_text()
    assert main(argv) == 0
    assert _started(out) == started


def test_submitit_local_executor_trains_the_sweep(tmp_path, capsys):
    pytest.importorskip("submitit")
    f, out = sweep_file(tmp_path), tmp_path / "out"
    assert main(["run", str(f), "--out", str(out), "--quiet", "--executor", "submitit",
                 "--cluster", "local"]) == 0
    assert "submitted 2 job(s) to local" in capsys.readouterr().out
    assert len(_started(out)) == 2
    assert (out / "cpu" / "sw" / ".submitit").is_dir()  # submitit's logs, beside the runs


def test_killed_sweep_resumes_and_repeats_no_finished_run(tmp_path):
    """SIGKILL (no handler, no resume point written) at step 15 of the sweep's second run, by
    the fault point `step#2`: after its checkpoint at step 10, before it finished."""
    f, out = sweep_file(tmp_path, values=(4, 5, 6)), tmp_path / "out"
    argv = ["run", str(f), "--out", str(out), "--quiet", "--executor", "inline"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LGT_FAULT": "step#2:15:SIGKILL"}
    proc = subprocess.run([sys.executable, "-m", "lgtransfer.cli", *argv], env=env,
                          timeout=300)
    assert proc.returncode == -signal.SIGKILL
    before = _started(out)
    assert len(before) == 1, "the kill lands in the second run, the first one complete"
    killed = [p.parent for p in out.rglob("manifest.json") if p.parent.name not in before]
    assert len(killed) == 1 and rundir.last_step(killed[0]) == 10  # resumes from its checkpoint
    assert main(argv) == 0
    after = _started(out)
    assert len(after) == 3
    assert {k: after[k] for k in before} == before  # finished runs were not run again
    for p in out.rglob("eval.jsonl"):  # one eval row per (step, task, length): none repeated
        rows = rundir.read_jsonl(p)
        keys = [(r["step"], r["task"], r["length"]) for r in rows]
        assert len(keys) == len(set(keys))


def test_a_run_trained_by_another_live_process_is_left_alone(tmp_path):
    planned = plan(load_experiments([str(sweep_file(tmp_path))]), tmp_path / "out")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        rundir.write_json(planned[0].directory / "manifest.json",
                          {"status": "running", **rundir.owner(), "pid": sleeper.pid})
        assert planned[0].state() == "running elsewhere"
        busy = execute(planned[:1], executor="inline", progress=False)
        assert busy == planned[:1] and not rundir.is_complete(planned[0].directory)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert planned[0].state() == "pending"  # its process died: the next sweep resumes it


TINY = ["model.n_layer=1", "model.n_head=2", "model.d_model=32", "model.d_ff=64",
        "train.steps=4", "train.batch_size=4", "train.eval_every=4", "train.checkpoint_every=4",
        "eval.n=4", "seeds=[0]"]


def test_a_run_reached_from_two_experiments_is_trained_once(tmp_path, capsys):
    """A1's both-auxiliary experiment is G1: after `lgt run g1`, `lgt run a1 --dry-run` shows
    those runs complete (in g1's folder), and the A1 report lists them as its own."""
    out = tmp_path / "out"
    sets = [a for s in TINY for a in ("--set", s)]
    assert main(["run", "g1", "--out", str(out), "--quiet", *sets]) == 0
    g1_runs = sorted(p.parent for p in (out / "cpu" / "g1").glob("*/manifest.json"))
    assert len(g1_runs) == 2
    capsys.readouterr()
    assert main(["run", "a1", "--out", str(out), "--dry-run", *sets]) == 0
    lines = capsys.readouterr().out.splitlines()
    shared = [line for line in lines if "/cpu/g1/" in line]
    assert len(shared) == 2 and all(line.startswith("complete") for line in shared)
    assert sum(line.startswith("pending") for line in lines) == 2  # the two single-aux runs
    # renaming an experiment retrains nothing: the same config under another name
    renamed = tmp_path / "renamed.yaml"
    renamed.write_text("base: g1\n")
    planned = plan(load_experiments([str(renamed)], TINY), out)
    assert {p.directory for p in planned} == set(g1_runs)
    assert all(p.state() == "complete" for p in planned)
    # running the sweep trains only the two new runs, and the A1 report lists g1's runs
    assert main(["run", "a1", "--out", str(out), "--quiet", *sets]) == 0
    a1 = out / "cpu" / "a1"  # the budget's folder, then the sweep's
    assert not list((a1 / "a1-both").glob("*/manifest.json"))
    assert len(list(a1.glob("*/*/manifest.json"))) == 2
    from lgtransfer.analysis.results import collect, select_runs

    assert sorted(select_runs(a1 / "a1-both")[0]) == g1_runs
    df = collect(a1)
    assert set(df.experiment) == {"a1-both", "a1-no-carry", "a1-carry-only"}
    assert (df[df.experiment == "a1-both"].figure == "14").all()
    assert (df.budget == "cpu").all()
    assert "# Experiment a1-both (cpu)" in (a1 / "a1-both" / "report.md").read_text()
    assert "# Report: a1 (cpu)" in (a1 / "report.md").read_text()
    # a folder made before runs were keyed by content (older key in its name and manifest) is
    # found by its config.yaml and reused, not trained again
    old = g1_runs[0].with_name(g1_runs[0].name.rsplit("_", 1)[0] + "_0123456789")
    g1_runs[0].rename(old)
    manifest = rundir.read_json(old / "manifest.json")
    rundir.write_json(old / "manifest.json", {**manifest, "config_hash": "0123456789"})
    planned = plan(load_experiments(["g1"], TINY), out)
    assert {p.directory for p in planned} == {old, g1_runs[1]}
    assert all(p.state() == "complete" for p in planned)


def test_both_baselines_train_and_report(tmp_path):
    """`baseline: both`: the same-examples baseline trains its share of the steps, and the
    experiment's per-seed table compares the with-aux run with each baseline."""
    out = tmp_path / "out"
    sets = [a for s in [*TINY, "train.steps=6", "baseline=both"] for a in ("--set", s)]
    assert main(["run", "quick", "--out", str(out), "--quiet", *sets]) == 0
    steps = {d.name.split("_seed")[0]: rundir.read_jsonl(d / "metrics.jsonl")[-1]["step"]
             for d in (out / "cpu" / "quick").glob("*_seed0_*")}
    assert steps == {"with_aux": 6, "main_only": 6, "main_only_same_examples": 2}
    import pandas as pd

    table = pd.read_csv(out / "cpu" / "quick" / "per_seed.csv")
    assert {"acc_past_main_gain", "acc_past_main_gain_same_examples"} <= set(table.columns)


def test_runs_shared_in_one_command_carry_their_folders_name(tmp_path):
    """`lgt run g1 a1 c1`: G1's runs are A1-both's too and its baseline is C1's; each is trained
    once, in g1's folder and under g1's name, and every table labels each run by the experiment
    that lists it, as part of that experiment's config."""
    out = tmp_path / "out"
    sets = [a for s in TINY + ["seeds=[0]"] for a in ("--set", s)]
    assert main(["run", "g1", "a1", "c1", "--out", str(out), "--quiet", *sets]) == 0
    g1_runs = sorted(p.parent for p in (out / "cpu" / "g1").glob("*/manifest.json"))
    assert len(g1_runs) == 2
    for run in g1_runs:
        assert rundir.read_json(run / "manifest.json")["experiment"] == "g1"
        assert {r["experiment"] for r in rundir.read_jsonl(run / "eval.jsonl")} == {"g1"}
    from lgtransfer.analysis.results import collect

    df = collect(out / "cpu")
    both = df[df.run.str.startswith("g1/")]
    assert set(both.experiment) == {"g1", "a1-both", "c1"}  # listed by each experiment of it
    assert set(both[both.experiment == "g1"].figure) == {"3a"}
    assert set(both[both.experiment == "a1-both"].figure) == {"14"}
    # C1's baseline is G1's main-alone run: in C1's tables it is C1's config, not another one
    from lgtransfer.analysis.results import label_configs, per_seed

    seeds = per_seed(label_configs(df))
    c1 = seeds[seeds.experiment == "c1"]
    assert len(c1) == 1 and not c1.acc_past_main_gain.isna().any()
