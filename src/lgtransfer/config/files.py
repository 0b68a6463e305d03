"""Experiment files: YAML reading, presets, `base:` inheritance and `--set key=value` overrides.

These work on the raw YAML data (nested dicts and lists), before `parse.py` types it: a base's
sections merge key by key under the file's own, and an override sets one dotted key, checked
against the schema so that a typo is an error rather than a silently ignored setting.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from pathlib import Path
from typing import Any

import yaml

from lgtransfer.config.schema import ExperimentConfig
from lgtransfer.errors import UsageError
from lgtransfer.rundir import read_yaml

PRESET_DIR = Path(__file__).resolve().parent.parent / "experiments"


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_raw(name_or_path: str) -> dict:
    """The raw YAML of a preset name or a file path, its `base:` chain merged in."""
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") or path.is_file()):
        path = PRESET_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise UsageError(f"unknown experiment {name_or_path!r}: not a file, and not a preset "
                             f"({', '.join(preset_names())})")
    elif not path.is_file():
        raise UsageError(f"no experiment file {path}")
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise UsageError(f"{path}: an experiment file must be a YAML mapping")
    raw.setdefault("name", path.stem)
    if "base" in raw:  # `base: g2` = that experiment, with this file's fields on top
        base = str(raw.pop("base"))
        if base in _loading:
            raise UsageError(f"{path}: 'base' chain loops back to {base!r}")
        _loading.add(base)
        try:
            parent = load_raw(base)
        finally:
            _loading.discard(base)
        parent.pop("description", None)
        raw = merged(parent, raw)
    return raw


_loading: set[str] = set()


def merged(base: dict, top: dict) -> dict:
    """`top` over `base`: sections merge key by key; any other value (lists too) replaces."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_override(raw: dict, assignment: str) -> None:
    """Apply one `key=value` (value parsed as YAML) to raw experiment data, in place."""
    key, sep, text = assignment.partition("=")
    if not sep or not key:
        raise UsageError(f"--set expects key=value, got {assignment!r}")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        raise UsageError(f"--set {key}: cannot parse value {text!r}") from None
    set_key(raw, key, value)


def set_key(raw: dict, key: str, value: Any) -> None:
    """Set the dotted `key` (e.g. `train.steps`, `group.0.max_length`) of raw experiment data to
    `value`, in place; a key the schema does not have is an error."""
    parts = key.split(".")
    node, cls = raw, ExperimentConfig
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise UsageError(f"--set {key}: {part!r} is not an index of the list")
            index: Any = int(part)
        else:
            if not dataclasses.is_dataclass(cls) or part not in {
                    f.name for f in dataclasses.fields(cls)}:
                raise UsageError(f"unknown config key {key!r}")
            index = part
            hint = typing.get_type_hints(cls)[part]
            cls = typing.get_args(hint)[0] if typing.get_origin(hint) is list else hint
        if last:
            node[index] = value
        else:
            if isinstance(node, dict) and node.get(index) is None:  # absent or an empty section
                node[index] = [] if typing.get_origin(hint) is list else {}
            node = node[index]
            if not isinstance(node, dict | list):
                raise UsageError(f"--set {key}: {part!r} is not a section")
