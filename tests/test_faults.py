"""Crash artifacts in run folders: a torn last line in a log is skipped with one warning; a
damaged line elsewhere, a damaged manifest or config is one line naming `file:line` and exit 2,
never a traceback; `lgt run` resumes a run whose manifest is damaged, with a warning naming it."""

import json
import math
import os
import pickle
import shutil
import subprocess
import sys

import pytest

from lgtransfer.cli import main
from lgtransfer.runtime import rundir

TINY = ["model.n_layer=2", "model.n_head=2", "model.d_model=32", "model.d_ff=64",
        "train.steps=4", "train.batch_size=4", "train.eval_every=2", "train.checkpoint_every=2",
        "eval.n=4", "seeds=[0]", "baseline=none", "train.keep_resume=true"]
SETS = [a for s in TINY for a in ("--set", s)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny complete G1 run (with aux only), kept pristine; each test works on a copy."""
    out = tmp_path_factory.mktemp("faults") / "runs"
    assert main(["run", "g1", "--budget", "cpu", "--out", str(out), "--quiet",
                 "--executor", "inline", *SETS]) == 0
    return out


@pytest.fixture
def runs(trained, tmp_path):
    copy = tmp_path / "runs"
    shutil.copytree(trained, copy)
    (run,) = (copy / "cpu" / "g1").glob("with_aux_*")
    return copy, run


def resumed_one_line(err: str) -> str:
    """The one line of a command that also said it resumes a run whose manifest is damaged."""
    warning, *rest = err.splitlines()
    assert warning.startswith("lgt: warning: ") and "manifest.json" in warning, err
    return one_line("\n".join(rest))


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_torn_last_line_is_skipped_with_one_warning(runs, capsys):
    out, run = runs
    rows = rundir.read_jsonl(run / "eval.jsonl")
    with (run / "eval.jsonl").open("a") as f:
        f.write('{"experiment": "g1", "variant": "with_a')  # a crash mid-append
    capsys.readouterr()
    assert rundir.read_jsonl(run / "eval.jsonl") == rows
    assert "torn last line" in one_line(capsys.readouterr().err)
    for argv in (["results", str(out)], ["report", str(out / "cpu" / "g1")],
                 ["heads", str(run), "--n", "4", "--k", "2", "--random-draws", "2", "--steps",
                  "last", "--quiet"]):
        assert main(argv) == 0, argv
        capsys.readouterr()


@pytest.mark.parametrize("name, damage", [
    ("eval.jsonl", lambda t: t.replace("\n", "\n{oops\n", 1)),  # a damaged line, not the last
    ("manifest.json", lambda t: t[: len(t) // 2]),
    ("config.yaml", lambda t: t + "\n  - : [\n"),
])
def test_damaged_files_are_one_line_and_exit_2(runs, capsys, name, damage):
    out, run = runs
    path = run / name
    path.write_text(damage(path.read_text()))
    commands = [["results", str(out)], ["report", str(out / "cpu" / "g1")]]
    if name != "manifest.json":  # lgt heads reads config and eval, not the manifest
        commands.append(["heads", str(run), "--n", "4", "--k", "2", "--random-draws", "2",
                         "--quiet"])
    for argv in commands:
        capsys.readouterr()
        assert main(argv) == 2, argv
        line = one_line(capsys.readouterr().err)
        assert name in line, line


def test_lgt_run_resumes_a_run_whose_manifest_is_damaged(runs, capsys):
    out, run = runs
    rows = rundir.read_jsonl(run / "eval.jsonl")
    (run / "manifest.json").write_text('{"status": "comp')  # torn by a crash
    capsys.readouterr()
    assert main(["run", "g1", "--budget", "cpu", "--out", str(out), "--dry-run", *SETS]) == 0
    assert "partial (resumes at step 4)" in capsys.readouterr().out
    assert main(["run", "g1", "--budget", "cpu", "--out", str(out), "--quiet",
                 "--executor", "inline", *SETS]) == 0
    assert rundir.is_complete(run)
    assert rundir.read_jsonl(run / "eval.jsonl") == rows  # nothing lost, nothing repeated


def test_lgt_heads_refuses_more_heads_than_the_model_has(runs, capsys):
    out, run = runs
    capsys.readouterr()
    assert main(["heads", str(run), "--n", "4", "--k", "4", "--quiet"]) == 2
    assert "--k 4 must be between 1 and 3" in one_line(capsys.readouterr().err)
    assert not (run / "heads").exists()  # nothing half-written


DISK_SETS = [a for s in TINY[:-1] + ["train.steps=8", "train.checkpoint_every=2"]
             for a in ("--set", s)]


def lgt_disk(out, fault=None, *executor):
    """`lgt run` of a tiny G1 (8 steps, evaluated and checkpointed every 2) in a subprocess of
    its own process group, with LGT_FAULT set to `fault` (`stopping.fault_point`)."""
    env = {**os.environ, **({"LGT_FAULT": fault} if fault else {})}
    return subprocess.run([sys.executable, "-m", "lgtransfer.cli", "run", "g1", "--budget", "cpu",
                           "--out", str(out), "--quiet", *DISK_SETS,
                           *(executor or ("--executor", "inline"))],  # later --set wins
                          env=env, capture_output=True, text=True, timeout=300,
                          start_new_session=True)


# One interpreter imports lgtransfer (torch and all) once, then forks a child per `lgt run` in
# turn: each child is a process of its own (a SIGKILL ends it alone; its exit status is the
# command's, -9 when killed), without the imports a fresh interpreter pays every time. The
# parent computes nothing, so no thread pool exists yet when it forks.
FORKED_RUNS = r"""
import importlib, json, os, pkgutil, sys, traceback
import lgtransfer
from lgtransfer.cli import main

for module in pkgutil.walk_packages(lgtransfer.__path__, "lgtransfer."):  # torch, matplotlib
    if not module.name.endswith("__main__"):
        try:
            importlib.import_module(module.name)
        except ImportError:  # an optional dependency (a tracker) that is not installed
            pass

argv, faults, logs = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
statuses = []
for i, fault in enumerate(faults):
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fd = os.open(os.path.join(logs, f"{i}.err"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.environ.pop("LGT_FAULT", None)
            if fault:
                os.environ["LGT_FAULT"] = fault
            code = main(argv)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    statuses.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
print(json.dumps(statuses))
"""


def lgt_disk_forked(out, faults: list[str | None]) -> list[tuple[int, str]]:
    """`lgt_disk(out, fault)` for each fault in turn, as children forked from one interpreter
    (`FORKED_RUNS`): each one's exit status and stderr."""
    logs = out.parent / f"{out.name}-logs"
    logs.mkdir(parents=True)
    argv = ["run", "g1", "--budget", "cpu", "--out", str(out), "--quiet", *DISK_SETS,
            "--executor", "inline"]
    done = subprocess.run([sys.executable, "-c", FORKED_RUNS, json.dumps(argv),
                           json.dumps(faults), str(logs)], capture_output=True, text=True,
                          timeout=300 * len(faults), start_new_session=True)
    assert done.returncode == 0, done.stderr[-3000:]
    statuses = json.loads(done.stdout.splitlines()[-1])
    return [(code, (logs / f"{i}.err").read_text()) for i, code in enumerate(statuses)]


@pytest.fixture(scope="module")
def disk_reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("disk") / "whole"
    assert lgt_disk(out).returncode == 0
    (run,) = (out / "cpu" / "g1").glob("with_aux_*")
    return rundir.read_jsonl(run / "eval.jsonl")


@pytest.mark.parametrize("name, status", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_stops_at_a_step_boundary_and_the_run_resumes_to_the_same_rows(
        tmp_path, disk_reference, name, status):
    """SIGTERM (preemption, a time limit) and SIGINT (Ctrl-C) at step 3 of 8: a resume point,
    the manifest `interrupted`, one line, exit 128 + signal; `lgt run` again finishes with
    exactly the rows of an uninterrupted run, and no checkpoint off the cadence is left."""
    out = tmp_path / "stopped"
    first = lgt_disk(out, f"step:3:{name}")
    assert first.returncode == status, first.stderr[-2000:]
    assert f"stopped by {name}" in one_line(first.stderr)
    (run,) = (out / "cpu" / "g1").glob("with_aux_*")
    manifest = rundir.read_json(run / "manifest.json")
    assert manifest["status"] == "interrupted" and manifest["interrupted_at_step"] == 3
    assert (run / "checkpoints" / "resume.pt").is_file()
    again = lgt_disk(out)
    assert again.returncode == 0, again.stderr[-2000:]
    assert rundir.read_jsonl(run / "eval.jsonl") == disk_reference
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "step-2", "step-4", "step-6", "step-8"]
    # its training time counts both starts: steps 1-3 before the resume, 4-8 after
    done = rundir.read_json(run / "manifest.json")
    assert done["resumed_from_step"] == 3
    assert 0 < done["train_seconds_before_resume"] < done["train_seconds"]
    assert not list(run.rglob("*.tmp"))


def test_a_resume_point_that_kept_no_time_leaves_train_seconds_this_starts_alone(tmp_path):
    """Resume points written before they kept the run's time (the scaling study's clones): the
    manifest's train_seconds is the last start's, and no `train_seconds_before_resume` says
    more, so the analysis knows it is partial (`resumed_from_step`)."""
    from lgtransfer.engine.train import finish_manifest

    for before, total, key in ((None, 5.0, False), (7.0, 12.0, True), (0.0, 5.0, False)):
        manifest = {"pid": 1, "heartbeat": 0.0, "resumed_from_step": 3}
        finish_manifest(tmp_path, manifest, 5.0, before)
        written = rundir.read_json(tmp_path / rundir.MANIFEST)
        assert written["train_seconds"] == total and written["status"] == "complete"
        assert ("train_seconds_before_resume" in written) == key


def test_train_time_reads_what_the_manifest_kept_and_estimates_what_it_did_not(tmp_path):
    """rundir.train_time: a run's own time; a run resumed by a version that kept no time
    before the resume, its last start's pace over all steps (flagged); NaN when unknowable."""
    rundir.write_yaml(tmp_path / "config.yaml", {"train": {"steps": 400}})
    for manifest, want in (({"train_seconds": 80.0}, (80.0, False)),
                           ({"train_seconds": 80.0, "resumed_from_step": 300,
                             "train_seconds_before_resume": 200.0}, (80.0, False)),
                           ({"train_seconds": 80.0, "resumed_from_step": 300}, (320.0, True))):
        rundir.write_json(tmp_path / rundir.MANIFEST, manifest)
        assert rundir.train_time(tmp_path) == want
    rundir.write_json(tmp_path / rundir.MANIFEST, {"train_seconds": 5.0, "resumed_from_step": 400})
    seconds, estimated = rundir.train_time(tmp_path)
    assert math.isnan(seconds) and estimated
    rundir.write_json(tmp_path / rundir.MANIFEST, {"status": "complete"})
    assert math.isnan(rundir.train_seconds(tmp_path))


def test_ctrl_c_reaches_the_data_workers_too_and_the_run_still_stops_cleanly(
        tmp_path, disk_reference):
    """SIGINT to the whole process group (Ctrl-C in a terminal) with a data-worker process:
    the worker ignores it, the run stops at a step boundary, exit 130, and resumes exactly."""
    out = tmp_path / "ctrl-c"
    first = lgt_disk(out, "step:3:SIGINT:group", "--executor", "inline",
                     "--set", "train.data_workers=1")
    assert first.returncode == 130, first.stderr[-2000:]
    assert "stopped by SIGINT" in one_line(first.stderr)
    again = lgt_disk(out, None, "--executor", "inline", "--set", "train.data_workers=1")
    assert again.returncode == 0, again.stderr[-2000:]
    (run,) = (out / "cpu" / "g1").glob("with_aux_*")
    assert rundir.read_jsonl(run / "eval.jsonl") == disk_reference


def test_sigterm_to_a_sweep_stops_its_worker_processes(tmp_path):
    """Under the local pool the signal reaches the sweep (SLURM signals the job's main process):
    it stops every worker at a step boundary and starts no further run."""
    out = tmp_path / "pool"
    first = lgt_disk(out, "step:3:SIGTERM:parent", "--executor", "local", "--workers", "2",
                     "--set", "seeds=[0,1,2]")
    assert first.returncode == 143, first.stderr[-2000:]
    states = [rundir.read_json(m)["status"] for m in (out / "cpu" / "g1").glob("*/manifest.json")]
    # runs already training stop at a step boundary; a run not started yet (queued, or its
    # worker still importing torch) never starts: nothing trains on after the stop
    assert 1 <= len(states) <= 2 and set(states) == {"interrupted"}
    again = lgt_disk(out, None, "--executor", "local", "--workers", "2",
                     "--set", "seeds=[0,1,2]")
    assert again.returncode == 0, again.stderr[-2000:]
    assert all(rundir.is_complete(m.parent) for m in (out / "cpu" / "g1").glob("*/manifest.json"))


def test_a_signal_in_a_runs_last_step_stops_the_inline_sweep_before_the_next_run(tmp_path):
    """SIGTERM during the last step of the first of two runs: that run completes, the next
    one is not started, exit 143; the rerun trains only the second."""
    out = tmp_path / "runs"
    first = lgt_disk(out, "step:8:SIGTERM", "--executor", "inline", "--set", "seeds=[0,1]")
    assert first.returncode == 143, first.stderr[-2000:]
    assert "between runs" in one_line(first.stderr)
    manifests = list((out / "cpu" / "g1").glob("*/manifest.json"))
    assert len(manifests) == 1 and rundir.is_complete(manifests[0].parent)
    again = lgt_disk(out, None, "--executor", "inline", "--set", "seeds=[0,1]")
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(list((out / "cpu" / "g1").glob("*/manifest.json"))) == 2


@pytest.mark.parametrize("place", ["checkpoint", "resume", "eval"])
def test_a_full_disk_stops_cleanly_and_the_run_resumes_to_the_same_rows(
        tmp_path, disk_reference, place):
    """ENOSPC while writing a checkpoint, the resume point or evaluation rows at step 4: one
    line naming the path and the free space, exit 74, no temporary file left; once space is
    back, `lgt run` resumes and ends with the rows of an uninterrupted run."""
    out = tmp_path / "runs"
    first = lgt_disk(out, f"{place}:4:ENOSPC")
    assert first.returncode == 74, first.stderr[-2000:]
    line = one_line(first.stderr)
    assert "disk full writing" in line and "MB free" in line and "`lgt run` again" in line
    (run,) = (out / "cpu" / "g1").glob("with_aux_*")
    assert not list(run.rglob("*.tmp"))
    assert rundir.last_step(run) == 2  # the last complete checkpoint is the resume point
    again = lgt_disk(out)
    assert again.returncode == 0, again.stderr[-2000:]
    assert rundir.read_jsonl(run / "eval.jsonl") == disk_reference


def test_a_full_disk_while_writing_the_report_keeps_the_finished_run(tmp_path, disk_reference):
    """ENOSPC while `lgt run` writes the report, the runs done: one line naming the report and
    the free space, exit 74, no temporary file; the rerun trains nothing and writes it."""
    out = tmp_path / "runs"
    first = lgt_disk(out, "write_report.md:0:ENOSPC")
    assert first.returncode == 74, first.stderr[-2000:]
    line = one_line(first.stderr)
    assert "disk full writing" in line and "report.md" in line and "MB free" in line
    assert not list(out.rglob(".*.tmp"))
    (run,) = (out / "cpu" / "g1").glob("with_aux_*")
    finished = rundir.read_json(run / "manifest.json")["finished"]
    again = lgt_disk(out)
    assert again.returncode == 0 and (out / "cpu" / "g1" / "report.md").is_file()
    assert rundir.read_json(run / "manifest.json")["finished"] == finished  # not retrained
    assert rundir.read_jsonl(run / "eval.jsonl") == disk_reference


def test_a_full_disk_reported_by_torch_itself_is_handled_as_one(runs, monkeypatch, capsys):
    """torch.save reports a failed write as a RuntimeError of its own: on a disk with almost
    nothing free that is a full disk, with its one line, exit 74 and no temporary file."""
    import torch

    out, run = runs
    (run / "manifest.json").write_text('{"status": "comp')  # resumed, so it saves again

    def failing_save(obj, f, *args, **kwargs):
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", failing_save)
    monkeypatch.setattr(rundir, "FULL_BELOW", 2**62)  # as if the disk were full
    (run / "checkpoints" / "resume.pt").unlink()
    capsys.readouterr()
    argv = ["run", "g1", "--budget", "cpu", "--out", str(out), "--quiet", "--executor",
            "inline", *SETS]
    assert main(argv) == 74
    assert "disk full writing" in resumed_one_line(capsys.readouterr().err)
    assert not list(run.rglob("*.tmp"))


def test_a_real_full_disk_on_a_small_tmpfs(tmp_path, disk_reference):
    """The same on a real full file system, where this machine lets the tests mount one (root
    on Linux): a 600 KB tmpfs fills during the run; after it is grown, the run resumes."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (the ENOSPC tests above cover the same paths)")
    try:
        first = lgt_disk(mnt / "runs")
        assert first.returncode == 74, first.stderr[-2000:]
        assert "disk full writing" in one_line(first.stderr)
        (run,) = (mnt / "runs" / "cpu" / "g1").glob("with_aux_*")
        assert not list(run.rglob("*.tmp"))
        subprocess.run(["mount", "-o", "remount,size=20m", str(mnt)], check=True)
        again = lgt_disk(mnt / "runs")
        assert again.returncode == 0, again.stderr[-2000:]
        assert rundir.read_jsonl(run / "eval.jsonl") == disk_reference
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


# SIGKILL points over a run's life (8 steps, evaluated and checkpointed every 2), in order; each
# restart resumes what the kill before left, so the chain crosses every kind of write
KILL_POINTS = ["step:1", "write_manifest.json:0", "mid_step:2", "eval:2", "checkpoint:2",
               "resume:2", "step:3", "eval:4", "eval_written:4", "checkpoint:4", "resume:4",
               "mid_step:5", "step:5", "eval:6", "checkpoint:6", "resume:6", "step:7",
               "mid_step:8", "eval:8", "checkpoint:8", "resume:8", "finish:8", "report:0",
               "write_report.md:0"]


def test_sigkill_anywhere_loses_and_repeats_nothing(tmp_path, disk_reference):
    """Kill -9 at 24 named points, restarting after each: the run completes with exactly the
    uninterrupted run's evaluation rows (none lost, none repeated), one metrics row per logged
    step, no temporary file, and its report."""
    out = tmp_path / "runs"
    *killed, last = lgt_disk_forked(out, [f"{point}:SIGKILL" for point in KILL_POINTS] + [None])
    for point, (status, err) in zip(KILL_POINTS, killed, strict=True):
        assert status == -9, (point, err[-2000:])
    assert last[0] == 0, last[1][-2000:]
    runs = sorted((out / "cpu" / "g1").glob("*_seed0_*"))
    assert [r.name.split("_seed")[0] for r in runs] == ["with_aux"]
    run = runs[0]
    assert rundir.is_complete(run)
    assert rundir.read_jsonl(run / "eval.jsonl") == disk_reference
    steps = [r["step"] for r in rundir.read_jsonl(run / "metrics.jsonl")]
    assert steps == sorted(set(steps))
    assert not list(out.rglob("*.tmp")) and not list(out.rglob(".*.tmp"))
    assert (out / "cpu" / "g1" / "report.md").is_file()


def test_a_preempted_submitit_job_requeues_itself_and_resumes(tmp_path, monkeypatch,
                                                              disk_reference):
    """submitit's protocol, with its local executor: SIGUSR2 (a cluster's notice of preemption
    or of the time limit) at step 3 stops the run with a resume point, the job requeues itself,
    and the requeued job resumes at step 3 and ends with the uninterrupted run's rows."""
    pytest.importorskip("submitit")
    monkeypatch.setenv("LGT_FAULT", "step:3:SIGUSR2")
    out = tmp_path / "runs"
    assert main(["run", "g1", "--budget", "cpu", "--out", str(out), "--quiet",
                 "--executor", "submitit", "--cluster", "local", *DISK_SETS]) == 0
    (run,) = (out / "cpu" / "g1").glob("with_aux_*")
    manifest = rundir.read_json(run / "manifest.json")
    assert manifest["status"] == "complete" and manifest["resumed_from_step"] == 3
    assert rundir.read_jsonl(run / "eval.jsonl") == disk_reference
    logs = "".join(p.read_text() for p in (out / "cpu" / "g1" / ".submitit").rglob("*.err"))
    assert "Caught signal SIGUSR2" in logs and "preempted" in logs


def test_a_damaged_resume_point_is_one_line_and_deleting_it_retrains(runs, capsys):
    """Out of scope for repair (the weights themselves are damaged): `lgt run` says which file
    to delete, and after that trains the run again from step 0 to the same rows."""
    out, run = runs
    rows = rundir.read_jsonl(run / "eval.jsonl")
    (run / "manifest.json").write_text('{"status": "comp')  # so that the run is resumed
    weights = run / "checkpoints" / "step-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    capsys.readouterr()
    argv = ["run", "g1", "--budget", "cpu", "--out", str(out), "--quiet", "--executor",
            "inline", *SETS]
    assert main(argv) == 2
    assert "resume point is damaged" in resumed_one_line(capsys.readouterr().err)
    (run / "checkpoints" / "resume.pt").unlink()
    assert main(argv) == 0
    assert rundir.read_jsonl(run / "eval.jsonl") == rows


class Payload:
    """A pickled object that runs code when unpickled: here, creating a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_a_resume_point_carrying_a_pickled_object_is_refused_and_runs_nothing(
        runs, tmp_path, capsys):
    """A shared run folder whose resume point holds more than tensors and plain data: `lgt run`
    refuses it with one line naming the file, exit 2, without unpickling it (the payload's
    marker file never appears) and without touching the folder."""
    import torch

    pickle.loads(pickle.dumps(Payload(tmp_path / "live")))  # the payload is live ...
    assert (tmp_path / "live").exists()
    out, run = runs
    resume = run / "checkpoints" / "resume.pt"
    state = torch.load(resume, weights_only=True)  # what lgtransfer writes loads as data
    marker = tmp_path / "code-ran"
    torch.save({**state, "note": Payload(marker)}, resume)
    (run / "manifest.json").write_text('{"status": "comp')  # so that the run is resumed
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    capsys.readouterr()
    argv = ["run", "g1", "--budget", "cpu", "--out", str(out), "--quiet", "--executor",
            "inline", *SETS]
    assert main(argv) == 2
    line = resumed_one_line(capsys.readouterr().err)
    assert f"{resume} holds objects other than tensors and plain data, refused" in line
    assert not marker.exists()  # ... but was never unpickled
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
