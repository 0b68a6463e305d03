"""The package's shape (ARCHITECTURE.md): every module in a layer folder, layers importing only
those below them, no package whose parts import each other both ways at any depth, torch and
transformers in `engine/` only, nothing imports the command line, no module over 450 lines.

The checks read the source with `ast`, imports inside functions included, so a lazy import that
goes the wrong way fails them as a module-level one would; `test_a_planted_*` plant one in a copy
of the package and show that it does."""

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lgtransfer.runtime import rundir

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "lgtransfer"
HEAVY = ("torch", "transformers")
ENGINE = "lgtransfer.engine"
# The layers, lowest first: each folder (or root module) imports only those in layers before its
# own. `lgtransfer` is the root `__init__` (the version; every import of a submodule runs it).
LAYERS = [
    ["lgtransfer", "lgtransfer.errors"],  # leaves: the version, the error types
    ["lgtransfer.runtime"],  # the run folder on disk, graceful stops and fault points
    ["lgtransfer.tasks"],  # the tasks and their vocabulary (numpy); public API for task files
    ["lgtransfer.data"],  # task groups into training batches and evaluation sets (numpy)
    ["lgtransfer.config"],  # experiment files to typed configs and content-keyed runs
    ["lgtransfer.analysis"],  # evaluation rows to tables, statistics, verdicts, reports
    ["lgtransfer.engine"],  # torch: models, training, evaluation, pretrained starts, heads
    ["lgtransfer.orchestration"],  # runs planned and trained; reaches engine inside functions
    ["lgtransfer.cli", "lgtransfer.__main__"],  # the command line; nothing imports it
]
ROOT_MODULES = {"__init__", "__main__", "cli", "errors"}  # the entry points, the errors
# (`cli` is a package: the commands in its __init__, the argument parser in `parser`)


def module_map(package: Path) -> dict[str, Path]:
    """Dotted name -> file of every module under `package` (a package by its `__init__`)."""
    def name(path: Path) -> str:
        parts = path.relative_to(package.parent).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    return {name(p): p for p in sorted(package.rglob("*.py"))}


MODULES = module_map(PACKAGE)


def import_nodes(path: Path) -> list[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement of a file, and whether it runs when the module is imported (not
    inside a function or class body, not under TYPE_CHECKING)."""
    found: list[tuple[ast.Import | ast.ImportFrom, bool]] = []

    def visit(node: ast.AST, at_load: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = at_load and not isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda)
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                inner = False
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.append((child, at_load))
            visit(child, inner)

    visit(ast.parse(path.read_text()), True)
    return found


def imports(name: str, modules: dict[str, Path], at_load_only: bool = False) -> set[str]:
    """What module `name` imports: lgtransfer modules by full name, others by their top
    package; `at_load_only`: only what runs when it is imported."""
    is_package = modules[name].name == "__init__.py"
    found: set[str] = set()
    for node, at_load in import_nodes(modules[name]):
        if at_load_only and not at_load:
            continue
        if isinstance(node, ast.Import):
            found.update(resolve(a.name, modules) for a in node.names)
            continue
        base = node.module or ""
        if node.level:  # relative import
            package = name if is_package else name.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}".rstrip(".")
        for a in node.names:  # `from pkg import module` imports that module
            sub = f"{base}.{a.name}"
            found.add(sub if sub in modules else resolve(base, modules))
    found.discard(name)
    return found


def resolve(module: str, modules: dict[str, Path]) -> str:
    if module.split(".")[0] != "lgtransfer":
        return module.split(".")[0]
    while module not in modules and "." in module:
        module = module.rpartition(".")[0]
    return module


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the lgtransfer modules it imports anywhere in its source."""
    return {m: {i for i in imports(m, modules) if i in modules} for m in modules}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the directed graph as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def walk(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for n in sorted(graph.get(node, ())):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state and (found := walk(n, [*path, n])):
                return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := walk(node, [node])):
            return found
    return None


def part_of(module: str, package: str) -> str | None:
    """The direct part of `package` that `module` is in (`package.__init__` for the package
    itself); None when it is outside it."""
    if module == package:
        return f"{package}.__init__"
    if not module.startswith(package + "."):
        return None
    return f"{package}.{module[len(package) + 1:].split('.')[0]}"


def two_way_parts(graph: dict[str, set[str]]) -> list[list[str]]:
    """For every package at every depth, a cycle among its direct parts (modules and
    subpackages, each taken whole): a part lower in its tree importing back up into a part
    that imports it, however deep either import sits."""
    packages = {m for m in graph if any(o.startswith(m + ".") for o in graph)}
    cycles = []
    for package in sorted(packages):
        parts: dict[str, set[str]] = {}
        for m, targets in graph.items():
            a = part_of(m, package)
            for i in targets:
                b = part_of(i, package)
                if a and b and a != b:
                    parts.setdefault(a, set()).add(b)
        if cycle := find_cycle(parts):
            cycles.append(cycle)
    return cycles


def layer_of(module: str) -> int:
    root = ".".join(module.split(".")[:2])
    return next(n for n, layer in enumerate(LAYERS) if root in layer)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Imports from a layer into the same or a later one, between different layer folders."""
    bad = []
    for m, targets in graph.items():
        for i in targets:
            same_folder = m.split(".")[:2] == i.split(".")[:2]
            if not same_folder and layer_of(i) >= layer_of(m):
                bad.append(f"{m} -> {i}")
    return sorted(bad)


def heavy_imports(modules: dict[str, Path]) -> list[str]:
    """torch or transformers imported outside `engine/`, or inside a function or class there
    (an engine module imports them at its top: where they come from is seen at a glance)."""
    bad = []
    for m, path in modules.items():
        for node, at_load in import_nodes(path):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                node.module or ""]
            if any(n.split(".")[0] in HEAVY for n in names) and not (
                    m.startswith(ENGINE) and at_load):
                bad.append(f"{m}:{node.lineno}: {ast.unparse(node)}")
    return bad


# ----------------------------------------------------------------------------- the package


def test_every_module_sits_in_a_layer_folder():
    root = {p.stem for p in PACKAGE.glob("*.py")}
    assert root <= ROOT_MODULES, root - ROOT_MODULES
    parts = {".".join(m.split(".")[:2]) for m in MODULES}
    listed = [f for layer in LAYERS for f in layer]
    assert len(listed) == len(set(listed))
    assert parts <= set(listed), parts - set(listed)


def test_layers_import_only_the_layers_below():
    assert upward_imports(import_graph(MODULES)) == []


def test_no_package_has_parts_that_import_each_other_both_ways():
    assert two_way_parts(import_graph(MODULES)) == []


def test_the_import_graph_has_no_cycle():
    cycle = find_cycle(import_graph(MODULES))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_nothing_below_the_command_line_imports_it():
    graph = import_graph(MODULES)
    outside = {m: t for m, t in graph.items() if layer_of(m) < layer_of("lgtransfer.cli")}
    assert not [m for m, targets in outside.items()
                if any(t == "lgtransfer.cli" or t.startswith("lgtransfer.cli.") for t in targets)]


def test_torch_and_transformers_are_imported_in_the_engine_only_at_its_modules_tops():
    assert heavy_imports(MODULES) == []


def test_above_the_engine_it_is_imported_inside_functions_only():
    """Orchestration and the command line reach torch only through an engine module imported in
    the function that trains; so loading them (`lgt run --dry-run`, `lgt report`) stays
    torch-free. Nothing below the engine imports it at all (the layer test)."""
    above = [m for m in MODULES if layer_of(m) > layer_of(ENGINE)]
    assert above
    at_load = {m: [i for i in imports(m, MODULES, at_load_only=True) if i.startswith(ENGINE)]
               for m in above}
    assert {m: i for m, i in at_load.items() if i} == {}


def reaches_heavy(name: str) -> str | None:
    """The first torch/transformers import reached at import time from `name` (through the
    lgtransfer modules it imports when loaded), as 'TORCH via MODULE'; None if none."""
    seen, todo = set(), [name]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        for i in imports(m, MODULES, at_load_only=True):
            if i in HEAVY:
                return f"{i} via {m}"
            if i in MODULES:
                todo.append(i)
    return None


def test_only_the_engine_loads_torch_when_imported():
    outside = [m for m in MODULES if not m.startswith(ENGINE)]
    assert len(outside) > 40  # the rule covers the whole package, not a hand-kept list
    offenders = {m: r for m in outside if (r := reaches_heavy(m))}
    assert not offenders, offenders
    assert reaches_heavy(f"{ENGINE}.train") and reaches_heavy(f"{ENGINE}.model")


def test_no_module_is_over_450_lines():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > 450}
    assert not long, long


# ----------------------------------------------------------------------------- planted faults


@pytest.fixture
def copy(tmp_path):
    """A copy of the package to plant faults in; returns a function giving its module map."""
    shutil.copytree(PACKAGE, tmp_path / "lgtransfer",
                    ignore=shutil.ignore_patterns("__pycache__", "*.yaml"))
    return tmp_path / "lgtransfer"


def plant(path: Path, code: str) -> None:
    """Append a function holding `code` (a lazy import: the kind a load-time check misses)."""
    body = "\n".join("    " + line for line in code.splitlines())
    path.write_text(path.read_text() + f"\n\ndef _planted():\n{body}\n")


def test_the_copy_passes_before_anything_is_planted(copy):
    graph = import_graph(module_map(copy))
    assert not upward_imports(graph) and not two_way_parts(graph)
    assert not heavy_imports(module_map(copy))


@pytest.mark.parametrize("where, code, cycle", [
    # depth 3: the report's leaf back up into the report of one experiment
    ("analysis/report/render.py", "from lgtransfer.analysis.report import experiment",
     "lgtransfer.analysis.report.experiment"),
    # depth 4: a figure module back up into the suite that imports the figures
    ("analysis/report/figures/ratio.py", "from lgtransfer.analysis.report.suite import x",
     "lgtransfer.analysis.report.suite"),
    # in the engine: a head measurement back up into `lgt heads`, which uses it
    ("engine/heads/measure.py", "import lgtransfer.engine.heads.analysis",
     "lgtransfer.engine.heads.analysis"),
])
def test_a_planted_import_back_up_a_package_tree_fails_at_any_depth(copy, where, code, cycle):
    plant(copy / where, code)
    found = two_way_parts(import_graph(module_map(copy)))
    assert any(cycle in c for c in found), found


def test_a_planted_heads_plots_beside_the_report_fails_as_it_did(copy):
    """The arrow the old folder check missed: report/experiment -> heads_plots -> report/render,
    with heads_plots one level up, beside the report package."""
    (copy / "analysis/report/heads_plots.py").rename(copy / "analysis/heads_plots.py")
    for p in copy.rglob("*.py"):
        p.write_text(p.read_text().replace("analysis.report.heads_plots", "analysis.heads_plots"))
    found = two_way_parts(import_graph(module_map(copy)))
    assert ["lgtransfer.analysis.report", "lgtransfer.analysis.heads_plots",
            "lgtransfer.analysis.report"] in found, found


@pytest.mark.parametrize("where, code", [
    ("tasks/base.py", "from lgtransfer.config import schema"),  # data up into config
    ("runtime/rundir.py", "from lgtransfer.analysis import results"),
    ("analysis/results.py", "from lgtransfer.engine.model import build_model"),
])
def test_a_planted_import_into_a_higher_layer_fails(copy, where, code):
    plant(copy / where, code)
    assert upward_imports(import_graph(module_map(copy)))


@pytest.mark.parametrize("where, code", [
    ("runtime/rundir.py", "import torch"),  # outside the engine, even inside a function
    ("orchestration/executors.py", "from transformers import AutoModel"),
    ("engine/train.py", "import torch.nn"),  # in the engine, but not at the top
])
def test_a_planted_torch_import_fails(copy, where, code):
    plant(copy / where, code)
    assert heavy_imports(module_map(copy))


# ----------------------------------------------------------------------------- light commands


def finished_run(root: Path) -> Path:
    """A complete run folder made by hand (no training): enough for results and reports."""
    d = root / "exp" / "with_aux_seed0_k"
    rows = [{"experiment": "exp", "variant": v, "seed": 0, "step": 10, "task": t, "role": r,
             "train_max_length": lm, "length": n, "n": 8, "accuracy": float(n <= lm)}
            for v, t, r, lm in [("with_aux", "reverse_add", "main", 4),
                                ("with_aux", "no_carry", "aux", 8)] for n in range(1, 11)]
    rundir.write_jsonl(d / "eval.jsonl", rows)
    rundir.write_yaml(d / "config.yaml", {"model": {"pos_encoding": "rope"}})
    rundir.write_json(d / "manifest.json", {"status": "complete", "experiment": "exp",
                                            "experiment_key": "k", "config_hash": "k0",
                                            "finished": 1.0})
    return root / "exp"


def test_light_commands_start_without_torch(tmp_path):
    """Each command in a fresh interpreter: it works, and torch was never imported."""
    exp = finished_run(tmp_path)
    commands = [["tasks"], ["sample", "copy", "--length", "4", "--count", "2", "--seed", "0"],
                ["results", str(exp)], ["report", str(exp)],
                ["run", "g1", "a1", "--dry-run", "--out", str(tmp_path / "runs")]]
    script = ("import sys, json\nfrom lgtransfer.cli import main\n"
              "code = main(json.loads(sys.argv[1]))\n"
              "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
              "print('HEAVY', json.dumps([code, heavy]))\n")
    for argv in commands:
        out = subprocess.run([sys.executable, "-c", script, json.dumps(argv)], capture_output=True,
                             text=True, timeout=120)
        code, heavy = json.loads(out.stdout.rsplit("HEAVY ", 1)[1])
        assert code == 0 and heavy == [], (argv, code, heavy, out.stderr[-500:])


def test_the_command_lines_budgets_are_the_configs():
    from lgtransfer import cli
    from lgtransfer.config.schema import BUDGETS

    assert cli.BUDGETS == BUDGETS
    from lgtransfer.cli import parser
    from lgtransfer.orchestration import executors

    assert parser.EXECUTORS == executors.EXECUTORS
