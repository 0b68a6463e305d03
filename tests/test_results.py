"""`lgt results`: the tidy table's schema, statistics on known inputs, and the per-figure report
of a folder holding several experiments (synthetic run folders, no training)."""

import numpy as np
import pandas as pd
import pytest

from lgtransfer.analysis.report.suite import calibration_table, write_report
from lgtransfer.analysis.results import (
    CONTRACT_COLUMNS,
    collect,
    per_seed,
    statistics,
)
from lgtransfer.analysis.stats import mean_ci
from lgtransfer.cli import main
from lgtransfer.runtime import rundir


def fake_run(root, exp, variant, seed, curves, figure="", l_main=4, l_aux=8, pos="rope",
             steps=(10, 20), status="complete", key="k", budget=None):
    """A run folder with eval rows: curves maps task -> {length: final accuracy}; earlier steps
    score half of it."""
    d = root / exp / f"{variant}_seed{seed}_{key}"
    rows = []
    for task, curve in curves.items():
        role = "main" if task in ("reverse_add", "copy") else "aux"
        for step in steps:
            for n, acc in curve.items():
                rows.append({"experiment": exp, "variant": variant, "seed": seed, "step": step,
                             "task": task, "role": role,
                             "train_max_length": l_main if role == "main" else l_aux,
                             "length": n, "n": 8,
                             "accuracy": acc if step == steps[-1] else acc / 2})
    rundir.write_jsonl(d / "eval.jsonl", rows)
    rundir.write_yaml(d / "config.yaml", {"model": {"pos_encoding": pos},
                                          **({"budget": budget} if budget else {})})
    rundir.write_json(d / "manifest.json", {"status": status, "experiment": exp, "figure": figure,
                                            "experiment_key": key, "config_hash": key + str(seed),
                                            "finished": 1.0})
    return d


def step(k, top=10):
    return {n: 1.0 if n <= k else 0.0 for n in range(1, top + 1)}


# seeds of the synthetic suites: the exact sign-flip test's smallest p is 2^-n, and Holm
# multiplies it by up to 4 claims of a family (the ablations): 4 / 2^7 < 0.05
SEEDS = 7


def group_runs(root, exp="g", figure="3a", reach=(6, 7, 8), alone=4, l_aux=8):
    for seed, k in enumerate(reach):
        fake_run(root, exp, "with_aux", seed, {"reverse_add": step(k), "no_carry": step(l_aux)},
                 figure, l_aux=l_aux)
        fake_run(root, exp, "main_only", seed, {"reverse_add": step(alone)}, figure, l_aux=l_aux)


def verdict_of(row: str) -> str:
    """The verdict cell of a claims row (the adjusted p comes after it)."""
    cells = [c.strip() for c in row.strip()[1:-1].split("|")]
    return cells[-2]


def test_bootstrap_interval_of_a_mean_on_known_inputs():
    assert mean_ci(np.array([2.0, 2.0, 2.0])) == (2.0, 2.0)
    lo, hi = mean_ci(np.array([0.0, 1.0, 2.0, 3.0, 4.0]))
    assert 0.0 < lo < 2.0 < hi < 4.0
    assert mean_ci(np.array([0.0, 1.0, 2.0, 3.0, 4.0])) == (lo, hi)  # seeded
    assert np.isnan(mean_ci(np.array([5.0]))[0])  # one seed: no interval


def test_results_table_has_the_contract_columns(tmp_path):
    group_runs(tmp_path)
    fake_run(tmp_path, "g", "with_aux", 9, {"reverse_add": step(9)}, status="running")
    df = collect(tmp_path)
    assert list(df.columns[:len(CONTRACT_COLUMNS)]) == CONTRACT_COLUMNS
    assert {"run", "status", "config_hash", "experiment_key", "figure", "pos_encoding"} <= set(df)
    assert len(df) == 3 * 2 * 20 + 3 * 2 * 10 + 2 * 10
    assert set(df.status) == {"complete", "running"}  # partial results are kept, and marked


def test_per_seed_metrics_and_statistics_on_known_inputs(tmp_path):
    group_runs(tmp_path, reach=(6, 7, 8), alone=4)
    fake_run(tmp_path, "g", "with_aux", 9, {"reverse_add": step(9)}, status="running")
    seeds = per_seed(collect(tmp_path))
    assert list(seeds.seed) == [0, 1, 2]  # the running run is left out
    assert list(seeds.max_gen_length_with_aux) == [6, 7, 8]
    assert list(seeds.max_gen_length_main_only) == [4, 4, 4]
    assert list(seeds.max_gen_length_gain) == [2, 3, 4]
    assert list(seeds.best) == [False, False, True]
    # gap over lengths 5..7 against an aux reaching 8: mean |1 - main|
    assert seeds.gap.tolist() == pytest.approx([1 / 3, 0.0, 0.0])
    stats = statistics(seeds).set_index("metric")
    g = stats.loc["max_gen_length_gain"]
    assert (g["mean"], g["std"], g["min"], g["max"], g.n_seeds) == (3.0, 1.0, 2.0, 4.0, 3)
    assert g.ci_low <= 3.0 <= g.ci_high and g.best_seed == 2
    assert stats.loc["max_gen_length_main_only"].variant == "main_only"


def test_lgt_results_writes_the_tables(tmp_path, capsys):
    group_runs(tmp_path)
    assert main(["results", str(tmp_path)]) == 0
    for name in ("results.csv", "per_seed.csv", "stats.csv"):
        assert (tmp_path / name).is_file()
    assert len(pd.read_csv(tmp_path / "results.csv")) == 3 * 2 * 10 * 2 + 3 * 10 * 2
    assert main(["results", str(tmp_path / "nothing")]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["results", str(empty)]) == 2
    assert "no run with evaluation results" in capsys.readouterr().err


def test_suite_report_has_a_section_per_figure(tmp_path):
    group_runs(tmp_path, "g1", "3a", reach=(6, 7, 8, 6, 7, 8, 7))
    group_runs(tmp_path, "c1", "8", reach=(4,) * SEEDS)
    # ratio cells (L_main, L_aux) -> (main reaches, aux reaches): near ratios transfer, far not
    cells = {"r-4-8": (4, 8, 8, 8), "r-8-4": (8, 4, 8, 8), "r-4-32": (4, 32, 4, 32)}
    for seed in range(SEEDS):
        for exp, (m, a, reach_m, reach_a) in cells.items():
            fake_run(tmp_path, exp, "with_aux", seed, {"reverse_add": step(reach_m, 40),
                     "no_carry": step(reach_a, 40)}, "10", l_main=m, l_aux=a)
    group_runs(tmp_path, "c2", "8", reach=(8, 8, 7, 8, 8, 7, 8))  # a "control" that does transfer
    for seed in range(SEEDS):  # verdicts need an interval: three seeds
        for pos, k in (("rope", 7), ("nope", 5)):
            fake_run(tmp_path, f"n-g1-{pos}", "with_aux", seed,
                     {"reverse_add": step(k), "no_carry": step(8)}, "12", pos=pos)
        for exp, k, aux in (("a-both", 8, ["no_carry", "carry_only"]),
                            ("a-nc", 6, ["no_carry"]), ("a-co", 5, ["carry_only"])):
            fake_run(tmp_path, exp, "with_aux", seed,
                     {"reverse_add": step(k), **{t: step(8) for t in aux}}, "14")
        # a second ablation (another main task) is paired only with its own both-auxiliary run
        for exp, k, aux in (("b-both", 5, ["reverse", "capitalize"]), ("b-rev", 7, ["reverse"])):
            fake_run(tmp_path, exp, "with_aux", seed,
                     {"copy": step(k), **{t: step(8) for t in aux}}, "14")
    for seed in range(SEEDS):  # earlier steps score half: in distribution moves, 7-8 stay at 0
        fake_run(tmp_path, "dyn", "with_aux", seed, {"reverse_add": step(6), "no_carry": step(8)},
                 "11", steps=(10, 20, 30, 40))
    report = write_report(tmp_path)
    text = report.read_text()
    for title in ("Task groups", "Controls", "Length ratio", "RoPE vs NoPE",
                  "Single-auxiliary ablations", "Training dynamics", "Statistics over seeds",
                  "Calibration", "Cost"):
        assert f"## {title}" in text
    for png in ("fig10_ratio.png", "fig12_nope.png", "fig14_ablations.png", "fig11_dynamics.png"):
        assert (tmp_path / png).is_file()
    assert (tmp_path / "g1" / "report.png").is_file()  # each experiment's own report too
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64") >= 6 and "src='fig" not in html
    # the verdicts follow the synthetic data
    rows: dict[str, str] = {}  # first claims row per name: its verdict column
    for line in text.splitlines():
        if line.startswith("| ") and line.count(" | ") >= 5:
            rows.setdefault(line.split(" | ")[0].strip("| "), verdict_of(line))
    assert rows["g1"].startswith("yes")  # transfer: 6-8 vs 4 alone
    assert rows["n-g1"].startswith("yes")  # RoPE gap 1/3 < NoPE gap 1
    assert rows["no_carry vs carry_only"].startswith("yes")
    pairs = [line.split(" | ")[:2] for line in text.splitlines() if "weaker than both" in line]
    assert sorted(pairs) == [["| a-co", "weaker than both (a-both)"],
                             ["| a-nc", "weaker than both (a-both)"],
                             ["| b-rev", "weaker than both (b-both)"]]
    assert rows["b-rev"].startswith("no")  # reverse alone beats both here
    assert rows["c1"].startswith("uninformative (floor)")  # 0 with aux and alone: says nothing
    assert rows["g1 - c1"].startswith("yes")  # the contrast with the related group does
    assert rows["c2"].startswith("no")  # the control's gain is real: it fails
    assert rows["ratio sweep"].startswith("yes")  # gap 1 at ratio 8, 0 at 0.5 and 2
    assert rows["ratio pattern"].startswith("inconclusive")  # 3 cells: 3! orders, p >= 1/6
    # second half: lengths 1-4 average 0.75 (< 0.9), move more than 5-8 do; 9-10 stay at 0
    assert rows["in distribution"].startswith("no")
    assert rows["transfer range"].startswith("no")
    assert rows["beyond aux"].startswith("yes")
    g1 = next(line for line in text.splitlines() if line.startswith("| g1 | "))
    assert f"(n = {SEEDS})" in g1 and "sign-flip" in g1  # n and the rule beside it


def test_calibration_table_says_which_tasks_learned_their_range(tmp_path):
    for seed in range(3):
        # the aux task learns lengths 1-8 on seeds 0 and 1 only; on seed 2 it reaches 6 of 8
        fake_run(tmp_path, "g", "with_aux", seed,
                 {"reverse_add": step(4), "no_carry": step(8 if seed < 2 else 6)}, "3a")
        fake_run(tmp_path, "g", "main_only", seed, {"reverse_add": step(3)}, "3a")  # 3 of 4
    table = calibration_table(collect(tmp_path)).set_index(["variant", "task"])
    assert table.loc[("with_aux", "no_carry (aux)"), "seeds learned"] == "2 of 3"
    assert table.loc[("with_aux", "no_carry (aux)"), "lowest seed"] == 0.75
    assert table.loc[("with_aux", "reverse_add (main)"), "seeds learned"] == "3 of 3"
    assert table.loc[("main_only", "reverse_add (main)"), "seeds learned"] == "0 of 3"
    assert table.loc[("main_only", "reverse_add (main)"), "trained to"] == 4
    # the group's verdict row says which tasks of its runs fell short, on how many seeds
    group_runs(tmp_path, "g1", "3a")  # a second experiment: a suite report
    row = next(line for line in write_report(tmp_path).read_text().splitlines()
               if line.startswith("| g | "))
    assert "n/a: reverse_add below 0.95 on 3 of 3 seeds" in row  # most seeds: no verdict
    assert "no_carry below 0.95 on 1 of 3 seeds" in row  # fewer: counted, and said


def test_a_nope_group_that_learned_nothing_gets_no_verdict_and_is_not_dropped(tmp_path):
    for seed in range(3):
        fake_run(tmp_path, "n-g2-rope", "with_aux", seed,
                 {"reverse_add": step(5), "no_carry": step(8)}, "12", pos="rope")
        # NoPE learned neither task: both curves 0 everywhere, no gap (not a gap of 0)
        fake_run(tmp_path, "n-g2-nope", "with_aux", seed,
                 {"reverse_add": step(0), "no_carry": step(0)}, "12", pos="nope")
    group_runs(tmp_path, "g1", "3a")  # a second figure, so the folder gets a suite report
    row = next(line for line in write_report(tmp_path).read_text().splitlines()
               if line.startswith("| n-g2 "))
    assert "NoPE n/a: no seed has a gap on both sides" in row
    assert verdict_of(row) == "n/a"


def test_two_configs_with_one_name_are_reported_as_two_groups(tmp_path):
    """Runs of different configs under one experiment name (say a cell of two budgets) are
    never averaged together: the suite report tells them apart by their config key."""
    for seed, k in enumerate((8,) * SEEDS):  # the config that transfers
        fake_run(tmp_path / "a", "g1", "with_aux", seed,
                 {"reverse_add": step(k), "no_carry": step(8)}, "3a", key="kA")
        fake_run(tmp_path / "a", "g1", "main_only", seed, {"reverse_add": step(4)}, "3a", key="kA")
    for seed in range(SEEDS):  # same name, another config: no transfer
        fake_run(tmp_path / "b", "g1", "with_aux", seed,
                 {"reverse_add": step(4), "no_carry": step(8)}, "3a", key="kB")
        fake_run(tmp_path / "b", "g1", "main_only", seed, {"reverse_add": step(4)}, "3a", key="kB")
    text = write_report(tmp_path).read_text()
    rows = [line for line in text.splitlines() if line.startswith("| g1 [")]
    assert [r.split(" | ")[0] for r in rows[:2]] == ["| g1 [kA]", "| g1 [kB]"]
    assert verdict_of(rows[0]) == "yes" and verdict_of(rows[1]) == "no"


def test_one_experiment_at_two_budgets_is_two_groups_named_by_budget(tmp_path):
    """g1 at cpu and at gpu under one root: two groups, `g1 (cpu)` and `g1 (gpu)`; each
    experiment report's heading names its budget."""
    for budget, k in (("cpu", 8), ("gpu", 4)):
        for seed in range(2):
            fake_run(tmp_path / budget, "g1", "with_aux", seed,
                     {"reverse_add": step(k), "no_carry": step(8)}, "3a", key=budget,
                     budget=budget)
    text = write_report(tmp_path).read_text()
    assert "| g1 (cpu) |" in text and "| g1 (gpu) |" in text and "[cpu]" not in text
    assert (tmp_path / "cpu" / "g1" / "report.md").read_text().startswith(
        "# Experiment g1 (cpu)")
    assert write_report(tmp_path / "cpu").read_text().startswith("# Experiment g1 (cpu)")


def test_an_undefined_gap_is_nan_and_shown_as_n_a(tmp_path):
    """Main and aux trained to the same length: no length lies between them, so the gap is
    undefined — nan in the tables, "n/a" in the report — never 0 (which means perfect transfer)."""
    for seed in range(2):
        fake_run(tmp_path, "same", "with_aux", seed,
                 {"reverse_add": step(4), "no_carry": step(4)}, l_main=4, l_aux=4)
    seeds = per_seed(collect(tmp_path))
    assert seeds.gap.isna().all()
    text = write_report(tmp_path / "same").read_text()
    gap_column = text.splitlines()[[i for i, line in enumerate(text.splitlines())
                                    if "generalization gap |" in line][0] + 2]
    assert gap_column.rstrip(" |").endswith("n/a")


def test_ratio_pattern_verdict_can_say_yes_and_no():
    from lgtransfer.analysis.report.figures.ratio import paper_gap, pattern_verdict
    assert paper_gap(16, 32) == 0.23  # on the paper's grid: its cell
    assert paper_gap(6, 6) == 0.0 and paper_gap(3, 6) == pytest.approx(np.mean(
        [0.41, 0.27, 0.23, 0.16, 0.04, 0.34]))  # off it: the mean at ratio 2
    cells = [(m, a) for m in (3, 6, 12) for a in (3, 6, 12)]
    like = {c: paper_gap(*c) for c in cells}
    assert pattern_verdict(like).outcome == "yes"
    assert pattern_verdict({c: 1 - g for c, g in like.items()}).outcome == "no"


def test_lgt_report_on_a_folder_of_experiments_writes_the_suite_report(tmp_path):
    group_runs(tmp_path, "g1", "3a")
    group_runs(tmp_path, "c1", "8", reach=(4, 4, 4))
    assert main(["report", str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "## Task groups" in text and "## Controls" in text
    assert (tmp_path / "g1" / "report.md").is_file() and (tmp_path / "c1" / "report.md").is_file()
