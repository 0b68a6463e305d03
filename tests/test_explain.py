"""`lgt run --dry-run --explain`: every value of an experiment with where it came from, recorded
by the one loader (`config.load`) as it stacks the layers (`config/sources.py`)."""

import dataclasses

from lgtransfer.cli import main
from lgtransfer.config import load_experiments
from lgtransfer.config.sources import SCHEMA_DEFAULT, fields_of


def sources_of(name, overrides=(), budget=None, index=0):
    entry = load_experiments([name], list(overrides), budget)[index]
    return entry, {f: entry.sources.of(f) for f in fields_of(dataclasses.asdict(entry.config))}


def test_each_layer_is_named_where_it_set_a_value():
    _, src = sources_of("quick", ["train.steps=7"])
    assert src["train.steps"] == "--set"
    assert src["model.n_layer"] == "budgets.yaml cpu"  # quick's budget's defaults
    assert src["group.0.task"] == "preset g1"  # quick's base
    assert src["description"] == "preset quick"
    assert src["group.0.max_length"] == "preset quick, budgets: cpu"
    assert src["model.rope_theta"] == src["group.0.weight"] == SCHEMA_DEFAULT
    assert src["budget"] == "preset quick, budget:"  # quick fixes its budget
    _, src = sources_of("g2", budget="gpu")
    assert src["budget"] == "--budget" and src["train.steps"] == "budgets.yaml gpu"


def test_an_assignment_replacing_a_section_leaves_the_rest_at_the_schemas_default():
    entry, src = sources_of("quick", ["train={steps: 3}"])
    assert entry.config.train.steps == 3 and src["train.steps"] == "--set"
    assert src["train.batch_size"] == SCHEMA_DEFAULT  # budgets.yaml's was replaced with it


def test_a_sweeps_set_and_grid_are_named(tmp_path):
    (tmp_path / "sw.yaml").write_text(
        "sweep: sw\nset: {train.steps: 9}\nexperiments: [{base: quick, name: 'a{n}'}]\n"
        "grid: {n: {keys: [group.0.max_length], values: [4, 5]}}\n"
        "budgets: {cpu: {set: {seeds: [3]}}}\n")
    entry, src = sources_of(str(tmp_path / "sw.yaml"), index=1)
    f = str(tmp_path / "sw.yaml")
    assert entry.config.group[0].max_length == 5 and src["group.0.max_length"] == f"{f}, grid n=5"
    assert src["train.steps"] == f"{f}, set" and src["seeds"] == f"{f}, budgets: cpu set"
    assert src["name"] == f"{f}, experiments" and src["model.n_layer"] == "budgets.yaml cpu"


def test_the_command_prints_every_field_with_its_source(tmp_path, capsys):
    assert main(["run", "quick", "--dry-run", "--explain", "--set", "train.steps=5",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    entry = load_experiments(["quick"], ["train.steps=5"])[0]
    fields = fields_of(dataclasses.asdict(entry.config))
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert set(lines) == set(fields)
    assert lines["train.steps"].split()[1:] == ["5", "--set"]
    assert lines["model.rope_theta"].endswith(SCHEMA_DEFAULT)
    assert "2 runs: 2 pending" in out  # and the dry run's own listing after it
