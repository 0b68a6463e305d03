"""Experiment files: presets load, overrides apply, unknown keys fail, runs expand and hash."""

import re
from pathlib import Path

import pytest

from lgtransfer.config import (
    BUDGETS,
    apply_override,
    at_budget,
    expand,
    files,
    load_experiment,
    load_experiments,
    load_raw,
    parse_experiment,
    preset_names,
    validate_runs,
)
from lgtransfer.errors import UsageError
from lgtransfer.orchestration.sweep import plan

COPY = {"task": "copy", "role": "main", "max_length": 16}
PAPER_EXPERIMENTS = ["g1", "g2", "g2-signed", "g3", "g4", "g5", "g6", "g7", "c1", "c2", "a1",
                     "a2", "ratio", "nope", "dynamics"]


def budgets_of(name: str) -> list[str]:
    """The budgets a preset runs at: the one it fixes, those it lists, or any (budget-free)."""
    raw = load_raw(name)
    return [raw["budget"]] if "budget" in raw else list(raw.get("budgets") or BUDGETS)


def test_presets_exist():
    names = set(preset_names())
    assert {"quick"} <= names and "budgets" not in names  # budgets.yaml is no experiment
    for name in PAPER_EXPERIMENTS:  # one file per experiment, every budget in it
        assert name in names and f"{name}-paper" not in names
        assert budgets_of(name) == list(BUDGETS)


@pytest.mark.parametrize("name, budget", [(n, b) for n in preset_names() for b in budgets_of(n)])
def test_every_preset_loads_and_validates(name, budget):
    experiments = load_experiments([name], budget=budget)
    for e in experiments:
        validate_runs(e.config)  # models: not checked here (pretrained.validate_models)
        assert e.config.main and e.config.budget == budget
        runs = expand(e.config)
        assert len(runs) == len(e.config.seeds) * len(e.config.variants()) * len(
            e.config.model.stages or [None])
        assert len({r.key for r in runs}) == len(runs)
    if len(experiments) == 1 and not experiments[0].sweep:
        assert experiments[0].config.name == name
        assert experiments[0].folder == Path(budget) / name
    else:  # a sweep file: its experiments live under its own folder, in the budget's
        assert {e.folder.parent for e in experiments} == {Path(budget) / name}


PAPER_SEEDS = {"ratio": 3, "dynamics": 3}  # the paper's seeds where not 5 (dynamics: 45-47)


@pytest.mark.parametrize("name", PAPER_EXPERIMENTS)
def test_paper_budgets_are_the_papers(name):
    for e in load_experiments([name], budget="paper"):
        t = e.config.train
        assert (t.steps, t.batch_size, t.eval_every, e.config.eval.n) == (20_000, 1200, 500, 1024)
        m = e.config.model
        assert (m.n_layer, m.n_head, m.d_model) == (6, 6, 384)
        assert e.config.figure, "every paper experiment names the figure it redraws"
        assert len(e.config.seeds) == PAPER_SEEDS.get(name, 5)


@pytest.mark.parametrize("name", PAPER_EXPERIMENTS)
def test_cpu_budgets_are_quicks_schedule_at_aux_main_ratio_2(name):
    """Every experiment at `cpu`: quick's model and schedule, 3 seeds, and the auxiliary tasks
    at twice the main task's length (the ratio sweep aside), evaluated a little beyond."""
    experiments = load_experiments([name], budget="cpu")
    for e in experiments:
        m, t = e.config.model, e.config.train
        assert (m.n_layer, m.n_head, m.d_model, m.d_ff) == (3, 4, 128, 256)
        assert (t.steps, t.batch_size, t.lr, e.config.eval.n) == (3500, 64, 1.5e-3, 128)
        if name == "ratio":
            continue
        assert e.config.seeds == [0, 1, 2]
        assert {a.max_length for a in e.config.aux} == {2 * e.config.main.max_length}
        assert e.config.eval_max_length == 2 * e.config.main.max_length + 2
    if name == "ratio":  # {3, 6, 12}^2, three seeds (its verdict pairs them)
        assert len(experiments) == 9 and all(e.config.seeds == [0, 1, 2] for e in experiments)
        assert {(e.config.main.max_length, e.config.aux[0].max_length) for e in experiments} == {
            (a, b) for a in (3, 6, 12) for b in (3, 6, 12)}


def test_g2_signed_differs_from_g2_only_in_its_subtraction_and_shares_its_baseline():
    for budget in BUDGETS:
        (signed,), (g2,) = (load_experiments([n], budget=budget) for n in ("g2-signed", "g2"))
        assert [t.task for t in signed.config.group] == ["reverse_add", "reverse_sub_signed"]
        lengths = [[t.max_length for t in e.config.group] for e in (signed, g2)]
        assert lengths[0] == lengths[1]
        keys = [{r.variant: r.key for r in expand(e.config) if r.seed == e.config.seeds[0]}
                for e in (signed, g2)]
        assert keys[0]["main_only"] == keys[1]["main_only"]
        assert keys[0]["with_aux"] != keys[1]["with_aux"]


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
    cfg = load_experiment("g1", budget="paper")
    assert (cfg.train.steps, cfg.train.batch_size) == (20_000, 1200)
    assert [(t.task, t.role, t.max_length) for t in cfg.group] == [
        ("reverse_add", "main", 16), ("no_carry", "aux", 32), ("carry_only", "aux", 32)]
    assert (cfg.model.n_layer, cfg.model.n_head, cfg.model.d_model) == (6, 6, 384)
    assert cfg.seeds == [43, 44, 45, 46, 47] and cfg.budget == "paper"


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
    raw = at_budget(load_raw("quick"), "quick", None)
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


def test_speed_settings_do_not_change_the_run_key():
    base = expand(load_experiment("quick"))
    faster = expand(load_experiment("quick", ["train.threads=1", "train.data_workers=3",
                                              "train.precision=fp32", "train.compile=off",
                                              "train.keep_resume=true"]))
    assert [r.key for r in base] == [r.key for r in faster]


@pytest.mark.parametrize("settings", [["train.compile=on"], ["train.precision=bf16"],
                                      ["train.precision=bf16", "train.compile=on"]])
def test_execution_is_part_of_the_run_key(settings):
    """A compiled or bf16 run is never the reference run of the same config, and each of the
    four executions has a key of its own."""
    reference = {r.key for r in expand(load_experiment("quick"))}
    other = expand(load_experiment("quick", settings))
    assert not reference & {r.key for r in other}
    assert other[0].execution.name == "+".join(
        ["bf16" if "train.precision=bf16" in settings else "fp32"]
        + (["compile"] if "train.compile=on" in settings else []))
    assert len({r.key for s in (["train.compile=on"], ["train.precision=bf16"],
                                ["train.precision=bf16", "train.compile=on"])
                for r in expand(load_experiment("quick", s))}) == 6


def test_auto_precision_follows_the_benchmark_rule(monkeypatch):
    """auto: fp32 for the cpu tier's width 128 (bf16 is slower there) and for pretrained
    models; bf16 from width 256 on a CPU with bf16 instructions; the reference without them."""
    from lgtransfer.config import execution

    def auto(width: int, init: str | None = None, device: str = "cpu") -> str:
        return execution.resolve({"precision": "auto"}, {"d_model": width, "init": init},
                                 device).precision

    monkeypatch.setattr(execution, "cpu_has_bf16", lambda: True)
    assert (auto(128), auto(256), auto(384), auto(576, "smollm2-135m-gguf")) == \
        ("fp32", "bf16", "bf16", "fp32")
    assert auto(128, device="cuda") == "bf16"
    monkeypatch.setattr(execution, "cpu_has_bf16", lambda: False)
    assert auto(384) == "fp32"
    # the committed cpu evidence keeps its keys: the cpu budget is width 128
    assert expand(load_experiment("quick"))[0].execution.is_reference


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
        validate_runs(cfg)
    cfg.eval.max_length = None
    validate_runs(cfg)
    assert {r.resolved()["eval"]["max_length"] for r in expand(cfg)} == {24}


def test_run_keys_depend_on_content_not_on_the_experiment_name():
    a = expand(parse_experiment({"name": "a", "group": [COPY], "description": "x"}, "a"))
    b = expand(parse_experiment({"name": "b", "group": [COPY], "figure": "3a"}, "b"))
    assert [r.key for r in a] == [r.key for r in b]
    c = expand(parse_experiment({"name": "a", "group": [COPY], "train": {"steps": 7}}, "a"))
    assert [r.key for r in a] != [r.key for r in c]


def test_the_same_main_examples_baseline_trains_the_main_tasks_share_of_the_steps():
    """G1 at quick scale: three tasks of equal weight, so the main task sees a third of the
    with-aux run's examples; the second baseline trains a third of the steps, the first all."""
    runs = expand(load_experiment("quick", ["baseline=both"]))
    steps = {r.variant: r.resolved()["train"]["steps"] for r in runs}
    assert steps == {"with_aux": 3500, "main_only": 3500, "main_only_same_examples": 1167}
    assert len({r.key for r in runs}) == 3
    assert len({r.experiment_key for r in runs}) == 1  # still one experiment
    weighted = expand(load_experiment("quick", ["baseline=same_main_examples",
                                                "group.0.weight=2.0"]))
    assert {r.variant: r.train.steps for r in weighted} == {
        "with_aux": 3500, "main_only_same_examples": 1750}  # weight 2 of 4
    assert [r.variant for r in expand(load_experiment("quick", ["baseline=false"]))] == [
        "with_aux"]
    # the default is the same-steps baseline alone, and the quick runs keep their keys
    assert [r.key for r in expand(load_experiment("quick"))] == ["78ed46ec12", "fbdf89f162"]
    with pytest.raises(UsageError, match="baseline must be one of"):
        load_experiment("quick", ["baseline=sometimes"])


# ----------------------------------------------------------------------------- budgets


def test_the_budget_is_chosen_explicitly_or_by_the_machine(monkeypatch):
    """`--budget` wins; without it a file's own `budget:`, else gpu where a GPU is detected and
    cpu otherwise (conftest: no GPU)."""
    assert load_experiment("g2", budget="paper").budget == "paper"
    cfg = load_experiment("g2")
    assert cfg.budget == "cpu" and cfg.group[0].max_length == 6 and cfg.model.d_model == 128
    monkeypatch.setattr(files, "has_gpu", lambda: True)
    cfg = load_experiment("g2")
    assert cfg.budget == "gpu" and cfg.group[0].max_length == 16 and cfg.train.steps == 4000
    assert load_experiment("quick").budget == "cpu"  # quick fixes its budget, GPU or not
    with pytest.raises(UsageError, match="runs at the 'cpu' budget only"):
        load_experiment("quick", budget="gpu")


def test_gpu_detection_asks_the_driver_not_torch(monkeypatch, tmp_path):
    monkeypatch.undo()  # the real detection (conftest hides any GPU)
    driver = tmp_path / "version"
    monkeypatch.setattr(files, "NVIDIA_DRIVER", driver)
    monkeypatch.setattr(files.shutil, "which", lambda name: None)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert not files.has_gpu() and files.default_budget() == "cpu"
    driver.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module\n")
    assert files.has_gpu() and files.default_budget() == "gpu"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # every device hidden
    assert files.default_budget() == "cpu"


def test_a_budget_an_experiment_lacks_is_an_error_naming_those_it_has(tmp_path):
    with pytest.raises(UsageError, match=r"smollm has no 'cpu' budget; it has gpu, paper"):
        load_experiment("smollm", budget="cpu")
    f = tmp_path / "e.yaml"
    f.write_text("group: [{task: copy, role: main, max_length: 4}]\nbudgets: {gpus: {}}\n")
    with pytest.raises(UsageError, match="unknown budget 'gpus'"):
        load_experiment(str(f), budget="gpu")
    with pytest.raises(UsageError, match="chosen with --budget"):
        load_experiment("g2", ["budget=paper"])


@pytest.mark.parametrize("name", ["g2-paper", "ratio-paper"])
def test_an_old_preset_name_names_the_new_form(name, tmp_path, capsys):
    from lgtransfer.cli import main

    new = name.removesuffix("-paper")
    with pytest.raises(UsageError, match=f"lgt run {new} --budget paper"):
        load_experiment(name)
    assert main(["run", name, "--dry-run", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"lgt run {new} --budget paper" in err


def test_budget_order_defaults_fields_overrides_then_set(tmp_path):
    """The budget's defaults, under the file's fields, under its budget's overrides, under
    `--set`; a file without `budgets:` runs as written, its budget still recorded; `base:`
    inherits the base's budgets unless the file gives its own."""
    f = tmp_path / "e.yaml"
    f.write_text("group: [{task: copy, role: main, max_length: 9}]\ntrain: {steps: 7, lr: 0.5}\n"
                 "budgets: {cpu: {train.steps: 8, group.0.max_length: 5}, gpu: {}}\n")
    cfg = load_experiment(str(f), ["train.lr=0.25"], budget="cpu")
    assert (cfg.model.d_model, cfg.train.batch_size) == (128, 64)  # the cpu defaults
    assert (cfg.train.steps, cfg.group[0].max_length, cfg.train.lr) == (8, 5, 0.25)
    assert load_experiment(str(f), budget="gpu").train.steps == 7
    free = tmp_path / "free.yaml"
    free.write_text("group: [{task: copy, role: main, max_length: 9}]\n")
    for budget in BUDGETS:
        cfg = load_experiment(str(free), budget=budget)
        assert cfg.budget == budget and cfg.train.steps == 20_000 and cfg.model.d_model == 384
    child = tmp_path / "child.yaml"
    child.write_text("base: g1\nseeds: [3]\n")
    assert load_experiment(str(child), budget="cpu").group[0].max_length == 6  # g1's cpu
    own = tmp_path / "own.yaml"
    own.write_text("base: g1\nbudgets: {paper: {}}\n")
    with pytest.raises(UsageError, match="has no 'cpu' budget; it has paper"):
        load_experiment(str(own), budget="cpu")


def test_the_budget_is_in_the_run_key_and_folder():
    """Two budgets of one experiment never share a run, even where their content is made the
    same; runs of one content under one budget are one run (quick's are G1's at cpu)."""
    same = ["model.n_layer=1", "model.n_head=2", "model.d_model=32", "model.d_ff=64",
            "train.steps=4", "train.batch_size=4", "train.eval_every=4",
            "train.checkpoint_every=4", "train.lr=0.001", "train.buckets=1", "eval.n=4",
            "eval.max_length=40", "seeds=[0]", "heads.every=4", "heads.n=4",
            "group.0.max_length=16", "group.1.max_length=32", "group.2.max_length=32"]
    cpu, gpu = (load_experiments(["g1"], same, budget) for budget in ("cpu", "gpu"))
    assert cpu[0].folder == Path("cpu/g1") and gpu[0].folder == Path("gpu/g1")
    runs = {b: expand(e[0].config) for b, e in (("cpu", cpu), ("gpu", gpu))}
    strip = [{k: v for k, v in r.resolved().items() if k != "budget"} for r in runs["cpu"]]
    assert strip == [{k: v for k, v in r.resolved().items() if k != "budget"}
                     for r in runs["gpu"]]  # identical but for the budget
    assert not {r.key for r in runs["cpu"]} & {r.key for r in runs["gpu"]}
    assert {r.resolved()["budget"] for r in runs["cpu"]} == {"cpu"}
    out = Path("/nonexistent")
    dirs = [p.directory for p in plan([*cpu, *gpu], out)]
    assert len(set(dirs)) == 4 and all(out / "cpu" / "g1" in d.parents for d in dirs[:2])
    quick = {r.key for r in expand(load_experiment("quick"))}
    g1 = {r.key for r in expand(load_experiment("g1", budget="cpu")) if r.seed == 1}
    assert quick == g1


def test_a_run_recorded_before_budgets_is_found_by_its_content(tmp_path):
    """A config.yaml without a budget matches the run of its content at any budget: quick's
    runs made before budgets are reused by `lgt run quick`, and keep their numbers."""
    from lgtransfer.runtime import rundir

    run = expand(load_experiment("quick"))[0]
    old = tmp_path / "out" / "quick" / "with_aux_seed1_b8de334f59"
    rundir.write_yaml(old / "config.yaml", {k: v for k, v in run.resolved().items()
                                            if k != "budget"})
    rundir.write_json(old / "manifest.json", {"status": "complete", "config_hash": "b8de334f59"})
    planned = plan(load_experiments(["quick"]), tmp_path / "out")
    assert planned[0].directory == old and planned[0].state() == "complete"
    assert planned[1].directory.parent == tmp_path / "out" / "cpu" / "quick"


def test_a_compiled_run_is_not_the_reference_run_of_its_config(tmp_path):
    """A folder trained compiled when compile was not yet in the key (its manifest holds the
    reference key) is found by a compiled plan, never by the reference one."""
    from lgtransfer.orchestration.sweep import existing_runs
    from lgtransfer.runtime import rundir

    reference = expand(load_experiment("quick"))[0]
    compiled = expand(load_experiment("quick", ["train.compile=on"]))[0]
    folder = tmp_path / "cpu" / "quick" / reference.dirname
    folder.mkdir(parents=True)
    rundir.write_yaml(folder / "config.yaml", compiled.resolved())
    rundir.write_json(folder / "manifest.json", {"status": "complete",
                                                 "config_hash": reference.key})
    found = existing_runs(tmp_path)
    assert found.get(compiled.key) == folder and reference.key not in found
