"""benchmarks/cpu_throughput.py: `--models`/`--modes`/`--rows-only` time just the rows asked for,
bad names exit 2 in one line, and the smollm2-g1 benches are that preset's runs' shapes."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from lgtransfer.config import expand, load_experiment

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "cpu_throughput.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("cpu_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_the_smollm2_benches_are_the_presets_runs(bench):
    runs = {r.variant: r for r in expand(load_experiment("smollm2-g1"))}
    for name, variant in (("smollm2-alone", "main_only"), ("smollm2-g1", "with_aux")):
        b, run = bench.BENCHES[name], runs[variant]
        assert (b.batch_size, b.buckets) == (run.train.batch_size, run.train.buckets)
        assert [(g.task, g.max_length) for g in b.group] == [(g.task, g.max_length)
                                                             for g in run.group]
        assert b.model_config is None  # SmolLM2's shape


def test_rows_only_times_just_the_models_and_modes_named(bench, tmp_path, monkeypatch):
    out = tmp_path / "out.json"
    monkeypatch.setattr(bench, "gemm_rate", lambda dtype, **_: 1e9)  # the peak is not tested
    monkeypatch.setattr(sys, "argv", ["x", "--quick", "--models", "cpu", "--modes", "fp32,bf16",
                                      "--rows-only", "--json", str(out)])
    bench.main()
    result = json.loads(out.read_text())
    assert [(r["model"], r["mode"]) for r in result["rows"]] == [("cpu", "fp32"), ("cpu", "bf16")]
    assert result["breakdown"] == [] and all(r["step_s"] > 0 for r in result["rows"])


@pytest.mark.parametrize("argv", [["--models", "smollm3"], ["--models", "cpu", "--modes", "fp16"]])
def test_an_unknown_model_or_mode_exits_2_in_one_line(bench, argv, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["x", *argv])
    with pytest.raises(SystemExit) as stop:
        bench.main()
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "unknown model or mode" in err
