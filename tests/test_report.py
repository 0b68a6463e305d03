"""Summary metrics on known inputs, and the report files from synthetic run folders."""

import json
import math

import pandas as pd
import pytest

from lgtransfer.analysis.metrics import generalization_gap, max_generalized_length, mean_accuracy
from lgtransfer.analysis.report.suite import cost_table, write_cost, write_report
from lgtransfer.analysis.results import best_seed, load_eval, seed_metrics
from lgtransfer.runtime import rundir


def test_max_generalized_length():
    assert max_generalized_length({1: 1.0, 2: 0.95, 3: 0.9, 4: 0.89, 5: 1.0}) == 3
    assert max_generalized_length({1: 0.5, 2: 1.0}) == 0
    assert max_generalized_length({}) == 0
    assert max_generalized_length({2: 1.0, 1: 1.0}) == 2  # order of keys does not matter


def test_generalization_gap():
    main = {n: 1.0 if n <= 4 else 0.0 for n in range(1, 11)}
    aux_a = {n: 1.0 for n in range(1, 11)}
    aux_b = {n: 0.5 for n in range(1, 11)}
    # strictly between 4 and 8: lengths 5, 6, 7; |mean(1, .5) - 0| = .75
    assert generalization_gap(main, [aux_a, aux_b], 4, 8) == pytest.approx(0.75)
    assert generalization_gap(main, [aux_a], 8, 4) == pytest.approx(1.0)  # either order
    assert math.isnan(generalization_gap(main, [aux_a], 4, 4))  # empty interval: undefined
    assert math.isnan(generalization_gap(main, [], 4, 8))  # no aux curve: undefined
    assert generalization_gap(aux_a, [aux_a], 4, 8) == 0.0  # perfect transfer
    # a model that learned nothing: both curves 0 everywhere; the gap is undefined, not 0
    zero = {n: 0.0 for n in range(1, 11)}
    assert generalization_gap(zero, [zero], 4, 8) == 0.0  # without the condition it reads 0
    assert math.isnan(generalization_gap(zero, [zero], 4, 8, learned=0.95))
    assert math.isnan(generalization_gap(main, [aux_b], 4, 8, learned=0.95))  # aux at 0.5
    # the aux tasks count by their mean, as in the gap: 1.0 and 0.9 average 0.95
    aux_c = {n: 0.9 for n in range(1, 11)}
    assert generalization_gap(main, [aux_a, aux_c], 4, 8, learned=0.95) == pytest.approx(0.95)
    assert generalization_gap(main, [aux_a], 4, 8, learned=0.95) == pytest.approx(1.0)


def test_mean_accuracy_window():
    curve = {1: 1.0, 2: 0.5, 3: 0.0}
    assert mean_accuracy(curve, 1, 3) == pytest.approx(0.25)
    assert mean_accuracy(curve, 3) != mean_accuracy(curve, 3)  # nan when empty


def _fake_run(root, variant, seed, curves, l_main=4, l_aux=8):
    d = root / "exp" / f"{variant}_seed{seed}_x"
    rows = []
    for task, curve in curves.items():
        role = "main" if task == "reverse_add" else "aux"
        for n, acc in curve.items():
            for step, a in ((10, 0.0), (20, acc)):  # only the last step counts
                rows.append({"experiment": "exp", "variant": variant, "seed": seed,
                             "step": step, "task": task, "role": role,
                             "train_max_length": l_main if role == "main" else l_aux,
                             "length": n, "n": 8, "accuracy": a})
    rundir.write_jsonl(d / "eval.jsonl", rows)
    rundir.write_json(d / "manifest.json", {"status": "complete"})


def test_summary_and_report_files(tmp_path):
    good = {n: 1.0 if n <= 6 else 0.0 for n in range(1, 11)}
    weak = {n: 1.0 if n <= 5 else 0.0 for n in range(1, 11)}
    alone = {n: 1.0 if n <= 4 else 0.0 for n in range(1, 11)}
    aux = {n: 1.0 if n <= 8 else 0.0 for n in range(1, 11)}
    _fake_run(tmp_path, "with_aux", 1, {"reverse_add": weak, "no_carry": aux})
    _fake_run(tmp_path, "with_aux", 2, {"reverse_add": good, "no_carry": aux})
    for seed in (1, 2):
        _fake_run(tmp_path, "main_only", seed, {"reverse_add": alone})
    # an incomplete run is ignored
    (tmp_path / "exp" / "with_aux_seed3_x").mkdir()
    rundir.write_json(tmp_path / "exp" / "with_aux_seed3_x" / "manifest.json",
                      {"status": "running"})

    table = seed_metrics(load_eval(tmp_path / "exp")).set_index("seed")
    assert table.loc[2, "max_gen_length_with_aux"] == 6
    assert table.loc[1, "max_gen_length_with_aux"] == 5
    assert (table["max_gen_length_main_only"] == 4).all()
    assert table.loc[2, "max_gen_length_gain"] == 2
    assert table.loc[2, "acc_past_main_with_aux"] == pytest.approx(0.5)  # lengths 5..8: 1, 1, 0, 0
    assert table.loc[2, "gap"] == pytest.approx(1 / 3)  # lengths 5, 6, 7: 0, 0, 1
    assert best_seed(table.reset_index()) == 2

    md = write_report(tmp_path / "exp")
    text = md.read_text()
    assert "best seed: 2" in text and "mean ± std" in text
    # any experiment with a baseline gets the transfer verdict: gains 0.25 and 0.5, too few seeds
    assert "**Transfer: inconclusive.**" in text and "+0.375 [-1.213, +1.963] (n = 2)" in text
    page = (tmp_path / "exp" / "report.html").read_text()
    assert "data:image/png;base64," in page  # self-contained
    assert (tmp_path / "exp" / "report.png").stat().st_size > 10_000
    assert (tmp_path / "exp" / "per_seed.csv").read_text().startswith(
        "experiment,experiment_key,figure,seed,")  # the table `lgt results` writes
    json.dumps(table.reset_index().to_dict())  # plain values


def test_report_says_whether_the_second_baseline_changes_the_conclusion(tmp_path):
    with_aux = {n: 1.0 if n <= 8 else 0.0 for n in range(1, 11)}
    aux = {n: 1.0 if n <= 8 else 0.0 for n in range(1, 11)}
    alone = {n: 1.0 if n <= 4 else 0.0 for n in range(1, 11)}
    for seed in (1, 2, 3, 4, 5):  # five seeds: the exact test's smallest p is 1/32
        _fake_run(tmp_path, "with_aux", seed, {"reverse_add": with_aux, "no_carry": aux})
        # same steps: fails past 4; as many main examples (fewer steps): as good as with aux
        _fake_run(tmp_path, "main_only", seed, {"reverse_add": alone})
        _fake_run(tmp_path, "main_only_same_examples", seed, {"reverse_add": with_aux})
    # a sixth seed without the second baseline: the two verdicts compare seeds 1-5 only
    _fake_run(tmp_path, "with_aux", 6, {"reverse_add": with_aux, "no_carry": aux})
    _fake_run(tmp_path, "main_only", 6, {"reverse_add": alone})
    text = write_report(tmp_path / "exp").read_text()
    assert "**Transfer: yes.**" in text
    assert ("**Against the baseline with as many main-task examples: no** (+0.000 [+0.000, "
            "+0.000] (n = 5)): a different conclusion (yes against the same-steps baseline) "
            "on the same 5 seeds."
            ) in text


def test_report_uses_only_the_latest_experiment_config(tmp_path):
    curve = {n: 1.0 if n <= 4 else 0.0 for n in range(1, 9)}
    _fake_run(tmp_path, "main_only", 1, {"reverse_add": curve})
    old = tmp_path / "exp" / "main_only_seed1_x"
    rundir.write_json(old / "manifest.json",
                      {"status": "complete", "experiment_key": "old", "finished": 1.0})
    newer = tmp_path / "exp" / "main_only_seed1_y"
    rundir.write_jsonl(newer / "eval.jsonl", [
        {**r, "accuracy": 0.5} for r in rundir.read_jsonl(old / "eval.jsonl")])
    rundir.write_json(newer / "manifest.json",
                      {"status": "complete", "experiment_key": "new", "finished": 2.0})
    from lgtransfer.analysis.results import select_runs

    dirs, skipped = select_runs(tmp_path / "exp")
    assert dirs == [newer] and skipped == 1
    assert set(load_eval(tmp_path / "exp").accuracy) == {0.5}


def test_cost_of_the_tier_counts_the_first_three_seeds_and_shared_runs_once(tmp_path):
    minutes = {"g1/w0": 10, "g1/w1": 10, "g1/w2": 10, "g1/w3": 40, "g1/a0": 4, "g1/a1": 4,
               "g1/a2": 4, "c1/w0": 6, "c1/w1": 6, "c1/w2": 6}
    for run, m in minutes.items():
        rundir.write_json(tmp_path / run / "manifest.json", {"train_seconds": m * 60})
    rows = [("g1", run, int(run[-1])) for run in minutes if run.startswith("g1")]
    rows += [("c1", run, int(run[-1])) for run in minutes if run.startswith("c1")]
    rows += [("c1", f"g1/a{s}", s) for s in range(3)]  # C1 shares G1's main-alone runs
    done = pd.DataFrame(rows, columns=["experiment", "run", "seed"])
    table = cost_table(done, tmp_path)
    cost = table.set_index("experiment")
    assert cost.loc["g1", "runs"] == 7 and cost.loc["g1", "tier runs"] == 6  # seed 3 is extra
    assert cost.loc["g1", "minutes"] == 82 and cost.loc["g1", "tier minutes"] == 42
    assert cost.loc["c1", "tier runs"] == 6 and cost.loc["c1", "tier minutes"] == 30
    assert table.attrs["runs"] == 10 and table.attrs["total"] == 100  # shared runs once
    assert table.attrs["tier_runs"] == 9 and table.attrs["tier_minutes"] == 60
    assert table.attrs["tier_hours"] == 0.5  # an hour of run time, one run per core on two
    text = write_cost(table, tmp_path).read_text()
    assert "9 distinct runs, 60.0 minutes of run time, 0.5 h on two cores" in text
    assert "| g1 | 7 | 11.7 | 82.0 | 6 | 42.0 |" in text
