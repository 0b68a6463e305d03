"""What the scaling study's registration fixes (results/scaling/registration.yaml and its
dated amendments), read from its files: the levels, seeds, test parameters, references, and
which amendment governs which part at which level. Torch-free."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lgtransfer.config.schema import MAIN_ONLY, WITH_AUX

REGISTRATION = "registration.yaml"
AMENDMENTS = "registration-amendment-*.yaml"
STUDY = "scaling"
X1_SEEDS = list(range(10))  # level x1 is the committed cpu evidence at seeds 0-9, both variants


@dataclass(frozen=True)
class Plan:
    """What the registration fixes, read from its file."""

    date: str
    alpha: float
    levels: dict[str, dict]  # name -> {compute, model, train}
    seeds: dict[str, list[int]]  # variant -> seeds at the study's own levels
    delta: dict[str, float]
    references: dict[str, float] = field(default_factory=dict)
    amendments: list[Amendment] = field(default_factory=list)

    def registered(self, level: str) -> dict[str, list[int]]:
        if level == "x1":
            return {WITH_AUX: X1_SEEDS, MAIN_ONLY: X1_SEEDS}
        return dict(self.seeds)

    def rule(self, levels: set[str] = frozenset(), governs: str = "rows") -> str:
        """The registration a row (or the tier line) follows, and every amendment that
        governs that part at a level in it."""
        amended = [f"{', '.join(sorted(a.levels & levels))} runs: {a.file} ({a.date})"
                   for a in self.amendments if a.levels & levels and a.governs == governs]
        return f"follows results/scaling/{REGISTRATION} ({self.date})" + "".join(
            f"; {a}" for a in amended)


@dataclass(frozen=True)
class Amendment:
    """A dated amendment to the registration, the levels whose runs it governs (the levels
    its `applies_to` names) and what it changes (`governs`: the claims' `rows`, or the `tier`)."""

    file: str
    date: str
    levels: frozenset[str]
    governs: str = "rows"


def load_amendments(folder: Path, levels: list[str]) -> list[Amendment]:
    out = []
    for path in sorted(folder.glob(AMENDMENTS)):
        raw = yaml.safe_load(path.read_text()) or {}
        applies = str(raw.get("applies_to", ""))
        out.append(Amendment(path.name, str(raw.get("amended", "")), frozenset(
            lv for lv in levels if re.search(rf"\b{re.escape(lv)}\b", applies)),
            str(raw.get("governs", "rows"))))
    return out


def load_plan(folder: Path) -> Plan:
    raw = yaml.safe_load((folder / REGISTRATION).read_text())
    levels = {k: v for k, v in raw["levels"].items() if isinstance(v, dict) and "compute" in v}
    return Plan(str(raw["registered"]), float(raw["alpha"]), levels,
                {WITH_AUX: list(raw["seeds"]["with_aux"]), MAIN_ONLY: list(raw["seeds"]["alone"])},
                {k: float(v) for k, v in raw["test"]["delta"].items()},
                dict(raw["levels"].get("references") or {}),
                load_amendments(folder, list(levels)))


def is_scaling_study(folder: Path) -> bool:
    path = folder / REGISTRATION
    return path.is_file() and (yaml.safe_load(path.read_text()) or {}).get("study") == STUDY


def level_of(config: dict, plan: Plan) -> str | None:
    """The registered level whose model and training length the run's config has (None: none)."""
    for name, level in plan.levels.items():
        if all(config.get(part, {}).get(k) == v for part in ("model", "train")
               for k, v in level[part].items()):
            return name
    return None
