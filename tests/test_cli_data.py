"""`lgt tasks` and `lgt sample`: output format, byte-for-byte reproducibility, errors (status 2,
one line on stderr, nothing on stdout), speed, and no torch import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import reference as ref

from lgtransfer.cli import main

CLI = [sys.executable, "-m", "lgtransfer.cli"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, timeout=60)


def records(out: str) -> list[dict]:
    assert out.endswith("\n")
    return [json.loads(line) for line in out.splitlines()]


# ----------------------------------------------------------------------------- lgt tasks


def test_tasks_lists_all_14(capsys):
    assert main(["tasks"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert len(lines) == 1 + len(ref.ALL_TASKS)
    names = [line.split()[0] for line in lines[1:]]
    assert sorted(names) == sorted(ref.ALL_TASKS)
    families = {line.split()[0]: line.split()[1] for line in lines[1:]}
    for name in ref.ARITHMETIC:
        assert families[name] == "arithmetic"
    for name in ref.STRINGS:
        assert families[name] == "string"
    for name in ref.MAZES:
        assert families[name] == "maze"
    for line in lines[1:]:  # one example each, correct by the reference
        name = line.split()[0]
        prompt, target = line.rsplit("  ", 1)[1].split(" -> ")
        ref.check(name, prompt, target)


def test_tasks_subprocess():
    result = run_cli("tasks")
    assert result.returncode == 0 and result.stderr == b""
    assert len(result.stdout.decode().splitlines()) == 1 + len(ref.ALL_TASKS)


# ----------------------------------------------------------------------------- lgt sample


@pytest.mark.parametrize("name", ref.ALL_TASKS)
def test_sample_prints_json_lines(name, capsys):
    length = 9
    assert main(["sample", name, "--length", str(length), "--count", "5", "--seed", "3"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    rows = records(out)
    assert len(rows) == 5
    for row in rows:
        expected_keys = {"task", "length", "prompt", "target"} | (
            {"loss_mask"} if name == "mqar" else set())
        assert set(row) == expected_keys
        assert row["task"] == name and row["length"] == length
        ref.check(name, row["prompt"], row["target"])
        assert ref.task_length(name, row["prompt"]) == length
        if name == "mqar":
            assert row["loss_mask"] == [0, 1] * ref.mqar_queries(length)


def test_sample_defaults_to_one_example(capsys):
    assert main(["sample", "copy", "--length", "4"]) == 0
    assert len(records(capsys.readouterr().out)) == 1


@pytest.mark.parametrize("name", ["reverse_add", "cot_mul", "mqar", "shortest_path"])
def test_sample_is_byte_identical_for_the_same_arguments(name):
    args = ("sample", name, "--length", "12", "--count", "20", "--seed", "5")
    first, second = run_cli(*args), run_cli(*args)
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout and first.stdout
    other = run_cli("sample", name, "--length", "12", "--count", "20", "--seed", "6")
    assert other.returncode == 0 and other.stdout != first.stdout


def test_sample_in_process_matches_subprocess(capsys):
    args = ["sample", "dfs_trace", "--length", "20", "--count", "7", "--seed", "11"]
    assert main(args) == 0
    assert capsys.readouterr().out.encode() == run_cli(*args).stdout


def test_sample_seeds_differ(capsys):
    outputs = set()
    for seed in range(5):
        assert main(["sample", "capitalize", "--length", "20", "--count", "3",
                     "--seed", str(seed)]) == 0
        outputs.add(capsys.readouterr().out)
    assert len(outputs) == 5


BAD_ARGS = [
    ["sample", "nope", "--length", "3"],
    ["sample", "copy", "--length", "0"],
    ["sample", "mqar", "--length", "1"],
    ["sample", "dfs_trace", "--length", "65"],
    ["sample", "reverse_add", "--length", "321"],
    ["sample", "copy", "--length", "3", "--count", "0"],
    ["sample", "copy", "--length", "3", "--count", "-2"],
    ["sample", "copy", "--length", "three"],
    ["sample", "copy", "--length", "2.5"],
    ["sample", "copy"],
    ["sample"],
    ["frobnicate"],
    [],
]


@pytest.mark.parametrize("args", BAD_ARGS, ids=lambda a: " ".join(a) or "no-args")
def test_bad_input_in_process(args, capsys):
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.endswith("\n") and len(err.splitlines()) == 1
    assert err.startswith("lgt: error: ")


@pytest.mark.parametrize(
    "args",
    [["sample", "nope", "--length", "3"], ["sample", "copy", "--length", "0"],
     ["sample", "dfs_trace", "--length", "65"], ["sample", "copy", "--length", "3", "--count", "0"],
     ["sample", "copy", "--length", "x"]],
    ids=lambda a: " ".join(a),
)
def test_bad_input_subprocess(args):
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stdout == b""
    assert len(result.stderr.decode().splitlines()) == 1


def test_error_names_the_problem(capsys):
    main(["sample", "nope", "--length", "3"])
    assert "nope" in capsys.readouterr().err
    main(["sample", "dfs_trace", "--length", "65"])
    err = capsys.readouterr().err
    assert "dfs_trace" in err and "65" in err


def test_sample_does_not_import_torch():
    """How fast it starts is `benchmarks/bench_cli.py`'s to measure, not a test's."""
    code = ("import sys; from lgtransfer.cli import main; "
            "main(['sample', 'copy', '--length', '3']); assert 'torch' not in sys.modules")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    assert records(result.stdout.decode())[0]["task"] == "copy"
