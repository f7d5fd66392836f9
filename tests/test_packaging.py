"""Install metadata: pyproject states ranges (an existing environment keeps its PyTorch), the lock
file pins every dependency at a version inside those ranges, and `make setup PY=...` targets the
given environment instead of creating .venv."""
import re
import subprocess
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [Requirement(r) for r in project["dependencies"] + extras["dev"] + extras["onnx"] + extras["video"]]


def _lock() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "requirements-lock.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements-lock.txt: {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = Version(version)
    return pins


def test_dependencies_are_ranges_not_pins():
    for req in _requirements():
        assert not any(s.operator in ("==", "===") for s in req.specifier), f"{req} pins one version"
        assert any(s.operator in ("<", "<=", "~=") for s in req.specifier), f"{req} has no upper bound"


@pytest.mark.parametrize("version, admitted", [("2.6.0", True), ("2.9.1", True), ("2.13.0", True),
                                               ("2.14.1", True), ("2.5.1", False), ("3.0.0", False)])
def test_torch_range_keeps_a_clusters_torch_2x(version, admitted):
    torch_req = next(r for r in _requirements() if r.name == "torch")
    # a local CUDA build carries a suffix, e.g. 2.13.0+cu126: the range must admit it as well
    assert torch_req.specifier.contains(version) == admitted
    assert torch_req.specifier.contains(f"{version}+cu126", prereleases=False) == admitted


def test_lock_pins_every_dependency_inside_its_range():
    pins = _lock()
    for req in _requirements():
        if req.marker is not None and not req.marker.evaluate({"platform_system": "Linux",
                                                              "platform_machine": "x86_64"}):
            continue
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is missing from requirements-lock.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"lock has {name}=={pins[name]}, outside {req}"
    assert str(pins["torch"]).startswith("2.14.1") and str(pins["torchvision"]).startswith("0.29.1")


def test_make_setup_with_py_installs_into_that_environment():
    # dry run: with PY given, setup installs tinlib into PY's environment with the ranges (no .venv, no lock)
    out = subprocess.run(["make", "-n", "setup", "PY=/opt/conda/bin/python3"], cwd=ROOT, capture_output=True,
                         text=True).stdout
    assert "-m pip install --quiet -e '.[dev,onnx]'" in out
    assert "-m venv" not in out and "requirements-lock.txt" not in out
    out = subprocess.run(["make", "-n", "-W", "pyproject.toml", "setup"], cwd=ROOT, capture_output=True,
                         text=True).stdout
    assert re.search(r"-m venv \.venv", out) and "-r requirements-lock.txt" in out
