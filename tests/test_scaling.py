"""The scaling study's analysis (lgtransfer.analysis.report.scaling,
results/scaling/registration.yaml) on run folders made by hand in the committed runs' schema: a
clear trend is `yes`, flat data `no`, a level that did not learn `n/a`, missing runs `pending`;
the two tests against brute force; and the committed results/scaling tables regenerate from the
committed files."""

import itertools
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_evidence import copy_run_files

from lgtransfer.analysis.report import readme_summary, scaling, scaling_described, scaling_plan
from lgtransfer.analysis.signflip import holm
from lgtransfer.cli import main
from lgtransfer.runtime import rundir

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "results" / "scaling"
TASKS = {"g1": ("reverse_add", "no_carry", "carry_only"),
         "g5": ("capitalize_reverse", "capitalize", "reverse")}
SMALL, LARGE = {"d_model": 128, "d_ff": 256}, {"d_model": 256, "d_ff": 512}
LEVELS = {"x1": (SMALL, 3500), "x4": (SMALL, 14000), "x18": (LARGE, 16000)}


def write_run(exp_dir: Path, exp: str, group: str, level: str, variant: str, seed: int,
              reach: int, extra: float = 0.0, in_dist: float = 1.0,
              trained_as: str | None = None) -> None:
    """A complete run like results/cpu/g1/*: the main task exact up to its length 6 (mean
    `in_dist` there), and `reach` lengths past it, `extra` at the next; aux tasks learned to 12."""
    model, steps = LEVELS[level]
    name = trained_as or exp
    d = exp_dir / f"{variant}_seed{seed}_{level}{reach}"
    main, *aux = TASKS[group]
    rows = []
    for task, role, lmax in [(main, "main", 6)] + [(t, "aux", 12) for t in aux]:
        if role == "aux" and variant == "main_only":
            continue
        for n in range(1, 15):
            if role == "aux":
                acc = 1.0 if n <= 12 else 0.5
            elif n <= 6:
                acc = in_dist
            else:
                acc = 1.0 if n <= 6 + reach else extra if n == 7 + reach else 0.0
            rows.append({"experiment": name, "variant": variant, "seed": seed, "step": steps,
                         "task": task, "role": role, "train_max_length": lmax, "length": n,
                         "n": 128, "accuracy": acc})
    rundir.write_jsonl(d / "eval.jsonl", rows)
    rundir.write_yaml(d / "config.yaml", {
        "name": name, "model": {"n_layer": 3, "n_head": 4, **model, "pos_encoding": "rope"},
        "train": {"steps": steps, "batch_size": 64}, "budget": "cpu", "variant": variant,
        "seed": seed})
    rundir.write_json(d / "manifest.json", {
        "status": "complete", "experiment": name, "experiment_key": f"{exp}-key",
        "config_hash": d.name, "finished": 1.0, "seed": seed, "variant": variant,
        "train_seconds": 3000.0})
    index = rundir.read_experiment_index(exp_dir) or {"name": exp, "figure": "3a", "runs": []}
    index["runs"] = sorted({*index["runs"], d.name})
    rundir.write_json(exp_dir / "experiment.json", index)


def make_study(tmp: Path, reach, skip=(), in_dist=lambda *a: 1.0, extra=lambda *a: 0.0):
    """x1 in tmp/cpu/{g1,g5} (alone runs of G1 trained as `a1-both`, as committed), x4 and x18
    in tmp/scaling/scaling-{g}-{level}[-aux]; reach(group, level, seed) lengths past L_main
    with aux, none alone; `skip` holds (group, level, variant, seed) runs left out."""
    study = tmp / "scaling"
    study.mkdir(parents=True)
    shutil.copy(STUDY / "registration.yaml", study / "registration.yaml")
    for group in TASKS:
        for level in LEVELS:
            for variant, seeds in (("with_aux", range(10 if level == "x1" else 5)),
                                   ("main_only", range(10 if level == "x1" else 3))):
                for seed in seeds:
                    if (group, level, variant, seed) in skip:
                        continue
                    exp = group if level == "x1" else (
                        f"scaling-{group}-{level}" + ("-aux" if seed > 2 else ""))
                    where = tmp / "cpu" / group if level == "x1" else study / exp
                    alone = variant == "main_only"
                    write_run(where, exp, group, level, variant, seed,
                              0 if alone else reach(group, level, seed),
                              0.0 if alone else extra(group, level, seed),
                              in_dist(group, level, variant, seed),
                              "a1-both" if alone and level == "x1" and group == "g1" else None)
    return study


def verdicts(study: Path) -> dict[str, str]:
    scaling.write_scaling(study)
    settled = scaling.claims(*_tables(study))
    return {f"{c.group} {c.statistic}": c.outcome for c in settled}


def _tables(study: Path):
    table = pd.read_csv(study / "per_run.csv")
    plan = scaling_plan.load_plan(study)
    frames = [scaling.load_eval(study.parent / "cpu" / g, plan, f"cpu/{g}/") for g in TASKS]
    df = pd.concat([*frames, scaling.load_eval(study, plan)], ignore_index=True)
    return table, scaling.in_dist_table(df), plan


@pytest.fixture
def quick(monkeypatch):
    """Fewer random orderings for the trend test: its smallest p is then 1/2001, which Holm
    over four claims still takes below 0.05; the registered 100 000 are tested below."""
    monkeypatch.setattr(scaling, "TREND_DRAWS", 2000)


def test_group_and_level_come_from_the_folder_and_the_config(tmp_path):
    plan = scaling_plan.load_plan(STUDY)
    for level, (model, steps) in LEVELS.items():
        config = {"model": {"n_layer": 3, "n_head": 4, **model}, "train": {"steps": steps,
                                                                           "batch_size": 64}}
        assert scaling_plan.level_of(config, plan) == level
    assert scaling_plan.level_of({"model": {"n_layer": 3, "n_head": 4, "d_model": 256, "d_ff": 512},
                             "train": {"steps": 3500, "batch_size": 64}}, plan) is None
    names = {"g1": "g1", "scaling-g1-x4-aux": "g1", "scaling-g5-x18": "g5",
             "scaling-g2-signed-x4": "g2-signed", "a1-both": None, "scaling-g7-x4": "g7"}
    assert {n: scaling.group_of(n) for n in names} == names
    # G1's alone runs at x1 were trained as the shared baseline `a1-both`: the folder decides
    write_run(tmp_path / "g1", "g1", "g1", "x1", "main_only", 0, 0, trained_as="a1-both")
    df = scaling.load_eval(tmp_path / "g1", plan, "cpu/g1/")
    assert set(df.group) == {"g1"} and set(df.level) == {"x1"}
    assert df.run.str.startswith("cpu/g1/main_only_seed0").all()


def test_reach_share_and_gain_per_run(tmp_path, quick):
    study = make_study(tmp_path, lambda g, lv, s: {"x1": 1, "x4": 3, "x18": 8}[lv],
                       skip={("g1", "x4", "main_only", 1)}, extra=lambda *a: 0.6)
    scaling.write_scaling(study)
    runs = pd.read_csv(study / "per_run.csv")
    aux = runs[runs.variant == "with_aux"].set_index(["group", "level", "seed"])
    assert aux.loc[("g1", "x1", 0), "reach_share"] == pytest.approx(1 / 6)
    assert aux.loc[("g1", "x18", 0), "reach_share"] == pytest.approx(8 / 6)  # past 1: kept
    assert aux.loc[("g1", "x18", 0), "max_gen_length"] == 14
    # 7-9 exact, 0.6 at 10: mean over 7-12 = 3.6 / 6, alone 0
    assert aux.loc[("g1", "x4", 0), "gain"] == pytest.approx(3.6 / 6)
    # seed 3 has no alone run: minus the mean of the level's (all 0 here)
    assert aux.loc[("g1", "x4", 3), "gain"] == pytest.approx(3.6 / 6)
    assert aux.loc[("g1", "x1", 0), "acc_8"] == pytest.approx(0.6)
    assert len(runs) == 2 * (20 + 8 + 8) - 1


def test_a_clear_upward_trend_is_yes(tmp_path, quick):
    study = make_study(tmp_path, lambda g, lv, s: {"x1": s % 2, "x4": 3, "x18": 5 + s % 2}[lv])
    assert set(verdicts(study).values()) == {"yes (grows)"}
    text = (study / "claims.md").read_text()
    assert text.count("follows results/scaling/registration.yaml (2026-12-06)") == 5  # + tier
    assert "(n = 20;" in text and (study / "fig_scaling.png").stat().st_size > 0
    # the README's paragraph: means per level with n, every verdict, the tier that follows
    line = readme_summary.scaling(study, "results/scaling")
    assert "G1 0.083 (n 10) / 0.500 (n 5) / 0.900 (n 5)" in line, line
    assert "Verdicts: G1 reach_share yes (grows), G5 reach_share yes (grows)" in line
    assert "cpu-long is warranted: G1 at x4; G1 at x18; G5 at x4; G5 at x18. " in line, line
    assert line.endswith("interval): G1 +0.198 [0.177, 0.218], L_aux at compute 24.6; "
                         "G5 +0.198 [0.177, 0.218], L_aux at compute 24.6."), line


def test_flat_data_is_no(tmp_path, quick):
    study = make_study(tmp_path, lambda *a: 1, extra=lambda g, lv, s: 0.5 + 0.01 * s)
    assert set(verdicts(study).values()) == {"no (does not grow by 0.1)",
                                             "no (does not grow by 0.05)"}
    text = (study / "claims.md").read_text()
    assert "the trend does not get there" in text
    assert "No level warrants cpu-long: reach_share >= 0.5" in text  # every run in: no "yet"


def test_a_level_that_did_not_learn_is_na_and_holm_still_counts_it(tmp_path, quick):
    def in_dist(group, level, variant, seed):
        return 0.8 if (group, level, variant) == ("g1", "x4", "with_aux") and seed < 3 else 1.0

    study = make_study(tmp_path, lambda g, lv, s: {"x1": s % 2, "x4": 3, "x18": 5 + s % 2}[lv],
                       in_dist=in_dist)
    scaling.write_scaling(study)
    settled = scaling.claims(*_tables(study))
    assert [c.outcome for c in settled] == ["n/a", "yes (grows)", "n/a", "yes (grows)"]
    assert "reverse_add at x4 (with aux) below 0.95 on 3 of 5 runs" in settled[0].note
    # m = 4: the n/a claims keep their places with p = 1
    raw = [1.0, settled[1].p_trend, 1.0, settled[3].p_trend]
    assert [c.p_trend_adj for c in settled] == pytest.approx(holm(raw))
    assert settled[1].p_trend_adj >= 3 * settled[1].p_trend


def test_missing_runs_are_pending_and_the_files_are_still_written(tmp_path, quick):
    study = make_study(tmp_path, lambda *a: 1, skip={("g5", "x18", "with_aux", 4),
                                                     ("g5", "x4", "main_only", 2)})
    assert main(["report", str(study)]) == 0  # `lgt report` writes the study's files
    settled = scaling.claims(*_tables(study))
    assert [c.outcome for c in settled] == ["no (does not grow by 0.1)", "pending",
                                            "no (does not grow by 0.05)", "pending"]
    assert settled[1].note == "x4 alone 2, x18 with aux 4 still to come"
    assert "No level warrants cpu-long:" in (study / "claims.md").read_text()  # 1 of 5 can't
    assert {p.name for p in study.iterdir()} >= {"claims.md", "per_run.csv", "fig_scaling.png"}


@pytest.mark.parametrize("x18_reach, missing, says", [
    ([0.5, 0.5, 0.0], 2, "No level warrants cpu-long yet:"),  # 2 hits + 2 to come could
    ([0.5, 0.0, 0.0], 2, "No level warrants cpu-long yet:"),  # 1 + 2
    ([0.0, 0.0, 0.0], 2, "No level warrants cpu-long:"),  # 0 + 2 cannot reach 3
    ([0.5, 0.5, 0.0, 0.0, 0.0], 0, "No level warrants cpu-long:"),
    ([0.5, 0.5, 0.5, 0.0, 0.0], 0, "cpu-long is warranted: G5 at x18"),
])
def test_the_tier_says_yet_only_while_missing_seeds_could_still_make_a_level(x18_reach, missing,
                                                                              says):
    plan = scaling_plan.load_plan(STUDY)
    rows = [{"group": g, "level": lv, "variant": "with_aux", "seed": seed, "reach_share": 0.0,
             "train_seconds": 3000.0} for g in ("g1", "g5") for lv in ("x1", "x4", "x18")
            for seed in range(5)]
    runs = pd.DataFrame([r for r in rows if not (r["group"] == "g5" and r["level"] == "x18")] + [
        {"group": "g5", "level": "x18", "variant": "with_aux", "seed": seed, "reach_share": v,
         "train_seconds": 3000.0} for seed, v in enumerate(x18_reach)])
    assert 5 - len(x18_reach) == missing
    assert scaling.tier_line(runs, plan, []).startswith(says)


def test_every_run_at_the_floor_is_uninformative(tmp_path, quick):
    study = make_study(tmp_path, lambda *a: 0)
    assert set(verdicts(study).values()) == {"uninformative (floor)"}


def test_the_flat_test_is_the_exact_permutation_test():
    low, high, delta = [0.1, 0.3, 0.2, 0.5, 0.0], [0.4, 0.6, 0.2], 0.1
    diff, p = scaling.flat_test(np.array(low), np.array(high), delta)
    pooled = low + [h - delta for h in high]
    observed = np.mean(high) - delta - np.mean(low)
    hits = [np.mean([pooled[i] for i in pick])
            - np.mean([pooled[i] for i in range(8) if i not in pick]) <= observed + 1e-12
            for pick in itertools.combinations(range(8), 3)]
    assert diff == pytest.approx(np.mean(high) - np.mean(low))
    assert p == pytest.approx(sum(hits) / math.comb(8, 3))
    # the registered size: C(15, 5) = 3003 splits, all the x18 values lowest gives 1/3003
    _, p = scaling.flat_test(np.full(10, 0.5), np.full(5, 0.5), 0.1)
    assert p == pytest.approx(1 / 3003)


def test_the_trend_test_is_spearman_with_the_observed_ordering_counted():
    x = np.log2(np.repeat([1.0, 4.0, 17.8], [10, 5, 5]))
    y = np.arange(20.0)
    rho, p = scaling.trend_test(x, y)
    ranks_x = pd.Series(x).rank().to_numpy()
    assert rho == pytest.approx(np.corrcoef(ranks_x, y)[0, 1])
    # no random ordering of 100 000 reaches it: the observed one alone counts
    assert p == pytest.approx(1 / (scaling.TREND_DRAWS + 1))
    assert scaling.TREND_DRAWS == 100_000
    assert scaling.spearman(x, -y) == pytest.approx(-rho)
    assert scaling.spearman(x, np.ones(20)) == 0.0


def test_the_committed_study_tables_regenerate(tmp_path):
    fresh = tmp_path / "scaling"
    fresh.mkdir()
    copy_run_files(STUDY, fresh)
    scaling.write_scaling(fresh, ROOT / "results" / "cpu")
    for name in ("claims.md", "per_run.csv"):  # the figure is drawn, not compared
        assert (fresh / name).read_text() == (STUDY / name).read_text(), name


def test_the_studys_presets_train_at_their_levels_model_and_schedule():
    """Every run of scaling-x4 (the side arm's included) is level x4's and every run of
    scaling-x18 is x18's, or the report would not place them."""
    from lgtransfer.config import expand, load_experiments

    plan = scaling_plan.load_plan(STUDY)
    for preset, level in (("scaling-x4", "x4"), ("scaling-x18", "x18")):
        for entry in load_experiments([preset]):
            for run in expand(entry.config):
                assert scaling_plan.level_of(run.resolved(), plan) == level, (preset, run)


def test_rows_and_the_tier_name_the_amendments_that_govern_their_x18_runs(tmp_path, quick):
    amendment = "registration-amendment-1.yaml"
    study = make_study(tmp_path, lambda g, lv, s: {"x1": s % 2, "x4": 3, "x18": 5 + s % 2}[lv],
                       skip={("g5", "x18", v, s) for v in ("with_aux", "main_only")
                             for s in range(5)})
    tier_only = "registration-amendment-2.yaml"  # `governs: tier`: the tier rule's run times
    for name in (amendment, tier_only):
        shutil.copy(STUDY / name, study / name)
    scaling.write_scaling(study)
    text = (study / "claims.md").read_text()
    rows = {line.split(" |")[0]: line for line in text.splitlines() if line.startswith("| G")}
    named = f"x18 runs: {amendment} (2026-12-06)"
    assert named in rows["| G1 reach_share grows"] and named in rows["| G1 gain grows"]
    assert named not in rows["| G5 reach_share grows"]  # G5 has no x18 run here
    assert not any(tier_only in row for row in rows.values())
    tier = text.split("## Tier")[1].split("##")[0]
    assert f"x18 runs: {tier_only} (2026-12-06)" in tier and amendment not in tier


def test_the_readmes_scaling_paragraph_is_the_one_generated_from_the_study(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the paragraph links the folder as given: results/scaling
    readme = (ROOT / "README.md").read_text()
    want = readme_summary.scaling(STUDY, "results/scaling")
    assert readme_summary.block(readme, readme_summary.SCALING) == want, (
        "README's scaling paragraph differs from results/scaling/claims.md: python -m "
        "lgtransfer.analysis.report.readme_summary results/scaling --readme README.md")
    docs = (ROOT / "docs" / "results.md").read_text()  # its block adds the forecast lines
    in_docs = readme_summary.scaling(STUDY, "../results/scaling", forecast=True)
    assert readme_summary.block(docs, readme_summary.SCALING) == in_docs, (
        "docs/results.md's scaling block differs from results/scaling/claims.md: see its command")
    shared = want.split(" Reach share per doubling")[0]  # the README's short trend instead
    assert in_docs.startswith(shared.replace("(results/", "(../results/"))
    assert want.endswith("; G5 -0.015 [-0.044, 0.006], does not get to L_aux."), want
    assert "\n\nG1: reach_share =" in in_docs
    copy = tmp_path / "README.md"
    drifted = want.replace("Verdicts: ", "Verdicts: G1 reach_share yes (grows), ", 1)
    assert drifted != want
    copy.write_text(readme.replace(want, drifted))
    assert readme_summary.main(["results/scaling", "--readme", str(copy), "--check"]) == 1
    assert readme_summary.main(["results/scaling", "--readme", str(copy)]) == 0
    assert copy.read_text() == readme  # written back into its own block, the rest untouched


@pytest.mark.parametrize("argv, says", [
    ([], "required: folder"),
    (["results/scaling", "--readme"], "--readme: expected one argument"),
    (["results/scaling", "--readme", "{tmp}/missing.md"], "missing.md"),
    (["results/scaling", "--readme", "{tmp}/plain.md"], "no <!-- scaling -->"),
    (["results/scaling", "--check", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_the_readme_block_command_refuses_bad_input_in_one_line(argv, says, tmp_path, capsys,
                                                                 monkeypatch):
    monkeypatch.chdir(ROOT)
    plain = tmp_path / "plain.md"
    plain.write_text("# a README with no block\n")
    assert readme_summary.main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err and err.startswith("readme_summary: error:")
    assert plain.read_text() == "# a README with no block\n"  # nothing written


def test_the_forecast_line_writes_a_falling_trend_with_a_minus_sign():
    runs = pd.DataFrame({"group": "g5", "variant": "with_aux", "level": ["x1"] * 3 + ["x18"] * 3,
                         "compute": [1.0] * 3 + [16.0] * 3,
                         "reach_share": [0.3, 0.2, 0.25, 0.1, 0.0, 0.05]})
    line = scaling_described.forecast(runs, {"paper": 2949.0}, "g5")
    assert line.startswith("G5: reach_share = 0.250 - 0.050 x log2(compute) (n = 6;"), line
    assert "the trend does not get there" in line


def test_over_training_reads_the_band_past_l_main_and_each_runs_best_step(tmp_path):
    """A run that extrapolates mid-training and loses it shows its peak beside its last step;
    lengths inside L_main and past L_aux do not count; the figure is written."""
    rows = []
    for step, past in [(100, 0.2), (200, 0.8), (300, 0.1)]:  # peaks at 200, ends at 0.1
        rows += [{"group": "g5", "level": "x18", "variant": "with_aux", "seed": 0, "run": "a",
                  "step": step, "role": "main", "train_max_length": 6, "length": n,
                  "accuracy": acc} for n, acc in [(6, 1.0), (7, past), (8, past), (13, 0.9)]]
        rows += [{"group": "g5", "level": "x18", "variant": "main_only", "seed": 0, "run": "b",
                  "step": step, "role": "main", "train_max_length": 6, "length": 7,
                  "accuracy": 0.0}]
    rows.append({"group": "g5", "level": "x18", "variant": "with_aux", "seed": 0, "run": "a",
                 "step": 300, "role": "aux", "train_max_length": 12, "length": 12,
                 "accuracy": 1.0})
    steps = scaling_described.past_main_over_steps(pd.DataFrame(rows))
    a = steps[steps.run == "a"].set_index("step")
    assert a.past_main.to_dict() == {100: 0.2, 200: 0.8, 300: 0.1}
    assert a.share.tolist() == pytest.approx([1 / 3, 2 / 3, 1.0])
    table = scaling_described.peak_table(steps, ["x1", "x4", "x18"]).set_index("variant")
    assert table.loc["with_aux", "mean at the last step"] == pytest.approx(0.1)
    assert table.loc["with_aux", "mean of each run's best step"] == pytest.approx(0.8)
    assert table.loc["with_aux", "runs below 0.01 at every step"] == 0
    assert table.loc["main_only", "runs below 0.01 at every step"] == 1
    path = scaling_described.steps_figure(steps, ("g5",), ["x18"], tmp_path)
    assert path.exists() and path.stat().st_size > 0


def test_an_inconclusive_claim_waits_while_a_claim_of_its_family_is_pending(tmp_path, quick):
    """Holm counts a pending claim with p = 1; its own p can only lower the others' adjusted p,
    so a settled yes / no stands, but an inconclusive one may still turn: it reads pending."""
    def reach(group, level, seed):  # G1 wobbles without a trend; G5 flat
        return {"x1": seed % 2, "x4": 1, "x18": [0, 1, 2, 0, 1][seed % 5]}[level] if (
            group == "g1") else 1

    def extra(group, level, seed):
        return 0.5 + 0.01 * seed if group == "g5" else 0.0

    full = verdicts(make_study(tmp_path / "full", reach, extra=extra))
    g1_waits = verdicts(make_study(tmp_path / "a", reach, extra=extra,
                                   skip={("g1", "x18", "main_only", 2)}))
    g5_waits = make_study(tmp_path / "b", reach, extra=extra, skip={("g5", "x4", "with_aux", 1)})
    assert full["g1 reach_share"] == full["g1 gain"] == "inconclusive"
    assert full["g5 reach_share"] == g1_waits["g5 reach_share"] == "no (does not grow by 0.1)"
    assert full["g5 gain"] == g1_waits["g5 gain"] == "no (does not grow by 0.05)"
    assert g1_waits["g1 reach_share"] == g1_waits["g1 gain"] == "pending"
    assert set(verdicts(g5_waits).values()) == {"pending"}
    settled = scaling.claims(*_tables(g5_waits))
    assert settled[0].note == ("inconclusive so far; final once G5 reach_share, G5 gain are in "
                               "(Holm over the family counts a pending claim with p = 1)")


@pytest.mark.parametrize("seed", range(20))
def test_holms_adjusted_p_never_rises_when_a_raw_p_falls(seed):
    """Why a yes / no settled beside a pending claim (entered at p = 1) is final."""
    rng = np.random.default_rng(seed)
    raw = rng.uniform(0, 0.2, 4)
    lowered = raw.copy()
    lowered[0] = rng.uniform(0, raw[0])
    assert np.all(np.array(holm(list(lowered))) <= np.array(holm(list(raw))) + 1e-12)


def test_the_forecast_line_says_where_a_rising_trend_reaches_half_way_and_l_aux():
    runs = pd.DataFrame({"group": "g1", "variant": "with_aux", "level": ["x1"] * 3 + ["x18"] * 3,
                         "compute": [1.0] * 3 + [16.0] * 3, "reach_share": [0.1] * 3 + [0.3] * 3})
    line = scaling_described.forecast(runs, {"paper": 2949.0}, "g1")
    assert line.endswith("0.5 at compute 256, 1.0 (L_aux) at 2.62e+05 (beside the paper "
                         "2949)."), line
    short = scaling_described.fit_line(runs, "g1").per_doubling()  # the README's form
    assert short == "G1 +0.050 [0.050, 0.050], L_aux at compute 2.62e+05", short
    runs["reach_share"] = [0.1] * 3 + [0.1 + 1e-4] * 3  # rising, but out of any budget
    line = scaling_described.forecast(runs, {"paper": 2949.0}, "g1")
    assert "0.5 at compute above 1e+15, 1.0 (L_aux) at above 1e+15" in line, line


def test_the_side_arm_says_where_each_group_learns_and_whether_an_x18_run_is_due():
    def groups(rows):
        return pd.DataFrame(rows, columns=["group", "level", "every task learned"])

    all_x4 = groups([(g, "x4", "yes") for g in ("g3", "g6", "g7", "g2-signed")])
    assert scaling_described.side_arm_outcome(all_x4) == (
        "Learned its range (every task): g3, g6, g7, g2-signed at x4. No x18 side-arm run is "
        "due: the registration runs one only for a group with a task below 0.95 at x4.")
    mixed = groups([("g7", "x18", "yes"), ("g7", "x4", "no"), ("g3", "x4", "yes"),
                    ("g6", "x4", "no")])  # g7 learns at x18 only; g6 not at x4; g2-signed no run
    assert scaling_described.side_arm_outcome(mixed) == (
        "Learned its range (every task): g3 at x4; g7 at x18. Below 0.95 at every level run: "
        "g6. No run yet: g2-signed. Due an x18 run (a task below 0.95 at x4): g6.")
    ran = groups([(g, "x4", "yes") for g in ("g3", "g6", "g2-signed")]
                 + [("g7", "x4", "no"), ("g7", "x18", "yes")])  # g7's x18 run was due and ran
    assert scaling_described.side_arm_outcome(ran) == (
        "Learned its range (every task): g3, g6, g2-signed at x4; g7 at x18.")
