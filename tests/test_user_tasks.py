"""Your own tasks: from a file and from an installed package's entry point, sampled, listed and
trained; the simple form against a hand-vectorized task; every `--check` failure; the manifest's
record of where a task came from; the transfer-matrix sweep and its heatmap."""

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lgtransfer.cli import main
from lgtransfer.runtime import rundir
from lgtransfer.tasks import Task, TaskBatch, get_task
from lgtransfer.tasks import tokenizer as tok
from lgtransfer.tasks.base import pad_rows

TINY = ["model.n_layer=1", "model.n_head=2", "model.d_model=32", "model.d_ff=64",
        "train.steps=4", "train.batch_size=8", "train.eval_every=4", "train.checkpoint_every=4",
        "eval.n=8", "seeds=[0]"]
SETS = [a for s in TINY for a in ("--set", s)]
SORT_TASKS = '''
from lgtransfer.tasks import simple_task

@simple_task("{name}", family="string", length_unit="digits", max_length=32,
             space_size=lambda n: 10.0 ** n)
def make(rng, length):
    s = "".join(str(d) for d in rng.integers(0, 10, length))
    return s + "=", "".join(sorted(s))
'''


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_a_task_from_a_file_is_listed_sampled_trained_and_traced(tmp_path, capsys):
    tasks = write(tmp_path / "my_tasks.py", SORT_TASKS.format(name="file_sort"))
    assert main(["tasks", "--tasks-from", str(tasks)]) == 0
    assert "file_sort" in capsys.readouterr().out
    assert main(["sample", "file_sort", "--length", "5", "--tasks-from", str(tasks)]) == 0
    ex = json.loads(capsys.readouterr().out)
    assert ex["target"] == "".join(sorted(ex["prompt"].rstrip("=")))
    exp = write(tmp_path / "exp.yaml", """
        tasks_from: my_tasks.py
        group:
          - {task: file_sort, role: main, max_length: 4}
          - {task: reverse, role: aux, max_length: 8}
        """)
    # a data worker process (spawned) rebuilds the group by name, loading the file itself
    assert main(["run", str(exp), "--budget", "cpu", "--out", str(tmp_path / "runs"), "--quiet",
                 "--executor", "inline", "--set", "train.data_workers=1", "--trust-task-code",
                 *SETS]) == 0
    (run,) = (tmp_path / "runs" / "cpu" / "exp").glob("with_aux_*")
    manifest = rundir.read_json(run / "manifest.json")
    assert manifest["status"] == "complete"
    source = manifest["task_sources"]["file_sort"]
    assert source["from"] == "file" and source["path"] == str(tasks.resolve())
    assert source["sha256"] == hashlib.sha256(tasks.read_bytes()).hexdigest()
    assert manifest["task_sources"]["reverse"] == {"from": "lgtransfer"}
    assert {r["task"] for r in rundir.read_jsonl(run / "eval.jsonl")} == {"file_sort", "reverse"}


def test_a_task_from_an_installed_packages_entry_point(tmp_path):
    site = tmp_path / "site"
    (site / "sorting_pkg").mkdir(parents=True)
    write(site / "sorting_pkg" / "__init__.py", SORT_TASKS.format(name="pkg_sort"))
    info = site / "sorting_pkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sorting-pkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[lgtransfer.tasks]\nsorting = sorting_pkg\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site),
                                                         os.environ.get("PYTHONPATH", "")])}

    def lgt(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lgtransfer.cli", *argv], env=env,
                              capture_output=True, text=True, timeout=300)

    listing = lgt("tasks")
    assert listing.returncode == 0 and "pkg_sort" in listing.stdout, listing.stderr
    sample = lgt("sample", "pkg_sort", "--length", "6")
    assert sample.returncode == 0, sample.stderr
    exp = write(tmp_path / "exp.yaml", """
        group: [{task: pkg_sort, role: main, max_length: 4}, {task: copy, role: aux, max_length: 8}]
        """)
    done = lgt("run", str(exp), "--budget", "cpu", "--out", str(tmp_path / "runs"), "--quiet",
               "--executor", "inline", *SETS)
    assert done.returncode == 0, done.stderr[-2000:]
    (run,) = (tmp_path / "runs" / "cpu" / "exp").glob("with_aux_*")
    source = rundir.read_json(run / "manifest.json")["task_sources"]["pkg_sort"]
    assert source["from"] == "entry point" and source["package"] == "sorting-pkg 0.1"
    assert source["sha256"] == hashlib.sha256(
        (site / "sorting_pkg" / "__init__.py").read_bytes()).hexdigest()


class VectorizedSort(Task):
    """The same task as SORT_TASKS, written by hand with numpy."""

    name, family, length_unit, max_length = "vectorized_sort", "string", "digits", 32

    def batch(self, rng: np.random.Generator, lengths: np.ndarray) -> TaskBatch:
        width = int(lengths.max())
        d = rng.integers(0, 10, (len(lengths), width))
        valid = np.arange(width) < lengths[:, None]
        keys = np.where(valid, d, 10)  # padding sorts last
        ids = tok.char_id("0") + d
        p, p_len = pad_rows([[*ids[i, :n], tok.char_id("=")] for i, n in enumerate(lengths)])
        t, t_len = pad_rows([list(tok.char_id("0") + np.sort(keys[i])[:n])
                             for i, n in enumerate(lengths)])
        return TaskBatch(self.name, lengths.astype(np.int64), p, p_len, t, t_len,
                         np.arange(t.shape[1]) < t_len[:, None])


def test_the_simple_form_matches_a_hand_vectorized_task(tmp_path):
    from lgtransfer.tasks.user import load_file

    load_file(write(tmp_path / "simple_sort.py", SORT_TASKS.format(name="simple_sort")))
    simple, vectorized = get_task("simple_sort"), VectorizedSort()
    for length in range(1, 13):
        for seed in range(3):  # one example draws the same digits either way
            a = simple.batch(np.random.default_rng(seed), np.array([length]))
            b = vectorized.batch(np.random.default_rng(seed), np.array([length]))
            for field in ("length", "prompt", "prompt_len", "target", "target_len",
                          "target_mask"):
                assert np.array_equal(getattr(a, field), getattr(b, field)), (length, field)
    many = simple.batch(np.random.default_rng(0), np.arange(1, 33))
    for ex in many.examples():
        assert ex.target == "".join(sorted(ex.prompt.rstrip("="))) and ex.loss_mask is None


BROKEN = {
    "not deterministic": '''
        import random
        from lgtransfer.tasks import simple_task

        @simple_task("flaky", max_length=8)
        def make(rng, length):
            s = "".join(random.choice("ab") for _ in range(length))
            return s + "=", s
        ''',
    "cannot make length 6": '''
        from lgtransfer.tasks import simple_task

        @simple_task("short_only", max_length=8)
        def make(rng, length):
            if length > 5:
                raise ValueError("too long for me")
            return "a" * length + "=", "a" * length
        ''',
    "vocabulary lacks": '''
        from lgtransfer.tasks import simple_task

        @simple_task("accents", max_length=8)
        def make(rng, length):
            return "é" * length + "=", "e" * length
        ''',
    "empty target": '''
        from lgtransfer.tasks import simple_task

        @simple_task("nothing", max_length=8)
        def make(rng, length):
            return "a" * length + "=", ""
        ''',
    "loss mask of 1 entries for a target of 3": '''
        from lgtransfer.tasks import simple_task

        @simple_task("masked", max_length=8)
        def make(rng, length):
            return "a" * length + "=", "abc", [1]
        ''',
    "larger than the task at length 1": '''
        from lgtransfer.tasks import simple_task

        @simple_task("tiny_space", max_length=8)
        def make(rng, length):
            s = "".join(str(d) for d in rng.integers(0, 10, length))
            return s + "=", s
        ''',
    "registered twice": '''
        from lgtransfer.tasks import simple_task

        @simple_task("copy", max_length=8)
        def make(rng, length):
            return "a" * length + "=", "a" * length
        ''',
    "loading it failed: NameError": '''
        from lgtransfer.tasks import simple_task
        undefined_name
        ''',
}


@pytest.mark.parametrize("message", list(BROKEN))
def test_check_names_each_problem_in_one_line(tmp_path, capsys, message):
    bad = write(tmp_path / "bad_tasks.py", BROKEN[message])
    assert main(["tasks", "--check", str(bad), "--eval-n", "64"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert message in err, err


def test_lgt_run_refuses_a_broken_task_before_any_run_folder(tmp_path, capsys):
    write(tmp_path / "tasks.py", BROKEN["empty target"])
    exp = write(tmp_path / "exp.yaml", """
        tasks_from: tasks.py
        group: [{task: nothing, role: main, max_length: 4}, {task: copy, role: aux, max_length: 8}]
        """)
    assert main(["run", str(exp), "--budget", "cpu", "--out", str(tmp_path / "runs"),
                 "--trust-task-code", *SETS]) == 2
    assert "empty target" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_the_transfer_matrix_expands_and_draws_its_heatmap(tmp_path, capsys):
    sweep = write(tmp_path / "m.yaml", """
        sweep: m
        matrix: {tasks: [copy, reverse, capitalize], main_length: 4, aux_length: 8}
        set: {figure: matrix, eval.max_length: 8}
        """)
    assert main(["run", str(sweep), "--budget", "cpu", "--out", str(tmp_path / "runs"),
                 "--dry-run", *SETS]) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("pending")]
    assert len(lines) == 6 + 6  # 6 ordered pairs, each with its main-alone baseline listed
    assert len({x.split()[-1] if "(for" not in x else x.split()[3] for x in lines}) == 9
    names = {Path(x.split()[3]).parent.name for x in lines if "(for" not in x}
    assert names == {"copy-from-reverse", "copy-from-capitalize", "reverse-from-copy",
                     "reverse-from-capitalize", "capitalize-from-copy", "capitalize-from-reverse"}
    small = write(tmp_path / "m2.yaml", """
        sweep: m2
        matrix: {tasks: [copy, reverse], main_length: 4, aux_length: 8}
        set: {figure: matrix, eval.max_length: 8}
        """)
    assert main(["run", str(small), "--budget", "cpu", "--out", str(tmp_path / "runs"),
                 "--quiet", "--executor", "inline", *SETS]) == 0
    report = (tmp_path / "runs" / "cpu" / "m2" / "report.md").read_text()
    assert "## Transfer matrix (beyond the paper)" in report
    assert "copy from reverse" in report and "reverse from copy" in report
    assert (tmp_path / "runs" / "cpu" / "m2" / "fig_matrix.png").is_file()


def test_a_partial_run_does_not_resume_with_edited_task_code(tmp_path, capsys):
    tasks = write(tmp_path / "my_tasks.py", SORT_TASKS.format(name="edited_sort"))
    exp = write(tmp_path / "exp.yaml", """
        tasks_from: my_tasks.py
        group: [{task: edited_sort, role: main, max_length: 4}]
        """)
    argv = ["run", str(exp), "--budget", "cpu", "--out", str(tmp_path / "runs"), "--quiet",
            "--executor", "inline", "--trust-task-code", *SETS, "--set", "baseline=none",
            "--set", "train.keep_resume=true", "--set", "train.checkpoint_every=2"]
    assert main(argv) == 0
    (run,) = (tmp_path / "runs" / "cpu" / "exp").glob("*_seed0_*")
    manifest = rundir.read_json(run / "manifest.json")
    rundir.write_json(run / "manifest.json", {**manifest, "status": "running", "pid": 1 << 22})
    tasks.write_text(tasks.read_text() + "\n# edited\n")
    from lgtransfer.tasks import user

    user._files.clear()  # a new process would read the edited file
    for name in [n for n, src in user.SOURCES.items() if src.get("path") == str(tasks)]:
        del user.SOURCES[name]
    from lgtransfer.tasks import TASKS

    TASKS.pop("edited_sort", None)
    capsys.readouterr()
    assert main(argv) == 2
    assert "changed since" in capsys.readouterr().err


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sort_digits"


def counting_sort(digits: str, descending: bool = False) -> str:
    """An independent reference: count each digit, then write the counts out in order."""
    counts = [digits.count(str(d)) for d in range(10)]
    order = range(9, -1, -1) if descending else range(10)
    return "".join(str(d) * counts[d] for d in order)


def test_the_shipped_example_checks_samples_correctly_and_plans_its_runs(tmp_path, capsys):
    tasks = str(EXAMPLE / "tasks.py")
    assert main(["tasks", "--check", tasks]) == 0
    capsys.readouterr()
    for name, descending in (("sort_digits", False), ("sort_desc", True)):
        assert main(["sample", name, "--length", "9", "--count", "20", "--tasks-from",
                     tasks]) == 0
        rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
        assert len(rows) == 20
        for r in rows:
            digits = r["prompt"].removesuffix("=")
            assert len(digits) == 9 and r["target"] == counting_sort(digits, descending)
    assert main(["run", str(EXAMPLE / "sort.yaml"), "--out", str(tmp_path / "runs"),
                 "--dry-run", "--trust-task-code"]) == 0
    lines = capsys.readouterr().out.splitlines()
    planned = [x for x in lines if x.startswith("pending")]
    assert len(planned) == 6 and all("/cpu/sort/" in x for x in planned)  # 3 seeds x 2 variants
