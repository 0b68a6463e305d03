"""The GPU window's plan (`gpu_plan.py`): the committed run list and its order, what is pending,
and the timing rules that decide which runs start and which are stopped."""

from pathlib import Path

import pytest

from lgtransfer.errors import UsageError
from lgtransfer.orchestration import gpu_plan
from lgtransfer.runtime import rundir

ROOT = Path(__file__).resolve().parents[1]
RUN_LIST = ROOT / "benchmarks" / "gpu_runs.yaml"


def test_the_committed_list_starts_with_g1_then_the_issues_order(tmp_path):
    budget, entries = gpu_plan.load_run_list(RUN_LIST)
    runs = gpu_plan.queue(entries, budget, tmp_path)
    assert budget == "gpu"
    # G1 first: three seeds, each seed's with-aux run then its baseline
    assert [(p.run.experiment.name, p.run.variant, p.run.seed) for p in runs[:6]] == [
        ("g1", v, s) for s in (43, 44, 45) for v in ("with_aux", "main_only")]
    order = list(dict.fromkeys(p.run.experiment.name for p in runs))
    assert order == ["g1", "c1", "g5", "g4", "g7", "g2", "ratio-m16-a32", "ratio-m16-a64"]
    # then more seeds, after the ratio cells, up to the registered 43-50
    last_ratio = max(i for i, p in enumerate(runs) if p.run.experiment.name.startswith("ratio"))
    assert all(p.run.seed in (43, 44, 45) for p in runs[:last_ratio - 5])
    more = runs[last_ratio + 1:]
    assert more and all(46 <= p.run.seed <= 50 for p in more)
    from lgtransfer.analysis.registration import load

    registered = load(ROOT / "results" / "gpu")
    for name in registered.experiments:  # every registered group reaches its registered seeds
        assert set(registered.seeds) <= {p.run.seed for p in runs
                                         if p.run.experiment.name == name}, name
    assert list(dict.fromkeys(p.run.experiment.name for p in more)) == order[:6]
    assert all(p.run.experiment.budget == "gpu" for p in runs)
    g1 = runs[0].run
    assert (g1.model.n_layer, g1.model.n_head, g1.model.d_model) == (6, 6, 384)
    assert (g1.train.steps, g1.train.batch_size) == (4000, 512)
    assert g1.experiment.heads.record  # head metrics come back with each with-aux run
    ratio = [p for p in runs if p.run.experiment.name.startswith("ratio")]
    assert {p.run.seed for p in ratio} == {45, 46, 47} and len(ratio) == 6
    assert {p.directory.parent.relative_to(tmp_path).as_posix() for p in ratio} == {
        "gpu/ratio/ratio-m16-a32", "gpu/ratio/ratio-m16-a64"}
    assert len({p.run.key for p in runs}) == len(runs)  # a shared baseline is queued once


def test_a_baseline_two_experiments_share_is_queued_once_at_the_first(tmp_path):
    entries = [{"experiment": "g1", "seeds": [43]}, {"experiment": "g2", "seeds": [43]}]
    runs = gpu_plan.queue(entries, "gpu", tmp_path)
    # G2's main-only baseline is G1's (reverse add <= 16 alone): one run, in G1's folder
    assert [(p.run.experiment.name, p.run.variant) for p in runs] == [
        ("g1", "with_aux"), ("g1", "main_only"), ("g2", "with_aux")]


def complete(directory: Path, run) -> None:
    rundir.write_yaml(directory / "config.yaml", run.resolved())
    rundir.write_json(directory / "manifest.json", {"status": "complete", "config_hash": run.key})


def test_complete_runs_anywhere_are_skipped_partial_ones_are_not(tmp_path):
    runs = gpu_plan.queue([{"experiment": "g1", "seeds": [43]}], "gpu", tmp_path / "out")
    committed, here = tmp_path / "results" / "gpu", tmp_path / "out"
    complete(committed / "g1" / runs[0].directory.name, runs[0].run)
    complete(runs[1].directory, runs[1].run)
    rundir.write_json(runs[1].directory / "manifest.json",
                      {"status": "interrupted", "config_hash": runs[1].run.key})
    assert gpu_plan.complete_keys(committed, here, tmp_path / "missing") == {runs[0].run.key}


@pytest.mark.parametrize("text, message", [
    ("runs: []", "non-empty list"),
    ("runs: [{experiment: g1, seed: [1]}]", "may give only"),
    ("runs: [{experiment: g1, seeds: [-1]}]", "non-negative integers"),
    ("runs: [{experiment: g1, set: [1]}]", "mapping"),
    ("[1, 2]", "a mapping"),
])
def test_a_bad_run_list_is_one_clear_error(tmp_path, text, message):
    path = tmp_path / "runs.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        gpu_plan.load_run_list(path)


def test_an_unknown_experiment_or_sweep_member_is_an_error(tmp_path):
    with pytest.raises(UsageError, match="unknown experiment"):
        gpu_plan.queue([{"experiment": "g99"}], "gpu", tmp_path)
    with pytest.raises(UsageError, match="no experiment 'ratio-m16-a999'"):
        gpu_plan.queue([{"experiment": "ratio", "only": ["ratio-m16-a999"]}], "gpu", tmp_path)


def pace_and_run(tmp_path):
    run = gpu_plan.queue([{"experiment": "g1", "seeds": [43]}], "gpu", tmp_path)[0]
    return gpu_plan.Pace(tokens_per_s=1e6, startup_s=30, eval_s_per_example=1e-5), run


def test_an_estimate_grows_with_tokens_and_learns_from_slow_runs(tmp_path):
    pace, run = pace_and_run(tmp_path)
    tokens = gpu_plan.training_tokens(run.run)
    first = pace.estimate(run, tokens)
    assert first > 30 + tokens / 1e6  # startup, training, evaluations, head metrics, margin
    assert pace.estimate(run, tokens / 2) < first
    assert first == pytest.approx(1.5 * pace.predict(run, tokens))  # uncalibrated: wide margin
    pace.learn(run, tokens, 0.5 * pace.predict(run, tokens))  # a run took half the prediction
    assert pace.estimate(run, tokens) == pytest.approx(0.5 * 1.15 * pace.predict(run, tokens))
    pace.learn(run, tokens, 2 * pace.predict(run, tokens))  # and one twice: the worst holds
    pace.learn(run, tokens, 1 * pace.predict(run, tokens))
    assert pace.estimate(run, tokens) == pytest.approx(2 * 1.15 * pace.predict(run, tokens))


def test_a_run_starts_only_if_it_ends_by_the_deadline():
    assert gpu_plan.fits(now=100, estimate_s=50, deadline=150)
    assert not gpu_plan.fits(now=100, estimate_s=50.1, deadline=150)


def test_a_running_runs_end_is_its_estimate_until_its_own_pace_is_known():
    # nothing logged yet, or too little since it was first seen: start + estimate
    assert gpu_plan.projected_end(50, 10, 100, 4000, 0, None) == 110
    assert gpu_plan.projected_end(50, 10, 100, 4000, 350, (40, 50)) == 110
    # 400 steps in 10 s since first seen: 3000 more steps take 75 s
    assert gpu_plan.projected_end(50, 10, 100, 4000, 1000, (40, 600)) == pytest.approx(125)


def test_a_run_is_stopped_when_it_would_end_too_late_or_its_pace_is_unknown_at_the_deadline():
    # deadline 100 (then 30 s for a resume point), runs must end by 130 to be packed
    assert gpu_plan.should_stop(now=50, ends=131, paced_=True, deadline=100, finish_by=130)
    assert not gpu_plan.should_stop(now=50, ends=120, paced_=False, deadline=100, finish_by=130)
    assert gpu_plan.should_stop(now=100, ends=120, paced_=False, deadline=100, finish_by=130)
    # past the deadline, a run whose own rate says it ends in time goes on
    assert not gpu_plan.should_stop(now=110, ends=125, paced_=True, deadline=100, finish_by=130)
    assert gpu_plan.paced(4000, 1000, (40, 600)) and not gpu_plan.paced(4000, 900, (40, 600))
    assert not gpu_plan.paced(4000, 1000, None)


@pytest.mark.parametrize("totals, choice", [
    ({1: 100, 2: 180, 4: 300}, 4),
    ({1: 100, 2: 180, 4: 185}, 2),  # 4 barely beats 2: not worth it
    ({1: 100, 2: 102, 4: 90}, 1),
    ({2: 50}, 2),
])
def test_runs_go_side_by_side_only_while_that_raises_total_throughput(totals, choice):
    assert gpu_plan.side_by_side(totals) == choice
