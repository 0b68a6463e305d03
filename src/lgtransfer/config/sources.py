"""Where each value of an experiment came from (`lgt run --dry-run --explain`).

Loading an experiment stacks layers of raw YAML data, lowest first: the budget's defaults
(`experiments/budgets.yaml`), the file's `base:` chain and the file itself, the file's
`budgets:` block, a sweep's `set` and grid, then `--set`. Each layer is recorded as the dotted
keys it wrote; a field's source is the last layer that wrote it, else the schema's default.
Two ways of writing differ: a file merges section by section (a `train:` of its own keeps the
budget's other `train` keys) but replaces lists whole; an assignment (`--set train.steps=5`, a
sweep's `set`) replaces whatever value sits at its key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCHEMA_DEFAULT = "schema default"


@dataclass
class Layer:
    label: str
    leaves: set[str] = field(default_factory=set)  # the dotted keys it wrote a value to
    wholes: set[str] = field(default_factory=set)  # keys whose old value it replaced whole


def leaves(value: Any, prefix: str) -> tuple[set[str], set[str]]:
    """The dotted leaf keys of raw data under `prefix`, and the lists among them (replaced
    whole by a merge): a section's keys, each item of a list of sections, else the value."""
    if isinstance(value, dict):
        found: tuple[set[str], set[str]] = (set(), set())
        for k, v in value.items():
            sub = leaves(v, f"{prefix}.{k}" if prefix else str(k))
            found[0].update(sub[0])
            found[1].update(sub[1])
        return found
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        found = (set(), {prefix})
        for i, v in enumerate(value):
            sub = leaves(v, f"{prefix}.{i}")
            found[0].update(sub[0])
            found[1].update(sub[1])
        return found
    return {prefix}, set()


class Sources(list[Layer]):
    """The layers of one experiment, lowest first."""

    def merged(self, label: str, raw: dict, first: bool = False) -> None:
        """A layer merged section by section (a file, the budget's defaults; `first`: under
        everything recorded so far)."""
        keys, lists = leaves(raw, "")
        self.insert(0, Layer(label, keys, lists)) if first else self.append(
            Layer(label, keys, lists))

    def assigned(self, label: str, key: str, value: Any) -> None:
        """One dotted key set to `value`, replacing what was there."""
        keys, _ = leaves(value, key)
        self.append(Layer(label, keys | {key}, {key}))

    def of(self, name: str) -> str:
        """The source of the field `name` (dotted: `train.steps`, `group.0.max_length`)."""
        source = SCHEMA_DEFAULT
        for layer in self:
            if any(k == name or k.startswith(name + ".") for k in layer.leaves):
                source = layer.label
            elif any(name.startswith(w + ".") for w in layer.wholes):  # replaced, not given
                source = SCHEMA_DEFAULT
        return source


def label(name_or_path: str) -> str:
    """How a layer names the file it came from: `preset g1`, or the path as given."""
    is_path = name_or_path.endswith((".yaml", ".yml")) or "/" in name_or_path
    return name_or_path if is_path else f"preset {name_or_path}"


def explain(fields: dict[str, Any], sources: Sources) -> list[str]:
    """One line per field: its name, value and source."""
    width = max(map(len, fields), default=0)
    return [f"  {name:{width}s}  {value!r:24s}  {sources.of(name)}"
            for name, value in fields.items()]


def fields_of(value: Any, prefix: str = "") -> dict[str, Any]:
    """A config's values by dotted name, as `leaves` names raw data (`dataclasses.asdict`)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(fields_of(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = {}
        for i, v in enumerate(value):
            out.update(fields_of(v, f"{prefix}.{i}"))
        return out
    return {prefix: value}
