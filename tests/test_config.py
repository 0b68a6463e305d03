"""Experiment files: presets load, overrides apply, unknown keys fail, runs expand and hash."""

import re
from pathlib import Path

import pytest

from lgtransfer.config import (
    apply_override,
    expand,
    load_experiment,
    load_raw,
    parse_experiment,
    preset_names,
    validate_runs,
)
from lgtransfer.errors import UsageError
from lgtransfer.sweep import load_experiments

COPY = {"task": "copy", "role": "main", "max_length": 16}
PAPER_PRESETS = ["g1", "g2", "g3", "g4", "g5", "g6", "g7", "c1", "c2", "a1", "a2", "ratio",
                 "nope", "dynamics"]


def test_presets_exist():
    names = set(preset_names())
    assert {"quick"} <= names
    for name in PAPER_PRESETS:
        assert {name, f"{name}-paper"} <= names


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_loads_and_validates(name):
    experiments = load_experiments([name])
    for e in experiments:
        validate_runs(e.config, check_models=False)  # models: not on test machines
        assert e.config.main
        runs = expand(e.config)
        assert len(runs) == len(e.config.seeds) * len(e.config.variants()) * len(
            e.config.model.stages or [None])
        assert len({r.key for r in runs}) == len(runs)
    if len(experiments) == 1 and experiments[0].folder == Path(name):
        assert experiments[0].config.name == name
    else:  # a sweep file: its experiments live under its own folder
        assert {e.folder.parent for e in experiments} == {Path(name)}


@pytest.mark.parametrize("name", PAPER_PRESETS)
def test_paper_presets_use_the_paper_budget(name):
    for e in load_experiments([f"{name}-paper"]):
        t = e.config.train
        assert (t.steps, t.batch_size, t.eval_every, e.config.eval.n) == (20_000, 1200, 500, 1024)
        m = e.config.model
        assert (m.n_layer, m.n_head, m.d_model) == (6, 6, 384)
        assert e.config.figure, "every paper preset names the figure it redraws"
        assert len(e.config.seeds) == (3 if name == "ratio" else 5) or name == "dynamics"


def test_base_inherits_and_overrides(tmp_path):
    child = tmp_path / "child.yaml"
    child.write_text("base: g2\ntrain: {steps: 7}\nseeds: [1]\n")
    cfg = load_experiment(str(child))
    g2 = load_experiment("g2")
    assert cfg.name == "child" and cfg.train.steps == 7 and cfg.seeds == [1]
    assert cfg.group == g2.group and cfg.train.batch_size == g2.train.batch_size
    loop = tmp_path / "loop.yaml"
    loop.write_text(f"base: {loop}\n")
    with pytest.raises(UsageError, match="loops"):
        load_experiment(str(loop))


def test_g1_paper_budget():
    cfg = load_experiment("g1-paper")
    assert (cfg.train.steps, cfg.train.batch_size) == (20_000, 1200)
    assert [(t.task, t.role, t.max_length) for t in cfg.group] == [
        ("reverse_add", "main", 16), ("no_carry", "aux", 32), ("carry_only", "aux", 32)]
    assert (cfg.model.n_layer, cfg.model.n_head, cfg.model.d_model) == (6, 6, 384)


def test_overrides():
    cfg = load_experiment("quick", ["train.steps=7", "eval.n=3", "seeds=[5, 6]",
                                    "model.init=/some/where", "group.0.max_length=5"])
    assert cfg.train.steps == 7 and cfg.eval.n == 3 and cfg.seeds == [5, 6]
    assert cfg.model.init == "/some/where" and cfg.group[0].max_length == 5


@pytest.mark.parametrize("assignment", ["train.stepz=1", "nope=1", "train=1=2", "group.9.task=x",
                                        "model.init.x=1", "=3"])
def test_bad_overrides_fail(assignment):
    with pytest.raises(UsageError):
        load_experiment("quick", [assignment])


def test_wrong_types_and_unknown_keys_fail():
    raw = load_raw("quick")
    with pytest.raises(UsageError, match="train.steps"):
        apply_override(raw, "train.steps=many")
        parse_experiment(raw, "x")
    with pytest.raises(UsageError, match="unknown config key 'train.foo'"):
        parse_experiment({"name": "x", "group": [COPY], "train": {"foo": 1}}, "x")
    with pytest.raises(UsageError, match="no task with role 'main'"):
        parse_experiment({"name": "x", "group": [{**COPY, "role": "aux"}]}, "x")


def test_variants_and_hash_stability():
    cfg = load_experiment("quick", ["seeds=[1, 2]"])
    runs = expand(cfg)
    assert [(r.variant, r.seed) for r in runs] == [
        ("with_aux", 1), ("with_aux", 2), ("main_only", 1), ("main_only", 2)]
    assert [t.task for t in runs[2].group] == ["reverse_add"]
    # the same config gives the same key; any result-changing field changes it
    again = expand(load_experiment("quick", ["seeds=[1, 2]"]))
    assert [r.key for r in runs] == [r.key for r in again]
    other = expand(load_experiment("quick", ["seeds=[1, 2]", "train.lr=0.5"]))
    assert not {r.key for r in runs} & {r.key for r in other}
    # a description is not part of the result
    described = expand(load_experiment("quick", ["seeds=[1, 2]", "description=hello"]))
    assert [r.key for r in runs] == [r.key for r in described]


def test_scientific_notation_is_a_float():
    assert load_experiment("quick", ["train.lr=1e-4"]).train.lr == pytest.approx(1e-4)


@pytest.mark.parametrize("assignment", [
    "seeds=[0,0]", "seeds=[-1]", "seeds=[x]", "model.n_head=0", "train.checkpoint_every=0",
    "train.buckets=0", "train.device=gpu", "train.compile=always", "eval.seed=-1",
    "train.betas=[0.9]", "eval.lengths=[]", "eval.lengths=[x]", "train.precision=fp16"])
def test_impossible_values_fail_at_load(assignment):
    with pytest.raises(UsageError):
        load_experiment("quick", [assignment])


def test_set_fills_an_empty_section(tmp_path):
    f = tmp_path / "e.yaml"
    f.write_text("group: [{task: copy, role: main, max_length: 4}]\ntrain:\n")
    assert load_experiment(str(f), ["train.steps=10"]).train.steps == 10


def test_execution_settings_do_not_change_the_run_key():
    base = expand(load_experiment("quick"))
    faster = expand(load_experiment("quick", ["train.threads=1", "train.data_workers=3",
                                              "train.compile=on", "train.precision=bf16",
                                              "train.keep_resume=true"]))
    assert [r.key for r in base] == [r.key for r in faster]


@pytest.mark.parametrize("group, message", [
    ([{"task": "copy", "max_length": 8}], "group[0]: 'role' is required"),
    ([{"task": "copy", "role": "main"}], "group[0]: 'max_length' is required"),
    ([COPY, {**COPY, "task": "reverse"}], "2 main tasks (copy, reverse)"),
])
def test_group_entries_are_explicit_and_have_one_main_task(group, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        parse_experiment({"name": "x", "group": group}, "x")


def test_eval_max_length_is_the_longest_evaluated_length():
    """At least the longest training length (else an error); null means exactly that length;
    the resolved config records the length actually used."""
    cfg = parse_experiment({"name": "x", "group": [COPY, {"task": "reverse", "role": "aux",
                                                          "max_length": 24}],
                            "eval": {"max_length": 10}}, "x")
    with pytest.raises(UsageError, match="below the group's longest training length 24"):
        validate_runs(cfg, check_models=False)
    cfg.eval.max_length = None
    validate_runs(cfg, check_models=False)
    assert {r.resolved()["eval"]["max_length"] for r in expand(cfg)} == {24}


def test_run_keys_depend_on_content_not_on_the_experiment_name():
    a = expand(parse_experiment({"name": "a", "group": [COPY], "description": "x"}, "a"))
    b = expand(parse_experiment({"name": "b", "group": [COPY], "figure": "3a"}, "b"))
    assert [r.key for r in a] == [r.key for r in b]
    c = expand(parse_experiment({"name": "a", "group": [COPY], "train": {"steps": 7}}, "a"))
    assert [r.key for r in a] != [r.key for r in c]
