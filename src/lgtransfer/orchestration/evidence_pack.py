"""Run folders packed into the few small files a GPU machine may send back, and unpacked again.

A GPU window returns at most 8 files of at most 16 MiB each. `pack` puts every complete run
under a budget folder (without checkpoints: only `RUN_FILES`), each experiment folder's index
(listing only the packed runs) and the window's records (`windows/*.json`) into gzipped tar
files, a run never split across two, first in list order; what does not fit is reported, not
silently dropped. Sizes are checked on the written files, not guessed.

`unpack` is the only way back in, and it trusts nothing: every member must be a regular file
with a plain relative path of the shapes `pack` writes, every file must parse as JSON, JSON
lines or YAML (safe loader), and every run must be complete. All archives are checked before
anything is written; nothing is executed, no tar extraction code runs (members are read and
written by name). A run already in the destination is kept as it is (same key, same content);
experiment indexes are merged.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import tarfile
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import yaml

from lgtransfer.errors import UsageError
from lgtransfer.runtime import rundir

RUN_FILES = ("config.yaml", "manifest.json", "eval.jsonl", "metrics.jsonl", "heads.jsonl")
RECORDS = "windows"  # the window records' folder, beside the experiment folders
MAX_FILES = 8
MAX_BYTES = 16 * 2**20
MAX_UNPACKED = 2**30  # refuse archives that inflate past this (a gzip bomb)
_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=-]*")


@dataclass
class Unit:
    """Files that travel together: one run folder, or the indexes and records."""

    name: str
    files: dict[str, bytes] = field(default_factory=dict)  # member name -> content

    @cached_property
    def estimate(self) -> int:
        """Compressed size, a little over: each file compressed alone plus a tar header."""
        return sum(len(zlib.compress(b, 6)) + 1024 for b in self.files.values())


def collect(budget_dir: Path, records: Path | None) -> tuple[Unit, list[Unit]]:
    """The indexes and records, and every complete run under `budget_dir` (oldest first)."""
    runs: list[tuple[float, Unit]] = []
    packed: set[Path] = set()
    for manifest in sorted(budget_dir.rglob(rundir.MANIFEST)) if budget_dir.is_dir() else []:
        d = manifest.parent
        if not rundir.is_complete(d):
            continue
        unit = Unit(d.relative_to(budget_dir).as_posix())
        for name in RUN_FILES:
            if (d / name).is_file():
                unit.files[f"{unit.name}/{name}"] = (d / name).read_bytes()
        runs.append((rundir.read_json(manifest).get("finished", 0.0), unit))
        packed.add(d.resolve())
    first = Unit("indexes and records")
    for index in sorted(budget_dir.rglob(rundir.EXPERIMENT_INDEX)) if budget_dir.is_dir() else []:
        data = rundir.read_json(index)
        kept = [r for r in data.get("runs", [])
                if (index.parent / r).resolve() in packed]
        if kept:
            name = index.relative_to(budget_dir).as_posix()
            first.files[name] = (json.dumps({**data, "runs": kept}, indent=2, sort_keys=True)
                                 + "\n").encode()
    for record in sorted(records.glob("*.json")) if records and records.is_dir() else []:
        first.files[f"{RECORDS}/{record.name}"] = record.read_bytes()
    return first, [u for _, u in sorted(runs, key=lambda x: x[0])]


def _write(path: Path, files: dict[str, bytes]) -> int:
    """One gzipped tar of `files` (fixed times and owners: the same runs pack the same)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=6) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o644
            tar.addfile(info, io.BytesIO(content))
    path.write_bytes(buffer.getvalue())
    return path.stat().st_size


def pack(budget_dir: Path, records: Path | None, dest: Path, stem: str,
         max_files: int = MAX_FILES, max_bytes: int = MAX_BYTES, replace: str = "") -> dict:
    """Pack into `dest/STEM-N.tar.gz` (N from 1), replacing what an earlier pack left there
    (and the files matching the glob `replace`: a later pack holds all an earlier one did).
    Returns {"files": [names], "runs": [packed], "left_out": [runs that did not fit]}."""
    first, runs = collect(budget_dir, records)
    bins: list[list[Unit]] = [[first]]
    left_out = []
    for unit in runs:  # first fit, in order: the oldest runs are the surest to come back
        room = [b for b in bins if sum(u.estimate for u in b) + unit.estimate <= max_bytes]
        if room:
            room[0].append(unit)
        elif len(bins) < max_files and unit.estimate <= max_bytes:
            bins.append([unit])
        else:
            left_out.append(unit.name)
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / f".{stem}.packing"  # the old pack stays until the new one is whole
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    written: list[tuple[str, int]] = []
    try:
        for i, b in enumerate(bins, 1):
            name = f"{stem}-{i}.tar.gz"
            size = _write(tmp / name, {k: v for u in b for k, v in u.files.items()})
            if size > max_bytes:  # the estimate is an upper bound in practice; never trust it
                raise RuntimeError(f"{name} is {size} bytes, over {max_bytes}")
            written.append((name, size))
        for old in {*dest.glob(f"{stem}-*.tar.gz"), *(dest.glob(replace) if replace else [])}:
            old.unlink()
        for name, _ in written:
            os.replace(tmp / name, dest / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"files": [n for n, _ in written], "bytes": [s for _, s in written],
            "runs": [u.name for b in bins for u in b if u is not first], "left_out": left_out}


# ----------------------------------------------------------------------------- unpack


def _check_name(name: str, archive: Path) -> tuple[str, ...]:
    parts = tuple(name.split("/"))
    if name.startswith("/") or not 1 <= len(parts) <= 8 or not all(
            _PART.fullmatch(p) and p not in (".", "..") for p in parts):
        raise UsageError(f"{archive}: refusing member {name!r} (not a plain relative path)")
    leaf = parts[-1]
    if parts[0] == RECORDS:
        if len(parts) != 2 or not leaf.endswith(".json"):
            raise UsageError(f"{archive}: refusing member {name!r} (records are "
                             f"{RECORDS}/NAME.json)")
    elif leaf != rundir.EXPERIMENT_INDEX and (leaf not in RUN_FILES or len(parts) < 2):
        raise UsageError(f"{archive}: refusing member {name!r} (not a run file: "
                         f"{', '.join(RUN_FILES)})")
    return parts


def _parse(name: str, content: bytes, archive: Path) -> object:
    """The data of a member; anything that is not JSON, JSON lines or plain YAML is refused."""
    try:
        text = content.decode()
        if name.endswith(".jsonl"):
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        if name.endswith(".json"):
            return json.loads(text)
        return yaml.safe_load(text)
    except (UnicodeDecodeError, ValueError, yaml.YAMLError) as e:
        raise UsageError(f"{archive}: {name} does not parse ({type(e).__name__})") from None


def read_archive(archive: Path) -> dict[str, bytes]:
    """Every member of one archive, checked; bad input is a `UsageError` naming it."""
    files: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if member.isdir():
                    continue
                if not member.isfile():
                    raise UsageError(f"{archive}: refusing member {member.name!r} (not a regular "
                                     "file)")
                _check_name(member.name, archive)
                total += member.size
                if total > MAX_UNPACKED:
                    raise UsageError(f"{archive}: unpacks to over {MAX_UNPACKED} bytes")
                f = tar.extractfile(member)
                content = f.read() if f else b""
                _parse(member.name, content, archive)
                if member.name in files:
                    raise UsageError(f"{archive}: member {member.name!r} appears twice")
                files[member.name] = content
    except (OSError, tarfile.TarError, EOFError, zlib.error) as e:
        raise UsageError(f"{archive}: not a readable .tar.gz ({e})") from None
    for name, content in files.items():
        if name.endswith("/" + rundir.MANIFEST):
            status = json.loads(content).get("status") if content else None
            if status != "complete":
                raise UsageError(f"{archive}: {name} is not a complete run")
    return files


def unpack(archives: list[Path], into: Path) -> dict:
    """Unpack checked archives into `into` (a budget folder such as results/gpu). Returns
    {"runs": [added], "kept": [already there], "indexes": n, "records": n}."""
    files: dict[str, bytes] = {}
    for archive in archives:
        if not archive.is_file():
            raise UsageError(f"no such file {archive}")
        for name, content in read_archive(archive).items():
            if files.get(name, content) != content and not name.startswith(RECORDS + "/"):
                raise UsageError(f"{archive}: {name} differs from the same member of another "
                                 "archive")
            files[name] = content
    runs: dict[str, dict[str, bytes]] = {}
    indexes, records = {}, {}
    for name, content in files.items():
        parts = name.split("/")
        if parts[0] == RECORDS:
            records[name] = content
        elif parts[-1] == rundir.EXPERIMENT_INDEX:
            indexes[name] = content
        else:
            runs.setdefault("/".join(parts[:-1]), {})[parts[-1]] = content
    for run, members in runs.items():
        if rundir.MANIFEST not in members or "config.yaml" not in members:
            raise UsageError(f"{run}: a run needs manifest.json and config.yaml")
    out: dict = {"runs": [], "kept": [], "indexes": 0, "records": 0}
    for run in sorted(runs):  # every refusal before the first write
        target = into / run
        if target.exists() and not rundir.is_complete(target):
            raise UsageError(f"{target} exists but is not a complete run; move it away first")
    for run, members in sorted(runs.items()):
        target = into / run
        if rundir.is_complete(target):
            out["kept"].append(run)
            continue
        tmp = target.with_name(f".{target.name}.unpacking")
        tmp.mkdir(parents=True, exist_ok=True)
        for leaf, content in members.items():
            (tmp / leaf).write_bytes(content)
        os.replace(tmp, target)  # the run appears whole or not at all
        out["runs"].append(run)
    for name, content in sorted(indexes.items()):
        new = json.loads(content)
        path = into / name
        old = rundir.read_experiment_index(path.parent) or {}
        runs_listed = sorted({*old.get("runs", []), *new.get("runs", [])})
        rundir.write_json(path, {**old, **new, "runs": runs_listed})
        out["indexes"] += 1
    for name, content in sorted(records.items()):
        path = into / name
        if path.name == "parallelism.json" and path.is_file():  # one entry per device: merge
            merged = {**rundir.read_json(path), **json.loads(content)}
            rundir.write_json(path, merged)
        else:
            rundir.write_atomic(path, content.decode())
        out["records"] += 1
    return out
