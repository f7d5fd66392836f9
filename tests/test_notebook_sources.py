"""The notebooks are kept as pairs: ``notebooks/NN_name.py`` (jupytext percent format, the source
that is edited and reviewed) and ``notebooks/NN_name.ipynb`` (what papermill and JupyterLab open),
stored without outputs. These tests fail when one side was edited without ``jupytext --sync``."""
import ast
from pathlib import Path

import jupytext
import nbformat
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["00_prepare_data", "01_train", "02_evaluate", "03_latency", "04_model_zoo", "05_explore_interlace",
         "06_gradient_ablation", "07_predict"]


def _cells(nb) -> list[tuple[str, str, list[str]]]:
    """What must agree between the two files of a pair: type, source and tags of every cell."""
    return [(c.cell_type, c.source, list(c.metadata.get("tags", []))) for c in nb.cells]


def test_every_notebook_has_its_python_source():
    assert sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb")) == NAMES
    assert sorted(p.stem for p in NOTEBOOK_DIR.glob("*.py")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_pair_is_in_sync(name):
    ipynb = jupytext.read(NOTEBOOK_DIR / f"{name}.ipynb")
    script = jupytext.read(NOTEBOOK_DIR / f"{name}.py")
    assert ipynb.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert script.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert _cells(script) == _cells(ipynb), f"run: jupytext --sync notebooks/{name}.py"
    assert script.metadata["kernelspec"] == ipynb.metadata["kernelspec"]


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_stored_without_outputs(name):
    nb = nbformat.read(str(NOTEBOOK_DIR / f"{name}.ipynb"), as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert nb.metadata["kernelspec"]["name"] == "tin-kit"  # the kernel `make setup` registers


@pytest.mark.parametrize("name", NAMES)
def test_one_parameters_cell_and_tinlib_imports_in_the_first_code_cell(name):
    nb = jupytext.read(NOTEBOOK_DIR / f"{name}.py")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", [])] == [1]
    # every import of a tinlib name sits in the first code cell, before the parameters
    importing = set()
    for i, cell in enumerate(code):
        for node in ast.walk(ast.parse(cell.source)):
            modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(m == "tinlib" or m.startswith("tinlib.") for m in modules):
                importing.add(i)
    assert importing == {0}
