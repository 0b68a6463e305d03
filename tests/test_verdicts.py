"""The registered test on known inputs: exact sign-flip p-values counted by hand, Holm's
adjustment, and the verdict rules saying yes, no, inconclusive, n/a, floor and pending where
they should (results/cpu/registration.yaml)."""

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from lgtransfer.analysis.registration import load
from lgtransfer.analysis.signflip import holm, permutation_p, power, sign_flip_p
from lgtransfer.analysis.stats import spearman
from lgtransfer.analysis.verdicts import (
    FAILS,
    FLOOR,
    INCONCLUSIVE,
    REPRODUCES,
    floored,
    no_transfer,
    paired_above,
    settle,
    t_interval,
    transfer,
    within,
)


def brute_force_p(d, shift=0.0, greater=True):
    """The definition, pattern by pattern."""
    d = [x - shift for x in d] if greater else [shift - x for x in d]
    patterns = list(itertools.product((1, -1), repeat=len(d)))
    sums = [sum(s * abs(x) for s, x in zip(p, d, strict=True)) for p in patterns]
    return sum(t >= sum(d) - 1e-12 for t in sums) / len(patterns)


def test_t_interval_on_known_inputs():
    iv = t_interval([1.0, 2.0, 3.0])  # mean 2, sd 1, t(2) = 4.303
    assert (iv.mean, iv.n) == (2.0, 3)
    assert math.isclose(iv.hi - iv.mean, 4.303 / math.sqrt(3), rel_tol=1e-9)
    assert str(iv) == "+2.000 [-0.484, +4.484] (n = 3)"
    assert t_interval([0.4, float("nan")]).n == 1 and t_interval([]).n == 0


@pytest.mark.parametrize("d", [[0.3, 0.1, 0.2], [0.5, -0.1, 0.2, 0.0], [0.0, 0.0, 0.0],
                               [0.2, -0.3, 0.1, 0.4, -0.05], list(np.linspace(-0.2, 0.5, 9))])
def test_sign_flip_p_is_the_share_of_patterns(d):
    for shift, greater in ((0.0, True), (0.05, False), (-0.05, True)):
        assert sign_flip_p(d, shift, greater) == pytest.approx(brute_force_p(d, shift, greater))


def test_smallest_p_is_two_to_the_minus_n():
    assert sign_flip_p([0.1] * 5) == 1 / 32
    assert sign_flip_p([0.1] * 10) == 1 / 1024
    assert sign_flip_p([0.0] * 4) == 1.0  # nothing moves: no evidence either way
    assert math.isnan(sign_flip_p([]))


def test_holm_on_known_inputs():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.2, 0.001]) == pytest.approx([0.2, 0.002])
    out = holm([0.01, float("nan"), 0.02])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)


@pytest.mark.parametrize("gains, outcome", [
    ([0.30, 0.40, 0.50, 0.35, 0.45], REPRODUCES),   # p = 1/32 alone
    ([0.30, 0.40, 0.50], INCONCLUSIVE),             # p = 1/8: three seeds cannot pass
    ([0.00, 0.01, -0.01, 0.0, 0.01], FAILS),        # credibly below the minimum effect
    ([0.02, 0.025, 0.015, 0.02, 0.01], FAILS),      # real (above 0) but too small to count
    ([0.0, 0.5, 0.1, -0.2, 0.3], INCONCLUSIVE),     # too noisy either way
])
def test_transfer_rule(gains, outcome):
    assert transfer(gains, 0.05).outcome == outcome


def test_holm_within_a_family_can_turn_yes_into_inconclusive():
    """Five seeds all positive give p = 1/32 alone; with seven claims in the family Holm
    multiplies it by 7: no longer below 0.05. Ten seeds (1/1024) survive."""
    five = [transfer([0.3, 0.4, 0.5, 0.35, 0.45], 0.05) for _ in range(7)]
    assert all(v.outcome == REPRODUCES for v in five)
    settled = settle([v.__class__(**{**v.__dict__, "family": "groups"}) for v in five])
    assert all(v.outcome == INCONCLUSIVE and v.p_adj == pytest.approx(7 / 32) for v in settled)
    ten = [transfer(list(np.linspace(0.2, 0.5, 10)), 0.05) for _ in range(7)]
    settled = settle([v.__class__(**{**v.__dict__, "family": "groups"}) for v in ten])
    assert all(v.outcome == REPRODUCES for v in settled)


def test_no_transfer_is_an_equivalence_and_the_floor_says_nothing():
    zeros = [0.0] * 10
    assert no_transfer(zeros, 0.05).outcome == REPRODUCES  # credibly below the margin
    assert no_transfer(zeros, 0.05, floor=True).outcome == FLOOR
    assert no_transfer([0.3, 0.4, 0.5, 0.35, 0.45], 0.05).outcome == FAILS
    assert no_transfer([0.0, 0.3, 0.0, 0.2, 0.0], 0.05).outcome == INCONCLUSIVE
    assert settle([floored(no_transfer(zeros, 0.05))])[0].outcome == FLOOR


def test_paired_rule_uses_the_seeds_both_sides_have():
    both = {s: 0.6 + 0.05 * s for s in range(6)}
    single = {s: 0.3 for s in range(5)}  # seed 5 has no pair: left out
    v = paired_above(both, single, 0.05)
    assert v.outcome == REPRODUCES and v.measured.n == 5 and "difference" in v.rule
    assert paired_above(single, both, 0.05).outcome == FAILS


@pytest.mark.parametrize("a, b, outcome", [
    ({s: 0.5 for s in range(6)}, {s: 0.5 + 0.01 * (-1) ** s for s in range(6)}, REPRODUCES),
    ({s: 0.7 for s in range(6)}, {s: 0.1 for s in range(6)}, FAILS),          # A gains more
    ({s: 0.1 for s in range(6)}, {s: 0.7 for s in range(6)}, FAILS),          # B gains more
    ({0: 0.0, 1: 0.4, 2: 0.1}, {0: 0.1, 1: 0.0, 2: 0.1}, INCONCLUSIVE),       # too noisy
])
def test_within_rule_is_two_one_sided_tests(a, b, outcome):
    v = within(a, b, 0.05)
    assert v.outcome == outcome and "(-0.05, +0.05)" in v.rule


def test_permutation_p_of_a_correlation():
    x = np.arange(6.0)
    assert permutation_p(x, x, spearman) == pytest.approx(1 / 720)  # exact over 6! orders
    assert permutation_p(x, x[::-1], spearman, greater=False) == pytest.approx(1 / 720)
    big = np.arange(30.0)
    assert permutation_p(big, big, spearman, draws=999) == pytest.approx(1 / 1000)


def test_power_grows_with_seeds():
    d = [0.2, 0.5, 0.0, 0.1, 0.3]
    low, high = (power(d, n, 0.05, 7)["strictest"] for n in (5, 10))
    assert low == 0.0 and high > 0.2  # five seeds can never pass seven claims


def test_the_committed_registration_reads(tmp_path):
    reg = load(Path(__file__).resolve().parents[1] / "results" / "cpu")
    assert reg.seeds == list(range(10))
    assert {"g1", "g2", "g4", "g5", "c1", "c2", "a1", "a2"} == reg.experiments
    assert reg.seeds_for("a1-no-carry") == reg.seeds and reg.seeds_for("g2-signed") is None
    assert reg.seeds_for("g6") is None and load(tmp_path).seeds_for("g1") is None
    assert reg.chosen == {"g1": 1, "g2": 0}  # the seeds settings were picked on


def test_a_verdict_says_it_includes_the_seed_a_setting_was_picked_on(tmp_path):
    import pandas as pd

    from lgtransfer.analysis.report.figures.registry import registered
    from lgtransfer.analysis.verdicts import transfer

    (tmp_path / "registration.yaml").write_text(
        "seeds:\n  extended: [0, 1, 2]\n  outcome_chosen: >-\n    g2.yaml kept its settings "
        "because the transfer\n    showed at seed 0.\nfamilies:\n  groups: {claims: [g2], "
        "seeds: extended}\n")
    df = pd.DataFrame([{"experiment": "g2", "variant": v, "seed": s, "step": 1, "task": "t",
                        "role": "main", "train_max_length": 2, "length": 1, "accuracy": 1.0}
                       for v in ("with_aux", "main_only") for s in (0, 1, 2)])
    v = transfer([0.2, 0.3, 0.4], 0.05)
    runs = [("g2", "with_aux"), ("g2", "main_only")]
    note = "includes seed 0 of g2, on whose outcome its setting was picked"
    assert registered(v, df, runs, {0, 1, 2}, tmp_path).note == note
    assert registered(v, df[df.seed > 0], runs, {1, 2}, tmp_path).outcome == "pending"


def test_registered_pretrained_claims_without_runs_say_not_run_and_why(tmp_path):
    import pandas as pd

    from lgtransfer.analysis.report.figures.registry import settle_tables
    from lgtransfer.analysis.report.pretrained_claims import pretrained_claims

    (tmp_path / "registration-pretrained.yaml").write_text(
        "family: pretrained\nclaims:\n  - {name: faster, experiment: ladder, seeds: [1, 2],\n"
        "     statistic: rho, kind: directional, min_effect: 0.1, command: lgt run ladder,\n"
        "     why_not_run: needs an hour}\n")
    section = pretrained_claims(pd.DataFrame(), tmp_path)
    settle_tables([section])
    (row,) = section.tables[0].to_dict("records")
    assert row["reproduces"] == "not run: needs an hour; command: `lgt run ladder`"
    assert pretrained_claims(pd.DataFrame(), tmp_path / "nothing") is None


def test_a_pending_claim_counts_in_its_familys_correction():
    """An early verdict is corrected as if the pending claims of its family were tested (with
    p = 1), so it never rests on a smaller family than the registered one."""
    from dataclasses import replace

    from lgtransfer.analysis.verdicts import PENDING, pending

    done = replace(transfer(list(np.linspace(0.2, 0.5, 10)), 0.05), family="f")
    waiting = replace(pending(transfer([0.3, 0.4], 0.05), 2, 10), family="f")
    settled, still = settle([done, waiting])
    assert settled.p_adj == pytest.approx(2 / 1024) and settled.outcome == REPRODUCES
    assert still.outcome == PENDING


def _ladder(stages: dict[str, tuple[float, float, float]], seeds: list[int]):
    """Eval rows of a stage sweep: per stage (in-dist accuracy at step 1, at step 2, accuracy
    past L_main = 2 at step 2), the same on every seed."""
    import pandas as pd

    rows = []
    for seed in seeds:
        for stage, (first, last, past) in stages.items():
            for step, acc in ((1, first), (2, last)):
                for length in (1, 2, 3):
                    rows.append({"experiment": "ladder", "variant": "main_only", "seed": seed,
                                 "stage": stage, "step": step, "task": "reverse_add",
                                 "role": "main", "train_max_length": 2, "length": length,
                                 "accuracy": acc if length <= 2 else (past if step == 2 else 0)})
    return pd.DataFrame(rows)


def test_a_stage_sweep_verdict_waits_for_every_stage_and_knows_n_a_and_floor(tmp_path):
    """A seed counts once every stage its experiment lists is in; the learning-speed rank
    correlation is then judged by the exact test; a stage that misses its range on most seeds
    makes it n/a; extrapolation at the floor on every stage is uninformative."""
    from lgtransfer.analysis.report.pretrained_claims import judge
    from lgtransfer.runtime import rundir

    seeds = [1, 2, 3, 4, 5, 6, 7]
    stages = {"scratch": (0.0, 1.0, 0.0), "step-10": (0.3, 1.0, 0.0),
              "step-20": (0.6, 1.0, 0.0), "step-40": (0.9, 1.0, 0.0)}
    rundir.write_json(tmp_path / "ladder" / "experiment.json", {"runs": [
        f"main_only_seed{s}_{st}_k" for s in seeds for st in stages]})
    faster = {"name": "later pretraining learns faster", "experiment": "ladder", "min_effect": 0.1}
    further = {"name": "later pretraining extrapolates further", "experiment": "ladder",
               "min_effect": 0.1}
    df = _ladder(stages, seeds)
    v = judge(faster, df, seeds, tmp_path)
    assert v.outcome == "yes" and v.measured.mean == pytest.approx(1.0) and v.measured.n == 7
    assert v.p_yes == pytest.approx(2 ** -7)
    # step-40 not in yet on seed 7: that seed is not counted, the claim waits
    partial = df[~((df.seed == 7) & (df.stage == "step-40"))]
    assert judge(faster, partial, seeds, tmp_path).outcome == "pending"
    assert judge(further, df, seeds, tmp_path).outcome == "uninformative (floor)"
    # the scratch runs end at 0.5 in distribution on every seed: n/a, with the count
    failing = _ladder({**stages, "scratch": (0.0, 0.5, 0.0)}, seeds)
    v = judge(faster, failing, seeds, tmp_path)
    assert v.outcome == "n/a" and "on 7 of 7 seeds (7 of 28 runs: scratch on 7)" in v.note


def test_the_ladder_amendment_counts_learning_per_stage_and_run(tmp_path):
    """`learning: per_stage` (docs/registration-pretrained-amendment.example.yaml): scratch
    missing its range on 3 of 7 seeds and step-10 on another, which the pooled rule calls n/a
    (4 of 7 seeds with a stage short), is judged; a run that missed is left out of its seed's
    extrapolation rho; n/a once a stage misses on 4 of 7 (for speed: once every stage does)."""
    import pandas as pd

    from lgtransfer.analysis.report.pretrained_claims import judge
    from lgtransfer.runtime import rundir

    seeds = [8, 9, 10, 11, 12, 13, 14]
    stages = {"scratch": (0.0, 1.0, 0.0), "step-10": (0.3, 1.0, 0.1),
              "step-20": (0.6, 1.0, 0.2), "step-40": (0.9, 1.0, 0.3)}
    rundir.write_json(tmp_path / "ladder" / "experiment.json", {"runs": [
        f"main_only_seed{s}_{st}_k" for s in seeds for st in stages]})
    slow = {**stages, "scratch": (0.0, 0.5, 0.4)}  # 0.4 past L_main: left out, else rho < 1
    df = pd.concat([_ladder(slow, seeds[:3]), _ladder({**stages, "step-10": (0.3, 0.5, 0.0)},
                                                      seeds[3:4]), _ladder(stages, seeds[4:])])
    claims = {what: {"name": f"later pretraining {what}", "experiment": "ladder",
                     "min_effect": 0.1, "learning": "per_stage"}
              for what in ("learns faster", "extrapolates further")}
    assert judge({**claims["learns faster"], "learning": None}, df, seeds,
                 tmp_path).outcome == "n/a"  # the pooled rule of the first registration
    for claim in claims.values():
        v = judge(claim, df, seeds, tmp_path)
        assert v.outcome == "yes" and v.measured.n == 7, v
        assert v.measured.mean == pytest.approx(1.0)
        assert "scratch on 3, step-10 on 1 of 7 seeds" in v.note
    worse = pd.concat([_ladder(slow, seeds[:4]), _ladder(stages, seeds[4:])])
    assert judge(claims["extrapolates further"], worse, seeds, tmp_path).outcome == "n/a"
    assert judge(claims["learns faster"], worse, seeds, tmp_path).outcome == "yes"
    nothing = _ladder({k: (f, 0.5, p) for k, (f, _, p) in stages.items()}, seeds)
    assert judge(claims["learns faster"], nothing, seeds, tmp_path).outcome == "n/a"


def test_amendment_4_counts_a_seed_with_an_undefined_correlation_as_zero(tmp_path):
    """A seed whose learned runs all sit at 0.00 past L_main has no rank correlation: under
    `undefined_correlation: zero` it counts as 0 and the note names it (n stays the seeds in);
    without the key it leaves the test, as the rule before amendment 4 did."""
    import pandas as pd

    from lgtransfer.analysis.report.pretrained_claims import judge
    from lgtransfer.runtime import rundir

    seeds = [8, 9, 10, 11, 12, 13, 14]
    stages = {"scratch": (0.0, 1.0, 0.0), "step-10": (0.3, 1.0, 0.1),
              "step-20": (0.6, 1.0, 0.2), "step-40": (0.9, 1.0, 0.3)}
    flat = {k: (f, last, 0.0) for k, (f, last, _) in stages.items()}
    rundir.write_json(tmp_path / "ladder" / "experiment.json", {"runs": [
        f"main_only_seed{s}_{st}_k" for s in seeds for st in stages]})
    df = pd.concat([_ladder(flat, seeds[:3]), _ladder(stages, seeds[3:])])
    claim = {"name": "later pretraining extrapolates further", "experiment": "ladder",
             "min_effect": 0.1, "learning": "per_stage"}
    before = judge(claim, df, seeds, tmp_path)
    assert before.measured.n == 4 and "amendment 4" not in before.note
    v = judge({**claim, "undefined_correlation": "zero"}, df, seeds, tmp_path)
    assert v.measured.n == 7 and v.measured.mean == pytest.approx(4 / 7)
    assert v.note == ("seeds 8, 9, 10 counted as 0 (rank correlation undefined: every run "
                      "alike; amendment 4)")
    registered = yaml.safe_load((Path(__file__).resolve().parents[1] / "results" / "cpu" /
                                 "registration-pretrained.yaml").read_text())["claims"]
    assert [c["name"] for c in registered if c.get("undefined_correlation") == "zero"] == [
        c["name"] for c in registered if c["experiment"] == "ladder-quick-long"]


def test_a_contrast_of_two_floors_is_uninformative_not_no():
    """G4 - C2 where copy extrapolates with neither auxiliary: 0 against 0 on every seed is a
    `no` by the test, but says nothing, so it reads `uninformative (floor)` with both levels;
    one side above the floor, or a pending verdict, is left as it is."""
    from lgtransfer.analysis.verdicts import FLOOR, contrast_at_floor, paired_above, pending

    v = paired_above({s: 0.001 for s in range(10)}, {s: 0.0 for s in range(10)}, 0.05)
    assert v.outcome == "no"
    out = contrast_at_floor(v, {"g4": 0.001, "c2": 0.0}, "why")
    assert out.outcome == FLOOR and out.note.startswith("the main task's accuracy past L_main "
                                                        "with aux is 0.001 (g4) and 0.000 (c2)")
    assert contrast_at_floor(v, {"g4": 0.3, "c2": 0.0}, "why") == v
    assert contrast_at_floor(pending(v, 3, 10), {"g4": 0.0, "c2": 0.0}, "why").outcome == "pending"


def test_a_permutation_within_strata_does_not_credit_differences_between_them():
    """Two experiments, one high on both x and y: pooled, rho is large and a plain permutation
    finds it; shuffled within each experiment, where x and y run opposite ways, it is not."""
    x = np.r_[np.arange(10), 10 + np.arange(10)]
    y = np.r_[9 - np.arange(10), 19 - np.arange(10)]  # opposite within each, apart between
    labels = ["a"] * 10 + ["b"] * 10
    assert spearman(x, y) > 0.4 and permutation_p(x, y, spearman, draws=2000) < 0.05
    assert permutation_p(x, y, spearman, draws=2000, strata=labels) > 0.5
    same = np.r_[np.arange(10), 10 + np.arange(10)]  # with it within each as well
    assert permutation_p(x, same, spearman, draws=2000, strata=labels) < 0.01


def test_a_withdrawn_pretrained_claim_reads_na(tmp_path):
    import pandas as pd

    from lgtransfer.analysis.report.figures.registry import settle_tables
    from lgtransfer.analysis.report.pretrained_claims import pretrained_claims

    (tmp_path / "registration-pretrained.yaml").write_text(
        "family: pretrained\nclaims:\n"
        "  - {name: faster, experiment: ladder, seeds: [1, 2], statistic: rho,\n"
        "     kind: directional, min_effect: 0.1, command: lgt run ladder, why_not_run: later}\n"
        "  - {name: further, experiment: gguf, seeds: [1, 2], statistic: diff,\n"
        "     kind: directional, min_effect: 0.1, command: lgt run g1, why_not_run: a GPU,\n"
        "     withdrawn: 2026-12-06 before its runs}\n")
    section = pretrained_claims(pd.DataFrame(), tmp_path)
    settle_tables([section])
    rows = section.tables[0].to_dict("records")
    assert rows[0]["reproduces"].startswith("not run: later")
    assert rows[1]["reproduces"] == "n/a: withdrawn: 2026-12-06 before its runs"
