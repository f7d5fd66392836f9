"""The HTML report as a browser shows it: parameters escaped once, integers as integers.

The checks read the page through an HTML parser, i.e. the text a browser displays, so an entity
escaped twice (``&amp;quot;``) shows up as the literal ``&quot;`` it would be on screen."""
import json
from html.parser import HTMLParser

import nbformat
import pandas as pd
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from tinlib.report import html, tables


class _Cells(HTMLParser):
    """The displayed text of every table cell (``td``) of a page, in order."""

    def __init__(self):
        super().__init__()
        self.cells: list[str] = []
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        if tag == "td":
            self._depth += 1
            self.cells.append("")

    def handle_endtag(self, tag):
        if tag == "td":
            self._depth -= 1

    def handle_data(self, data):
        if self._depth:
            self.cells[-1] += data


def _displayed_cells(page: str) -> list[str]:
    parser = _Cells()
    parser.feed(page)
    return [c.strip() for c in parser.cells]


PARAMETERS = {
    "config": "demo_tin_r18_synthetic",
    "overrides": {"train.epochs": 2, "optim.lr": 0.01},
    "epochs": 12,
    "seed": 0,
    "lr": 0.5,
    "work_dir": None,
    "note": 'a "quoted" <b>tag</b> & a | pipe – dash',
}


def _report(tmp_path, outputs=()) -> str:
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    nb = new_notebook(cells=[new_markdown_cell("# 01 · Train"),
                             new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
                             new_code_cell("x = 2", metadata={"tags": ["injected-parameters"]}),
                             new_code_cell("show()", outputs=list(outputs))],
                      metadata={"papermill": {"parameters": PARAMETERS}})
    nbformat.write(nb, run / "01_train.ipynb")
    out = html.build_run_report(run, tmp_path / "r.html", title="T")
    return out.read_text()


def test_parameters_show_each_value_as_json_escaped_once(tmp_path):
    cells = _displayed_cells(_report(tmp_path))
    pairs = dict(zip(cells[0::2], cells[1::2]))
    for key, value in PARAMETERS.items():
        # what the reader sees is the value written as JSON: "x" for strings, 12 for ints
        assert json.loads(pairs[key]) == value, key
    assert pairs["config"] == '"demo_tin_r18_synthetic"'
    assert pairs["epochs"] == "12" and pairs["seed"] == "0" and pairs["work_dir"] == "null"
    assert pairs["note"] == '"a \\"quoted\\" <b>tag</b> & a | pipe – dash"'
    assert not any("&quot;" in c or "&amp;" in c or "&lt;" in c for c in cells)


def test_parameters_cannot_inject_markup(tmp_path):
    page = _report(tmp_path)
    assert "<b>tag</b>" not in page  # shown as text, not rendered


def test_training_summary_shows_integers_as_integers(tmp_path):
    """The train notebook shows ``tables.train_summary`` with pandas' display precision of 2: the
    counts (epochs, seed, ...) must stay integers beside float percentages."""
    summary = {"epochs": 12, "iters_per_epoch": 83, "world_size": 1, "videos_per_gpu": 8, "seed": 0,
               "elapsed_s_this_session": 480.25, "last_val": {"top1_acc": 0.9409}}
    with pd.option_context("display.precision", 2):
        frame = tables.train_summary(summary, "demo_tin_r18_synthetic")
        output = new_output("execute_result", data={"text/html": frame._repr_html_(), "text/plain": repr(frame)},
                            execution_count=1)
    cells = _displayed_cells(_report(tmp_path, [output]))
    shown = cells[2 * len(PARAMETERS):]  # after the parameters table
    assert shown == ["12", "83", "1", "8", "0", "480.25", "94.09"]
