"""The report renderer, a leaf every report part uses: a `Section` (heading, text, figures,
tables) and `render`, which writes a list of them as Markdown and a self-contained HTML page;
and `pyplot`, the one place matplotlib is set up (headless, no display needed).
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lgtransfer.runtime import rundir


def pyplot() -> Any:
    """matplotlib.pyplot on the headless Agg backend (imported only when a figure is drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def markdown_table(shown: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(str(c) for c in shown.columns) + " |",
             "|" + "---|" * len(shown.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(False)]
    return "\n".join(lines)


@dataclass
class Section:
    """One part of a report: a heading, Markdown text, PNG figures (files in the report's folder)
    and tables. `render` turns a list of them into report.md and a self-contained report.html."""

    title: str
    text: str = ""
    figures: list[Path] = field(default_factory=list)
    tables: list[pd.DataFrame] = field(default_factory=list)


def inline_markdown(text: str) -> str:
    """The little Markdown our texts use (**bold**, `code`), as HTML."""
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def render(title: str, sections: list[Section], out_dir: Path, stem: str = "report") -> Path:
    """Write `stem.md` and a self-contained `stem.html` (figures embedded) into `out_dir`."""
    md = [f"# {title}"]
    body = [f"<h1>{html.escape(title)}</h1>"]
    for i, sec in enumerate(sections):
        if sec.title and (i or len(sections) > 1):
            md.append(f"## {sec.title}")
            body.append(f"<h2>{html.escape(sec.title)}</h2>")
        for para in filter(None, sec.text.split("\n\n")):
            md.append(para)
            body.append(f"<p>{inline_markdown(para)}</p>")
        for fig in sec.figures:
            rel = fig.relative_to(out_dir) if fig.is_relative_to(out_dir) else fig
            md.append(f"![{fig.stem}]({rel.as_posix()})")
            png = base64.b64encode(fig.read_bytes()).decode()
            body.append(f"<img alt='{html.escape(fig.stem)}' style='max-width:100%' "
                        f"src='data:image/png;base64,{png}'>")
        for table in sec.tables:
            md.append(markdown_table(table))
            body.append(table.to_html(index=False, border=0))
    rundir.write_atomic(out_dir / f"{stem}.md", "\n\n".join(md) + "\n")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            "</title><style>body{font-family:sans-serif;max-width:1200px;margin:2em auto}"
            "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
            "padding:4px 8px;text-align:right}</style></head><body>"
            + "\n".join(body) + "</body></html>")
    rundir.write_atomic(out_dir / f"{stem}.html", page)
    return out_dir / f"{stem}.md"
