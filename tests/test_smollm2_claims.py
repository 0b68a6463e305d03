"""The SmolLM2-135M claims (issue 34), judged from synthetic eval rows under the registration
template docs/registration-smollm2.example.yaml: yes with Holm at the registered m = 3, pending
until 7 seeds, not run before any, n/a by the learning rule (except for the speed claim, whose
evidence a slow scratch arm is), floor where both sides sit at 0, and a one-line error (`lgt
report` exits 2) for a registration that misses a field or names an unknown measure."""

import shutil
from pathlib import Path

import pandas as pd
import pytest

from lgtransfer.analysis.report.figures.registry import settle_tables
from lgtransfer.analysis.report.pretrained_claims import pretrained_claims
from lgtransfer.analysis.report.render import Section
from lgtransfer.analysis.report.smollm2_claims import FILE, smollm2_claims
from lgtransfer.errors import UsageError

TEMPLATE = Path(__file__).resolve().parents[1] / "docs" / "registration-smollm2.example.yaml"
REGISTERED = TEMPLATE.parents[1] / "results" / "cpu" / FILE  # the registration itself
SEEDS = range(7)
STAGES = {"pretrained": "smollm2-135m-gguf", "scratch": "scratch"}
GROUP = {"main_only": [("reverse_add", "main", 6)],
         "with_aux": [("reverse_add", "main", 6), ("no_carry", "aux", 12),
                      ("carry_only", "aux", 12)]}


def run_rows(seed, arm, variant, first, final, past, aux=1.0):
    """One run's eval rows at steps 200 and 400, lengths 1-12: the main task at `first` /
    `final` within 1-6 and `past` beyond at the end (0 at step 200); aux tasks at `aux`."""
    rows = []
    for step, in_dist in ((200, first), (400, final)):
        for task, role, l_train in GROUP[variant]:
            for length in range(1, 13):
                acc = (in_dist if length <= l_train else past * (step == 400)) \
                    if role == "main" else aux
                rows.append({"experiment": "smollm2-g1", "variant": variant, "seed": seed,
                             "step": step, "task": task, "role": role,
                             "train_max_length": l_train, "length": length, "n": 32,
                             "accuracy": acc, "stage": STAGES[arm]})
    return rows


def eval_rows(seeds=SEEDS, variants=("main_only", "with_aux"), **arms):
    """Every run of `seeds`; arms["pretrained" | "scratch"] = {variant: (first, final, past)}
    (a seed-dependent wobble keeps values distinct)."""
    defaults = {"pretrained": {"main_only": (0.9, 1.0, 0.3), "with_aux": (0.9, 1.0, 0.6)},
                "scratch": {"main_only": (0.1, 1.0, 0.05), "with_aux": (0.1, 1.0, 0.1)}}
    rows = []
    for arm, per_variant in defaults.items():
        for variant in variants:
            first, final, past = {**per_variant, **arms.get(arm, {})}[variant]
            for seed in seeds:
                wobble = 0.001 * seed
                rows += run_rows(seed, arm, variant, first - wobble, final, past + wobble,
                                 arms.get(f"{arm}_aux", 1.0))
    return pd.DataFrame(rows)


@pytest.fixture
def root(tmp_path):
    shutil.copy(TEMPLATE, tmp_path / FILE)
    return tmp_path


def verdicts(df, root):
    """claim letter -> (verdict column, p column) after settling the family."""
    section = Section("pretrained", "", tables=[smollm2_claims(df, root)])
    settle_tables([section])
    table = section.tables[0]
    return {paper[1]: (verdict, p) for paper, verdict, p in zip(
        table.paper, table.reproduces, table.p, strict=True)}


def test_all_three_claims_hold_on_seven_seeds_with_holm_at_m_3(root):
    v = verdicts(eval_rows(), root)
    assert {k: x[0] for k, x in v.items()} == {"a": "yes", "b": "yes", "c": "yes"}
    assert {x[1] for x in v.values()} == {"0.0234"}  # 3 x 2^-7: seven seeds are enough


def test_a_claim_not_in_yet_still_counts_in_the_registered_m(root):
    v = verdicts(eval_rows(variants=("main_only",)), root)  # no with-aux run: (c) waits
    assert v["c"][0] == "pending: 0 of 7 registered seeds in (14 of 28 of its runs)"
    assert v["a"] == ("yes", "0.0234") and v["b"] == ("yes", "0.0234")  # m = 3, not 2


def test_pending_until_every_registered_seed_is_in(root):
    v = verdicts(eval_rows(seeds=range(3)), root)
    assert all(x[0] == "pending: 3 of 7 registered seeds in" for x in v.values()), v
    assert all(x[1] == "raw 0.125" for x in v.values())


def test_a_pending_row_lists_the_learning_misses_so_far(root):
    df = eval_rows(seeds=range(3), scratch={"main_only": (0.0, 0.3, 0.0),
                                            "with_aux": (0.0, 0.4, 0.0)})
    v = verdicts(df, root)
    assert v["a"][0] == ("pending: 3 of 7 registered seeds in; so far reverse_add alone from "
                         "scratch below 0.95 on 3 of 3 seeds")
    assert "reverse_add with aux from scratch below 0.95 on 3 of 3 seeds" in v["c"][0]
    assert v["a"][1] == "raw 0.125"  # the seeds in are tested (2^-3), the row waits for all


def test_a_claim_whose_runs_have_begun_is_pending_not_not_run(root):
    df = eval_rows(seeds=range(2), variants=("with_aux",))
    df = df[df.stage == STAGES["pretrained"]]  # the sweep's first runs: pretrained, with aux
    v = verdicts(df, root)
    assert v["c"][0] == "pending: 0 of 7 registered seeds in (2 of 28 of its runs)", v
    assert v["a"][0].startswith("not run") and v["b"][0].startswith("not run")  # none of theirs


def test_not_run_before_any_run(root):
    v = verdicts(pd.DataFrame(), root)
    assert all(x[0].startswith("not run: 28 fine-tuning runs") for x in v.values()), v


def test_a_scratch_arm_that_misses_its_range_makes_a_and_c_na_not_b(root):
    df = eval_rows(scratch={"main_only": (0.0, 0.3, 0.0), "with_aux": (0.0, 0.4, 0.0)})
    v = verdicts(df, root)
    assert v["a"][0].startswith("n/a: reverse_add alone from scratch below 0.95 on 7 of 7")
    assert v["c"][0].startswith("n/a:")
    assert "reverse_add with aux from scratch below 0.95 on 7 of 7" in v["c"][0]
    assert v["b"][0] == "yes: reverse_add alone from scratch below 0.95 on 7 of 7 seeds"


def test_speed_is_na_only_when_both_arms_miss_their_range(root):
    slow = (0.0, 0.3, 0.0)
    v = verdicts(eval_rows(pretrained={"main_only": slow}, scratch={"main_only": slow}), root)
    assert v["b"][0].startswith("n/a:") and v["a"][0].startswith("n/a:")


def test_an_aux_task_that_misses_its_range_makes_the_gain_na(root):
    v = verdicts(eval_rows(scratch_aux=0.5), root)
    assert v["c"][0].startswith("n/a: carry_only with aux from scratch below 0.95 on 7 of 7")
    assert v["a"][0] == "yes"


def test_both_sides_at_the_floor_are_uninformative(root):
    zero = {"main_only": (0.9, 1.0, 0.0), "with_aux": (0.9, 1.0, 0.0)}
    df = eval_rows(pretrained=zero, scratch={**zero, "main_only": (0.1, 1.0, 0.0)})
    df.loc[(df.role == "main") & (df.length > 6), "accuracy"] = 0.0  # no wobble past L_main
    v = verdicts(df, root)
    assert v["a"][0].startswith("uninformative (floor)") and "pretrained alone" in v["a"][0]
    assert v["c"][0].startswith("uninformative (floor)") and "scratch with aux" in v["c"][0]
    assert v["b"][0] == "yes"


def test_the_opposite_direction_is_no(root):
    df = eval_rows(pretrained={"main_only": (0.9, 1.0, 0.0)},
                   scratch={"main_only": (0.1, 1.0, 0.5)})
    assert verdicts(df, root)["a"][0] == "no"


def test_the_pretrained_section_carries_both_families(root):
    shutil.copy(Path(__file__).resolve().parents[1] / "results" / "cpu" /
                "registration-pretrained.yaml", root)
    section = pretrained_claims(eval_rows(), root)
    assert len(section.tables) == 3 and "registration-smollm2.yaml" in section.text
    assert "family_size" not in section.tables[0].attrs  # the first registration's, as it was
    assert section.tables[1].attrs["family_size"] == {"pretrained-ladder-2": 2}  # amendment 2
    assert section.tables[2].attrs["family_size"] == {"pretrained-smollm2": 3}


@pytest.mark.parametrize("edit,message", [
    (("measure: gain", "measure: reach"), "measure must be one of extrapolation, speed, gain"),
    (("scratch: scratch}", "from_scratch: scratch}"), "no stages.scratch"),
    (("experiment: smollm2-g1", "study: smollm2-g1"), "no experiment"),
])
def test_a_malformed_registration_is_refused_in_one_line(edit, message, root):
    """A UsageError: `lgt report` prints its one line and exits 2."""
    (root / FILE).write_text((root / FILE).read_text().replace(*edit))
    with pytest.raises(UsageError, match=message):
        smollm2_claims(eval_rows(), root)


def test_the_registration_and_templates_match_their_presets_and_add_only_new_seeds():
    import yaml

    from lgtransfer.config import load_experiment

    reg = yaml.safe_load(REGISTERED.read_text())
    cfg = load_experiment(reg["experiment"])
    assert cfg.model.stages == list(reg["stages"].values()) and cfg.seeds == reg["seeds"]
    assert len(reg["seeds"]) == 8 and cfg.train.precision == "bf16" and cfg.train.compile == "off"
    assert (cfg.train.steps, cfg.train.eval_every) == (500, 250)  # what the claims' text says
    assert [c["measure"] for c in reg["claims"]] == ["extrapolation", "speed", "gain", "transfer"]
    template = yaml.safe_load(TEMPLATE.read_text())
    assert {c["measure"] for c in template["claims"]} == {"extrapolation", "speed", "gain"}
    amendment = yaml.safe_load((TEMPLATE.parent / "registration-pretrained-amendment.example.yaml")
                               .read_text())
    registered = yaml.safe_load((TEMPLATE.parents[1] / "results" / "cpu" /
                                 "registration-pretrained.yaml").read_text())
    run_before = {s for c in registered["claims"] if c["experiment"].startswith("ladder")
                  and c.get("learning") != "per_stage" for s in c["seeds"]}
    amended = [c for c in registered["claims"] if c.get("learning") == "per_stage"]
    assert [c["seeds"] for c in amended] == [c["seeds"] for c in amendment["claims"]]
    assert {c["family"] for c in amended} == {"pretrained-ladder-2"}
    for claim in amendment["claims"]:
        ladder = load_experiment(claim["experiment"])
        assert claim["learning"] == "per_stage" and claim["seeds"] == ladder.seeds
        assert not set(claim["seeds"]) & run_before and len(claim["seeds"]) == 7
        assert ladder.train.steps == 2 * load_experiment("ladder-quick").train.steps


def test_the_registration_counts_na_claims_in_its_m_and_judges_the_pretrained_transfer(tmp_path):
    """The registered family (8 seeds, m = 4) when the scratch arm misses its range, as the
    pilot predicts: (a) and (c) n/a but still in m, so (b) and (d) pass at Holm over 4 claims."""
    shutil.copy(REGISTERED, tmp_path / FILE)
    df = eval_rows(seeds=range(8), scratch={"main_only": (0.0, 0.3, 0.0),
                                            "with_aux": (0.0, 0.4, 0.0)})
    v = verdicts(df, tmp_path)
    assert v["a"][0].startswith("n/a:") and v["c"][0].startswith("n/a:")
    assert v["b"][0].startswith("yes") and v["d"][0] == "yes"
    assert v["b"][1] == v["d"][1] == "0.0156"  # 4 x 2^-8: m stays 4 with two claims n/a


def test_the_pretrained_transfer_at_the_floor_is_uninformative(tmp_path):
    shutil.copy(REGISTERED, tmp_path / FILE)
    zero = {"main_only": (0.9, 1.0, 0.0), "with_aux": (0.9, 1.0, 0.0)}
    df = eval_rows(seeds=range(8), pretrained=zero)
    df.loc[(df.role == "main") & (df.length > 6) & (df.stage != "scratch"), "accuracy"] = 0.0
    v = verdicts(df, tmp_path)
    assert v["d"][0].startswith("uninformative (floor)") and "pretrained alone" in v["d"][0]
