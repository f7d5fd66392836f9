"""A run's HTML report: its executed notebooks joined into one page (nbconvert) under a summary of
the headline numbers, code hidden and long outputs cut to their last lines, readable without Jupyter.
"""
from __future__ import annotations

import copy
import html
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import nbformat

MAX_STREAM_LINES = 12
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def collapse_progress(text: str) -> str:
    """Keep what a terminal would show: for every line the text after its last carriage return;
    ANSI colour codes removed."""
    text = _ANSI.sub("", text)
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def clean_outputs(outputs: list, max_lines: int = MAX_STREAM_LINES) -> list:
    """Merge consecutive stream outputs of the same name, collapse progress bars and keep the
    last ``max_lines`` lines of each stream; other outputs (tables, figures) are kept as they are."""
    merged: list = []
    for out in outputs:
        if out.get("output_type") == "stream" and merged and merged[-1].get("output_type") == "stream" \
                and merged[-1].get("name") == out.get("name"):
            merged[-1]["text"] += out.get("text", "")
        else:
            merged.append(copy.deepcopy(out))
    cleaned = []
    for out in merged:
        if out.get("output_type") == "stream":
            lines = [ln for ln in collapse_progress(out.get("text", "")).split("\n") if ln.strip()]
            if not lines:
                continue
            if len(lines) > max_lines:
                lines = [f"[... {len(lines) - max_lines} earlier lines not shown ...]"] + lines[-max_lines:]
            out["text"] = "\n".join(lines) + "\n"
        cleaned.append(out)
    return cleaned


def parameters_markdown(nb) -> str | None:
    """The papermill parameters of an executed notebook as a table for a markdown cell, None if it
    has none. Each value is shown as JSON (strings in quotes, ``12`` not ``12.0``).

    The table is written as HTML, escaped exactly once: inside a markdown code span the renderer
    escapes again (a browser would show ``&quot;``) and cannot escape a ``|``.
    """
    params = (nb.metadata.get("papermill") or {}).get("parameters")
    if not params:
        return None

    def cell(text: str) -> str:
        return f"<td><code>{html.escape(text)}</code></td>"

    rows = "\n".join(f"<tr>{cell(str(k))}{cell(json.dumps(v, default=str, ensure_ascii=False))}</tr>"
                     for k, v in params.items())
    return ("Parameters of this run:\n\n<table>\n<thead><tr><th>parameter</th><th>value</th></tr></thead>\n"
            f"<tbody>\n{rows}\n</tbody>\n</table>")


def notebook_cells(nb, *, heading: str | None = None, max_lines: int = MAX_STREAM_LINES) -> list:
    """The cells of notebook ``nb`` as they go into a report: outputs cleaned (streams cut to
    their last ``max_lines`` lines), the parameters as a table, cells tagged ``remove`` dropped,
    and a ``heading`` cell first when given."""
    cells = []
    if heading:
        cells.append(nbformat.v4.new_markdown_cell(f"## {heading}"))
    params = parameters_markdown(nb)
    for cell in nb.cells:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if "remove" in tags or "parameters" in tags:
            continue
        if "injected-parameters" in tags:
            if params:
                cells.append(nbformat.v4.new_markdown_cell(params))
            continue
        cell = copy.deepcopy(cell)
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("# "):
            cell.source = "#" + cell.source.lstrip()  # the notebook title becomes a section heading
        if cell.cell_type == "code":
            cell.outputs = clean_outputs(cell.get("outputs", []), max_lines)
            if not cell.outputs:
                continue
        cells.append(cell)
    return cells


def summary_markdown(results_dir: str | os.PathLike) -> str | None:
    """Headline numbers for the top of a report: the demo table and targets when there are demo
    runs, else nothing (the zoo notebook carries the zoo tables)."""
    from tinlib.report.results import collect_runs
    from tinlib.report.zoo import checks_markdown, demo_checks, demo_runs, reversal_cell

    runs = demo_runs(collect_runs(results_dir))
    if not runs:
        return None
    lines = ["### Results at a glance", "", "| model | top-1 (%) | direction acc on reversal pairs (%) |",
             "|:---|:---:|:---:|"]
    for run in runs:
        top1 = run.metric("top1_acc")
        top1_text = "–" if top1 is None else f"{top1:.1f}"
        rev_text = reversal_cell(run)
        lines.append(f"| {run.config} ({run.arch}) | {top1_text} | {rev_text} |")
    lines += ["", "Targets of the demo:", "", checks_markdown(demo_checks(runs))]
    return "\n".join(lines)


def build_run_report(run_dir: str | os.PathLike, out: str | os.PathLike, *, title: str,
                     order: Sequence[str] | None = None, titles: Mapping[str, str] | None = None,
                     results_dir: str | os.PathLike | None = None, exclude_input: bool = True) -> Path | None:
    """Join the executed notebooks of ``run_dir`` into one HTML page at ``out`` titled ``title``
    (nbconvert's lab template, the code hidden when ``exclude_input``); None
    when ``run_dir`` holds no notebook. ``order``: notebook names (stems) to put first, the others
    follow by name; ``titles``: section headings by notebook name (default: the name);
    ``results_dir``: the run records, for the headline numbers (None: none)."""
    import datetime

    from nbconvert import HTMLExporter

    from tinlib.io import atomic_write_text

    run_dir = Path(run_dir)
    found = {p.stem: p for p in sorted(run_dir.glob("*.ipynb"))}
    if not found:
        return None
    names = [n for n in (order or []) if n in found] + [n for n in found if n not in (order or [])]
    titles = titles or {}
    report = nbformat.v4.new_notebook()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    intro = [f"# {title}", "", (f"Generated {stamp} from the executed notebooks in `{run_dir.as_posix()}` "
                                "(open them in JupyterLab for the code and full output).")]
    summary = summary_markdown(results_dir) if results_dir is not None else None
    if summary:
        intro += ["", summary]
    toc = [f"{i}. {titles.get(n) or n}" for i, n in enumerate(names, start=1)]
    intro += ["", "Steps:", ""] + toc
    report.cells.append(nbformat.v4.new_markdown_cell("\n".join(intro)))
    for name in names:
        nb = nbformat.read(str(found[name]), as_version=4)
        for i, cell in enumerate(nb.cells):
            cell.id = f"{name}-{i}"[-64:]  # unique across the joined notebooks
        failed = any(o.get("output_type") == "error" for c in nb.cells if c.cell_type == "code"
                     for o in c.get("outputs", []))
        heading = (titles.get(name) or name) + (" (FAILED: see the error below)" if failed else "")
        report.cells += notebook_cells(nb, heading=heading)
    report.metadata["title"] = title
    exporter = HTMLExporter(template_name="lab", exclude_input=exclude_input, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(report)
    return atomic_write_text(out, body)
