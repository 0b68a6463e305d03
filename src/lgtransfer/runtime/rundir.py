"""The run folder: atomic file writes, the manifest, JSON-lines logs.

A run folder holds `config.yaml`, `manifest.json`, `metrics.jsonl`, `eval.jsonl` and
`checkpoints/`. A run is complete exactly when its manifest says `"status": "complete"`; every
file is written to a temporary name and renamed into place, so an interrupted run never looks
complete and never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

import lgtransfer
from lgtransfer.errors import UsageError
from lgtransfer.runtime import stopping

_UMASK = os.umask(0)
os.umask(_UMASK)


FULL_BELOW = 64 * 2**20  # bytes free under which a failed write is taken for a full disk


@contextlib.contextmanager
def library_writes(path: Path) -> Iterator[None]:
    """torch and safetensors report a full disk as their own errors (RuntimeError,
    SafetensorError), not as OSError(ENOSPC): turn such a failure into the latter, so a full
    disk is handled as one (`train.train_run`), whichever library was writing."""
    try:
        yield
    except OSError:
        raise
    except Exception as e:
        try:
            free = shutil.disk_usage(path.parent).free
        except OSError:
            free = FULL_BELOW
        if free < FULL_BELOW or "No space left" in str(e) or "os error 28" in str(e):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from e
        raise


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename it into place: a reader sees the
    old file or the new, never half of one. A temporary file a killed writer left is removed
    by the next write of the same file (one a live process is writing is left alone)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        if not _writer_alive(stale):
            stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are for sharing
        stopping.fault_point(f"write_{path.name}", 0, str(path))  # the fault-injection tests
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _writer_alive(tmp: Path) -> bool:
    """Whether another live process on this machine is writing this temporary file (its pid
    is in the name): a concurrent `lgt run` writing the same report keeps its file."""
    pid = tmp.name.split(".")[-3] if tmp.name.count(".") >= 4 else ""
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_yaml(path: Path, obj: Any) -> None:
    write_atomic(path, yaml.safe_dump(obj, sort_keys=False))


def read_json(path: Path) -> Any:
    """A JSON file's data; a damaged one is one line naming `file:line` (exit 2)."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        hint = (" (`lgt run` takes a run whose manifest is damaged as partial and resumes it)"
                if path.name == MANIFEST else "")
        raise UsageError(f"{path}:{e.lineno}: damaged JSON ({e.msg}); fix or delete the "
                         f"file{hint}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: damaged JSON (not text); fix or delete the file") from None


_warned_torn: set[Path] = set()


def read_jsonl(path: Path) -> list[dict]:
    """The rows of a JSON-lines log. A torn last line (no newline, not JSON: what a crash
    during an append leaves) is skipped with one warning; any other damaged line is an error
    naming `file:line` (exit 2)."""
    if not path.exists():
        return []
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise UsageError(f"{path}: damaged log (not text); delete the run folder to retrain "
                         "it") from None
    lines = text.split("\n")  # the last element is "" exactly when the file ends in a newline
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            if number == len(lines):  # the unterminated last line
                if path not in _warned_torn:
                    _warned_torn.add(path)
                    print(f"lgt: warning: {path}: skipped its torn last line (a crash during "
                          "an append leaves one; `lgt run` rewrites it on resume)",
                          file=sys.stderr)
                continue
            raise UsageError(f"{path}:{number}: damaged JSON line ({e.msg}); delete that line, "
                             "or the run folder to train the run again") from None
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> None:
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))


def append_jsonl(path: Path, rows: list[dict]) -> None:
    """Append rows; a torn last line from a crash is dropped by `truncate_jsonl` on resume."""
    with path.open("a") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
        f.flush()


def truncate_jsonl(path: Path, max_step: int) -> None:
    """Keep only rows logged at or before `max_step` (rows after it will be logged again)."""
    kept = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if row.get("step", 0) <= max_step:
                kept.append(row)
    write_jsonl(path, kept)


MANIFEST = "manifest.json"
# an experiment folder's list of its runs (`orchestration/sweep.py`)
EXPERIMENT_INDEX = "experiment.json"


def is_complete(run_dir: Path, strict: bool = False) -> bool:
    """Whether the run's manifest says complete. A damaged manifest is a run to resume for
    `lgt run`; with `strict` (the readers: results, reports) it is one line naming it, exit 2,
    so that no reader drops a run silently."""
    try:
        manifest = read_json(run_dir / MANIFEST)
    except OSError:
        return False
    except ValueError:
        if strict:
            raise
        return False
    return isinstance(manifest, dict) and manifest.get("status") == "complete"


def train_seconds(run_dir: Path) -> float:
    """A complete run's training time in seconds (`train_time` without its flag)."""
    return train_time(run_dir)[0]


def train_time(run_dir: Path) -> tuple[float, bool]:
    """(seconds, estimated) of a complete run's training (NaN when its manifest has none). A
    run resumed from a point that did not keep its time (`resumed_from_step` without
    `train_seconds_before_resume`: versions before it did) recorded its last start's time
    only: that start's pace is taken for the steps before it too (train_seconds x steps /
    steps of the last start), flagged as an estimate. It overstates where the last start was
    short (its fixed costs, loading and the final evaluation, spread over every step)."""
    manifest = read_json(run_dir / MANIFEST)
    seconds = float(manifest.get("train_seconds") or "nan")
    start = manifest.get("resumed_from_step")
    if not start or "train_seconds_before_resume" in manifest:
        return seconds, False
    steps = ((read_yaml(run_dir / "config.yaml") or {}).get("train") or {}).get("steps")
    return (seconds * steps / (steps - start) if steps and steps > start else float("nan")), True


# A running run writes its manifest at least this often; one silent for longer is presumed dead
# (its machine crashed or its job was killed) and may be resumed by another sweep.
STALE_SECONDS = 600


def owner() -> dict:
    """Who is running a run: host and pid, recorded in its manifest while it runs."""
    return {"host": platform.node(), "pid": os.getpid(), "heartbeat": now()}


def is_active(run_dir: Path) -> bool:
    """True while another live process is training this run, so a second sweep leaves it be.

    Same host: the recorded pid is alive. Another host (a cluster job): its heartbeat is recent.
    """
    try:
        m = read_json(run_dir / "manifest.json")
    except (OSError, ValueError):
        return False
    if m.get("status") != "running" or "pid" not in m:
        return False
    if m.get("host") == platform.node():
        if m["pid"] == os.getpid():
            return False
        try:
            os.kill(m["pid"], 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return now() - m.get("heartbeat", 0) < STALE_SECONDS


def last_step(run_dir: Path) -> int:
    """The step an interrupted run resumes from (0 when it has no checkpoint yet)."""
    steps = [int(p.name.split("-")[1]) for p in (run_dir / "checkpoints").glob("step-*")
             if p.name.split("-")[1].isdigit()]
    return max(steps, default=0) if (run_dir / "checkpoints" / "resume.pt").exists() else 0


def record_experiment_runs(exp_dir: Path, name: str, figure: str, run_dirs: list[Path],
                           experiment_key: str = "") -> None:
    """Add runs to an experiment folder's index (`experiment.json`): paths relative to the
    folder, so a run trained in another experiment's folder is listed under this one too; and
    the experiment's config key, which tables give every run it lists."""
    index = read_experiment_index(exp_dir) or {"runs": []}
    runs = index["runs"] + [os.path.relpath(d, exp_dir) for d in run_dirs]
    write_json(exp_dir / EXPERIMENT_INDEX, {"name": name, "figure": figure,
                                            "experiment_key": experiment_key,
                                            "runs": sorted(set(runs))})


def read_experiment_index(exp_dir: Path) -> dict | None:
    path = exp_dir / EXPERIMENT_INDEX
    if not path.is_file():
        return None
    try:
        index = read_json(path)
    except (OSError, ValueError):
        raise UsageError(f"{path} is damaged: delete it, then rerun `lgt run` for each "
                         "experiment of that folder to rebuild it") from None
    return index


def listed_runs(exp_dir: Path) -> list[Path]:
    """The run folders an experiment folder's index lists (wherever they live)."""
    index = read_experiment_index(exp_dir)
    return [Path(os.path.normpath(exp_dir / rel)) for rel in (index or {}).get("runs", [])]


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(lgtransfer.__file__).parent, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def now() -> float:
    return round(time.time(), 3)


class UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.safe_load`'s loader, except that a key written twice in one mapping is an error
    (PyYAML keeps the last silently, so a typo'd copy of a field would win unnoticed). Merge
    keys (`<<: *anchor`) still override as YAML says."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable: the SafeLoader says so itself
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"duplicate key {key!r}", key_node.start_mark)
        return super().construct_mapping(node, deep)


def load_yaml_text(text: str) -> Any:
    """YAML text's data: safe_load, refusing duplicate keys (raises yaml.YAMLError)."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # safe: a SafeLoader subclass


def read_yaml(path: Path) -> Any:
    """A YAML file's data; a malformed or unreadable file (a key written twice included) is
    one line, exit 2."""
    try:
        return load_yaml_text(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark else ""
        raise UsageError(f"malformed YAML in {path}{at}: {getattr(e, 'problem', e)}") from None
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    except (UnicodeDecodeError, ValueError):  # ValueError: a NUL byte or the like
        raise UsageError(f"{path} is not a text (YAML) file") from None


def folder_name(value: str, what: str) -> str:
    """`value` checked to be one plain folder name, so that a path made from it (an experiment
    or sweep name under --out) stays under its root: no separator, not `.` or `..`, not empty."""
    if (not value.strip() or value in (".", "..") or "/" in value or "\\" in value
            or "\0" in value):
        raise UsageError(f"{what} {value!r} is not a plain folder name (it becomes a folder "
                         "under --out: no '/', no '..', not empty)")
    return value


def check_inside(root: Path, path: Path, what: str) -> Path:
    """`path`, checked to resolve inside `root` (symbolic links followed)."""
    if not path.resolve().is_relative_to(root.resolve()):
        raise UsageError(f"{what} {path} would be outside {root}")
    return path
