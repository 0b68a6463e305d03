"""A confirmatory registration (`registration-confirm.yaml` in a tier's evidence folder, e.g.
results/cpu/; docs/confirmatory.md has the schema): the seeds and experiments it governs, every
rule written out, and each family's claims by name, so that a family's size m is fixed before
the first run (a claim that turns out n/a still counts, with p = 1). Torch-free.

`load` reads and checks the file: a malformed one is one `UsageError` line naming the file and
what is wrong, and a rule whose number is not the one the code applies (the learning threshold,
the floor, the minimum effects, alpha, the state names) is refused, so the registration and the
verdict code cannot disagree silently.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lgtransfer.analysis.metrics import GENERALIZED, LEARNED
from lgtransfer.analysis.registration import ID, CausalK, Registration, causal_k_of
from lgtransfer.analysis.verdicts import (
    ALPHA,
    EQUIVALENCE_MARGIN,
    FAILS,
    FLOOR,
    FLOOR_LEVEL,
    INCONCLUSIVE,
    MIN_CORRELATION,
    MIN_TRANSFER,
    NOT_APPLICABLE,
    PENDING,
    REACH,
    REPRODUCES,
    TRACKING_COUNTED,
    TRACKING_MIN_POINTS,
)
from lgtransfer.errors import UsageError

FILE = "registration-confirm.yaml"
SHA256 = re.compile(r"[0-9a-f]{64}")
STATES = [REPRODUCES, FAILS, INCONCLUSIVE, NOT_APPLICABLE, FLOOR, PENDING]
ACROSS_DRAWS = 10_000  # within-experiment shuffles of the across-run test
ACROSS_MIN_EXPERIMENTS = 3  # experiments whose gain varies, at least (analysis/within.py)
# the numbers the code applies: (path in the file, the code's value)
CODE_RULES = [(("alpha",), ALPHA), (("rules", "learned", "threshold"), LEARNED),
              (("rules", "floor"), FLOOR_LEVEL),
              (("rules", "min_effect", "accuracy"), MIN_TRANSFER),
              (("rules", "min_effect", "correlation"), MIN_CORRELATION),
              (("rules", "across_runs", "draws"), ACROSS_DRAWS),
              (("rules", "across_runs", "min_experiments"), ACROSS_MIN_EXPERIMENTS),
              (("rules", "reach"), REACH), (("rules", "generalized"), GENERALIZED),
              (("rules", "equivalence_margin"), EQUIVALENCE_MARGIN),
              (("rules", "tracking", "counted"), TRACKING_COUNTED),
              (("rules", "tracking", "min_points"), TRACKING_MIN_POINTS)]
# rules stated in words: each must be there, non-empty
WORDED_RULES = [("rules", "learned", "counted"), ("rules", "learned", "more_than_half"),
                ("rules", "decide"),
                ("rules", "contrast_at_floor"), ("rules", "across_runs", "test"),
                ("data",), ("why_tier",)]
STATISTIC_KEYS = ("what", "lengths", "step")
# the code that applies a confirmatory registration's rules, which its `frozen` block pins
# (tests/test_confirm.py fails when one of them changes with no amendment re-freezing it):
#     python -m lgtransfer.analysis.confirm   # prints the block for these files as they are
CODE = tuple(f"src/lgtransfer/analysis/{name}.py" for name in (
    "confirm", "registration", "verdicts", "signflip", "stats", "within", "metrics", "results",
    "heads_causal", "report/suite", "report/confirm_claims", "report/across_within",
    "report/heads_claims", "report/heads_causal_k", "report/figures/registry",
    "report/figures/groups", "report/figures/controls", "report/figures/ablations"))


@dataclass(frozen=True)
class Claim:
    """One registered claim: its name, the report row it is (`row`: the row's experiment
    column, `says`: a part of its paper column where one experiment has several rows), and
    the report's family whose rows it is among (`rows`)."""

    name: str
    family: str
    rows: str
    row: str
    says: str = ""
    statistic: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    path: Path
    date: str
    tier: str
    seeds: list[int]
    experiments: list[str]
    execution: dict
    families: dict[str, list[Claim]]
    amendments: list[tuple[str, str]] = field(default_factory=list)  # (date, what changed)
    causal_k: CausalK | None = None  # `causal_over_k`: the k the causal test over k tests
    # `frozen`: the code that applies the rules, path (from the repository root) -> sha256,
    # as registered, each amendment's `frozen` entries replacing the ones they name
    frozen: dict[str, str] = field(default_factory=dict)

    def follows(self) -> str:
        """What a row names as the registration it follows (with its amendments' dates)."""
        dates = "".join(f", amended {d}" for d, _ in self.amendments)
        return f"{self.path.name} ({self.date}{dates})"

    def governs(self) -> Registration:
        """The registration the report's row code reads while it judges these runs."""
        return Registration(list(self.seeds), set(self.experiments), self.date,
                            causal_k=self.causal_k)

    def claims(self) -> list[Claim]:
        return [c for claims in self.families.values() for c in claims]


def load(folder: Path) -> Plan | None:
    """The folder's confirmatory registration, or None without one; UsageError if malformed."""
    path = folder / FILE
    if not path.is_file():
        return None
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise UsageError(f"{path}: not valid YAML{where}") from None
    return parse(raw, path)


def parse(raw: object, path: Path) -> Plan:
    def bad(what: str) -> UsageError:
        return UsageError(f"{path}: {what}")

    if not isinstance(raw, dict):
        raise bad("expected a mapping of registered, tier, seeds, experiments, ... at the top")
    for key in ("registered", "tier", "seeds", "experiments", "execution", "alpha", "rules",
                "families", "data", "why_tier"):
        if key not in raw:
            raise bad(f"missing `{key}`")
    date = raw["registered"]
    if isinstance(date, str):
        try:
            date = datetime.date.fromisoformat(date)
        except ValueError:
            raise bad(f"`registered` must be a date (YYYY-MM-DD), got {date!r}") from None
    if not isinstance(date, datetime.date):
        raise bad(f"`registered` must be a date (YYYY-MM-DD), got {date!r}")
    seeds = raw["seeds"]
    if (not isinstance(seeds, list) or not seeds or not all(type(s) is int for s in seeds)
            or len(set(seeds)) != len(seeds)):
        raise bad(f"`seeds` must be a list of distinct integers, got {seeds!r}")
    experiments = raw["experiments"]
    if not isinstance(experiments, list) or not experiments or not all(
            isinstance(e, str) and ID.fullmatch(e) for e in experiments):
        raise bad(f"`experiments` must list experiment ids (g1, c2, a1, ...), got {experiments!r}")
    execution = raw["execution"]
    if (not isinstance(execution, dict) or not isinstance(execution.get("compile"), bool)
            or execution.get("precision") not in ("fp32", "bf16")):
        raise bad("`execution` must give `compile: true|false` and `precision: fp32|bf16`")
    for keys in WORDED_RULES:
        if not str(_at(raw, keys) or "").strip():
            raise bad(f"missing `{'.'.join(keys)}` (the rule in words)")
    for keys, value in CODE_RULES:
        found = _at(raw, keys)
        if not isinstance(found, int | float) or isinstance(found, bool) or found != value:
            raise bad(f"`{'.'.join(keys)}` is {found!r}; the verdict code applies {value}")
    states = _at(raw, ("rules", "states"))
    if isinstance(states, list):  # YAML 1.1 reads a bare yes / no as true / false
        states = [{True: REPRODUCES, False: FAILS}.get(s, s) if isinstance(s, bool) else s
                  for s in states]
    if states != STATES:
        raise bad(f"`rules.states` must be the code's verdict states {STATES}, got {states!r}")
    amendments, frozen = [], _frozen(raw.get("frozen"), "frozen", bad)
    for a in raw.get("amendments") or []:
        if not isinstance(a, dict) or "date" not in a or not str(a.get("change", "")).strip():
            raise bad("each amendment needs a `date` and the `change` it makes")
        amendments.append((str(a["date"]), " ".join(str(a["change"]).split())))
        frozen.update(_frozen(a.get("frozen"), f"amendment {a['date']}: frozen", bad))
    families = _families(raw["families"], bad)
    return Plan(path, date.isoformat(), str(raw["tier"]), seeds, experiments, execution,
                families, amendments, _causal_k(raw.get("causal_over_k"), families, bad),
                frozen)


def _frozen(raw: object, where: str, bad) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and SHA256.fullmatch(v)
            for k, v in raw.items()):
        raise bad(f"`{where}` must map each file's path to its sha256 (64 hex digits)")
    return dict(raw)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def thawed(plan: Plan, repo: Path) -> list[str]:
    """The frozen files that changed since the registration (or its last amendment naming
    them) froze them, or are gone: each one a dated amendment must name."""
    return [name for name, digest in sorted(plan.frozen.items())
            if not (repo / name).is_file() or sha256_of(repo / name) != digest]


def _causal_k(raw: object, families: dict[str, list[Claim]], bad) -> CausalK | None:
    """The registered k of the causal test over k (absent: that test has no claim here). Its
    rows are the report's `family` rows, so each registered claim naming them must be one of
    its `claims`, and the minimum effect is the accuracy one the other claims use."""
    if raw is None:
        return None
    k = raw.get("k") if isinstance(raw, dict) else None
    if type(k) is not int or k < 1:
        raise bad(f"`causal_over_k` must give the tested `k` (an integer >= 1), got {raw!r}")
    if raw.get("min_effect", MIN_TRANSFER) != MIN_TRANSFER:
        raise bad(f"`causal_over_k.min_effect` is {raw['min_effect']!r}; the verdict code "
                  f"applies {MIN_TRANSFER}")
    try:
        causal = causal_k_of(raw)
    except UsageError as e:
        raise bad(str(e)) from None
    for c in (c for claims in families.values() for c in claims if c.rows == causal.family):
        if c.row not in causal.claims:
            raise bad(f"claim `{c.name}` names row `{c.row}` of `{causal.family}`, which "
                      f"`causal_over_k.claims` ({', '.join(causal.claims)}) does not list")
    return causal


def _families(raw: object, bad) -> dict[str, list[Claim]]:
    if not isinstance(raw, dict) or not raw:
        raise bad("`families` must map each family's name to its claims")
    out, names = {}, set()
    for family, spec in raw.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("claims"), list) \
                or not spec["claims"]:
            raise bad(f"family `{family}` must list its `claims` (m is their number)")
        claims = []
        for c in spec["claims"]:
            if not isinstance(c, dict) or not str(c.get("name", "")).strip():
                raise bad(f"family `{family}`: each claim needs a `name`, got {c!r}")
            name = str(c["name"])
            if name in names:
                raise bad(f"claim `{name}` is listed twice")
            names.add(name)
            statistic = c.get("statistic", spec.get("statistic"))
            if not isinstance(statistic, dict) or any(
                    not str(statistic.get(k, "")).strip() for k in STATISTIC_KEYS):
                raise bad(f"claim `{name}`: its `statistic` (or its family's) must give "
                          f"{', '.join(STATISTIC_KEYS)}")
            claims.append(Claim(name, str(family), str(c.get("rows", spec.get("rows", family))),
                                str(c.get("row", name)), str(c.get("says", "")), statistic))
        out[str(family)] = claims
    return out


def _at(raw: dict, keys: tuple[str, ...]) -> object:
    for k in keys:
        if not isinstance(raw, dict):
            return None
        raw = raw.get(k)
    return raw


def freeze_block(repo: Path) -> str:
    """The `frozen:` block of CODE as the files are now, for a registration to paste."""
    return "frozen:\n" + "".join(f"  {name}: '{sha256_of(repo / name)}'\n" for name in CODE)


if __name__ == "__main__":
    print(freeze_block(Path(__file__).resolve().parents[3]), end="")
