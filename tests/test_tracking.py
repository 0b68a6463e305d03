"""Live tracking (`log:`, `lgt run --log`): what W&B (offline) and TensorBoard were sent is read
back from their own files and equals the run's `metrics.jsonl` and `eval.jsonl`; a resumed run
leaves one curve; a missing tracker is refused before anything is written, a failing one is
one warning and the run completes; the trackers are not part of a run's key."""

import json
import struct
import sys
import time

import pytest

from lgtransfer.cli import main
from lgtransfer.config import expand, parse_experiment
from lgtransfer.engine import tracking
from lgtransfer.errors import UsageError
from lgtransfer.runtime import rundir

TINY = ["model.n_layer=2", "model.n_head=2", "model.d_model=32", "model.d_ff=64",
        "train.steps=4", "train.batch_size=4", "train.eval_every=2", "train.checkpoint_every=2",
        "eval.n=4", "eval.max_length=12", "seeds=[0]", "baseline=none"]
SETS = [a for s in TINY for a in ("--set", s)]


def tiny(log: list[str], steps: int = 4) -> dict:
    return {"name": "tiny", "log": log, "seeds": [0],
            "group": [{"task": "copy", "role": "main", "max_length": 4},
                      {"task": "mqar", "role": "aux", "max_length": 6}],
            "model": {"n_layer": 2, "n_head": 2, "d_model": 32, "d_ff": 64},
            "train": {"steps": steps, "batch_size": 4, "eval_every": 2, "checkpoint_every": 2},
            "eval": {"n": 4, "max_length": 6}}


@pytest.fixture(autouse=True)
def _quiet_trackers(tmp_path, monkeypatch):
    """No user settings, no network, no files outside the test's folder; warnings said anew."""
    for name in ("WANDB_MODE", "WANDB_DIR", "WANDB_PROJECT", "WANDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home"))
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")  # W&B's own crash reports: off
    monkeypatch.setattr(tracking, "_warned", set())


def expected(run_dir) -> dict[tuple[str, int], float]:
    """(tag, step) -> value, as the run's own logs have them."""
    out: dict[tuple[str, int], float] = {}
    for row in rundir.read_jsonl(run_dir / "metrics.jsonl"):
        for key in ("loss", "grad_norm", "lr", "tokens_per_s"):
            out[f"train/{key}", row["step"]] = row[key]
    for row in rundir.read_jsonl(run_dir / "eval.jsonl"):
        tag = f"eval/{row['task']}/length_{row['length']:03d}"
        out[tag, row["step"]] = row["accuracy"]
    return out


def tensorboard_scalars(folder) -> tuple[dict[tuple[str, int], float], object]:
    """(tag, step) -> value of every scalar TensorBoard shows, and the accumulator (which reads
    the event files as TensorBoard does, resume purges included)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {(tag, e.step): e.value for tag in events.Tags()["scalars"]
            for e in events.Scalars(tag)}, events


def wandb_files(run_dir) -> list:
    """The run's offline `.wandb` files, one per start, oldest first."""
    return sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"), key=lambda p: p.parent.name)


def wandb_records(path) -> list:
    """Every record of an offline `.wandb` file, once W&B has written it whole (its service
    process writes it, and `finish()` can return before it has: wait for the `exit` record)."""
    for _ in range(100):
        records = read_wandb_file(path)
        if records and records[-1].WhichOneof("record_type") == "exit":
            return records
        time.sleep(0.2)
    raise AssertionError(f"{path} has no exit record after 20 s")


def read_wandb_file(path) -> list:
    """The records of a `.wandb` file, parsed with W&B's own protobuf. The file is a
    LevelDB-style log: a 7-byte header, then 32 KiB blocks of chunks, each with a 7-byte
    header (CRC, length, type: 1 whole, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2

    data, pos, chunk, records = path.read_bytes(), 7, b"", []
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header: padding
            pos += 32768 - pos % 32768
            continue
        _, size, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = chunk + data[pos + 7:pos + 7 + size], pos + 7 + size
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            records.append(record)
            chunk = b""
    return records


def wandb_history(records) -> dict[tuple[str, int], float]:
    out: dict[tuple[str, int], float] = {}
    for r in records:
        if r.WhichOneof("record_type") == "history":
            row = {"/".join(i.nested_key) or i.key: json.loads(i.value_json)
                   for i in r.history.item}
            for key, value in row.items():
                if not key.startswith("_") and key != "step":
                    out[key, row["step"]] = value
    return out


def test_the_trackers_are_not_part_of_a_runs_key():
    plain = expand(parse_experiment(tiny([]), "test"))
    tracked = expand(parse_experiment(tiny(["wandb", "tensorboard"]), "test"))
    assert [r.key for r in plain] == [r.key for r in tracked]
    assert [r.experiment_key for r in plain] == [r.experiment_key for r in tracked]
    with pytest.raises(UsageError, match="unknown tracker 'mlflow'"):
        parse_experiment(tiny(["mlflow"]), "test")


def test_an_unknown_tracker_on_the_command_line_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["run", "g1", "--budget", "cpu", "--out", str(tmp_path), "--log", "wandb,ml",
                 *SETS]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--log: unknown tracker 'ml'" in err
    assert not any(tmp_path.iterdir())


def test_lgt_run_log_writes_an_offline_wandb_run_and_tensorboard_events(tmp_path, capsys):
    pytest.importorskip("wandb")
    pytest.importorskip("tensorboard")
    assert main(["run", "g1", "--budget", "cpu", "--out", str(tmp_path), "--quiet",
                 "--executor", "inline", "--log", "wandb", "--log", "tensorboard", *SETS]) == 0
    assert "warning" not in capsys.readouterr().err
    (run_dir,) = (tmp_path / "cpu" / "g1").glob("with_aux_*")
    want = expected(run_dir)
    assert len(want) > 4  # the training curves and accuracy at several lengths

    (path,) = wandb_files(run_dir)
    records = wandb_records(path)
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    manifest = rundir.read_json(run_dir / "manifest.json")
    assert (run.display_name, run.run_group, run.job_type, run.run_id) == (
        "g1/with_aux/seed0", "g1", "with_aux", manifest["config_hash"])
    config = {u.key: json.loads(u.value_json) for u in run.config.update}
    recorded = rundir.read_yaml(run_dir / "config.yaml")
    assert config["train"] == recorded["train"] and config["group"] == recorded["group"]
    assert config["log"] == ["tensorboard", "wandb"] and config["run_key"] == run.run_id
    assert wandb_history(records) == want

    scalars, events = tensorboard_scalars(run_dir / "tensorboard")
    assert scalars == pytest.approx(want)
    (text,) = events.Tensors("config/text_summary")
    assert b"run_key: " + run.run_id.encode() in text.tensor_proto.string_val[0]


def test_a_resumed_run_leaves_one_curve_equal_to_its_logs(tmp_path, monkeypatch, capsys):
    """Interrupted in step 4 with its resume point at step 2, then resumed: TensorBoard shows
    each step once, with the values of the final logs; the W&B run, with the same id, is
    continued from step 3 (its second offline file holds exactly the steps done again)."""
    pytest.importorskip("tensorboard")
    pytest.importorskip("wandb")
    import lgtransfer.engine.train as train_mod

    monkeypatch.setattr(train_mod, "LOG_EVERY", 1)  # a metrics row at every step
    (run,) = [r for r in expand(parse_experiment(tiny(["tensorboard", "wandb"], steps=6), "test"))
              if r.variant == "with_aux"]
    real = train_mod.step_batch

    def dies_in_step_4(mixture, seed, step, size):
        if step == 3:  # steps 1-3 logged, the resume point at 2: step 3 is done again
            raise KeyboardInterrupt
        return real(mixture, seed, step, size)

    monkeypatch.setattr(train_mod, "step_batch", dies_in_step_4)
    with pytest.raises(KeyboardInterrupt):
        train_mod.train_run(run, tmp_path, progress=False)
    monkeypatch.setattr(train_mod, "step_batch", real)
    time.sleep(1.1)  # W&B names offline folders by the second: a start apart from the first
    train_mod.train_run(run, tmp_path, progress=False)
    assert rundir.read_json(tmp_path / "manifest.json")["resumed_from_step"] == 2
    assert len(list((tmp_path / "tensorboard").iterdir())) == 2  # one event file per start
    scalars, events = tensorboard_scalars(tmp_path / "tensorboard")
    want = expected(tmp_path)
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4, 5, 6]
    assert scalars == pytest.approx(want)
    first, second = (wandb_history(wandb_records(p)) for p in wandb_files(tmp_path))
    assert {step for _, step in second} == {3, 4, 5, 6}
    assert {k: v for k, v in first.items() if k[1] <= 2} | second == want
    assert "warning" not in capsys.readouterr().err


def test_a_missing_tracker_is_refused_and_a_failing_one_is_one_warning(
        tmp_path, monkeypatch, capsys):
    """A tracker asked for but not installed: one line, exit 2, before anything is written (a
    run never trains without the tracker the user asked for). One that fails while the run
    trains: one warning, and the run completes."""
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` fails: not installed
    argv = ["run", "g1", "--budget", "cpu", "--out", str(tmp_path), "--quiet",
            "--executor", "inline", *SETS]
    assert main([*argv, "--log", "wandb,tensorboard"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--log wandb needs the wandb package" in err, err
    assert list(tmp_path.iterdir()) == []

    def broken(self, step, values):
        raise OSError("No route to the tracker")

    monkeypatch.setattr(tracking.TensorBoardSink, "__init__", lambda *a: None)
    monkeypatch.setattr(tracking.TensorBoardSink, "log", broken)
    monkeypatch.setattr(tracking.TensorBoardSink, "close", lambda *a, **k: None)
    assert main([*argv, "--log", "tensorboard"]) == 0
    (run_dir,) = (tmp_path / "cpu" / "g1").glob("with_aux_*")
    assert rundir.is_complete(run_dir) and rundir.read_jsonl(run_dir / "eval.jsonl")
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1, warnings  # once, though the tracker was used many times
    assert "tensorboard tracking of" in warnings[0] and "No route to the tracker" in warnings[0]
