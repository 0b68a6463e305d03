"""Plain YAML data -> the schema's dataclasses, with one clear line for the first thing wrong.

Why hand-written and not pydantic (or dacite, cattrs): the schema is plain dataclasses that
`asdict` turns into the resolved config whose hash keys a run, every error must be one line
naming the dotted key (`group[1].max_length expects int, got 'x'`), and the whole checker is
the 50 lines below. pydantic would add a dependency and a second model of every class, and its
multi-line error reports would need reformatting anyway.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from lgtransfer.config.schema import ExperimentConfig
from lgtransfer.errors import UsageError


def parse_experiment(raw: Any, source: str) -> ExperimentConfig:
    """An experiment from its raw YAML data (base and overrides already applied), validated."""
    if not isinstance(raw, dict):
        raise UsageError(f"{source}: an experiment file must be a YAML mapping")
    cfg = build(ExperimentConfig, raw, "")
    cfg.validate(source)
    return cfg


def build(cls: Any, raw: Any, where: str) -> Any:
    """Instantiate dataclass `cls` from plain YAML data, rejecting unknown keys."""
    if not dataclasses.is_dataclass(cls):
        return raw
    if not isinstance(raw, dict):
        raise UsageError(f"{where or 'experiment'}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise UsageError(f"unknown config key {join(where, unknown[0])!r}; "
                         f"known keys there: {', '.join(sorted(known))}")
    kwargs = {}
    for name, value in raw.items():
        hint = hints[name]
        if typing.get_origin(hint) is list and dataclasses.is_dataclass(typing.get_args(hint)[0]):
            if not isinstance(value, list):
                raise UsageError(f"{join(where, name)}: expected a list")
            item = typing.get_args(hint)[0]
            kwargs[name] = [build(item, v, f"{join(where, name)}[{i}]")
                            for i, v in enumerate(value)]
        else:
            kwargs[name] = build(hint, value, join(where, name)) if dataclasses.is_dataclass(
                hint) else check_type(hint, value, join(where, name))
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise UsageError(f"{where or 'experiment'}: {missing[0]!r} is required")
    return cls(**kwargs)


def check_type(hint: Any, value: Any, where: str) -> Any:
    """`value` checked against a field's type hint (lists item by item)."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        base = typing.get_origin(option) or option
        if option is type(None) and value is None:
            return value
        if base is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if base is float and isinstance(value, str):  # YAML reads 1e-3 as a string
            try:
                return float(value)
            except ValueError:
                pass
        if base is list and isinstance(value, list):
            item = typing.get_args(option)[0]
            return [check_type(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        if base in (int, str, bool) and type(value) is base:
            return value
    raise UsageError(f"config key {where!r} expects {type_name(hint)}, got {value!r}")


def type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name
