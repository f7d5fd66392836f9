"""The import-linter contracts of pyproject.toml ([tool.importlinter]): the tree keeps them, and each
contract fails, naming itself, when one import against it is added to a copy of the package (an
import against the layers that closes a loop breaks the cycle contract too)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sysconfig.get_path("scripts")) / "lint-imports"

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed")


def lint_imports(project: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the tinlib package and the pyproject.toml found in ``project``."""
    env = {**os.environ, "PYTHONPATH": str(project)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", str(project / "pyproject.toml")],
                          cwd=project, env=env, capture_output=True, text=True, timeout=300)


def test_the_tree_keeps_every_contract():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " broken" in result.stdout and "0 broken" in result.stdout


@pytest.mark.parametrize("module,line,contract", [
    ("tinlib/ops/composite.py", "import tinlib.engine", "Layers: each layer imports only the layers below it"),
    ("tinlib/io.py", "import tinlib.data", "Layers: each layer imports only the layers below it"),
    ("tinlib/engine/syncbn.py", "import tinlib.cli", "Layers: each layer imports only the layers below it"),
    ("tinlib/report/tables.py", "import tinlib.engine.train",
     "Report imports no pipeline, training or command-line code"),
    ("tinlib/pipeline/steps.py", "import tinlib.commands.train", "Only the entry points import the commands"),
    ("tinlib/configs/tsm_r50_1x1x8_40e_sthv1_rgb.py", "import tinlib.io",
     "The config files import only the config schema"),
    # tinlib.ops.dispatch imports tinlib.ops.eager
    ("tinlib/ops/eager.py", "import tinlib.ops.dispatch", "No import cycles between the modules of a package"),
])
def test_an_import_against_a_contract_breaks_it(tmp_path, module, line, contract):
    shutil.copytree(ROOT / "tinlib", tmp_path / "tinlib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}  # against the layering\n")

    result = lint_imports(tmp_path)

    assert result.returncode != 0, result.stdout
    assert f"{contract} BROKEN" in result.stdout, result.stdout
