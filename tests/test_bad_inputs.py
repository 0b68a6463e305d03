"""Bad input, as a new user gives it, through the real command line: each case is one line on
stderr starting `lgt: error:`, exit 2, no traceback, and nothing written anywhere (the test's
folder is compared file by file before and after). Then the property: generated YAML documents
and `--set` values either load or are one such line, never another exception; and the
smallest valid configurations train to the end."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lgtransfer.cli import main
from lgtransfer.config import load_experiments, validate_runs
from lgtransfer.errors import UsageError
from lgtransfer.runtime import rundir

TINY = ["model.n_layer=2", "model.n_head=2", "model.d_model=32", "model.d_ff=64",
        "train.steps=2", "train.batch_size=4", "train.eval_every=1", "train.checkpoint_every=1",
        "eval.n=4", "seeds=[0]", "baseline=none"]
SETS = [a for s in TINY for a in ("--set", s)]
GROUP = "group: [{task: copy, role: main, max_length: 4}, {task: reverse, role: aux, " \
        "max_length: 8}]\n"


def snapshot(root: Path) -> dict[str, int]:
    """Every file and folder under root, with its size: what a command wrote, if anything."""
    return {p.relative_to(root).as_posix(): p.stat().st_size if p.is_file() else -1
            for p in root.rglob("*")}


def finished_run(folder: Path, seed: int, finished: float) -> Path:
    """A complete run folder made by hand (no training): enough for results and reports."""
    d = folder / f"with_aux_seed{seed}_k"
    rows = [{"experiment": "exp", "variant": "with_aux", "seed": seed, "step": 10, "task": t,
             "role": r, "train_max_length": lm, "length": n, "n": 8, "accuracy": float(n <= lm)}
            for t, r, lm in [("reverse_add", "main", 4), ("no_carry", "aux", 8)]
            for n in range(1, 11)]
    rundir.write_jsonl(d / "eval.jsonl", rows)
    rundir.write_yaml(d / "config.yaml", {"model": {"pos_encoding": "rope"}, "budget": "cpu"})
    rundir.write_json(d / "manifest.json", {"status": "complete", "experiment": "exp",
                                            "experiment_key": "k", "config_hash": f"k{seed}",
                                            "finished": finished})
    return d


def two_runs_one_damaged(tmp: Path) -> Path:
    exp = tmp / "exp"
    finished_run(exp, 0, 1.0)
    damaged = finished_run(exp, 1, 2.0) / "manifest.json"
    damaged.write_text(damaged.read_text()[:20])
    return exp


def run_and_index(tmp: Path) -> Path:
    """A folder that is both a run and an experiment folder (the report used to recurse)."""
    d = finished_run(tmp / "exp", 0, 1.0)
    rundir.write_json(d / "experiment.json", {"name": "exp", "runs": ["."]})
    return d


def checkpoint(tmp: Path, weights: str) -> Path:
    """A checkpoint folder whose weights are damaged, or a pickle holding an object."""
    from transformers import LlamaConfig

    ckpt = tmp / "ckpt"
    LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                num_attention_heads=2).save_pretrained(ckpt)
    (ckpt / "lgt_run.json").write_text(json.dumps({"group": ["copy"]}))
    if weights == "damaged":
        (ckpt / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    else:
        import argparse

        import torch

        torch.save({"model.embed_tokens.weight": argparse.Namespace(x=1)},
                   ckpt / "pytorch_model.bin")
    return ckpt


def run_naming_tasks(tmp: Path, where: str) -> None:
    """A checkpoint (`lgt_run.json`) or a run folder (`config.yaml`) handed to the user that
    names a task file: reading it must not import the file without the user's say."""
    tasks_file(tmp)
    if where == "checkpoint":
        write(tmp / "ckpt" / "lgt_run.json", json.dumps({"group": ["copy"],
                                                        "tasks_from": [str(tmp / "tasks.py")]}))
    else:
        write(tmp / "run" / "config.yaml", "name: e\nvariant: with_aux\nseed: 0\n"
              "eval: {n: 8, seed: 0}\ntasks_from: [../tasks.py]\ngroup: [{task: copy, "
              "role: main, max_length: 2}, {task: reverse, role: aux, max_length: 3}]\n")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def tasks_file(tmp: Path) -> Path:
    """A task file that leaves a mark when it is imported (it must not be, untrusted)."""
    return write(tmp / "tasks.py", f"from pathlib import Path\nPath({str(tmp / 'IMPORTED')!r})"
                 ".write_text('ran')\n")


def hide(*modules: str) -> Callable:
    def setup(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        for m in modules:
            monkeypatch.setitem(sys.modules, m, None)  # `import m` fails: not installed
    return setup


OUT = "w/x/y/out"  # deep enough that an escaping name would still land in the test's folder
# (case id, argv with {tmp} for the test's folder, files to make first, what stderr says)
CASES: list[tuple[str, list[str], Callable | None, str]] = [
    ("name escapes --out", ["run", "quick", "--set", "name=../../../../escaped", "--out",
                            "{tmp}/" + OUT, *SETS], None, "not a plain folder name"),
    ("name escapes --out, dry", ["run", "quick", "--set", "name=../../../../escaped", "--out",
                                 "{tmp}/" + OUT, "--dry-run"], None, "not a plain folder name"),
    ("absolute name", ["run", "quick", "--set", "name={tmp}/abs", "--out", "{tmp}/" + OUT,
                       *SETS], None, "not a plain folder name"),
    ("sweep name escapes", ["run", "{tmp}/s.yaml", "--out", "{tmp}/" + OUT, "--dry-run"],
     lambda t, m: write(t / "s.yaml", "sweep: ../../../../s\nexperiments: [{base: g1, "
                        "name: a}]\n"), "sweep name"),
    ("sweep entry name escapes", ["run", "{tmp}/s.yaml", "--out", "{tmp}/" + OUT, "--dry-run"],
     lambda t, m: write(t / "s.yaml", "sweep: s\nexperiments: [{base: g1, name: '../{m}'}]\n"
                        "grid: {m: {keys: [seeds], values: [[0]]}}\n"), "experiment name"),
    ("report: one damaged manifest of two", ["report", "{tmp}/exp"],
     lambda t, m: two_runs_one_damaged(t), "manifest.json"),
    ("results: one damaged manifest of two", ["results", "{tmp}/exp"],
     lambda t, m: two_runs_one_damaged(t), "manifest.json"),
    ("heads: one damaged manifest of two", ["heads", "{tmp}/exp", "--quiet"],
     lambda t, m: two_runs_one_damaged(t), "manifest.json"),
    ("report: a run folder that is also an experiment folder", ["report", "{tmp}/exp"],
     lambda t, m: run_and_index(t), "holds both manifest.json"),
    ("results: a run folder that is also an experiment folder", ["results", "{tmp}/exp"],
     lambda t, m: run_and_index(t), "holds both manifest.json"),
    ("--out is a file", ["run", "quick", "--out", "{tmp}/f", *SETS],
     lambda t, m: write(t / "f", "x"), "is a file"),
    ("--out is a file, dry", ["run", "quick", "--out", "{tmp}/f", "--dry-run"],
     lambda t, m: write(t / "f", "x"), "is a file"),
    ("--out under a file, dry", ["run", "quick", "--out", "{tmp}/f/g", "--dry-run"],
     lambda t, m: write(t / "f", "x"), "is a file"),
    ("--out not writable", ["run", "quick", "--out", "/proc/x", *SETS], None, "cannot write"),
    ("--out not writable, dry", ["run", "quick", "--out", "/proc/x", "--dry-run"], None,
     "cannot write"),
    ("unknown executor", ["run", "quick", "--out", "{tmp}/out", "--executor", "nope", *SETS],
     None, "invalid choice"),
    ("cuda without a GPU", ["run", "quick", "--out", "{tmp}/out", "--set", "train.device=cuda",
                            *SETS], None, "no NVIDIA GPU"),
    ("cuda without a GPU, dry", ["run", "quick", "--out", "{tmp}/out", "--set",
                                 "train.device=cuda", "--dry-run"], None, "no NVIDIA GPU"),
    ("missing model.init, dry", ["run", "quick", "--out", "{tmp}/out", "--set",
                                 "model.init={tmp}/nowhere", "--dry-run"], None, "no model folder"),
    ("model.init without config, dry", ["run", "quick", "--out", "{tmp}/out", "--set",
                                        "model.init={tmp}/m", "--dry-run"],
     lambda t, m: (t / "m").mkdir(), "config.json missing"),
    ("model.init not GGUF, dry", ["run", "quick", "--out", "{tmp}/out", "--set",
                                  "model.init={tmp}/m.gguf", "--dry-run"],
     lambda t, m: write(t / "m.gguf", "text"), "not a readable GGUF file"),
    ("--log tensorboard, not installed", ["run", "quick", "--out", "{tmp}/out", "--log",
                                          "tensorboard", *SETS], hide("tensorboard"),
     "needs the tensorboard package"),
    ("--log wandb, not installed, dry", ["run", "quick", "--out", "{tmp}/out", "--log", "wandb",
                                         "--dry-run"], hide("wandb"), "needs the wandb package"),
    ("--workers 0", ["run", "quick", "--out", "{tmp}/out", "--workers", "0", *SETS], None,
     "at least 1"),
    ("--workers -3", ["run", "quick", "--out", "{tmp}/out", "--workers", "-3", *SETS], None,
     "at least 1"),
    ("a key written twice", ["run", "{tmp}/e.yaml", "--out", "{tmp}/out", "--dry-run"],
     lambda t, m: write(t / "e.yaml", GROUP + "seeds: [0]\nseeds: [1]\n"), "duplicate key"),
    ("a key written twice in a section", ["run", "{tmp}/e.yaml", "--out", "{tmp}/out",
                                          "--dry-run"],
     lambda t, m: write(t / "e.yaml", GROUP + "train:\n  steps: 3\n  steps: 4\n"),
     "duplicate key"),
    ("tasks_from without trust", ["run", "{tmp}/e.yaml", "--out", "{tmp}/out", "--dry-run"],
     lambda t, m: (tasks_file(t), write(t / "e.yaml", "tasks_from: tasks.py\n" + GROUP)),
     "--trust-task-code"),
    ("tasks_from of a sweep without trust", ["run", "{tmp}/s.yaml", "--out", "{tmp}/out",
                                             "--dry-run"],
     lambda t, m: (tasks_file(t), write(t / "s.yaml", "sweep: s\ntasks_from: tasks.py\n"
                                       "experiments: [{base: g1, name: a}]\n")),
     "--trust-task-code"),
    ("tasks_from of a base without trust", ["run", "{tmp}/e.yaml", "--out", "{tmp}/out",
                                            "--dry-run"],
     lambda t, m: (tasks_file(t), write(t / "b.yaml", "tasks_from: tasks.py\n" + GROUP),
                   write(t / "e.yaml", "base: b.yaml\n")), "--trust-task-code"),
    ("generate: damaged safetensors", ["generate", "{tmp}/ckpt", "copy", "--length", "3"],
     lambda t, m: checkpoint(t, "damaged"), "cannot load the model"),
    ("generate: pickled pytorch_model.bin", ["generate", "{tmp}/ckpt", "copy", "--length", "3"],
     lambda t, m: checkpoint(t, "pickle"), "cannot load the model"),
    ("generate: a checkpoint naming task code", ["generate", "{tmp}/ckpt", "copy", "--length",
                                                 "3"],
     lambda t, m: run_naming_tasks(t, "checkpoint"), "--trust-task-code"),
    ("heads: a run folder naming task code", ["heads", "{tmp}/run"],
     lambda t, m: run_naming_tasks(t, "run"), "--trust-task-code"),
    ("generate: no such checkpoint", ["generate", "{tmp}/none", "copy", "--length", "3"], None,
     "no lgtransfer checkpoint"),
    ("a malformed --cluster-option", ["run", "quick", "--out", "{tmp}/out", "--executor",
                                       "submitit", "--cluster-option", "x=[", *SETS], None,
     "cannot parse"),
    ("a base name too long for a file name", ["run", "{tmp}/e.yaml", "--out", "{tmp}/out",
                                              "--dry-run"],
     lambda t, m: write(t / "e.yaml", "base: " + "b" * 300 + "\n"), "unknown experiment"),
    ("unknown preset", ["run", "no-such-preset", "--out", "{tmp}/out", "--dry-run"], None,
     "unknown experiment"),
    ("unknown key", ["run", "quick", "--out", "{tmp}/out", "--set", "train.stepz=3",
                     "--dry-run"], None, "unknown config key"),
]


@pytest.mark.parametrize("argv, setup, says", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(argv, setup, says, tmp_path,
                                                         monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # a relative path written by mistake lands here too
    if setup is not None:
        setup(tmp_path, monkeypatch)
    before = snapshot(tmp_path)
    capsys.readouterr()
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("lgt: error: ") and says in err, err
    assert snapshot(tmp_path) == before  # nothing written (nor removed), here or elsewhere
    assert not (tmp_path / "IMPORTED").exists()  # an untrusted task file was never imported


def test_the_real_entry_point_says_one_line_for_an_unwritable_out(tmp_path):
    out = subprocess.run([sys.executable, "-m", "lgtransfer.cli", "run", "quick", "--out",
                          "/proc/x", "--dry-run"], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith("lgt: error: --out /proc/x: cannot write in /proc")
    assert list(tmp_path.iterdir()) == []


def test_task_code_runs_when_the_user_allows_it(tmp_path, monkeypatch, capsys):
    """`--trust-task-code`, LGT_TRUST_TASK_CODE=1, or the file named with --tasks-from."""
    tasks = write(tmp_path / "tasks.py", "from lgtransfer.tasks import simple_task\n"
                  "@simple_task('mine', max_length=20, space_size=lambda n: 10.0 ** n)\n"
                  "def mine(rng, n):\n    x = ''.join(str(d) for d in rng.integers(0, 10, n))\n"
                  "    return x + '=', x[::-1]\n")
    exp = write(tmp_path / "e.yaml", "tasks_from: tasks.py\ngroup: [{task: mine, role: main, "
                "max_length: 4}, {task: copy, role: aux, max_length: 8}]\n")
    dry = ["run", str(exp), "--out", str(tmp_path / "out"), "--dry-run"]
    assert main(dry) == 2
    assert main([*dry, "--trust-task-code"]) == 0
    assert main([*dry, "--tasks-from", str(tasks)]) == 0
    monkeypatch.setenv("LGT_TRUST_TASK_CODE", "1")
    assert main(dry) == 0
    assert "pending" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()


def test_base_resolves_against_the_file_that_names_it(tmp_path, monkeypatch, capsys):
    write(tmp_path / "sub" / "parent.yaml", GROUP + "seeds: [3]\n")
    child = write(tmp_path / "sub" / "child.yaml", "base: parent.yaml\ntrain: {steps: 5}\n")
    monkeypatch.chdir(tmp_path)  # not the files' folder
    (entry,) = load_experiments([str(child)], budget="cpu")
    assert entry.config.seeds == [3] and entry.config.train.steps == 5
    assert entry.config.group[0].max_length == 4


def test_a_budget_inherited_over_the_files_own_field_is_noted(tmp_path, capsys):
    child = write(tmp_path / "c.yaml", "base: g1\ngroup:\n  - {task: reverse_add, role: main, "
                  "max_length: 5}\n  - {task: no_carry, role: aux, max_length: 12}\n"
                  "  - {task: carry_only, role: aux, max_length: 12}\nseeds: [0]\n")
    (entry,) = load_experiments([str(child)], budget="cpu")
    assert entry.config.group[0].max_length == 6  # g1's cpu budget wins, as documented
    assert entry.notes == [f"note: {child}: budgets.cpu (inherited from its base) sets "
                           "group.0.max_length=6 over the file's 5"]
    assert main(["run", str(child), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    assert entry.notes[0] in capsys.readouterr().out.splitlines()
    (quick,) = load_experiments(["quick"])
    assert quick.notes == []  # its own fields (seeds, ...) are not the budget's


def test_help_teaches_every_option_and_the_presets(capsys):
    from lgtransfer.cli import build_parser
    from lgtransfer.config import preset_names

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        for action in p._actions:
            if action.dest == "help":
                continue
            assert action.help, (name, action.dest)
            if action.option_strings and action.nargs != 0 and not action.required:
                assert "default" in p._get_formatter()._get_help_string(action), (name,
                                                                                  action.dest)
    text = sub.choices["run"].format_help()
    assert all(n in text for n in preset_names())
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    import lgtransfer

    assert capsys.readouterr().out.strip() == f"lgt {lgtransfer.__version__}"


def test_the_smallest_valid_run_trains_to_the_end_with_its_heads_recorded(tmp_path, capsys):
    """Main task 2, auxiliaries 3, two steps, head recorder on: no length lies between the two
    training lengths, so the gap is undefined (null), and the run completes."""
    out = tmp_path / "out"
    argv = ["run", "quick", "--out", str(out), "--quiet", "--executor", "inline", *SETS,
            "--set", "seeds=[1]", "--set", "group.0.max_length=2", "--set",
            "group.1.max_length=3", "--set", "group.2.max_length=3", "--set", "eval.max_length=4",
            "--set", "heads.record=true", "--set", "heads.every=1", "--set", "heads.n=4",
            "--set", "heads.random_draws=2"]
    assert main(argv) == 0, capsys.readouterr().err
    (run,) = (out / "cpu" / "quick").glob("with_aux_*")
    assert rundir.is_complete(run)
    heads = rundir.read_jsonl(run / "heads.jsonl")
    gaps = [r for r in heads if r["metric"] == "gap"]
    assert max(r["step"] for r in gaps) == 2 and all(r["value"] is None for r in gaps)


# ----------------------------------------------------------------------------- the property

KEYS = ["name", "description", "figure", "seeds", "baseline", "budget", "base", "budgets",
        "tasks_from", "log", "group", "model", "train", "eval", "heads", "sweep", "experiments",
        "grid", "set", "matrix"]
DOTTED = ["train.steps", "train.lr", "train.device", "eval.n", "eval.max_length", "seeds",
          "group.0.max_length", "group.1.task", "group.0.role", "model.n_head", "model.init",
          "model.stages", "heads.k", "baseline", "name", "log", "budget", "nope", "train",
          "group.9.task", "group", "model.init.x", "eval.lengths"]
scalars = st.none() | st.booleans() | st.integers(-3, 40) | st.floats(allow_nan=True) | \
    st.text(max_size=12)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner,
                                        max_size=4), max_leaves=12)
group_entry = st.fixed_dictionaries({"task": st.sampled_from(["copy", "reverse", "nope", 3]),
                                     "role": st.sampled_from(["main", "aux", "x"]),
                                     "max_length": st.integers(-1, 30) | st.text(max_size=3)})
documents = st.dictionaries(st.sampled_from(KEYS), values, max_size=6) | st.builds(
    lambda g, rest: {"group": g, **rest}, st.lists(group_entry, max_size=3),
    st.dictionaries(st.sampled_from(KEYS[:10]), values, max_size=3))
texts = st.text(max_size=60) | st.sampled_from(["a: [", "a: 1\na: 2\n", "- 1\n- 2", "{x", ""])
assignments = st.builds(lambda k, v: f"{k}={v}", st.sampled_from(DOTTED),
                        st.text(max_size=12) | st.sampled_from(["[0, 1]", "{a: 1}", "[", "null",
                                                                "1e-3", "-5", "cuda", "'x"]))


def loads_or_says_one_line(path: Path, sets: list[str]) -> None:
    try:
        for e in load_experiments([str(path)], sets, "cpu"):
            validate_runs(e.config)
    except UsageError as e:
        assert str(e) and "\n" not in str(e), repr(str(e))


@settings(max_examples=200, deadline=None)
@given(doc=documents, sets=st.lists(assignments, max_size=3))
@example(doc={"name": None, "budgets": {}}, sets=[])  # found by a longer run: StopIteration
@example(doc={"budgets": {1: {}, "x": {}}}, sets=[])
@example(doc={"base": "b" * 300}, sets=[])  # a name too long for the file system
def test_generated_documents_and_sets_load_or_are_one_line(tmp_path_factory, doc, sets):
    path = tmp_path_factory.mktemp("doc") / "e.yaml"
    path.write_text(yaml.safe_dump(doc))
    loads_or_says_one_line(path, sets)


@settings(max_examples=200, deadline=None)
@given(text=texts, sets=st.lists(assignments, max_size=2))
def test_generated_text_loads_or_is_one_line(tmp_path_factory, text, sets):
    path = tmp_path_factory.mktemp("text") / "e.yaml"
    path.write_text(text)
    loads_or_says_one_line(path, sets)
