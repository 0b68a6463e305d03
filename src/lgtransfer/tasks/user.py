"""Tasks from outside the package, and where every task came from.

Two ways in, both registering through `tasks.register` / `tasks.simple_task` like the built-ins:

- a Python file: `tasks_from: my_tasks.py` in an experiment file (relative to that file), or
  `--tasks-from FILE` on the command line (`lgt run`, `lgt tasks`, `lgt sample`);
- an installed package: a module named in its entry-point group `lgtransfer.tasks`, e.g. in its
  pyproject.toml `[project.entry-points."lgtransfer.tasks"] my_tasks = "my_package.tasks"`.
  They load on first use (`lgt tasks`, or a task name not found among the loaded ones).

`source_of(name)` says where a task came from with the sha256 of its file; a run's manifest
records it for each task of its group, so a result can be traced to the code that made it.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from lgtransfer.errors import UsageError
from lgtransfer.tasks.base import ON_MISS, TASKS

ENTRY_POINT_GROUP = "lgtransfer.tasks"
SOURCES: dict[str, dict] = {}  # task name -> where it came from (built-ins are absent)
_files: dict[Path, list[str]] = {}  # task files loaded so far -> the tasks each registered
_entry_points_loaded = False


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_file(path: str | Path) -> list[str]:
    """Import a task file, registering its tasks; returns their names. Loading a file twice
    is a no-op. Any failure is one line naming the file (exit 2)."""
    path = Path(path).resolve()
    if path in _files:
        return _files[path]
    try:
        found = path.is_file()
    except (OSError, ValueError):  # a name the file system refuses (too long)
        found = False
    if not found:
        raise UsageError(f"no task file {path}")
    sha = file_sha256(path)
    spec = importlib.util.spec_from_file_location(f"lgtransfer_user_tasks_{sha[:12]}", path)
    if spec is None or spec.loader is None:
        raise UsageError(f"{path} is not a Python file")
    before = set(TASKS)
    _register_from(lambda: spec.loader.exec_module(importlib.util.module_from_spec(spec)),
                   str(path))
    names = sorted(set(TASKS) - before)
    for name in names:
        SOURCES[name] = {"from": "file", "path": str(path), "sha256": sha}
    _files[path] = names
    return names


def is_loaded(path: str | Path) -> bool:
    """Whether this task file was already imported (e.g. named with --tasks-from)."""
    return Path(path).resolve() in _files


def load_files(paths: list[str]) -> None:
    for p in paths:
        load_file(p)


def load_entry_points() -> list[str]:
    """Import every installed package's `lgtransfer.tasks` entry point (once)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return []
    from importlib.metadata import entry_points  # here: importing it costs start-up time
    _entry_points_loaded = True
    names: list[str] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        before = set(TASKS)
        module = _register_from(ep.load, f"entry point {ep.name} = {ep.value}")
        new = sorted(set(TASKS) - before)
        file = Path(getattr(module, "__file__", "") or "")
        dist = getattr(ep, "dist", None)
        for name in new:
            SOURCES[name] = {"from": "entry point", "entry_point": f"{ep.name} = {ep.value}",
                             "package": f"{dist.name} {dist.version}" if dist else None,
                             "path": str(file) if file.is_file() else None,
                             "sha256": file_sha256(file) if file.is_file() else None}
        names += new
    return names


def _register_from(load, where: str):  # noqa: ANN001, ANN202 (a loader and what it returns)
    """Run a loader of user code, turning its failures into one line that names `where`."""
    try:
        return load()
    except UsageError as e:
        raise UsageError(f"{where}: {e}") from None
    except ValueError as e:
        if "registered twice" in str(e):
            raise UsageError(f"{where}: {e} (a task name must not collide with a built-in "
                             "or another loaded task)") from None
        raise UsageError(f"{where}: loading it failed: ValueError: {e}") from None
    except Exception as e:  # the user's code: whatever it raises is one line, not a traceback
        raise UsageError(f"{where}: loading it failed: {type(e).__name__}: {e}") from None


ON_MISS.append(load_entry_points)


def source_of(name: str) -> dict:
    """Where task `name` came from: a file or an entry point with its sha256, or lgtransfer."""
    return SOURCES.get(name, {"from": "lgtransfer"})


def files_of(names: list[str]) -> list[str]:
    """The task files that define these tasks (what a spawned process must load first)."""
    return sorted({SOURCES[n]["path"] for n in names
                   if SOURCES.get(n, {}).get("from") == "file"})
