"""The confirmatory set's configuration (issue 33): a data seed that is the run's seed, fixed
evaluation sets, one execution for every run, head measurements at listed steps, and the keys
of every committed run left as they are."""

from pathlib import Path

import numpy as np
import pytest

from lgtransfer.config import expand, load_experiment, load_experiments
from lgtransfer.config.schema import SAME_EXAMPLES
from lgtransfer.data.mixture import Mixture, step_batch
from lgtransfer.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
CONFIRM_SEEDS = list(range(10, 20))


def test_data_seed_seed_is_each_runs_own_seed_and_its_key_holds_the_integer():
    runs = expand(load_experiment("quick", ["seeds=[10,11]", "train.data_seed=seed"]))
    assert {(r.seed, r.train.data_seed, r.resolved()["train"]["data_seed"]) for r in runs} == {
        (10, 10, 10), (11, 11, 11)}
    # the key is that of the resolved integer, and differs from the data seed 0 of before
    explicit = expand(load_experiment("quick", ["seeds=[10]", "train.data_seed=10"]))
    assert [r.key for r in runs if r.seed == 10] == [r.key for r in explicit]
    zero = expand(load_experiment("quick", ["seeds=[10,11]"]))
    assert not {r.key for r in runs} & {r.key for r in zero}


@pytest.mark.parametrize("value", ["sometimes", "-1", "true", "1.5"])
def test_a_data_seed_that_is_neither_an_integer_nor_seed_fails(value):
    with pytest.raises(UsageError, match="train.data_seed"):
        load_experiment("quick", [f"train.data_seed={value}"])


def test_runs_with_data_seed_0_keep_their_keys():
    """quick's pinned keys, and every committed G1 run at cpu (seeds 0-9, both baselines)."""
    assert [r.key for r in expand(load_experiment("quick"))] == ["78ed46ec12", "fbdf89f162"]
    runs = expand(load_experiment("g1", ["seeds=[0,1,2,3,4,5,6,7,8,9]", "baseline=both"],
                                  budget="cpu"))
    committed = {p.name for p in (ROOT / "results" / "cpu" / "g1").glob("*_seed*") if p.is_dir()}
    assert len(runs) == 30 and {r.dirname for r in runs} == committed


def test_two_data_seeds_see_the_same_evaluation_sets_and_different_training_streams():
    a, b = [r for r in expand(load_experiment("g1", ["seeds=[10,11]", "train.data_seed=seed"],
                                              budget="cpu")) if r.variant == "with_aux"]
    assert (a.train.data_seed, b.train.data_seed) == (10, 11)
    # built as training builds them (engine/train.py): the eval seed, never the data seed
    mixes = [Mixture(r.group, r.experiment.eval.n, r.experiment.eval.seed) for r in (a, b)]
    for task in [t.task for t in a.group]:
        for length in (1, 6, 7, 14):
            x, y = (m.eval_set(task, length) for m in mixes)
            assert np.array_equal(x.tokens, y.tokens), (task, length)
    for step in (0, 1, 3499):
        x, y = (step_batch(m, r.train.data_seed, step, 64)
                for m, r in zip(mixes, (a, b), strict=True))
        assert not np.array_equal(x.tokens, y.tokens)
    same = step_batch(mixes[0], 10, 5, 64), step_batch(mixes[1], 10, 5, 64)
    assert np.array_equal(same[0].tokens, same[1].tokens)  # the stream is the seed's alone


@pytest.mark.parametrize("at", ["[]", "[0,100]", "[100,100]", "[3501]"])
def test_heads_at_lists_distinct_steps_of_the_run(at):
    with pytest.raises(UsageError, match="heads.at must list distinct steps"):
        load_experiment("quick", [f"heads.at={at}"])


def test_heads_at_is_not_part_of_a_runs_key():
    listed = expand(load_experiment("quick", ["heads.at=[100,3000]"]))
    assert [r.key for r in listed] == ["78ed46ec12", "fbdf89f162"]


def test_the_confirmatory_set_is_new_seeds_new_data_one_execution():
    entries = load_experiments(["confirm"])
    # the exploratory names: the confirmatory rows select runs by name and seed
    assert {e.config.name for e in entries} == {
        "g1", "g2", "g4", "g5", "c1", "c2", "a1-both", "a1-no-carry", "a1-carry-only",
        "a2-both", "a2-reverse", "a2-capitalize"}
    runs = [r for e in entries for r in expand(e.config)]
    assert {e.config.budget for e in entries} == {"cpu"}
    assert all(e.config.seeds == CONFIRM_SEEDS for e in entries)
    assert all(r.train.data_seed == r.seed for r in runs)
    assert {r.execution.name for r in runs} == {"fp32+compile"}
    assert all(e.config.heads.record and len(e.config.heads.at or []) >= 10 for e in entries)
    # the causal test over k (item 2) at every k below half the model's heads, 128 a length
    assert all(e.config.heads.causal_ks == [1, 2, 3, 4, 5, 6] and e.config.heads.causal_n >= 128
               and e.config.heads.causal_band == "transfer_all" for e in entries)
    # the A1/A2 "both" runs are G1's and G5's, and G2 and C1 share G1's main-alone runs; G1
    # and G5 also train the alone run on as many main examples (the baselines family)
    assert len({r.key for r in runs}) == 150
    same = {(r.experiment.name, r.seed) for r in runs if r.variant == SAME_EXAMPLES}
    assert same == {(g, s) for g in ("g1", "g5") for s in CONFIRM_SEEDS}
    confirm_dir = ROOT / "results" / "cpu" / "confirm"  # this set's own runs, as they come in
    keys = {p: p.name.rsplit("_", 1)[1] for p in (ROOT / "results").rglob("*_seed*_*")
            if p.is_dir()}
    committed = {k for p, k in keys.items() if confirm_dir not in p.parents}
    assert committed and not committed & {r.key for r in runs}
    assert {k for p, k in keys.items() if confirm_dir in p.parents} <= {r.key for r in runs}
