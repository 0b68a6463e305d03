"""The package's shape: imports flow one way (no cycle, nothing imports the command line), and
only `lgtransfer.engine` reaches torch or transformers when imported, folders import each other
one way, and no module outgrows 450 lines; so `lgt tasks`, `lgt sample`, `lgt results`,
`lgt report` and `lgt run --dry-run` start without torch."""

import ast
import json
import subprocess
import sys
from pathlib import Path

from lgtransfer.runtime import rundir

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "lgtransfer"
HEAVY = ("torch", "transformers")
# The one folder that may import torch or transformers when a module is imported; everything
# else stays importable without them (a function may still import them lazily, when it needs a
# model), so `lgt tasks`, `lgt sample`, `lgt results`, `lgt report` and `lgt run --dry-run`
# start fast.
ENGINE = "lgtransfer.engine"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, top_level_only: bool) -> set[str]:
    """Modules `name` imports: lgtransfer modules by full name, others by their top package.
    `top_level_only`: what runs at import time (not inside functions, not TYPE_CHECKING)."""
    tree = ast.parse(MODULES[name].read_text())
    is_package = MODULES[name].name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if top_level_only and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if top_level_only and isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(
                    child.test):
                continue
            if isinstance(child, ast.Import):
                found.update(resolve(a.name) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # relative import
                    package = name if is_package else name.rpartition(".")[0]
                    for _ in range(child.level - 1):
                        package = package.rpartition(".")[0]
                    base = f"{package}.{base}".rstrip(".")
                for a in child.names:  # `from pkg import module` imports that module
                    sub = f"{base}.{a.name}"
                    found.add(sub if sub in MODULES else resolve(base))
            visit(child)

    visit(tree)
    found.discard(name)
    return found


def resolve(module: str) -> str:
    if module.split(".")[0] != "lgtransfer":
        return module.split(".")[0]
    while module not in MODULES and "." in module:
        module = module.rpartition(".")[0]
    return module


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


def test_the_import_graph_has_no_cycle():
    graph = {m: {i for i in imports(m, top_level_only=False) if i in MODULES} for m in MODULES}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_nothing_below_the_command_line_imports_it():
    for m in MODULES:
        if m != "lgtransfer.cli":
            assert "lgtransfer.cli" not in imports(m, top_level_only=False), m


def reaches_heavy(name: str) -> str | None:
    """The first torch/transformers import reached at import time from `name` (through the
    lgtransfer modules it imports at module level), as 'via MODULE'; None if none."""
    seen, todo = set(), [name]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        for i in imports(m, top_level_only=True):
            if i in HEAVY:
                return f"{i} via {m}"
            if i in MODULES:
                todo.append(i)
    return None


def test_only_the_engine_imports_torch_at_import_time():
    outside = [m for m in MODULES if not m.startswith(ENGINE)]
    assert len(outside) > 40  # the rule covers the whole package, not a hand-kept list
    offenders = {m: r for m in outside if (r := reaches_heavy(m))}
    assert not offenders, offenders
    # and the engine really is where torch lives
    assert reaches_heavy(f"{ENGINE}.train") and reaches_heavy(f"{ENGINE}.model")


def folder_of(module: str) -> str:
    """lgtransfer.engine.heads.measure -> lgtransfer.engine; a top-level module is its own."""
    return ".".join(module.split(".")[:2])


def test_no_loop_between_folders():
    """Folders (and top-level modules) import each other one way only, lazy imports included:
    tasks and the data modules, config, analysis, engine, then sweep and the command line."""
    graph: dict[str, set[str]] = {}
    for m in MODULES:
        for i in imports(m, top_level_only=False):
            if i in MODULES and folder_of(i) != folder_of(m):
                graph.setdefault(folder_of(m), set()).add(folder_of(i))
    cycle = find_cycle(graph)
    assert cycle is None, "folder loop: " + " -> ".join(cycle or [])


def test_no_module_is_over_450_lines():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > 450}
    assert not long, long


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
