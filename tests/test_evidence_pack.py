"""Packing a window's runs within what a GPU machine may send back (at most 8 files of at most
16 MiB) and unpacking them into results/gpu/ without trusting the files."""

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from lgtransfer.errors import UsageError
from lgtransfer.orchestration import evidence_pack as ep
from lgtransfer.runtime import rundir


def run_folder(budget: Path, exp: str, name: str, finished: float, big: int = 0,
               status: str = "complete") -> Path:
    d = budget / exp / name
    rundir.write_yaml(d / "config.yaml", {"budget": "gpu", "seed": 43})
    rundir.write_json(d / "manifest.json", {"status": status, "finished": finished,
                                            "config_hash": name[-4:]})
    rundir.write_jsonl(d / "eval.jsonl", [{"step": 1, "accuracy": 1.0}])
    rundir.write_jsonl(d / "metrics.jsonl", [{"step": 1, "loss": 0.5}])
    if big:  # incompressible, so the packed size is the raw size (unpack would refuse it)
        (d / "heads.jsonl").write_bytes(os.urandom(big))
    (d / "checkpoints" / "step-1").mkdir(parents=True)
    (d / "checkpoints" / "step-1" / "model.safetensors").write_bytes(b"x" * 1000)
    rundir.record_experiment_runs(budget / exp, exp, "", [d])
    return d


def members(files: list[Path]) -> set[str]:
    out = set()
    for f in files:
        with tarfile.open(f) as tar:
            out |= set(tar.getnames())
    return out


def test_packs_complete_runs_without_checkpoints_and_the_records(tmp_path):
    budget, records = tmp_path / "runs" / "gpu", tmp_path / "windows"
    run_folder(budget, "g1", "with_aux_seed43_aaaa", 1.0)
    run_folder(budget, "g1", "main_only_seed43_bbbb", 2.0, status="interrupted")
    rundir.write_json(records / "window-1.json", {"runs": []})
    out = ep.pack(budget, records, tmp_path / "pack", "ev")
    files = [tmp_path / "pack" / f for f in out["files"]]
    assert out["runs"] == ["g1/with_aux_seed43_aaaa"] and out["left_out"] == []
    assert members(files) == {f"g1/with_aux_seed43_aaaa/{n}" for n in
                              ("config.yaml", "manifest.json", "eval.jsonl", "metrics.jsonl")} | {
        "g1/experiment.json", "windows/window-1.json"}
    with tarfile.open(files[0]) as tar:  # the index lists only what travels
        index = json.load(tar.extractfile("g1/experiment.json"))
    assert index["runs"] == ["with_aux_seed43_aaaa"]


def test_large_runs_spread_over_files_under_the_device_limit(tmp_path):
    budget = tmp_path / "runs" / "gpu"
    for i in range(3):  # 3 x 9 MiB of incompressible head metrics: one run per 16 MiB file
        run_folder(budget, "g1", f"with_aux_seed{i}_k{i:03d}", float(i), big=9 * 2**20)
    out = ep.pack(budget, None, tmp_path / "pack", "ev")
    sizes = [(tmp_path / "pack" / f).stat().st_size for f in out["files"]]
    assert len(out["files"]) == 3 and out["left_out"] == []
    assert max(sizes) <= ep.MAX_BYTES and min(sizes) > 9 * 2**20


def test_what_cannot_fit_in_the_files_allowed_is_named_the_oldest_runs_go_first(tmp_path):
    budget, mib = tmp_path / "runs" / "gpu", 2**20
    for i in range(5):  # 5 x 0.7 MiB, at most 2 files of 1.6 MiB: two runs per file
        run_folder(budget, "g1", f"with_aux_seed{i}_k{i:03d}", float(5 - i), big=7 * mib // 10)
    out = ep.pack(budget, None, tmp_path / "pack", "ev", max_files=2, max_bytes=16 * mib // 10)
    assert len(out["files"]) == 2
    assert all((tmp_path / "pack" / f).stat().st_size <= 16 * mib // 10 for f in out["files"])
    assert out["runs"] == [f"g1/with_aux_seed{i}_k{i:03d}" for i in (4, 3, 2, 1)]  # oldest
    assert out["left_out"] == ["g1/with_aux_seed0_k000"]
    # one run over the limit by itself is left out, never written over it
    out = ep.pack(budget, None, tmp_path / "pack2", "ev", max_bytes=mib // 2)
    assert out["runs"] == [] and len(out["left_out"]) == 5
    assert all(f.stat().st_size <= mib // 2 for f in (tmp_path / "pack2").iterdir())


def test_a_new_pack_replaces_the_old_one(tmp_path):
    budget = tmp_path / "runs" / "gpu"
    run_folder(budget, "g1", "with_aux_seed43_aaaa", 1.0)
    ep.pack(budget, None, tmp_path / "pack", "ev-1", replace="ev-*.tar.gz")
    ep.pack(budget, None, tmp_path / "pack", "ev-2", replace="ev-*.tar.gz")
    assert sorted(p.name for p in (tmp_path / "pack").iterdir()) == ["ev-2-1.tar.gz"]


def test_unpack_adds_runs_merges_indexes_and_keeps_what_is_there(tmp_path):
    budget, records = tmp_path / "runs" / "gpu", tmp_path / "windows"
    run_folder(budget, "g1", "with_aux_seed43_aaaa", 1.0)
    rundir.write_json(records / "parallelism.json", {"H100": {"choice": 2}})
    files = [tmp_path / "pack" / f for f in ep.pack(budget, records, tmp_path / "pack",
                                                    "ev")["files"]]
    into = tmp_path / "results" / "gpu"
    run_folder(into, "g1", "with_aux_seed44_cccc", 0.5)  # committed before
    rundir.write_json(into / "windows" / "parallelism.json", {"H200": {"choice": 4}})
    out = ep.unpack(files, into)
    assert out["runs"] == ["g1/with_aux_seed43_aaaa"] and out["kept"] == []
    assert rundir.is_complete(into / "g1" / "with_aux_seed43_aaaa")
    assert not (into / "g1" / "with_aux_seed43_aaaa" / "checkpoints").exists()
    assert rundir.read_json(into / "g1" / "experiment.json")["runs"] == [
        "with_aux_seed43_aaaa", "with_aux_seed44_cccc"]
    assert set(rundir.read_json(into / "windows" / "parallelism.json")) == {"H100", "H200"}
    assert ep.unpack(files, into)["kept"] == ["g1/with_aux_seed43_aaaa"]  # twice: no change


def archive(path: Path, entries: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, content in entries:
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


def info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    i = tarfile.TarInfo(name)
    i.type, i.linkname = kind, link
    return i


GOOD = [(info("g1/r_seed1_k/manifest.json"), b'{"status": "complete"}'),
        (info("g1/r_seed1_k/config.yaml"), b"seed: 1\n")]


@pytest.mark.parametrize("bad, message", [
    ((info("../evil/manifest.json"), b"{}"), "not a plain relative path"),
    ((info("/etc/manifest.json"), b"{}"), "not a plain relative path"),
    ((info("g1/r/../../x/eval.jsonl"), b""), "not a plain relative path"),
    ((info("g1/r/run.py"), b"print(1)"), "not a run file"),
    ((info("g1/r/eval.jsonl", tarfile.SYMTYPE, "/etc/passwd"), b""), "not a regular file"),
    ((info("g1/r/config.yaml"), b"!!python/object/apply:os.system ['true']"), "does not parse"),
    ((info("g1/r/eval.jsonl"), b"{not json\n"), "does not parse"),
    ((info("g1/r2/manifest.json"), b'{"status": "running"}'), "not a complete run"),
    ((info("windows/a/b.json"), b"{}"), "records are"),
])
def test_unpack_refuses_anything_but_plain_data_and_writes_nothing(tmp_path, bad, message):
    path = archive(tmp_path / "bad.tar.gz", [*GOOD, bad])
    into = tmp_path / "results" / "gpu"
    with pytest.raises(UsageError, match=message):
        ep.unpack([path], into)
    assert not into.exists()


def test_unpack_refuses_a_file_that_is_no_archive(tmp_path):
    (tmp_path / "x.tar.gz").write_bytes(b"not gzip")
    with pytest.raises(UsageError, match="not a readable"):
        ep.unpack([tmp_path / "x.tar.gz"], tmp_path / "into")
    with pytest.raises(UsageError, match="no such file"):
        ep.unpack([tmp_path / "missing.tar.gz"], tmp_path / "into")
