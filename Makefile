# tin-kit: every user-facing workflow is a make target. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
KERNEL := tin-kit

.PHONY: help setup test test-fast demo lab clean

help:  ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

setup: $(STAMP)  ## create .venv with tinlib (editable), test tools and the Jupyter kernel

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,onnx]'
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name 'Python (tin-kit)' >/dev/null
	@touch $@

test: $(STAMP)  ## run the test suite on the CPU (Triton kernels in interpreter mode)
	$(PY) -m pytest

test-fast: $(STAMP)  ## the test suite without the slow end-to-end tests
	$(PY) -m pytest -m 'not slow'

demo: $(STAMP)  ## the main job on the embedded synthetic dataset (CPU, no downloads)
	@echo "make demo: not yet implemented (needs the data, engine and notebook issues)" >&2
	@exit 1

lab: $(STAMP)  ## open JupyterLab on the project kernel
	$(VENV)/bin/jupyter lab notebooks/

clean:  ## remove caches and the virtual environment
	rm -rf $(VENV) .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
