# tin-kit: every user-facing workflow is a make target. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
LOCK := requirements-lock.txt
KERNEL := tin-kit
# PY: the interpreter every target runs. Left unset, `make setup` creates .venv and installs the
# exact tested versions (requirements-lock.txt). Set it to use an environment you already have
# (an activated conda env or venv: `make test PY=python`): setup then installs tinlib into it with
# the version ranges of pyproject.toml, so its own PyTorch stays.
ifeq ($(origin PY),undefined)
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
else
STAMP := .make/installed-$(shell $(PY) -c 'import hashlib, sys; print(hashlib.sha1(sys.prefix.encode()).hexdigest()[:12])')
endif

# where runs write (records, executed notebooks, HTML reports) and keep checkpoints
RESULTS ?= results
WORK ?= work_dirs
# reproduce-*: the dataset folder, processes per node, nodes (see README "Running on a cluster")
DATA_ROOT ?=
LISTS_DIR ?=
GPUS ?=
NODES ?= 1
NODE_RANK ?= 0
MASTER_ADDR ?= 127.0.0.1
MASTER_PORT ?= 29500
# LAUNCHER=slurm: reproduce-* submits the row's training and test as one sbatch job (tinlib submit)
# instead of running them here; the row's nodes x GPUs unless NODES/GPUS are given; PARTITION,
# ACCOUNT, TIME_LIMIT go to sbatch; DRY_RUN=1 prints the script
LAUNCHER ?=
PARTITION ?=
ACCOUNT ?=
TIME_LIMIT ?=
DRY_RUN ?=
# full: the configs as they are; smoke: tiny settings that only check the plumbing (tests)
PROFILE ?= full
# FORCE=1 reruns steps whose outputs are up to date; VERBOSE=1 echoes all of the notebooks' output
# (by default only their stderr: tinlib's progress lines and warnings)
FORCE ?=
VERBOSE ?=
# latency: which config's test setting, which archs (default: the config's and its TSM/TSN twins)
CONFIG ?= tin_r50_1x1x8_40e_sthv1_rgb
ARCHS ?=
# ablation: seeds per gradient
SEEDS ?= 0,1,2
# evaluate-published-*: SET="key=value ..." passes config overrides to the test (e.g. data.workers_per_gpu=8)
SET ?=

NOTEBOOKS := notebooks
PIPELINE = $(PY) -m tinlib.pipeline --notebooks-dir $(NOTEBOOKS) --results-dir $(RESULTS) --work-root $(WORK) \
	$(if $(FORCE),--force) $(if $(VERBOSE),--log-output)
SUBMIT = $(PY) -m tinlib.pipeline.slurm --results-dir $(RESULTS) --work-root $(WORK) --profile $(PROFILE) \
	$(if $(LISTS_DIR),--lists-dir "$(LISTS_DIR)") $(if $(GPUS),--gpus-per-node $(GPUS)) \
	$(if $(findstring file,$(origin NODES)),,--nodes $(NODES)) $(if $(PARTITION),--partition $(PARTITION)) \
	$(if $(ACCOUNT),--account $(ACCOUNT)) $(if $(TIME_LIMIT),--time $(TIME_LIMIT)) $(if $(DRY_RUN),--dry-run)
# $(call reproduce,DATASET): the row's pipeline here, or its sbatch job with LAUNCHER=slurm
reproduce = $(if $(filter slurm,$(LAUNCHER)),$(SUBMIT) $(1) --data-root "$(DATA_ROOT)",\
	$(PIPELINE) reproduce $(1) --data-root "$(DATA_ROOT)" $(REPRO_OPTS))
REPRO_OPTS = $(if $(LISTS_DIR),--lists-dir "$(LISTS_DIR)") $(if $(GPUS),--gpus $(GPUS)) --nodes $(NODES) \
	--node-rank $(NODE_RANK) --master-addr $(MASTER_ADDR) --master-port $(MASTER_PORT) --profile $(PROFILE)

# (the check-data-% and check-val-data-% pattern rules are not listed: make skips pattern rules for phony targets)
.PHONY: help setup lock lint gpu-check test test-fast demo ablation doctor lab tensorboard clean zoo report latency \
	reproduce-all \
	reproduce-sthv1 reproduce-sthv2 reproduce-k400 check-data-all evaluate-published-sthv1 \
	evaluate-published-sthv2 evaluate-published-k400

help:  ## list the targets
	@grep -E '^[a-zA-Z0-9_%-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

setup: $(STAMP)  ## [PY=python] .venv (or the environment of PY) with tinlib (editable), test tools, Jupyter kernel

# The lock was made on CPython 3.11 / Linux x86_64; elsewhere setup installs the ranges instead.
LOCK_FITS = $(PY) -c 'import platform, sys; sys.exit(sys.version_info[:2] != (3, 11) or platform.system() != "Linux" or platform.machine() != "x86_64")'

$(STAMP): pyproject.toml $(LOCK)
ifeq ($(STAMP),$(VENV)/.installed)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@if $(LOCK_FITS); then \
		echo "installing the tested versions ($(LOCK)) into $(VENV)"; \
		$(PY) -m pip install --quiet -r $(LOCK) && $(PY) -m pip install --quiet --no-deps -e . ; \
	else \
		echo "$(LOCK) was made for CPython 3.11 on Linux x86_64: installing the version ranges instead"; \
		$(PY) -m pip install --quiet -e '.[dev,onnx]'; \
	fi
else
	@echo "installing tinlib into the environment of $(PY) ($$($(PY) -c 'import sys; print(sys.prefix)')), keeping its PyTorch"
	$(PY) -m pip install --quiet -e '.[dev,onnx]'
endif
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name 'Python (tin-kit)' >/dev/null
	@mkdir -p $(dir $@) && touch $@

lock: $(STAMP)  ## rewrite requirements-lock.txt from .venv (after changing a dependency)
	@{ sed -n '/^#/p' $(LOCK); $(PY) -m pip freeze --exclude-editable | grep -v '^tinlib'; } > $(LOCK).new && mv $(LOCK).new $(LOCK)
	@echo "wrote $(LOCK)"

lint: $(STAMP)  ## ruff (lint + import order), mypy (tinlib/) and lint-imports (the layering in pyproject.toml)
	$(PY) -m ruff check tinlib tests benchmarks notebooks
	$(PY) -m mypy
	"$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/lint-imports" --no-cache

doctor: $(STAMP)  ## does this machine run the kit? versions, devices, op/AMP/decoder checks (exit 1 on a failure)
	$(PY) -m tinlib doctor

test: $(STAMP) lint  ## ruff + mypy + lint-imports, then the test suite on the CPU (Triton kernels in interpreter mode)
	$(PY) -m pytest

test-fast: $(STAMP)  ## the test suite without the slow end-to-end tests
	$(PY) -m pytest -m 'not slow'

demo: $(STAMP)  ## synthetic data, train TIN/TSM/TSN, evaluate, latency -> results/model_zoo.md + results/reports/demo.html
	@start=$$(date +%s); $(PIPELINE) demo; code=$$?; \
	echo "make demo: $$(( $$(date +%s) - start )) s"; exit $$code

ablation: $(STAMP)  ## [SEEDS=0,1,2] the demo's TIN trained with the true and with mmcv's interlace gradient
	$(PIPELINE) ablation --seeds $(SEEDS)

# The data check runs with the system Python before anything is installed or started, so a
# missing dataset is reported within seconds.
check-data-%:
	@$(PYTHON) -m tinlib.pipeline check-data $* --data-root "$(DATA_ROOT)" $(if $(LISTS_DIR),--lists-dir "$(LISTS_DIR)")

# evaluate-published-* tests on the val split only, so only its list and videos must be there
check-val-data-%:
	@$(PYTHON) -m tinlib.pipeline check-data $* --splits val --data-root "$(DATA_ROOT)" $(if $(LISTS_DIR),--lists-dir "$(LISTS_DIR)")

evaluate-published-sthv1: check-val-data-sthv1 $(STAMP)  ## DATA_ROOT=... [GPUS=8]: MMAction2's published checkpoint of the row, tested on your data
	$(PIPELINE) evaluate-published sthv1 --data-root "$(DATA_ROOT)" $(REPRO_OPTS) $(if $(SET),--set $(SET))

evaluate-published-sthv2: check-val-data-sthv2 $(STAMP)  ## the same for the Something-Something V2 row
	$(PIPELINE) evaluate-published sthv2 --data-root "$(DATA_ROOT)" $(REPRO_OPTS) $(if $(SET),--set $(SET))

evaluate-published-k400: check-val-data-k400 $(STAMP)  ## the same for the Kinetics-400 row
	$(PIPELINE) evaluate-published k400 --data-root "$(DATA_ROOT)" $(REPRO_OPTS) $(if $(SET),--set $(SET))

reproduce-sthv1: check-data-sthv1 $(STAMP) gpu-check  ## DATA_ROOT=... [GPUS=8 NODES=1] [LAUNCHER=slurm]: prepare, train, evaluate, latency, zoo
	$(call reproduce,sthv1)

reproduce-sthv2: check-data-sthv2 $(STAMP) gpu-check  ## the same for the Something-Something V2 row
	$(call reproduce,sthv2)

reproduce-k400: check-data-k400 $(STAMP) gpu-check  ## the same for the Kinetics-400 row (fine-tuned from TSM-K400)
	$(call reproduce,k400)

# Before a long GPU run, within a minute: the doctor's GPU checks (the interlace op per backend and
# dtype, one AMP training step). Skipped on a machine without CUDA; a failure stops make with the table.
gpu-check: $(STAMP)
	@if $(PY) -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then \
		mkdir -p $(RESULTS); set -o pipefail; \
		$(PY) -m tinlib doctor --quick --device cuda | tee $(RESULTS)/doctor.txt \
		|| { echo "make: the GPU checks failed (table above, saved in $(RESULTS)/doctor.txt)" >&2; exit 1; }; \
	fi

check-data-all:
	@test -n "$(DATA_ROOT)" || { echo "make reproduce-all: DATA_ROOT is not set: give the folder that holds sthv1/," \
		"sthv2/ and kinetics400/, e.g. make reproduce-all DATA_ROOT=/data" >&2; exit 2; }
	@for pair in sthv1:sthv1 sthv2:sthv2 k400:kinetics400; do \
		$(PYTHON) -m tinlib.pipeline check-data $${pair%%:*} --data-root "$(DATA_ROOT)/$${pair#*:}" || exit 2; \
	done

reproduce-all: check-data-all $(STAMP)  ## DATA_ROOT=DIR holding sthv1/ sthv2/ kinetics400/: all three zoo rows
	$(MAKE) reproduce-sthv1 DATA_ROOT="$(DATA_ROOT)/sthv1"
	$(MAKE) reproduce-sthv2 DATA_ROOT="$(DATA_ROOT)/sthv2"
	$(MAKE) reproduce-k400 DATA_ROOT="$(DATA_ROOT)/kinetics400"

zoo: $(STAMP)  ## rewrite results/model_zoo.md from results/ alone
	$(PY) -m tinlib zoo --results-dir $(RESULTS)

report: $(STAMP)  ## re-render the HTML reports (results/reports/) from the executed notebooks
	$(PIPELINE) report

latency: $(STAMP)  ## [CONFIG=... ARCHS=tin_r50,tsm_r50,tsn_r50]: latency, FLOPs, params (notebook 03)
	$(PIPELINE) latency --config $(CONFIG) $(if $(ARCHS),--archs $(ARCHS))

tensorboard: $(STAMP)  ## TensorBoard on the training curves of every run under WORK (work_dirs/*/tensorboard)
	$(PY) -m tensorboard.main --logdir $(WORK)

lab: $(STAMP)  ## open JupyterLab on the project kernel, in notebooks/
	$(PY) -m jupyterlab --ServerApp.root_dir=$(CURDIR) --LabApp.default_url=/lab/tree/notebooks \
		$(if $(filter 0,$(shell id -u)),--allow-root)

clean:  ## remove caches, the virtual environment and the demo's scratch data (never results/)
	rm -rf $(VENV) .pytest_cache $(WORK)/demo data/synthetic
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -name .ipynb_checkpoints -type d -prune -exec rm -rf {} +
